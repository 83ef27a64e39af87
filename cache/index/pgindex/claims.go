package pgindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Blob claims keep a write of a digest apart from its deletion across
// replicas, as storage.Claims does within one process: replica B may be
// handing a blob to the bucket while replica A's garbage collection or
// eviction removes that digest's record and then its object, which would
// leave B's freshly recorded blob without bytes. A writer holds a write
// claim from before its object is written until its record is committed;
// a collector deletes only under a collect claim, which it gets only
// while no write claim is live, and a writer waits while a collect claim
// is live. Claims of one digest are taken one at a time, under a
// transaction-level advisory lock on the digest. They expire by the
// database's clock, so a replica that died holding one blocks nobody for
// long.

// ErrCollecting means a collect claim on the digest is live: the writer
// asks again shortly.
var ErrCollecting = errors.New("index: the blob is being deleted by garbage collection or eviction")

// claim takes a claim for holder on digest unless a conflicting one is
// live: any live claim conflicts with a collect claim, a live collect
// claim with a write claim. It reports whether it took it.
func (x *Index) claim(ctx context.Context, digest, holder string, collect bool, ttl time.Duration) (bool, error) {
	took := false
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		took = false
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('wharf blob claim ' || $1, 0))`, digest); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM blob_claims WHERE digest = $1 AND expires < `+nowNS, digest); err != nil {
			return err
		}
		var n int
		q := `SELECT count(*) FROM blob_claims WHERE digest = $1 AND collect`
		if collect {
			q = `SELECT count(*) FROM blob_claims WHERE digest = $1`
		}
		if err := tx.QueryRow(ctx, q, digest).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		took = true
		_, err := tx.Exec(ctx, `INSERT INTO blob_claims (digest, holder, collect, expires) VALUES ($1, $2, $3, `+nowNS+` + $4)
ON CONFLICT (digest, holder) DO UPDATE SET collect = excluded.collect, expires = excluded.expires`, digest, holder, collect, ttl.Nanoseconds())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("index: claiming %s: %w", digest, err)
	}
	return took, nil
}

// ClaimWrite takes a write claim on digest for holder (unique per write),
// or returns ErrCollecting while a collection of it is under way.
func (x *Index) ClaimWrite(ctx context.Context, digest, holder string, ttl time.Duration) error {
	ok, err := x.claim(ctx, digest, holder, false, ttl)
	if err == nil && !ok {
		err = ErrCollecting
	}
	return err
}

// ClaimCollect takes a collect claim on digest for holder; false while
// anyone writes or collects it.
func (x *Index) ClaimCollect(ctx context.Context, digest, holder string, ttl time.Duration) (bool, error) {
	return x.claim(ctx, digest, holder, true, ttl)
}

// ReleaseClaim drops holder's claim on digest.
func (x *Index) ReleaseClaim(ctx context.Context, digest, holder string) error {
	if _, err := x.pool.Exec(ctx, `DELETE FROM blob_claims WHERE digest = $1 AND holder = $2`, digest, holder); err != nil {
		return fmt.Errorf("index: releasing the claim on %s: %w", digest, err)
	}
	return nil
}
