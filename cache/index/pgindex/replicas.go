package pgindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replica is one replica's heartbeat row.
type Replica struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"` // where it serves, as it advertises itself
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"` // the database's clock
}

// Heartbeat records that replica r is alive now (by the database's clock).
func (x *Index) Heartbeat(ctx context.Context, r Replica) error {
	_, err := x.pool.Exec(ctx, `INSERT INTO replicas (id, addr, version, started, last_seen) VALUES ($1, $2, $3, $4, now())
ON CONFLICT (id) DO UPDATE SET addr = EXCLUDED.addr, version = EXCLUDED.version, started = EXCLUDED.started, last_seen = now()`,
		r.ID, r.Addr, r.Version, r.Started)
	if err != nil {
		return fmt.Errorf("index: heartbeat of replica %s: %w", r.ID, err)
	}
	return nil
}

// Leave removes replica id's row: it stops cleanly, so it drops out of
// the list at once rather than when its heartbeat gets old.
func (x *Index) Leave(ctx context.Context, id string) error {
	if _, err := x.pool.Exec(ctx, `DELETE FROM replicas WHERE id = $1`, id); err != nil {
		return fmt.Errorf("index: removing replica %s: %w", id, err)
	}
	return nil
}

// Replicas lists the replicas seen within the last `within`, by address,
// and forgets those not seen for a day.
func (x *Index) Replicas(ctx context.Context, within time.Duration) ([]Replica, error) {
	if _, err := x.pool.Exec(ctx, `DELETE FROM replicas WHERE last_seen < now() - interval '1 day'`); err != nil {
		return nil, fmt.Errorf("index: forgetting old replicas: %w", err)
	}
	rows, _ := x.pool.Query(ctx, `SELECT id, addr, version, started, last_seen FROM replicas
WHERE last_seen >= now() - make_interval(secs => $1) ORDER BY addr, id`, within.Seconds())
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Replica, error) {
		var r Replica
		err := row.Scan(&r.ID, &r.Addr, &r.Version, &r.Started, &r.LastSeen)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("index: listing replicas: %w", err)
	}
	return rs, nil
}

// ReplicaAddr is the address replica id advertises, if it was seen within
// the last `within`.
func (x *Index) ReplicaAddr(ctx context.Context, id string, within time.Duration) (string, bool, error) {
	var addr string
	err := x.pool.QueryRow(ctx, `SELECT addr FROM replicas WHERE id = $1 AND last_seen >= now() - make_interval(secs => $2)`,
		id, within.Seconds()).Scan(&addr)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("index: finding replica %s: %w", id, err)
	}
	return addr, true, nil
}
