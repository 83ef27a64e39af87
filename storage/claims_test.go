package storage

import (
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// A writer of a blob GC is deleting waits for the delete, then writes a
// fresh copy; GC skips a blob being written.
func TestClaims(t *testing.T) {
	var c Claims
	d := oci.FromBytes([]byte("x"))
	release := c.Hold(d)
	if _, ok := c.TryCollect(d); ok {
		t.Fatal("collected a blob being written")
	}
	release()
	done, ok := c.TryCollect(d)
	if !ok {
		t.Fatal("could not collect an idle blob")
	}
	held := make(chan struct{})
	go func() { c.Hold(d)(); close(held) }()
	select {
	case <-held:
		t.Fatal("a writer did not wait for the collection")
	case <-time.After(20 * time.Millisecond):
	}
	done()
	<-held
}
