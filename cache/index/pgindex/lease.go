package pgindex

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Fill leases: in cluster mode one replica at a time fetches a digest
// from the upstream, the one holding its lease; the others stream the
// bytes from it. A lease is a row of fill_leases whose expiry is reckoned
// by the database's clock, never a replica's, so replicas whose clocks
// disagree still agree on who holds it. The holder renews it while it
// fills; a holder that died stops renewing, and the lease is free to take
// once it expired: waiting replicas find that by asking again on their
// own timer, with no word from the one that died.

// Lease is who fills a digest, and where the others reach it.
type Lease struct {
	Owner string
	Addr  string
	// Expires is by the database's clock.
	Expires time.Time
}

// nowNS is the database's clock in unix nanoseconds. clock_timestamp,
// not now(): now() is the transaction's start.
const nowNS = `(extract(epoch FROM clock_timestamp()) * 1e9)::bigint`

// ClaimFill takes the lease on digest for owner (reachable at addr) for
// ttl, unless another owner holds one that has not expired. It returns
// the lease as it is now and whether owner holds it. One statement takes
// it, so of replicas claiming at once exactly one wins.
func (x *Index) ClaimFill(ctx context.Context, digest, owner, addr string, ttl time.Duration) (Lease, bool, error) {
	for range 5 {
		var l Lease
		var exp int64
		err := x.pool.QueryRow(ctx, `INSERT INTO fill_leases AS l (digest, owner, addr, expires)
VALUES ($1, $2, $3, `+nowNS+` + $4)
ON CONFLICT (digest) DO UPDATE SET owner = excluded.owner, addr = excluded.addr, expires = excluded.expires
	WHERE l.expires < `+nowNS+`
RETURNING owner, addr, expires`, digest, owner, addr, ttl.Nanoseconds()).Scan(&l.Owner, &l.Addr, &exp)
		if err == nil {
			l.Expires = time.Unix(0, exp)
			return l, true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Lease{}, false, fmt.Errorf("index: claiming the fill of %s: %w", digest, err)
		}
		// A live lease of another owner: say whose.
		l, ok, err := x.FillLease(ctx, digest)
		if err != nil {
			return Lease{}, false, err
		}
		if ok {
			return l, l.Owner == owner, nil
		}
		// Released between the two statements: claim again.
	}
	return Lease{}, false, fmt.Errorf("index: claiming the fill of %s: the lease kept changing hands", digest)
}

// FillLease reads the lease on digest, expired or not.
func (x *Index) FillLease(ctx context.Context, digest string) (Lease, bool, error) {
	var l Lease
	var exp int64
	err := x.pool.QueryRow(ctx, `SELECT owner, addr, expires FROM fill_leases WHERE digest = $1`, digest).Scan(&l.Owner, &l.Addr, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, fmt.Errorf("index: reading the fill lease of %s: %w", digest, err)
	}
	l.Expires = time.Unix(0, exp)
	return l, true, nil
}

// RenewFill extends owner's lease on digest to ttl from now; false when
// owner no longer holds it (it expired and another replica took it).
func (x *Index) RenewFill(ctx context.Context, digest, owner string, ttl time.Duration) (bool, error) {
	tag, err := x.pool.Exec(ctx, `UPDATE fill_leases SET expires = `+nowNS+` + $3 WHERE digest = $1 AND owner = $2`,
		digest, owner, ttl.Nanoseconds())
	if err != nil {
		return false, fmt.Errorf("index: renewing the fill lease of %s: %w", digest, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseFill drops owner's lease on digest, if it still holds it.
func (x *Index) ReleaseFill(ctx context.Context, digest, owner string) error {
	if _, err := x.pool.Exec(ctx, `DELETE FROM fill_leases WHERE digest = $1 AND owner = $2`, digest, owner); err != nil {
		return fmt.Errorf("index: releasing the fill lease of %s: %w", digest, err)
	}
	return nil
}

// ClusterToken is the secret the replicas sharing this database show each
// other: made once, by the first to ask, and the same ever after.
func (x *Index) ClusterToken(ctx context.Context) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	// A row another replica committed while this statement ran is in
	// neither half of its answer (its snapshot is older): ask again.
	for range 3 {
		var tok string
		err := x.pool.QueryRow(ctx, `WITH ins AS (
	INSERT INTO cluster_token (token) VALUES ($1) ON CONFLICT (one) DO NOTHING RETURNING token
)
SELECT token FROM ins UNION ALL SELECT token FROM cluster_token`, hex.EncodeToString(b)).Scan(&tok)
		if err == nil {
			return tok, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", fmt.Errorf("index: reading the cluster token: %w", err)
		}
	}
	return "", errors.New("index: reading the cluster token: no row")
}
