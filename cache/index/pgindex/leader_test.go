package pgindex_test

import (
	"context"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
)

// waitFor polls cond (a state, not a duration) for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One of two replicas leads; when it steps down (its connection closes)
// the other takes over at its next try.
func TestLeader(t *testing.T) {
	url := newDB(t)
	var xs []*pgindex.Index
	for range 2 {
		x, err := pgindex.Open(context.Background(), url, pgindex.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		xs = append(xs, x)
	}
	const key = 4242
	a := xs[0].NewLeader(key, 20*time.Millisecond)
	waitFor(t, "the first to lead", a.Leading)
	b := xs[1].NewLeader(key, 20*time.Millisecond)
	defer b.Close()
	// b tries while a holds the lock: it must not lead.
	waitFor(t, "the second to try", func() bool { return b.Tries() >= 3 })
	if b.Leading() {
		t.Fatal("two leaders at once")
	}
	a.Close()
	if a.Leading() {
		t.Error("a leads after Close")
	}
	waitFor(t, "the second to take over", b.Leading)
}
