//go:build linux

package pgindex_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
)

const leaseDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

// Replicas claiming one digest at once: exactly one holds it, and every
// other is told who.
func TestClaimFillOneOwner(t *testing.T) {
	x := open(t)
	ctx := context.Background()
	for round := range 20 {
		d := fmt.Sprintf("%s-%d", leaseDigest, round)
		const n = 8
		var wg sync.WaitGroup
		won := make([]bool, n)
		leases := make([]pgindex.Lease, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				leases[i], won[i], errs[i] = x.ClaimFill(ctx, d, fmt.Sprintf("r%d", i), fmt.Sprintf("http://10.0.0.%d:5000", i), 10*time.Second)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("claim %d: %v", i, errs[i])
			}
			if won[i] {
				if winner >= 0 {
					t.Fatalf("round %d: r%d and r%d both hold the lease", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody holds the lease", round)
		}
		for i := range n {
			if leases[i].Owner != fmt.Sprintf("r%d", winner) || leases[i].Addr != fmt.Sprintf("http://10.0.0.%d:5000", winner) {
				t.Errorf("round %d: r%d was told %+v, want r%d's lease", round, i, leases[i], winner)
			}
		}
	}
}

// A lease that expired is taken over; one renewed in time is not; a
// released one is free at once; the old owner can neither renew nor
// release what another took.
func TestFillLeaseExpiryRenewRelease(t *testing.T) {
	x := open(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	if _, ok, err := x.ClaimFill(ctx, leaseDigest, "a", "http://a", ttl); err != nil || !ok {
		t.Fatalf("first claim: %v, %v", ok, err)
	}
	// Renewals keep it past several ttls.
	for range 4 {
		time.Sleep(ttl / 2)
		if ok, err := x.RenewFill(ctx, leaseDigest, "a", ttl); err != nil || !ok {
			t.Fatalf("renew: %v, %v", ok, err)
		}
		if l, ok, err := x.ClaimFill(ctx, leaseDigest, "b", "http://b", ttl); err != nil || ok || l.Owner != "a" {
			t.Fatalf("claim of a renewed lease: %+v, %v, %v", l, ok, err)
		}
	}
	// Not renewed: b takes it once it expired (by the database's clock).
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, ok, err := x.ClaimFill(ctx, leaseDigest, "b", "http://b", ttl)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if l.Owner != "b" || l.Addr != "http://b" {
				t.Fatalf("takeover: %+v", l)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease a stopped renewing was not taken over in 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, err := x.RenewFill(ctx, leaseDigest, "a", ttl); err != nil || ok {
		t.Fatalf("a renewed b's lease: %v, %v", ok, err)
	}
	if err := x.ReleaseFill(ctx, leaseDigest, "a"); err != nil {
		t.Fatal(err)
	}
	if l, ok, err := x.FillLease(ctx, leaseDigest); err != nil || !ok || l.Owner != "b" {
		t.Fatalf("a released b's lease: %+v, %v, %v", l, ok, err)
	}
	if err := x.ReleaseFill(ctx, leaseDigest, "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := x.FillLease(ctx, leaseDigest); err != nil || ok {
		t.Fatalf("after release: %v, %v", ok, err)
	}
	if l, ok, err := x.ClaimFill(ctx, leaseDigest, "c", "http://c", time.Minute); err != nil || !ok || l.Owner != "c" {
		t.Fatalf("claim after release: %+v, %v, %v", l, ok, err)
	}
}

// The cluster token is made once and read the same by every Open,
// including ones racing to make it.
func TestClusterTokenStable(t *testing.T) {
	url := newDB(t)
	ctx := context.Background()
	toks := make([]string, 4)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() {
			x, err := pgindex.Open(ctx, url, pgindex.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			defer x.Close()
			if toks[i], err = x.ClusterToken(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	x, err := pgindex.Open(ctx, url, pgindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	again, err := x.ClusterToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 64 {
		t.Errorf("token %q: want 64 hex digits", again)
	}
	for i, tok := range toks {
		if tok != again {
			t.Errorf("Open %d read token %q, a later Open %q", i, tok, again)
		}
	}
}
