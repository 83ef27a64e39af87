package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

var evictEpoch = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

type evictFixture struct {
	l     *Lifecycle
	x     index.Index
	store *storage.Store
	ds    []oci.Digest
}

// newEvictFixture caches n blobs of origin "hub": blob i has i+1 KiB and
// was last read i minutes after evictEpoch.
func newEvictFixture(t *testing.T, n int) *evictFixture {
	t.Helper()
	x, err := index.Open("", index.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	st, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &evictFixture{x: x, store: st}
	f.l = NewLifecycle(LifecycleOptions{Index: x, Store: st, Now: func() time.Time { return evictEpoch.Add(24 * time.Hour) }})
	for i := range n {
		body := bytes.Repeat([]byte{byte(i)}, (i+1)<<10)
		d := oci.FromBytes(append(body, fmt.Sprint(i)...))
		body = append(body, fmt.Sprint(i)...)
		if _, err := st.Put(context.Background(), d, int64(len(body)), bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		err := x.Update(context.Background(), func(tx index.Txn) error {
			if err := tx.PutBlob(index.BlobRecord{Digest: d, Size: int64(len(body)), Created: evictEpoch,
				LastAccess: evictEpoch.Add(time.Duration(i) * time.Minute), Origin: "hub"}); err != nil {
				return err
			}
			return tx.LinkBlob("hub/library/x", d)
		})
		if err != nil {
			t.Fatal(err)
		}
		f.ds = append(f.ds, d)
	}
	return f
}

// present reports whether d has a record and a file; it fails the test if
// it has a record but no file, the state eviction must never leave.
func (f *evictFixture) present(t *testing.T, d oci.Digest) bool {
	t.Helper()
	var recErr error
	f.x.View(func(tx index.Txn) error { _, recErr = tx.Blob(d); return nil })
	_, statErr := f.store.Stat(d)
	switch {
	case recErr == nil && statErr != nil:
		t.Errorf("%s has a record but no file", d)
	case recErr == nil:
		return true
	case !errors.Is(recErr, index.ErrNotFound):
		t.Fatal(recErr)
	case statErr == nil:
		t.Errorf("%s has a file but no record", d)
	}
	return false
}

// An eviction pass keeps what it must: pinned, hosted, in use, being
// written, read since the last flush; it removes everything else that is
// old enough, records and files.
func TestEvictKeepsWhatItMust(t *testing.T) {
	f := newEvictFixture(t, 12)
	ctx := context.Background()
	err := f.x.Update(ctx, func(tx index.Txn) error {
		if err := tx.Pin(f.ds[1], "hub/library/x:1"); err != nil {
			return err
		}
		r, err := tx.Blob(f.ds[2])
		if err != nil {
			return err
		}
		r.Origin = index.OriginHosted
		return tx.PutBlob(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	f.l.acquire(f.ds[3])              // being read
	f.l.touched(f.ds[4])              // read, not flushed yet
	hold := f.store.HoldBlob(f.ds[5]) // being written
	defer hold()

	rep, err := f.l.evict(ctx, "unused", evictEpoch.Add(10*time.Minute), -1)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 10: true, 11: true}
	var want int64
	for i, d := range f.ds {
		if got := f.present(t, d); got != kept[i] {
			t.Errorf("blob %d present: %v, want %v", i, got, kept[i])
		}
		if !kept[i] {
			want += int64(i+1)<<10 + int64(len(fmt.Sprint(i)))
		}
	}
	if rep.Blobs != 12-len(kept) || rep.Bytes != want || rep.Reason != "unused" {
		t.Errorf("report %+v, want %d blobs, %d bytes", rep, 12-len(kept), want)
	}
	if u, _ := f.l.ProxiedUsage(); u.Count != 6 || rep.UsedAfter != u.Bytes || rep.UsedBefore-rep.UsedAfter != want {
		t.Errorf("proxied usage after eviction %+v, report %+v", u, rep)
	}

	// Once released and flushed, they go (but pinned and hosted never).
	f.l.release(f.ds[3])
	hold()
	if err := f.l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.l.evict(ctx, "unused", evictEpoch.Add(48*time.Hour), -1); err != nil {
		t.Fatal(err)
	}
	for i, d := range f.ds {
		if got, want := f.present(t, d), i == 1 || i == 2; got != want {
			t.Errorf("after the second pass, blob %d present: %v, want %v", i, got, want)
		}
	}
}

// A pass frees what it is asked to, oldest first, and hardly more: not a
// whole window of candidates.
func TestEvictFreesWhatIsAsked(t *testing.T) {
	f := newEvictFixture(t, 20)
	size := func(i int) int64 { return int64(i+1)<<10 + int64(len(fmt.Sprint(i))) }
	free := size(0) + size(1) + size(2) + 1 // needs a fourth blob
	rep, err := f.l.evict(context.Background(), "size", time.Time{}, free)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 4 || rep.Bytes != free-1+size(3) {
		t.Errorf("freed %d blobs, %d bytes, want the 4 oldest (%d bytes)", rep.Blobs, rep.Bytes, free-1+size(3))
	}
	for i, d := range f.ds {
		if got := f.present(t, d); got != (i >= 4) {
			t.Errorf("blob %d present: %v", i, got)
		}
	}
}

// evictOne, used to evict an image on request, ignores access times but
// not pins, hosted content or blobs in use.
func TestEvictOne(t *testing.T) {
	f := newEvictFixture(t, 4)
	ctx := context.Background()
	if err := f.x.Update(ctx, func(tx index.Txn) error { return tx.Pin(f.ds[0], "r") }); err != nil {
		t.Fatal(err)
	}
	f.l.acquire(f.ds[1])
	defer f.l.release(f.ds[1])
	f.l.touched(f.ds[2])
	for i, want := range []bool{false, false, true, true} {
		n, ok, err := f.l.evictOne(ctx, f.ds[i], time.Time{})
		if err != nil || ok != want || (ok && n != int64(i+1)<<10+1) {
			t.Errorf("evictOne(blob %d) = %d, %v, %v; want evicted: %v", i, n, ok, err, want)
		}
	}
	if _, ok, err := f.l.evictOne(ctx, f.ds[3], time.Time{}); ok || err != nil {
		t.Errorf("evicting a blob twice: %v, %v", ok, err)
	}
	if _, ok, err := f.l.evictOne(ctx, oci.FromBytes([]byte("unknown")), time.Time{}); ok || err != nil {
		t.Errorf("evicting an unknown blob: %v, %v", ok, err)
	}
}

// Idle is closed while nothing is in flight, open from the first acquire
// to the last release, and a release of a digest never acquired changes
// nothing.
func TestLifecycleIdle(t *testing.T) {
	l := NewLifecycle(LifecycleOptions{})
	closed := func() bool {
		select {
		case <-l.Idle():
			return true
		default:
			return false
		}
	}
	if !closed() {
		t.Fatal("new lifecycle: not idle")
	}
	a, b := oci.FromBytes([]byte("a")), oci.FromBytes([]byte("b"))
	l.acquire(a)
	idle := l.Idle()
	l.acquire(a)
	l.acquire(b)
	l.release(b)
	l.release(a)
	l.release(b) // not held: ignored
	if closed() || l.InFlight() != 1 {
		t.Fatalf("a still held: idle %v, in flight %d", closed(), l.InFlight())
	}
	l.release(a)
	select {
	case <-idle:
	default:
		t.Fatal("last release did not close the channel taken while busy")
	}
	l.release(a) // not held: must not close twice
	if !closed() || l.InFlight() != 0 {
		t.Fatalf("after last release: idle %v, in flight %d", closed(), l.InFlight())
	}
	var nilL *Lifecycle
	<-nilL.Idle()
}

// In cluster mode Run enforces the budget only while its replica leads:
// a follower's loop passes without evicting; once it leads, it evicts.
func TestLifecycleRunEvictsOnlyWhileLeading(t *testing.T) {
	f := newEvictFixture(t, 10)
	var leading atomic.Bool
	asked := make(chan struct{}, 100)
	evicted := make(chan EvictReport, 10)
	l := NewLifecycle(LifecycleOptions{Index: f.x, Store: f.store, Budget: Budget{MaxSize: 8 << 10},
		Now: func() time.Time { return evictEpoch.Add(24 * time.Hour) },
		Leading: func() bool {
			select {
			case asked <- struct{}{}:
			default:
			}
			return leading.Load()
		},
		OnEvict: func(r EvictReport) {
			select {
			case evicted <- r:
			default:
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx, time.Millisecond) }()
	defer func() { cancel(); <-done }()
	for range 3 {
		<-asked
	}
	for i, d := range f.ds {
		if !f.present(t, d) {
			t.Fatalf("a follower evicted blob %d", i)
		}
	}
	leading.Store(true)
	select {
	case r := <-evicted:
		if r.Blobs == 0 {
			t.Errorf("the leader's pass evicted nothing: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the leader did not evict over the budget")
	}
}
