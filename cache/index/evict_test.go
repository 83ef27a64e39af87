package index_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// putCached records n proxied blobs of origin "hub", blob i read at
// when+i minutes with size 10+i, each linked in repos repositories.
func putCached(t *testing.T, x *index.Index, from, n, repos int) []oci.Digest {
	t.Helper()
	var ds []oci.Digest
	for lo := from; lo < from+n; lo += 200 {
		update(t, x, func(tx *index.Txn) error {
			for i := lo; i < min(lo+200, from+n); i++ {
				r := cachedRecord(i)
				if err := tx.PutBlob(r); err != nil {
					return err
				}
				for k := range repos {
					if err := tx.LinkBlob(fmt.Sprintf("hub/lib/r%d", (i+k)%97), r.Digest); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	for i := from; i < from+n; i++ {
		ds = append(ds, dg(i))
	}
	return ds
}

func cachedRecord(i int) index.BlobRecord {
	return index.BlobRecord{Digest: dg(i), Size: int64(10 + i), Created: when, LastAccess: when.Add(time.Duration(i) * time.Minute), Origin: "hub"}
}

func lruOrder(t *testing.T, x *index.Index) []oci.Digest {
	t.Helper()
	var out []oci.Digest
	view(t, x, func(tx *index.Txn) error {
		return tx.EachLeastRecent(time.Time{}, func(d oci.Digest, _ time.Time) (bool, error) {
			out = append(out, d)
			return true, nil
		})
	})
	return out
}

func usageOf(t *testing.T, x *index.Index, origin string) index.Usage {
	t.Helper()
	var u index.Usage
	view(t, x, func(tx *index.Txn) error { var err error; u, err = tx.Usage(origin); return err })
	return u
}

func TestEachLeastRecentAfter(t *testing.T) {
	x := openMem(t)
	putCached(t, x, 0, 10, 1)
	update(t, x, func(tx *index.Txn) error { // not evictable: no LRU entry
		return tx.PutBlob(index.BlobRecord{Digest: dg(100), Size: 1, LastAccess: when, Origin: index.OriginHosted})
	})
	window := func(c *index.LRUCursor, before time.Time, n int) []index.LRUEntry {
		var out []index.LRUEntry
		view(t, x, func(tx *index.Txn) error {
			return tx.EachLeastRecentAfter(c, before, func(e index.LRUEntry) (bool, error) {
				out = append(out, e)
				return len(out) < n, nil
			})
		})
		return out
	}
	var c index.LRUCursor
	first := window(&c, time.Time{}, 3)
	for i, e := range first {
		if r := cachedRecord(i); e.Digest != r.Digest || !e.LastAccess.Equal(r.LastAccess) || e.Size != r.Size || e.Origin != "hub" {
			t.Errorf("entry %d = %+v, want %+v", i, e, r)
		}
	}
	// Removing what was visited does not move the cursor; blob 4 read
	// again moves behind the others and is visited there.
	update(t, x, func(tx *index.Txn) error {
		for _, e := range first {
			if err := tx.DeleteBlob(e.Digest); err != nil {
				return err
			}
		}
		return tx.Touch(dg(4), when.Add(time.Hour), 1)
	})
	var rest []oci.Digest
	for {
		w := window(&c, time.Time{}, 2)
		if len(w) == 0 {
			break
		}
		for _, e := range w {
			rest = append(rest, e.Digest)
		}
	}
	if want := []oci.Digest{dg(3), dg(5), dg(6), dg(7), dg(8), dg(9), dg(4)}; !slices.Equal(rest, want) {
		t.Errorf("resumed windows visited %v, want %v", rest, want)
	}

	// A limit stops the walk before the first entry at or after it, and
	// the cursor stays before that entry.
	var c2 index.LRUCursor
	if w := window(&c2, when.Add(5*time.Minute), 100); len(w) != 1 || w[0].Digest != dg(3) {
		t.Errorf("entries before minute 5: %v", w)
	}
	if w := window(&c2, time.Time{}, 1); len(w) != 1 || w[0].Digest != dg(5) {
		t.Errorf("after the limit, the walk resumed at %v, want %s", w, dg(5))
	}
}

func TestDeleteBlobs(t *testing.T) {
	x := openMem(t)
	ctx := context.Background()
	ds := putCached(t, x, 0, 6, 2)
	update(t, x, func(tx *index.Txn) error {
		if err := tx.PutBlob(index.BlobRecord{Digest: dg(50), Size: 7, Origin: index.OriginHosted}); err != nil {
			return err
		}
		return tx.LinkBlob("orphan", dg(60)) // a link without a record
	})
	gone, err := x.DeleteBlobs(ctx, []oci.Digest{ds[1], ds[3], dg(50), dg(60), ds[1], dg(70)})
	if err != nil {
		t.Fatal(err)
	}
	var got []oci.Digest
	for _, r := range gone {
		got = append(got, r.Digest)
	}
	slices.Sort(got)
	want := []oci.Digest{ds[1], ds[3], dg(50)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("DeleteBlobs removed %v, want %v", got, want)
	}
	if u := usageOf(t, x, "hub"); u.Count != 4 || u.Bytes != 10+12+14+15 {
		t.Errorf("hub usage = %+v", u)
	}
	if u := usageOf(t, x, index.OriginHosted); u.Count != 0 || u.Bytes != 0 {
		t.Errorf("hosted usage = %+v", u)
	}
	if order := lruOrder(t, x); !slices.Equal(order, []oci.Digest{ds[0], ds[2], ds[4], ds[5]}) {
		t.Errorf("LRU order after DeleteBlobs = %v", order)
	}
	view(t, x, func(tx *index.Txn) error {
		for _, d := range []oci.Digest{ds[1], ds[3], dg(60)} {
			if repos, _ := tx.BlobRepos(d); len(repos) != 0 {
				t.Errorf("%s still linked in %v", d, repos)
			}
		}
		links := 0
		tx.EachLink(func(string, oci.Digest) error { links++; return nil })
		if links != 8 {
			t.Errorf("%d links left, want 8", links)
		}
		return nil
	})
}

// EvictBlobs keeps what may not go and removes the rest with everything
// that hangs off it.
func TestEvictBlobs(t *testing.T) {
	x := openMem(t)
	ctx := context.Background()
	putCached(t, x, 0, 8, 1)
	subject := dg(7)
	update(t, x, func(tx *index.Txn) error {
		// Blob 2 is a manifest in two repositories, tagged in one, and
		// refers to blob 7; another tag of the repository stays.
		for _, repo := range []string{"hub/a", "hub/b"} {
			if err := tx.LinkBlob(repo, dg(2)); err != nil {
				return err
			}
			if err := tx.PutManifest(repo, index.ManifestRecord{Digest: dg(2), MediaType: oci.MediaTypeOCIManifest, Subject: &subject}); err != nil {
				return err
			}
			if err := tx.AddReferrer(repo, subject, oci.Descriptor{Digest: dg(2), MediaType: oci.MediaTypeOCIManifest}); err != nil {
				return err
			}
		}
		if err := tx.SetTag("hub/a", "latest", dg(2)); err != nil {
			return err
		}
		if err := tx.SetTag("hub/a", "old", dg(5)); err != nil {
			return err
		}
		// Blob 3 is pinned; blob 20 is hosted.
		if err := tx.Pin(dg(3), "hub/keep:*"); err != nil {
			return err
		}
		return tx.PutBlob(index.BlobRecord{Digest: dg(20), Size: 1, Origin: index.OriginHosted, LastAccess: when})
	})
	var cands []index.LRUEntry
	var c index.LRUCursor
	view(t, x, func(tx *index.Txn) error {
		return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
			cands = append(cands, e)
			return len(cands) < 6, nil
		})
	})
	// Blob 1 is read after it was chosen.
	update(t, x, func(tx *index.Txn) error { return tx.Touch(dg(1), when.Add(time.Hour), 1) })
	cands = append(cands, index.LRUEntry{Digest: dg(20)}, index.LRUEntry{Digest: dg(404)}, cands[0])
	gone, err := x.EvictBlobs(ctx, cands, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []oci.Digest
	var bytes int64
	for _, e := range gone {
		got = append(got, e.Digest)
		bytes += e.Size
		if e.Origin != "hub" {
			t.Errorf("evicted %s of origin %q", e.Digest, e.Origin)
		}
	}
	if want := []oci.Digest{dg(0), dg(2), dg(4), dg(5)}; !slices.Equal(got, want) {
		t.Errorf("evicted %v, want %v", got, want)
	}
	if u := usageOf(t, x, "hub"); u.Count != 4 || u.Bytes != (10+11+12+13+14+15+16+17)-bytes {
		t.Errorf("usage after eviction = %+v (evicted %d bytes)", u, bytes)
	}
	if order := lruOrder(t, x); !slices.Equal(order, []oci.Digest{dg(3), dg(6), dg(7), dg(1)}) {
		t.Errorf("LRU order after eviction = %v", order)
	}
	view(t, x, func(tx *index.Txn) error {
		for _, d := range got {
			if _, err := tx.Blob(d); !errors.Is(err, index.ErrNotFound) {
				t.Errorf("record of evicted %s: %v", d, err)
			}
			if repos, _ := tx.BlobRepos(d); len(repos) != 0 {
				t.Errorf("evicted %s still linked in %v", d, repos)
			}
		}
		for _, repo := range []string{"hub/a", "hub/b"} {
			if _, err := tx.Manifest(repo, dg(2)); !errors.Is(err, index.ErrNotFound) {
				t.Errorf("manifest of evicted blob left in %s: %v", repo, err)
			}
			if refs, _ := tx.Referrers(repo, subject); len(refs) != 0 {
				t.Errorf("referrers of %s in %s: %v", subject, repo, refs)
			}
		}
		if _, err := tx.Tag("hub/a", "latest"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("tag of the evicted manifest: %v", err)
		}
		if d, err := tx.Tag("hub/a", "old"); err != nil || d != dg(5) {
			t.Errorf("other tag: %s %v", d, err)
		}
		for _, d := range []oci.Digest{dg(1), dg(3), dg(20)} {
			if _, err := tx.Blob(d); err != nil {
				t.Errorf("%s should have been kept: %v", d, err)
			}
		}
		return nil
	})

	// A limit keeps what was read at or after it, and a candidate without
	// a LastAccess is taken as it is now.
	gone, err = x.EvictBlobs(ctx, []index.LRUEntry{{Digest: dg(6)}, {Digest: dg(7)}}, when.Add(7*time.Minute))
	if err != nil || len(gone) != 1 || gone[0].Digest != dg(6) || gone[0].Size != 16 {
		t.Errorf("EvictBlobs before minute 7 = %+v, %v", gone, err)
	}
}

// Evict checks again what a writer may have changed since the plan.
func TestEvictAfterChanges(t *testing.T) {
	x := openMem(t)
	ctx := context.Background()
	putCached(t, x, 0, 5, 1)
	var cands []index.LRUEntry
	var c index.LRUCursor
	view(t, x, func(tx *index.Txn) error {
		return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
			cands = append(cands, e)
			return true, nil
		})
	})
	plan, err := x.PlanEviction(cands, time.Time{})
	if err != nil || len(plan) != 5 {
		t.Fatalf("PlanEviction = %d plans, %v", len(plan), err)
	}
	update(t, x, func(tx *index.Txn) error {
		if err := tx.Touch(dg(0), when.Add(time.Hour), 1); err != nil { // read
			return err
		}
		if err := tx.Pin(dg(1), "rule"); err != nil { // pinned
			return err
		}
		r := cachedRecord(2) // pushed to a hosted repository
		r.Origin = index.OriginHosted
		if err := tx.PutBlob(r); err != nil {
			return err
		}
		r = cachedRecord(3) // fetched again, at the same time but a new size
		r.Size = 1000
		return tx.PutBlob(r)
	})
	gone, err := x.Evict(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 || gone[0].Digest != dg(3) || gone[0].Size != 1000 || gone[1].Digest != dg(4) {
		t.Errorf("evicted %+v, want %s (1000 bytes) and %s", gone, dg(3), dg(4))
	}
	if u := usageOf(t, x, "hub"); u.Count != 2 || u.Bytes != 10+11 {
		t.Errorf("hub usage = %+v", u)
	}
}

// Windows sparse and dense in the key space, and one with so many links
// per blob that a full batch is too big for one transaction (it is split):
// every evicted blob loses exactly its own keys.
func TestEvictBatches(t *testing.T) {
	x := openMem(t)
	ctx := context.Background()
	const n, repos = index.MaxEvictBatch + 6, 13
	ds := putCached(t, x, 0, n, repos)
	var sparse []index.LRUEntry
	for i := 0; i < n; i += 97 {
		sparse = append(sparse, index.LRUEntry{Digest: ds[i]})
	}
	gone, err := x.EvictBlobs(ctx, sparse, time.Time{})
	if err != nil || len(gone) != len(sparse) {
		t.Fatalf("sparse: evicted %d of %d: %v", len(gone), len(sparse), err)
	}
	var all []index.LRUEntry
	var c index.LRUCursor
	view(t, x, func(tx *index.Txn) error {
		return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
			all = append(all, e)
			return true, nil
		})
	})
	dense := all[:len(all)-5] // all but the five most recent
	gone, err = x.EvictBlobs(ctx, dense, time.Time{})
	if err != nil || len(gone) != len(dense) {
		t.Fatalf("dense: evicted %d of %d: %v", len(gone), len(dense), err)
	}
	kept := map[oci.Digest]bool{}
	for _, e := range all[len(all)-5:] {
		kept[e.Digest] = true
	}
	view(t, x, func(tx *index.Txn) error {
		links := 0
		err := tx.EachLink(func(repo string, d oci.Digest) error {
			links++
			if !kept[d] {
				t.Errorf("link of evicted %s left in %s", d, repo)
			}
			return nil
		})
		if links != 5*repos {
			t.Errorf("%d links left, want %d", links, 5*repos)
		}
		counts, _ := tx.CountEntries()
		if counts["blob"] != 5 {
			t.Errorf("%d records left, want 5", counts["blob"])
		}
		return err
	})
	if u := usageOf(t, x, "hub"); u.Count != 5 {
		t.Errorf("usage = %+v, want 5 blobs", u)
	}
}
