//go:build linux

package pgindex_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// The code above the index runs on PostgreSQL unchanged: start-up
// reconciliation with the blob files, then the cache's eviction of
// unused blobs, which keeps pinned ones and removes the files of what it
// evicted.
func TestReconcileAndEvictOnPostgres(t *testing.T) {
	ctx := context.Background()
	x := open(t)
	s, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var ds []oci.Digest
	for i := range 6 {
		data := fmt.Appendf(nil, "layer %d", i)
		d := oci.FromBytes(data)
		if _, err := s.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	gone := dgN(99) // a record whose file is gone, with a manifest
	update(t, x, func(tx index.Txn) error {
		for i, d := range ds[:5] { // the sixth file is one the index lost
			r := index.BlobRecord{Digest: d, Size: 7, Created: base, LastAccess: base.Add(time.Duration(i) * time.Minute), Origin: "hub"}
			if err := tx.PutBlob(r); err != nil {
				return err
			}
			if err := tx.LinkBlob("hub/lib/app", d); err != nil {
				return err
			}
		}
		if err := tx.PutBlob(index.BlobRecord{Digest: gone, Size: 3, Origin: "hub", LastAccess: base}); err != nil {
			return err
		}
		if err := tx.PutManifest("hub/lib/app", index.ManifestRecord{Digest: gone, MediaType: oci.MediaTypeOCIManifest}); err != nil {
			return err
		}
		if err := tx.SetTag("hub/lib/app", "latest", gone); err != nil {
			return err
		}
		return tx.Pin(ds[1], "hub/lib/app:*")
	})
	rep, err := index.Reconcile(ctx, x, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RecordsDropped != 1 || rep.ManifestsDropped != 1 || rep.FilesIndexed != 1 || rep.BlobsOnDisk != 6 {
		t.Errorf("Reconcile = %+v", rep)
	}
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Blob(gone); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("record of the missing file: %v", err)
		}
		if _, err := tx.Tag("hub/lib/app", "latest"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("tag of the missing manifest: %v", err)
		}
		if r, err := tx.Blob(ds[5]); err != nil || r.Origin != index.OriginRecovered {
			t.Errorf("lost file: %+v, %v", r, err)
		}
		return nil
	})

	// Blobs 0–2 were last read before minute 3; 1 is pinned.
	l := cache.NewLifecycle(cache.LifecycleOptions{Index: x, Store: s, Now: func() time.Time { return base.Add(3 * time.Minute) }})
	ev, err := l.EvictUnusedFor(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Blobs != 2 || ev.Bytes != 14 {
		t.Errorf("EvictUnusedFor = %+v, want blobs 0 and 2", ev)
	}
	for i, d := range ds {
		_, err := s.Stat(d)
		if evicted := i == 0 || i == 2; evicted != (err != nil) {
			t.Errorf("blob %d: file %v after eviction", i, err)
		}
	}
	u, err := l.ProxiedUsage()
	if err != nil || u.Count != 3 || u.Bytes != 21 {
		t.Errorf("proxied usage after eviction = %+v, %v", u, err)
	}
}

// Two replicas on one database evict at once, from the same LRU order:
// each blob is removed by exactly one of them (the other's transaction
// conflicts, runs again and finds it gone), and the counters end at
// zero with nothing left behind.
func TestTwoReplicasEvict(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	var xs [2]*pgindex.Index
	for i := range xs {
		x, err := pgindex.Open(ctx, url, pgindex.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		xs[i] = x
	}
	s, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for lo := 0; lo < n; lo += 500 {
		update(t, xs[0], func(tx index.Txn) error {
			for i := lo; i < lo+500; i++ {
				r := index.BlobRecord{Digest: dgN(i), Size: 1, Origin: "hub", LastAccess: base.Add(time.Duration(i) * time.Second)}
				if err := tx.PutBlob(r); err != nil {
					return err
				}
				if err := tx.LinkBlob(fmt.Sprint("hub/r", i%7), r.Digest); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var reps [2]cache.EvictReport
	var errs [2]error
	done := make(chan int)
	for i, x := range xs {
		go func() {
			l := cache.NewLifecycle(cache.LifecycleOptions{Index: x, Store: s, Now: func() time.Time { return base.Add(24 * time.Hour) }})
			reps[i], errs[i] = l.EvictUnusedFor(ctx, 0)
			done <- i
		}()
	}
	<-done
	<-done
	if errs[0] != nil || errs[1] != nil || reps[0].Blobs+reps[1].Blobs != n {
		t.Errorf("replicas evicted %d and %d (%v, %v), want %d in all", reps[0].Blobs, reps[1].Blobs, errs[0], errs[1], n)
	}
	t.Logf("replica 0 evicted %d, replica 1 %d", reps[0].Blobs, reps[1].Blobs)
	view(t, xs[1], func(tx index.Txn) error {
		counts, err := tx.CountEntries()
		u, _ := tx.Usage("hub")
		if err != nil || counts["blob"] != 0 || counts["link"] != 0 || u != (index.Usage{}) {
			t.Errorf("left: %v, usage %+v, %v", counts, u, err)
		}
		return nil
	})
}
