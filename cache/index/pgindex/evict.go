package pgindex

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// Eviction and bulk deletion work on batches of up to
// index.MaxEvictBatch blobs, each one statement in one transaction: the
// statement finds what may still go, and deletes it with everything that
// hangs off it, server-side. A batch that kept conflicting with other
// writers is split in halves, as in Badger's index.

// batches is index.Batches for PostgreSQL: a batch that kept conflicting
// with other writers is split.
func batches[T any](ctx context.Context, n int, do func(lo, hi int) ([]T, error)) ([]T, error) {
	return index.Batches(ctx, n, func(err error) bool {
		_, gaveUp := errors.AsType[*conflictError](err)
		return gaveUp
	}, do)
}

// DeleteBlobs is DeleteBlob for many digests: it removes their records,
// links and usage counts, up to index.MaxEvictBatch per transaction. It
// returns the records it removed, in digest order; on an error, those
// were removed all the same.
func (x *Index) DeleteBlobs(ctx context.Context, ds []oci.Digest) ([]index.BlobRecord, error) {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	ds = slices.Compact(ds)
	out, err := batches(ctx, len(ds), func(lo, hi int) ([]index.BlobRecord, error) {
		var got []index.BlobRecord
		err := x.update(ctx, func(t *Txn) error {
			var err error
			got, err = t.deleteBlobs(ds[lo:hi])
			return err
		})
		return got, err
	})
	if err != nil {
		return out, fail(err, "delete %d blob records", len(ds))
	}
	return out, nil
}

// PlanEviction prepares the removal of cands. A candidate is either an
// entry as EachLeastRecentAfter gave it or just a digest, which is looked
// up (all of them in one query). Candidates gone, not evictable, read
// since they were chosen, or last read at or after before (zero: no
// limit) are left out; the plans keep the others' order, with their size
// and origin. Nothing is decided here: Evict checks again, in its own
// transaction, what a writer may have changed since, and finds the
// links then.
func (x *Index) PlanEviction(cands []index.LRUEntry, before time.Time) ([]index.EvictPlan, error) {
	var lookup []string
	for _, c := range cands {
		if c.LastAccess.IsZero() || !c.Known() {
			lookup = append(lookup, string(c.Digest))
		}
	}
	recs := map[oci.Digest]index.BlobRecord{}
	if len(lookup) > 0 {
		err := x.view(func(t *Txn) error {
			rs, err := collect(t, "SELECT "+blobColumns+" FROM blobs WHERE digest = ANY($1)", []any{lookup}, scanBlob)
			for _, r := range rs {
				recs[r.Digest] = r
			}
			return err
		})
		if err != nil {
			return nil, fail(err, "plan the eviction of %d blobs", len(cands))
		}
	}
	plan := make([]index.EvictPlan, 0, len(cands))
	seen := make(map[oci.Digest]bool, len(cands))
	for _, c := range cands {
		if seen[c.Digest] {
			continue
		}
		seen[c.Digest] = true
		e := c
		rec, found := recs[c.Digest]
		if e.LastAccess.IsZero() {
			if !found || !rec.Evictable() {
				continue
			}
			e.LastAccess, e.Size, e.Origin = rec.LastAccess, rec.Size, rec.Origin
		}
		if !before.IsZero() && !e.LastAccess.Before(before) {
			continue
		}
		if !e.Known() {
			if !found || !rec.Evictable() || !rec.LastAccess.Equal(e.LastAccess) {
				continue
			}
			e.Size, e.Origin = rec.Size, rec.Origin
		}
		plan = append(plan, index.EvictPlan{LRUEntry: e})
	}
	return plan, nil
}

// evictSQL removes the planned blobs ($1, last read at $2) that may still
// go: one read, re-recorded or made hosted since it was planned (its last
// access or origin is no longer the planned one), or that a rule pins,
// stays. With each it removes its links, its usage count, and the
// manifest records of its digest in the repositories it is linked in,
// with their tags and referrer entries. It returns what it removed, with
// the size and origin the index held, in LRU order.
const evictSQL = `
WITH victims AS (
	SELECT b.digest FROM blobs b
	JOIN unnest($1::text[], $2::bigint[]) AS p (digest, last_access) ON b.digest = p.digest AND b.last_access = p.last_access
	WHERE b.` + evictable + ` AND NOT EXISTS (SELECT 1 FROM pins WHERE pins.digest = b.digest)
), doomed AS (
	SELECT m.repo, m.digest, m.subject FROM manifests m
	JOIN links l ON l.repo = m.repo AND l.digest = m.digest
	WHERE m.digest IN (SELECT digest FROM victims)
), untagged AS (
	DELETE FROM tags t USING doomed m WHERE t.repo = m.repo AND t.digest = m.digest
), unreferred AS (
	DELETE FROM referrers r USING doomed m WHERE r.repo = m.repo AND r.subject = m.subject AND r.digest = m.digest
), unmanifested AS (
	DELETE FROM manifests x USING doomed m WHERE x.repo = m.repo AND x.digest = m.digest
), unlinked AS (
	DELETE FROM links WHERE digest IN (SELECT digest FROM victims)
), gone AS (
	DELETE FROM blobs WHERE digest IN (SELECT digest FROM victims) RETURNING digest, last_access, size, origin
), counted AS (
	INSERT INTO usage (origin, bytes, blobs)
	SELECT origin, -sum(size), -count(*) FROM gone GROUP BY origin
	ON CONFLICT (origin) DO UPDATE SET bytes = usage.bytes + EXCLUDED.bytes, blobs = usage.blobs + EXCLUDED.blobs
)
SELECT digest, last_access, size, origin FROM gone ORDER BY last_access, digest`

// Evict removes the planned blobs that may still go (see evictSQL), up
// to index.MaxEvictBatch per transaction, and returns what it removed so
// the caller can remove the files; on an error, what it returns was
// removed all the same. A writer that changes one of these blobs while a
// transaction runs makes it conflict and start over.
func (x *Index) Evict(ctx context.Context, plan []index.EvictPlan) ([]index.LRUEntry, error) {
	out, err := batches(ctx, len(plan), func(lo, hi int) ([]index.LRUEntry, error) {
		ds := make([]string, hi-lo)
		at := make([]int64, hi-lo)
		for i, p := range plan[lo:hi] {
			ds[i], at[i] = string(p.Digest), ns(p.LastAccess)
		}
		var got []index.LRUEntry
		err := x.update(ctx, func(t *Txn) error {
			var err error
			got, err = collect(t, evictSQL, []any{ds, at}, func(row pgx.CollectableRow) (index.LRUEntry, error) {
				var e index.LRUEntry
				var la int64
				err := row.Scan(&e.Digest, &la, &e.Size, &e.Origin)
				e.LastAccess = fromNS(la)
				return e, err
			})
			return err
		})
		return got, err
	})
	if err != nil {
		return out, fail(err, "evict %d blobs", len(plan))
	}
	return out, nil
}

// EvictBlobs is PlanEviction and Evict in one.
func (x *Index) EvictBlobs(ctx context.Context, cands []index.LRUEntry, before time.Time) ([]index.LRUEntry, error) {
	plan, err := x.PlanEviction(cands, before)
	if err != nil || len(plan) == 0 {
		return nil, err
	}
	return x.Evict(ctx, plan)
}
