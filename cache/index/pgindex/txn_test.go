//go:build linux

package pgindex_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/indextest"
	"github.com/wharf-registry/wharf/oci"
)

// The shared suite's helpers.
var (
	update = indextest.Update
	view   = indextest.View
)

// Two transactions that each read both records and write one of them
// (write skew) cannot both commit: as with Badger, which tracks reads,
// the second is run again and sees the first's write. Under REPEATABLE
// READ both would commit.
func TestWriteSkewIsRetried(t *testing.T) {
	x := open(t)
	a, b := dgN(1), dgN(2)
	update(t, x, func(tx index.Txn) error {
		if err := tx.PutBlob(index.BlobRecord{Digest: a, Origin: "hosted"}); err != nil {
			return err
		}
		return tx.PutBlob(index.BlobRecord{Digest: b, Origin: "hosted"})
	})
	var attempts atomic.Int32
	var read sync.WaitGroup // both first attempts have read
	read.Add(2)
	var wg sync.WaitGroup
	for _, mine := range []oci.Digest{a, b} {
		wg.Go(func() {
			first := true
			err := x.Update(context.Background(), func(tx index.Txn) error {
				attempts.Add(1)
				ra, err := tx.Blob(a)
				if err != nil {
					return err
				}
				rb, err := tx.Blob(b)
				if err != nil {
					return err
				}
				if first {
					first = false
					read.Done()
					read.Wait()
				}
				if ra.Size+rb.Size != 0 {
					return nil
				}
				r := ra
				if mine == b {
					r = rb
				}
				r.Size = 1
				return tx.PutBlob(r)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	view(t, x, func(tx index.Txn) error {
		ra, _ := tx.Blob(a)
		rb, _ := tx.Blob(b)
		if ra.Size+rb.Size != 1 {
			t.Errorf("sizes %d and %d: both transactions committed", ra.Size, rb.Size)
		}
		return nil
	})
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts, want one retried", n)
	}
}

// Writers of different blobs of one origin all update its usage row:
// they conflict, are retried, and no count is lost.
func TestConcurrentUsage(t *testing.T) {
	x := open(t)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := index.BlobRecord{Digest: dgN(1000*w + i), Size: 3, Origin: "hub", LastAccess: base}
				if err := x.Update(context.Background(), func(tx index.Txn) error { return tx.PutBlob(r) }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	view(t, x, func(tx index.Txn) error {
		u, err := tx.Usage("hub")
		if err != nil || u.Count != workers*each || u.Bytes != 3*workers*each {
			t.Errorf("usage = %+v, %v; want %d blobs", u, err, workers*each)
		}
		return nil
	})
}

// Reads recorded while eviction runs: whatever interleaving, each blob
// is either evicted (and reported) or kept with its record, and the
// usage counters add up to the records that are left.
func TestTouchWhileEvicting(t *testing.T) {
	x := open(t)
	ctx := context.Background()
	const n = 300
	update(t, x, func(tx index.Txn) error {
		for i := range n {
			r := index.BlobRecord{Digest: dgN(i), Size: int64(i), Origin: "hub", LastAccess: base.Add(time.Duration(i) * time.Second)}
			if err := tx.PutBlob(r); err != nil {
				return err
			}
			if err := tx.LinkBlob("hub/r", r.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	evicted := map[oci.Digest]bool{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := n - 1; i >= 0; i-- { // from the back: the two meet
			err := x.Update(ctx, func(tx index.Txn) error { return tx.Touch(dgN(i), base.Add(time.Hour), 1) })
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for {
			var cands []index.LRUEntry
			var c index.LRUCursor
			err := x.View(func(tx index.Txn) error {
				return tx.EachLeastRecentAfter(&c, base.Add(time.Hour), func(e index.LRUEntry) (bool, error) {
					cands = append(cands, e)
					return len(cands) < 3, nil
				})
			})
			if err != nil {
				t.Error(err)
				return
			}
			if len(cands) == 0 {
				return
			}
			gone, err := x.EvictBlobs(ctx, cands, base.Add(time.Hour))
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range gone {
				if evicted[e.Digest] {
					t.Errorf("%s evicted twice", e.Digest)
				}
				evicted[e.Digest] = true
			}
		}
	})
	wg.Wait()
	view(t, x, func(tx index.Txn) error {
		var kept, bytes int64
		for i := range n {
			r, err := tx.Blob(dgN(i))
			linked, _ := tx.BlobLinked("hub/r", dgN(i))
			switch {
			case evicted[dgN(i)]:
				if !errors.Is(err, index.ErrNotFound) || linked {
					t.Errorf("evicted blob %d: record %v, linked %v", i, err, linked)
				}
			case err != nil || !linked:
				t.Errorf("kept blob %d: record %v, linked %v", i, err, linked)
			default:
				if r.Hits != 1 || !r.LastAccess.Equal(base.Add(time.Hour)) {
					t.Errorf("kept blob %d was not read: %+v", i, r)
				}
				kept++
				bytes += r.Size
			}
		}
		u, _ := tx.Usage("hub")
		if u.Count != kept || u.Bytes != bytes {
			t.Errorf("usage %+v, want %d blobs of %d bytes", u, kept, bytes)
		}
		return nil
	})
	t.Logf("%d evicted, %d read first", len(evicted), n-len(evicted))
}

// The Each methods read a page at a time, so fn may use the transaction
// while they walk, and a walk longer than a page visits everything once,
// in order.
func TestWalksLongerThanAPage(t *testing.T) {
	x := open(t)
	const n = 2500
	update(t, x, func(tx index.Txn) error {
		for i := range n {
			r := index.BlobRecord{Digest: dgN(i), Size: 1, Origin: "hub", LastAccess: base.Add(time.Duration(i%500) * time.Second)}
			if err := tx.PutBlob(r); err != nil {
				return err
			}
			if err := tx.LinkBlob(fmt.Sprint("r", i%3), r.Digest); err != nil {
				return err
			}
			if i < 1200 {
				if err := tx.PutUpload(index.UploadRecord{ID: fmt.Sprintf("u%05d", i), Repo: "r"}); err != nil {
					return err
				}
				if err := tx.PutManifest(fmt.Sprint("r", i%2), index.ManifestRecord{Digest: r.Digest, MediaType: "m"}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	view(t, x, func(tx index.Txn) error {
		var ds []oci.Digest
		err := tx.EachBlob(func(r index.BlobRecord) error {
			if _, err := tx.BlobRepos(r.Digest); err != nil { // the transaction is usable
				return err
			}
			ds = append(ds, r.Digest)
			return nil
		})
		if err != nil || len(ds) != n || !slices.IsSorted(ds) || len(slices.Compact(slices.Clone(ds))) != n {
			t.Errorf("EachBlob: %d records, sorted %v: %v", len(ds), slices.IsSorted(ds), err)
		}
		links := 0
		tx.EachLink(func(string, oci.Digest) error { links++; return nil })
		uploads := 0
		tx.EachUpload(func(index.UploadRecord) error { uploads++; return nil })
		manifests := 0
		tx.EachManifest("", func(string, index.ManifestRecord) error { manifests++; return nil })
		ofR1 := 0
		tx.EachManifest("r1", func(string, index.ManifestRecord) error { ofR1++; return nil })
		if links != n || uploads != 1200 || manifests != 1200 || ofR1 != 600 {
			t.Errorf("walked %d links, %d uploads, %d manifests, %d of r1", links, uploads, manifests, ofR1)
		}
		// The LRU order in windows of 700 from a cursor, and at once.
		var all []index.LRUEntry
		tx.EachLeastRecent(time.Time{}, func(d oci.Digest, at time.Time) (bool, error) {
			all = append(all, index.LRUEntry{Digest: d, LastAccess: at})
			return true, nil
		})
		var windows []index.LRUEntry
		var c index.LRUCursor
		for {
			k := 0
			tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
				windows = append(windows, index.LRUEntry{Digest: e.Digest, LastAccess: e.LastAccess})
				k++
				return k < 700, nil
			})
			if k == 0 {
				break
			}
		}
		if len(all) != n || !reflect.DeepEqual(all, windows) {
			t.Errorf("LRU order: %d at once, %d in windows, equal %v", len(all), len(windows), reflect.DeepEqual(all, windows))
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.LastAccess.After(b.LastAccess) || a.LastAccess.Equal(b.LastAccess) && a.Digest >= b.Digest {
				t.Fatalf("LRU order broken at %d: %v then %v", i, a, b)
			}
		}
		return nil
	})
}

// Times come back as they went in, to the nanosecond, and the zero time
// as the zero time; Touch is visible to the rest of its transaction.
func TestTimesAndTouch(t *testing.T) {
	x := open(t)
	now := time.Now() // with nanoseconds and a monotonic reading
	d, hosted := dgN(1), dgN(2)
	update(t, x, func(tx index.Txn) error {
		if err := tx.PutBlob(index.BlobRecord{Digest: d, Size: 1, Origin: "hub", Created: now, LastAccess: now}); err != nil {
			return err
		}
		if err := tx.PutBlob(index.BlobRecord{Digest: hosted, Size: 1, Origin: "hosted"}); err != nil {
			return err
		}
		if err := tx.PutUpload(index.UploadRecord{ID: "u", Started: now}); err != nil {
			return err
		}
		return tx.SetTagChecked("r", "t", now)
	})
	view(t, x, func(tx index.Txn) error {
		r, _ := tx.Blob(d)
		h, _ := tx.Blob(hosted)
		u, _ := tx.Upload("u")
		checked, _ := tx.TagChecked("r", "t")
		if !r.Created.Equal(now) || !r.LastAccess.Equal(now) || !u.Started.Equal(now) || !checked.Equal(now) {
			t.Errorf("times changed: %v %v %v %v, want %v", r.Created, r.LastAccess, u.Started, checked, now)
		}
		if !h.Created.IsZero() || !h.LastAccess.IsZero() {
			t.Errorf("zero times came back as %v, %v", h.Created, h.LastAccess)
		}
		return nil
	})
	later := now.Add(time.Minute)
	update(t, x, func(tx index.Txn) error {
		for _, at := range []time.Time{later, now, later.Add(-time.Second)} {
			if err := tx.Touch(d, at, 1); err != nil {
				return err
			}
		}
		if err := tx.Touch(dgN(99), later, 1); err != nil { // missing: ignored
			return err
		}
		r, err := tx.Blob(d)
		if err != nil {
			return err
		}
		if !r.LastAccess.Equal(later) || r.Hits != 3 {
			t.Errorf("after three reads in this transaction: %+v", r)
		}
		return tx.Touch(d, now, 2)
	})
	view(t, x, func(tx index.Txn) error {
		r, _ := tx.Blob(d)
		if !r.LastAccess.Equal(later) || r.Hits != 5 {
			t.Errorf("after the commit: last access %v, hits %d; want %v, 5", r.LastAccess, r.Hits, later)
		}
		var lru []time.Time
		tx.EachLeastRecent(time.Time{}, func(_ oci.Digest, at time.Time) (bool, error) { lru = append(lru, at); return true, nil })
		if len(lru) != 1 || !lru[0].Equal(later) {
			t.Errorf("LRU order: %v", lru)
		}
		return nil
	})
}

// A statement the server refuses rolls back fn's writes and says which
// operation it was (the cases every index shares are in indextest).
func TestRefusedStatementSaysWhatFailed(t *testing.T) {
	x := open(t)
	d := dgN(7)
	err := x.Update(context.Background(), func(tx index.Txn) error {
		if err := tx.SetTag("r", "t", d); err != nil {
			return err
		}
		return tx.SetTag("r", "bad\x00tag", d) // PostgreSQL text holds no NUL
	})
	if err == nil || !strings.HasPrefix(err.Error(), "index: tag "+string(d)+" as r:bad\x00tag: ") {
		t.Errorf("a refused statement: %v", err)
	}
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Tag("r", "t"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("the Update was committed in part: %v", err)
		}
		return nil
	})
	// Recording reads is a write, refused in View before any statement
	// (Badger's index has nothing to write for a blob it does not know).
	err = x.View(func(tx index.Txn) error { return tx.Touch(d, base, 1) })
	if !errors.Is(err, index.ErrReadOnly) || !strings.HasPrefix(err.Error(), "index: record reads of "+string(d)+": ") {
		t.Errorf("Touch in View: %v", err)
	}
}

// A context cancelled while fn runs stops the transaction, which is
// rolled back.
func TestUpdateCancelled(t *testing.T) {
	x := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := x.Update(ctx, func(tx index.Txn) error {
		if err := tx.SetTag("r", "t", dgN(1)); err != nil {
			return err
		}
		cancel()
		return tx.SetTag("r", "u", dgN(1))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update cancelled midway = %v", err)
	}
	view(t, x, func(tx index.Txn) error {
		if tags, _ := tx.Tags("r", -1, ""); len(tags) != 0 {
			t.Errorf("tags %v committed", tags)
		}
		return nil
	})
}

// Every field of the records has a column: a new field needs a migration
// (and this test, and scanBlob/scanManifest, updated).
func TestRecordsHaveColumns(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{{index.BlobRecord{}, 7}, {index.ManifestRecord{}, 7}, {index.UploadRecord{}, 4}, {index.LRUEntry{}, 4}} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.want {
			t.Errorf("%T has %d fields, pgindex stores %d: add a column in a new migration", c.v, n, c.want)
		}
	}
}

// An Update that conflicts on every attempt gives up after 50 and says
// so in a way index.IsConflict recognises (garbage collection then
// leaves the work for later).
func TestUpdateGivesUp(t *testing.T) {
	x := open(t)
	d := dgN(1)
	update(t, x, func(tx index.Txn) error { return tx.PutBlob(index.BlobRecord{Digest: d, Origin: "hosted"}) })
	attempts := 0
	err := x.Update(context.Background(), func(tx index.Txn) error {
		attempts++
		r, err := tx.Blob(d)
		if err != nil {
			return err
		}
		update(t, x, func(tx index.Txn) error { // another writer, every time
			r, err := tx.Blob(d)
			if err != nil {
				return err
			}
			r.Hits++
			return tx.PutBlob(r)
		})
		r.Size++
		return tx.PutBlob(r)
	})
	if !index.IsConflict(err) || attempts != 50 || !strings.Contains(err.Error(), "after 50 attempts") {
		t.Errorf("after %d attempts: %v (IsConflict %v)", attempts, err, index.IsConflict(err))
	}
	view(t, x, func(tx index.Txn) error {
		if r, _ := tx.Blob(d); r.Size != 0 || r.Hits != 50 {
			t.Errorf("record %+v: the given-up Update wrote, or another's write was lost", r)
		}
		return nil
	})
}

// A statement that fails, whether pgx refuses its arguments or the
// server refuses the statement, leaves nothing of the transaction
// committed, even when fn carries on and returns nil.
func TestFailedStatementIgnoredByFn(t *testing.T) {
	x := open(t)
	d := dgN(1)
	for _, bad := range []string{"nul\x00", "latin1\xff"} {
		for _, first := range []bool{true, false} {
			err := x.Update(context.Background(), func(tx index.Txn) error {
				if !first {
					if err := tx.SetTag("r", "before", d); err != nil {
						return err
					}
				}
				if err := tx.SetTag("r", bad, d); err == nil {
					t.Errorf("SetTag(%q) succeeded", bad)
				}
				tx.SetTag("r", "after", d) // fn carries on regardless
				return nil
			})
			tags := must(t)(func() ([]string, error) {
				var tags []string
				err := x.View(func(tx index.Txn) error { var err error; tags, err = tx.Tags("r", -1, ""); return err })
				return tags, err
			}())
			t.Logf("%q, first statement %v: Update = %v, tags %v", bad, first, err, tags)
			if err == nil && len(tags) != 2 || err != nil && len(tags) != 0 {
				t.Errorf("%q, first %v: Update = %v and tags %v: committed in part", bad, first, err, tags)
			}
			x.Update(context.Background(), func(tx index.Txn) error {
				tx.DeleteTag("r", "before")
				return tx.DeleteTag("r", "after")
			})
		}
	}
}

func must(t *testing.T) func([]string, error) []string {
	return func(v []string, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
