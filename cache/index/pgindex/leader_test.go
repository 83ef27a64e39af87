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

// twoReplicas opens two indexes (two replicas' pools) on one fresh
// database.
func twoReplicas(t *testing.T) []*pgindex.Index {
	t.Helper()
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
	return xs
}

// One of two replicas leads; when it steps down (its connection closes)
// the other takes over at its next try.
func TestLeader(t *testing.T) {
	xs := twoReplicas(t)
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

// Heartbeats list replicas; one not seen within the window drops out, and
// one that leaves drops out at once.
func TestReplicas(t *testing.T) {
	x := open(t)
	ctx := context.Background()
	started := time.Now().Truncate(time.Microsecond)
	for _, id := range []string{"b", "a"} {
		if err := x.Heartbeat(ctx, pgindex.Replica{ID: id, Addr: "10.0.0." + id + ":5000", Version: "dev", Started: started}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := x.Replicas(ctx, 30*time.Second)
	if err != nil || len(rs) != 2 || rs[0].ID != "a" || rs[1].ID != "b" || !rs[0].Started.Equal(started) {
		t.Fatalf("replicas %+v, %v; want a and b", rs, err)
	}
	// Within 0 s: the heartbeats are older than that by the time of the query.
	if rs, err := x.Replicas(ctx, 0); err != nil || len(rs) != 0 {
		t.Errorf("replicas seen in the last 0s: %+v, %v", rs, err)
	}
	if err := x.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if rs, err := x.Replicas(ctx, 30*time.Second); err != nil || len(rs) != 1 || rs[0].ID != "b" {
		t.Errorf("after a left: %+v, %v", rs, err)
	}
}

// TryLock: one holder at a time, across pools; release lets the next in.
func TestTryLock(t *testing.T) {
	xs := twoReplicas(t)
	ctx := context.Background()
	release, ok, err := xs[0].TryLock(ctx, pgindex.LockGC)
	if err != nil || !ok {
		t.Fatalf("first TryLock: %v, %v", ok, err)
	}
	if _, ok, err := xs[1].TryLock(ctx, pgindex.LockGC); err != nil || ok {
		t.Fatalf("second TryLock while the first holds it: %v, %v", ok, err)
	}
	release()
	release2, ok, err := xs[1].TryLock(ctx, pgindex.LockGC)
	if err != nil || !ok {
		t.Fatalf("TryLock after release: %v, %v", ok, err)
	}
	release2()
}
