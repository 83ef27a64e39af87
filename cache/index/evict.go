package index

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wharf-registry/wharf/oci"
)

// Eviction in batches. Removing blobs one transaction each costs a synced
// commit per blob, and rescanning the LRU order from its front walks over
// the tombstones of everything removed so far; at a hundred thousand
// blobs that took a minute or more. Here a cursor resumes the LRU scan
// where the last window ended; a read-only pass finds the links of a
// whole window at once, walking the reverse links in digest order; and
// each write transaction removes up to MaxEvictBatch blobs, re-reading
// only what concurrent writers may have changed, with every read before
// the first write (an iterator in a read-write transaction sorts all its
// pending writes, so a scan after writes costs what was written so far).

// MaxEvictBatch is the most blobs one transaction removes. Badger's limit
// (ErrTxnTooBig) is a share of the memtable; a batch that exceeds it
// anyway is split.
const MaxEvictBatch = 1024

// LRUEntry is one evictable blob in least-recently-used order.
type LRUEntry struct {
	Digest     oci.Digest
	LastAccess time.Time
	// Size and Origin are the record's, carried by its LRU key. A key
	// written before they were has Size -1 and Origin "": PlanEviction
	// looks those up, many at a time.
	Size   int64
	Origin string
}

// Known reports whether e carries its record's size and origin.
func (e LRUEntry) Known() bool { return e.Origin != "" }

// LRUCursor is a place in the least-recently-used order: just past the
// entry (LastAccess, Digest). The zero value is the front.
type LRUCursor struct {
	LastAccess time.Time
	Digest     oci.Digest
}

// Set moves c just past e, for a caller that took fewer entries than it
// was handed.
func (c *LRUCursor) Set(e LRUEntry) { c.LastAccess, c.Digest = e.LastAccess, e.Digest }

// EachLeastRecentAfter visits evictable blobs in least-recently-used
// order from c on, moving c past each entry it hands to fn, so that the
// next call resumes after it. It stops when fn returns false or at the
// first blob used at or after before (zero: no limit), which c stays
// before. It reads LRU keys only, one after the other.
func (tx *badgerTxn) EachLeastRecentAfter(c *LRUCursor, before time.Time, fn func(LRUEntry) (bool, error)) error {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = []byte(pAccess)
	it := tx.t.NewIterator(o)
	defer it.Close()
	if c.Digest == "" {
		it.Rewind()
	} else {
		it.Seek(append(accessKey(c.LastAccess, c.Digest), 0))
	}
	for ; it.ValidForPrefix(o.Prefix); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) <= len(pAccess)+8 {
			continue
		}
		e := LRUEntry{
			Digest:     oci.Digest(k[len(pAccess)+8:]),
			LastAccess: time.Unix(0, int64(binary.BigEndian.Uint64(k[len(pAccess):]))),
		}
		if !before.IsZero() && !e.LastAccess.Before(before) {
			return nil
		}
		c.Set(e)
		known := false
		if err := item.Value(func(v []byte) error {
			e.Size, e.Origin, known = decodeLRUValue(v)
			return nil
		}); err != nil {
			return err
		}
		if !known || e.Origin == "" {
			e.Size, e.Origin = -1, ""
		}
		cont, err := fn(e)
		if err != nil || !cont {
			return err
		}
	}
	return nil
}

// walker visits key ranges in ascending order with one iterator. It
// steps forward with Next while the next range is near and seeks when it
// is not: a seek costs a binary search and a block in every level of the
// tree, a step a comparison, about a fiftieth of that. So lookups that are
// dense in the key space cost little more than a scan of it, and sparse
// ones a seek each.
type walker struct {
	it      *badger.Iterator
	within  []byte
	steps   int // how far to step before seeking instead
	started bool
}

// walkerSteps is a walker's usual step budget: about what a seek costs.
const walkerSteps = 48

func (tx *badgerTxn) newWalker(within string, steps int) *walker {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = []byte(within)
	return &walker{it: tx.t.NewIterator(o), within: o.Prefix, steps: steps}
}

// to moves to the first key at or after target, which must not be before
// the previous target.
func (w *walker) to(target []byte) {
	if !w.started {
		w.started = true
		w.it.Seek(target)
		return
	}
	for n := 0; w.it.ValidForPrefix(w.within); n++ {
		if bytes.Compare(w.it.Item().Key(), target) >= 0 {
			return
		}
		if n == w.steps {
			w.it.Seek(target)
			return
		}
		w.it.Next()
	}
	// Past the last key: there is nothing at or after target either.
}

// each calls fn with every key that has prefix, and what follows it.
func (w *walker) each(prefix []byte, fn func(item *badger.Item, rest []byte) error) error {
	w.to(prefix)
	for ; w.it.ValidForPrefix(prefix); w.it.Next() {
		item := w.it.Item()
		if err := fn(item, item.Key()[len(prefix):]); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) close() { w.it.Close() }

// reposOf lists the repositories d is linked in (a walker over L/).
func (w *walker) reposOf(d oci.Digest) ([]string, error) {
	var repos []string
	err := w.each(linkRevPrefix(d), func(_ *badger.Item, rest []byte) error {
		repos = append(repos, string(rest))
		return nil
	})
	return repos, err
}

func linkRevPrefix(d oci.Digest) []byte {
	k := make([]byte, 0, len(pLinkRev)+len(d)+1)
	k = append(append(k, pLinkRev...), d...)
	return append(k, 0)
}

func pinPrefix(d oci.Digest) []byte {
	k := make([]byte, 0, len(pPin)+len(d)+1)
	k = append(append(k, pPin...), d...)
	return append(k, 0)
}

// byDigest returns the indexes of items in ascending order of their
// digests, for walkers.
func byDigest[T any](items []T, digest func(T) oci.Digest) []int {
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(digest(items[a]), digest(items[b])) })
	return order
}

// batches is Batches for the Badger index: a batch too big for one
// transaction, or that kept conflicting with other writers, is split.
func batches[T any](ctx context.Context, n int, do func(lo, hi int) ([]T, error)) ([]T, error) {
	return Batches(ctx, n, func(err error) bool { return errors.Is(err, badger.ErrTxnTooBig) || IsConflict(err) }, do)
}

// Batches runs do on successive batches of up to MaxEvictBatch of n
// items, and splits a batch in halves when split says its error means
// the batch was too much for one transaction (too big, or conflicting
// with other writers for too long). Every implementation's bulk work
// (eviction, DeleteBlobs, reconcile) goes through it.
func Batches[T any](ctx context.Context, n int, split func(error) bool, do func(lo, hi int) ([]T, error)) ([]T, error) {
	var out []T
	var run func(lo, hi int) error
	run = func(lo, hi int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		got, err := do(lo, hi)
		if err != nil && split(err) && hi-lo > 1 {
			mid := lo + (hi-lo)/2
			if err := run(lo, mid); err != nil {
				return err
			}
			return run(mid, hi)
		}
		out = append(out, got...)
		return err
	}
	for lo := 0; lo < n; lo += MaxEvictBatch {
		if err := run(lo, min(lo+MaxEvictBatch, n)); err != nil {
			return out, err
		}
	}
	return out, nil
}

// DeleteBlobs is DeleteBlob for many digests: it removes their records,
// links, LRU keys and usage counts in as few transactions as Badger
// allows. It returns the records it removed; on an error, those were
// removed all the same.
func (x *Badger) DeleteBlobs(ctx context.Context, ds []oci.Digest) ([]BlobRecord, error) {
	out, err := x.deleteBlobs(ctx, ds)
	if err != nil {
		return out, fail(err, "delete %d blob records", len(ds))
	}
	return out, nil
}

func (x *Badger) deleteBlobs(ctx context.Context, ds []oci.Digest) ([]BlobRecord, error) {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	ds = slices.Compact(ds)
	return batches(ctx, len(ds), func(lo, hi int) ([]BlobRecord, error) {
		var out []BlobRecord
		err := x.update(ctx, func(tx *badgerTxn) error {
			out = out[:0]
			type victim struct {
				d     oci.Digest
				rec   *BlobRecord
				repos []string
			}
			vs := make([]victim, 0, hi-lo)
			links := tx.newWalker(pLinkRev, 0)
			for _, d := range ds[lo:hi] { // in digest order, for the walker
				repos, err := links.reposOf(d)
				if err != nil {
					links.close()
					return err
				}
				v := victim{d: d, repos: repos}
				rec, err := tx.Blob(d)
				switch {
				case err == nil:
					v.rec = &rec
				case !errors.Is(err, ErrNotFound):
					links.close()
					return err
				}
				vs = append(vs, v)
			}
			links.close()
			u := usageDelta{}
			for _, v := range vs {
				if err := tx.unlinkAll(v.d, v.repos); err != nil {
					return err
				}
				if v.rec == nil {
					continue
				}
				if v.rec.Evictable() {
					if err := tx.t.Delete(accessKey(v.rec.LastAccess, v.d)); err != nil {
						return err
					}
				}
				if err := tx.t.Delete(blobKey(v.d)); err != nil {
					return err
				}
				u.add(v.rec.Origin, v.rec.Size)
				out = append(out, *v.rec)
			}
			return u.write(tx)
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	})
}

// EvictPlan is a blob an eviction means to remove and the repositories
// that link it, as PlanEviction found them.
type EvictPlan struct {
	LRUEntry
	repos []string
}

// PlanEviction prepares the removal of cands, in one read-only pass: it
// finds the repositories each is linked in, walking the reverse links in
// digest order, which for a large window costs a fraction of a lookup per
// blob, and reads the size and origin of those whose LRU key did not
// carry them. A candidate is either an entry as EachLeastRecentAfter gave
// it or just a digest, which is looked up. Candidates gone, not
// evictable, read since they were chosen, or last read at or after before
// (zero: no limit) are left out; the plans keep the others' order, with
// their size and origin. Nothing is decided here: Evict checks again what
// a writer may have changed since.
func (x *Badger) PlanEviction(cands []LRUEntry, before time.Time) ([]EvictPlan, error) {
	plan := make([]EvictPlan, 0, len(cands))
	seen := make(map[oci.Digest]bool, len(cands))
	err := x.view(func(tx *badgerTxn) error {
		for _, c := range cands {
			if seen[c.Digest] {
				continue
			}
			seen[c.Digest] = true
			e := c
			if e.LastAccess.IsZero() {
				rec, err := tx.Blob(c.Digest)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if !rec.Evictable() {
					continue
				}
				e.LastAccess, e.Size, e.Origin = rec.LastAccess, rec.Size, rec.Origin
			}
			if !before.IsZero() && !e.LastAccess.Before(before) {
				continue
			}
			plan = append(plan, EvictPlan{LRUEntry: e})
		}
		// Step from one candidate's links to the next only when they lie
		// close together: about one link per blob, so when the candidates
		// are more than a fiftieth of all blobs.
		var all int64
		if usages, err := tx.Usages(); err == nil {
			for _, u := range usages {
				all += u.Count
			}
		}
		steps := 0
		if int64(len(plan))*walkerSteps >= all {
			steps = walkerSteps
		}
		links := tx.newWalker(pLinkRev, steps)
		defer links.close()
		drop := false
		for _, i := range byDigest(plan, func(p EvictPlan) oci.Digest { return p.Digest }) {
			p := &plan[i]
			if !p.Known() {
				// Records are large values, often in compressed tables
				// (an earlier version's): a lookup each, with the bloom
				// filters, costs no more than walking them.
				rec, err := tx.Blob(p.Digest)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				if err != nil || !rec.Evictable() || !rec.LastAccess.Equal(p.LastAccess) {
					p.Size, drop = -1, true
					continue
				}
				p.Size, p.Origin = rec.Size, rec.Origin
			}
			var err error
			if p.repos, err = links.reposOf(p.Digest); err != nil {
				return err
			}
		}
		if drop {
			plan = slices.DeleteFunc(plan, func(p EvictPlan) bool { return !p.Known() })
		}
		return nil
	})
	if err != nil {
		return nil, fail(err, "plan the eviction of %d blobs", len(cands))
	}
	return plan, nil
}

// Evict removes the planned blobs that may still go, up to MaxEvictBatch
// per transaction: one that has been read, re-recorded or made hosted
// since it was planned (its LRU key is no longer the planned one), or
// that a rule pins, stays. For each blob removed it deletes the record,
// its links, LRU key and usage count, and the manifest records of its
// digest in every repository with their tags and referrer entries. It
// returns what it removed, with the size and origin the index held, so
// the caller can remove the files; on an error, what it returns was
// removed all the same. A writer that changes one of these blobs while a
// transaction runs makes it conflict and start over.
func (x *Badger) Evict(ctx context.Context, plan []EvictPlan) ([]LRUEntry, error) {
	out, err := batches(ctx, len(plan), func(lo, hi int) ([]LRUEntry, error) {
		return x.evictBatch(ctx, plan[lo:hi])
	})
	if err != nil {
		return out, fail(err, "evict %d blobs", len(plan))
	}
	return out, err
}

// EvictBlobs is PlanEviction and Evict in one.
func (x *Badger) EvictBlobs(ctx context.Context, cands []LRUEntry, before time.Time) ([]LRUEntry, error) {
	plan, err := x.PlanEviction(cands, before)
	if err != nil || len(plan) == 0 {
		return nil, err
	}
	return x.Evict(ctx, plan)
}

func (x *Badger) evictBatch(ctx context.Context, plan []EvictPlan) ([]LRUEntry, error) {
	type manifest struct {
		repo    string
		subject *oci.Digest
		tags    []string
	}
	type victim struct {
		e         LRUEntry
		repos     []string
		manifests []manifest
	}
	var out []LRUEntry
	err := x.update(ctx, func(tx *badgerTxn) error {
		out = out[:0]
		// Which planned LRU keys are still there, walked in key (LRU)
		// order: the window came from consecutive keys.
		keys := make([][]byte, len(plan))
		for i, p := range plan {
			keys[i] = accessKey(p.LastAccess, p.Digest)
		}
		order := make([]int, len(plan))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(keys[a], keys[b]) })
		vs := make([]victim, 0, len(plan))
		lru := tx.newWalker(pAccess, walkerSteps)
		for _, i := range order {
			lru.to(keys[i])
			if !lru.it.ValidForPrefix(keys[i]) || len(lru.it.Item().Key()) != len(keys[i]) {
				continue // read, re-recorded, made hosted or removed since
			}
			v := victim{e: plan[i].LRUEntry, repos: plan[i].repos}
			var size int64
			var origin string
			known := false
			if err := lru.it.Item().Value(func(b []byte) error {
				size, origin, known = decodeLRUValue(b)
				return nil
			}); err != nil {
				lru.close()
				return err
			}
			switch {
			case known:
				v.e.Size, v.e.Origin = size, origin
			case v.e.Known():
				// A key from before they carried size and origin, which
				// the plan read from the record: nothing has written the
				// record since (every write of an evictable record
				// rewrites its key, with a value), so they still hold.
			default:
				rec, err := tx.Blob(v.e.Digest)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					lru.close()
					return err
				}
				v.e.Size, v.e.Origin = rec.Size, rec.Origin
			}
			vs = append(vs, v)
		}
		lru.close()
		pins := tx.newWalker(pPin, walkerSteps)
		pinned := map[oci.Digest]bool{}
		for _, i := range byDigest(vs, func(v victim) oci.Digest { return v.e.Digest }) {
			d := vs[i].e.Digest
			err := pins.each(pinPrefix(d), func(*badger.Item, []byte) error {
				pinned[d] = true
				return nil
			})
			if err != nil {
				pins.close()
				return err
			}
		}
		pins.close()
		vs = slices.DeleteFunc(vs, func(v victim) bool { return pinned[v.e.Digest] })
		for i := range vs {
			v := &vs[i]
			for _, repo := range v.repos {
				it, err := tx.t.Get([]byte(pManifest + repo + "\x00" + string(v.e.Digest)))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var r ManifestRecord
				if err := it.Value(func(b []byte) error { return json.Unmarshal(b, &r) }); err != nil {
					return err
				}
				tags, err := tx.TagsFor(repo, v.e.Digest)
				if err != nil {
					return err
				}
				v.manifests = append(v.manifests, manifest{repo: repo, subject: r.Subject, tags: tags})
			}
		}
		// Every read is done; from here on, only writes.
		u := usageDelta{}
		for _, v := range vs {
			d := v.e.Digest
			for _, m := range v.manifests {
				for _, t := range m.tags {
					if err := tx.del(pTag + m.repo + "\x00" + t); err != nil {
						return err
					}
				}
				if m.subject != nil {
					if err := tx.del(pReferrer + m.repo + "\x00" + string(*m.subject) + "\x00" + string(d)); err != nil {
						return err
					}
				}
				if err := tx.del(pManifest + m.repo + "\x00" + string(d)); err != nil {
					return err
				}
			}
			if err := tx.unlinkAll(d, v.repos); err != nil {
				return err
			}
			if err := tx.t.Delete(accessKey(v.e.LastAccess, d)); err != nil {
				return err
			}
			if err := tx.t.Delete(blobKey(d)); err != nil {
				return err
			}
			u.add(v.e.Origin, v.e.Size)
			out = append(out, v.e)
		}
		return u.write(tx)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (tx *badgerTxn) unlinkAll(d oci.Digest, repos []string) error {
	for _, r := range repos {
		if err := tx.UnlinkBlob(r, d); err != nil {
			return err
		}
	}
	return nil
}

// usageDelta sums what a batch removes per origin, so each counter is
// written once.
type usageDelta map[string]Usage

func (u usageDelta) add(origin string, size int64) {
	if origin == "" {
		origin = OriginHosted
	}
	s := u[origin]
	s.Bytes += size
	s.Count++
	u[origin] = s
}

func (u usageDelta) write(tx *badgerTxn) error {
	for origin, s := range u {
		if err := tx.addUsage(origin, -s.Bytes, -s.Count); err != nil {
			return err
		}
	}
	return nil
}
