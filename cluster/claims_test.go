package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/oci"
)

// fakeClaims is the claim table of another replica's collection that
// ends after a few asks, or of a database that is down.
type fakeClaims struct {
	mu         sync.Mutex
	collecting int // ClaimWrite answers ErrCollecting this many more times
	down       bool
	writes     int
	released   []string
}

func (f *fakeClaims) ClaimWrite(_ context.Context, d, h string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.down {
		return errors.New("connection refused")
	}
	if f.collecting > 0 {
		f.collecting--
		return pgindex.ErrCollecting
	}
	return nil
}

func (f *fakeClaims) ClaimCollect(_ context.Context, d, h string, _ time.Duration) (bool, error) {
	if f.down {
		return false, errors.New("connection refused")
	}
	return true, nil
}

func (f *fakeClaims) ReleaseClaim(_ context.Context, d, h string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, h)
	return nil
}

// TestBlobClaims: a write waits out another replica's collection; with
// the database down a write goes ahead and nothing is collected.
func TestBlobClaims(t *testing.T) {
	const d = oci.Digest("sha256:0000000000000000000000000000000000000000000000000000000000000001")
	f := &fakeClaims{collecting: 3}
	c := NewBlobClaims(f, nil)
	c.Poll = time.Millisecond
	release := c.HoldWrite(d)
	if f.writes != 4 {
		t.Errorf("HoldWrite asked %d times, want 4 (3 while collected)", f.writes)
	}
	release()
	if len(f.released) != 1 {
		t.Errorf("released %v", f.released)
	}
	rel, ok := c.TryCollect(d)
	if !ok {
		t.Fatal("TryCollect refused")
	}
	rel()
	if len(f.released) != 2 || f.released[0] == f.released[1] {
		t.Errorf("released %v: each claim has its own holder", f.released)
	}

	f.down = true
	c.HoldWrite(d)() // does not wait, does not fail the write
	if _, ok := c.TryCollect(d); ok {
		t.Error("collected with the claims unknown")
	}
}
