package pgindex

import (
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// evictable is index.BlobRecord.Evictable in SQL, the predicate of the
// blobs_lru index (a query must repeat it to use the index).
const evictable = "origin NOT IN ('', 'hosted', 'recovered')"

// --- usage ---

// Usage returns one origin's totals.
func (t *Txn) Usage(origin string) (index.Usage, error) {
	var u index.Usage
	err := t.row("SELECT bytes, blobs FROM usage WHERE origin = $1", []any{origin}, &u.Bytes, &u.Count)
	if err == index.ErrNotFound {
		return index.Usage{}, nil
	}
	if err != nil {
		return index.Usage{}, fail(err, "read usage of %s", origin)
	}
	return u, nil
}

// Usages returns the totals of every origin.
func (t *Txn) Usages() (map[string]index.Usage, error) {
	type row struct {
		origin string
		u      index.Usage
	}
	rows, err := collect(t, "SELECT origin, bytes, blobs FROM usage", nil, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.origin, &x.u.Bytes, &x.u.Count)
		return x, err
	})
	if err != nil {
		return nil, fail(err, "read usage")
	}
	out := make(map[string]index.Usage, len(rows))
	for _, r := range rows {
		out[r.origin] = r.u
	}
	return out, nil
}

// --- reads and the least-recently-used order ---

type touch struct {
	at   int64
	hits int64
}

// Touch records reads of d: last access at t and hits more hits. It keeps
// the LRU order; a missing record is ignored (evicted meanwhile). Reads
// are written together, in one statement before the transaction's next
// one or at its commit: a flush of a thousand reads is one round trip.
func (t *Txn) Touch(d oci.Digest, at time.Time, hits int64) error {
	if err := t.writable(); err != nil {
		return fail(err, "record reads of %s", d)
	}
	if t.touches == nil {
		t.touches = map[oci.Digest]touch{}
	}
	p, ok := t.touches[d]
	if !ok {
		p.at = math.MinInt64
	}
	p.at = max(p.at, ns(at))
	p.hits += hits
	t.touches[d] = p
	return nil
}

// touchSQL moves each blob's last access forward and adds its hits; a
// read that changes neither writes nothing, as in Badger's index.
const touchSQL = `
UPDATE blobs b SET last_access = GREATEST(b.last_access, v.at), hits = b.hits + v.hits
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v (digest, at, hits)
WHERE b.digest = v.digest AND (v.at > b.last_access OR v.hits <> 0)`

// flush writes the reads Touch recorded, in digest order, so that two
// transactions writing overlapping sets lock rows in the same order.
func (t *Txn) flush() error {
	if len(t.touches) == 0 {
		return nil
	}
	ds := make([]string, 0, len(t.touches))
	for d := range t.touches {
		ds = append(ds, string(d))
	}
	slices.Sort(ds)
	at := make([]int64, len(ds))
	hits := make([]int64, len(ds))
	for i, d := range ds {
		p := t.touches[oci.Digest(d)]
		at[i], hits[i] = p.at, p.hits
	}
	t.touches = nil
	err := t.note(t.send(touchSQL, []any{ds, at, hits}, drain))
	if err != nil {
		if len(ds) == 1 {
			return fail(err, "record reads of %s", ds[0])
		}
		return fail(err, "record reads of %d blobs", len(ds))
	}
	return nil
}

// lruPage reads up to n evictable blobs in LRU order after (at, d), used
// before before (math.MaxInt64: no limit).
func (t *Txn) lruPage(at int64, d oci.Digest, before int64, n int) ([]index.LRUEntry, error) {
	return collect(t, `SELECT digest, last_access, size, origin FROM blobs
WHERE `+evictable+` AND (last_access, digest) > ($1, $2) AND last_access < $3
ORDER BY last_access, digest LIMIT $4`, []any{at, d, before, n}, func(row pgx.CollectableRow) (index.LRUEntry, error) {
		var e index.LRUEntry
		var la int64
		err := row.Scan(&e.Digest, &la, &e.Size, &e.Origin)
		e.LastAccess = fromNS(la)
		return e, err
	})
}

// eachLRU visits evictable blobs in LRU order after (at, d), a page at a
// time: the first small, as callers usually take a window and stop.
func (t *Txn) eachLRU(at int64, d oci.Digest, before time.Time, fn func(index.LRUEntry) (bool, error)) error {
	limit := int64(math.MaxInt64)
	if !before.IsZero() {
		limit = ns(before)
	}
	for n := 128; ; n = min(2*n, 8192) {
		page, err := t.lruPage(at, d, limit, n)
		if err != nil {
			return fail(err, "list blobs in least-recently-used order")
		}
		for _, e := range page {
			cont, err := fn(e)
			if err != nil || !cont {
				return err
			}
		}
		if len(page) < n {
			return nil
		}
		at, d = ns(page[len(page)-1].LastAccess), page[len(page)-1].Digest
	}
}

// EachLeastRecent visits evictable blobs from the least recently used,
// stopping when fn returns false or at the first one used at or after
// before (zero: no limit).
func (t *Txn) EachLeastRecent(before time.Time, fn func(d oci.Digest, lastAccess time.Time) (bool, error)) error {
	return t.eachLRU(math.MinInt64, "", before, func(e index.LRUEntry) (bool, error) { return fn(e.Digest, e.LastAccess) })
}

// EachLeastRecentAfter visits evictable blobs in least-recently-used
// order from c on, moving c past each entry it hands to fn, so that the
// next call resumes after it. It stops when fn returns false or at the
// first blob used at or after before (zero: no limit), which c stays
// before.
func (t *Txn) EachLeastRecentAfter(c *index.LRUCursor, before time.Time, fn func(index.LRUEntry) (bool, error)) error {
	at, d := int64(math.MinInt64), oci.Digest("")
	if c.Digest != "" {
		at, d = ns(c.LastAccess), c.Digest
	}
	return t.eachLRU(at, d, before, func(e index.LRUEntry) (bool, error) {
		c.Set(e)
		return fn(e)
	})
}

// --- pins ---

// Pin marks d as pinned by rule (an image reference pattern).
func (t *Txn) Pin(d oci.Digest, rule string) error {
	err := t.writable()
	if err == nil {
		err = t.exec("INSERT INTO pins (digest, rule) VALUES ($1, $2) ON CONFLICT DO NOTHING", d, rule)
	}
	if err != nil {
		return fail(err, "pin %s (%s)", d, rule)
	}
	return nil
}

// Unpin removes rule's pin on d ("" removes every pin on d).
func (t *Txn) Unpin(d oci.Digest, rule string) error {
	err := t.writable()
	if err == nil {
		err = t.exec("DELETE FROM pins WHERE digest = $1 AND ($2 = '' OR rule = $2)", d, rule)
	}
	if err != nil {
		return fail(err, "unpin %s", d)
	}
	return nil
}

// Pinned reports whether any rule pins d.
func (t *Txn) Pinned(d oci.Digest) (bool, error) {
	var ok bool
	if err := t.row("SELECT EXISTS (SELECT 1 FROM pins WHERE digest = $1)", []any{d}, &ok); err != nil {
		return false, fail(err, "look up pins of %s", d)
	}
	return ok, nil
}

// PinRules lists every pin as digest → rules.
func (t *Txn) PinRules() (map[oci.Digest][]string, error) {
	type pin struct {
		d    oci.Digest
		rule string
	}
	pins, err := collect(t, "SELECT digest, rule FROM pins ORDER BY digest, rule", nil, func(row pgx.CollectableRow) (pin, error) {
		var p pin
		err := row.Scan(&p.d, &p.rule)
		return p, err
	})
	if err != nil {
		return nil, fail(err, "list pins")
	}
	out := map[oci.Digest][]string{}
	for _, p := range pins {
		out[p.d] = append(out[p.d], p.rule)
	}
	return out, nil
}

// PinsOf lists the rules pinning d.
func (t *Txn) PinsOf(d oci.Digest) ([]string, error) {
	rules, err := collect(t, "SELECT rule FROM pins WHERE digest = $1 ORDER BY rule", []any{d}, scanString)
	if err != nil {
		return nil, fail(err, "list pins of %s", d)
	}
	return nilIfEmpty(rules), nil
}

// --- tag revalidation ---

// TagChecked returns when repo:tag was last confirmed upstream.
func (t *Txn) TagChecked(repo, tag string) (time.Time, error) {
	var checked int64
	if err := t.row("SELECT checked FROM tag_checks WHERE repo = $1 AND tag = $2", []any{repo, tag}, &checked); err != nil {
		return time.Time{}, fail(err, "read when %s:%s was checked upstream", repo, tag)
	}
	return time.Unix(0, checked), nil
}

// SetTagChecked records a confirmation of repo:tag at t.
func (t *Txn) SetTagChecked(repo, tag string, at time.Time) error {
	err := t.writable()
	if err == nil {
		err = t.exec("INSERT INTO tag_checks (repo, tag, checked) VALUES ($1, $2, $3) ON CONFLICT (repo, tag) DO UPDATE SET checked = EXCLUDED.checked",
			repo, tag, at.UnixNano())
	}
	if err != nil {
		return fail(err, "record that %s:%s was checked upstream", repo, tag)
	}
	return nil
}

// --- counts ---

// CountEntries counts the index's records by type (index.EntryTypes).
// Each count is a scan of its table's primary key: metrics call it at
// most every few seconds, never on a request path.
func (t *Txn) CountEntries() (map[string]int64, error) {
	var b, m, tg, l, r, u int64
	err := t.row(`SELECT (SELECT count(*) FROM blobs), (SELECT count(*) FROM manifests), (SELECT count(*) FROM tags),
	(SELECT count(*) FROM links), (SELECT count(*) FROM referrers), (SELECT count(*) FROM uploads)`, nil, &b, &m, &tg, &l, &r, &u)
	if err != nil {
		return nil, fail(err, "count records")
	}
	return map[string]int64{"blob": b, "manifest": m, "tag": tg, "link": l, "referrer": r, "upload": u}, nil
}
