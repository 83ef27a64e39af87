//go:build linux

package pgindex_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
)

// TestBlobClaims: writers of a digest share it, a collector has it alone,
// and a claim whose holder died (expired) blocks nobody.
func TestBlobClaims(t *testing.T) {
	x := open(t)
	ctx := context.Background()
	const d = leaseDigest
	h := time.Hour

	if err := x.ClaimWrite(ctx, d, "w1", h); err != nil {
		t.Fatal(err)
	}
	if err := x.ClaimWrite(ctx, d, "w2", h); err != nil {
		t.Fatalf("a second writer: %v", err)
	}
	if ok, err := x.ClaimCollect(ctx, d, "c1", h); ok || err != nil {
		t.Fatalf("collect while written: %v %v", ok, err)
	}
	x.ReleaseClaim(ctx, d, "w1")
	if ok, _ := x.ClaimCollect(ctx, d, "c1", h); ok {
		t.Fatal("collect while one writer is left")
	}
	x.ReleaseClaim(ctx, d, "w2")
	if ok, err := x.ClaimCollect(ctx, d, "c1", h); !ok || err != nil {
		t.Fatalf("collect with no writer: %v %v", ok, err)
	}
	if ok, _ := x.ClaimCollect(ctx, d, "c2", h); ok {
		t.Fatal("two collectors at once")
	}
	if err := x.ClaimWrite(ctx, d, "w3", h); !errors.Is(err, pgindex.ErrCollecting) {
		t.Fatalf("write while collected: %v, want ErrCollecting", err)
	}
	if err := x.ClaimWrite(ctx, "sha256:other", "w3", h); err != nil {
		t.Fatalf("another digest: %v", err)
	}
	x.ReleaseClaim(ctx, d, "c1")
	if err := x.ClaimWrite(ctx, d, "w3", h); err != nil {
		t.Fatalf("write after the collection: %v", err)
	}
	x.ReleaseClaim(ctx, d, "w3")

	// Claims of holders that died: already expired by the database's
	// clock, they block neither side.
	if ok, _ := x.ClaimCollect(ctx, d, "dead-c", -time.Second); !ok {
		t.Fatal("collect")
	}
	if err := x.ClaimWrite(ctx, d, "w4", h); err != nil {
		t.Fatalf("write after a dead collector: %v", err)
	}
	x.ReleaseClaim(ctx, d, "w4")
	if err := x.ClaimWrite(ctx, d, "dead-w", -time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, err := x.ClaimCollect(ctx, d, "c3", h); !ok || err != nil {
		t.Fatalf("collect after a dead writer: %v %v", ok, err)
	}
}

// TestBlobClaimsRace: a writer and a collector claiming one digest at
// once never both get it; of collectors, exactly one does.
func TestBlobClaimsRace(t *testing.T) {
	x := open(t)
	ctx := context.Background()
	for round := range 20 {
		d := fmt.Sprintf("%s-race-%d", leaseDigest, round)
		const n = 6
		var wg sync.WaitGroup
		start := make(chan struct{})
		wrote := make([]error, n)
		collected := make([]bool, n)
		cerrs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				<-start
				wrote[i] = x.ClaimWrite(ctx, d, fmt.Sprintf("w%d", i), time.Hour)
			})
			wg.Go(func() {
				<-start
				collected[i], cerrs[i] = x.ClaimCollect(ctx, d, fmt.Sprintf("c%d", i), time.Hour)
			})
		}
		close(start)
		wg.Wait()
		writers, collectors := 0, 0
		for i := range n {
			if cerrs[i] != nil {
				t.Fatal(cerrs[i])
			}
			if wrote[i] == nil {
				writers++
			} else if !errors.Is(wrote[i], pgindex.ErrCollecting) {
				t.Fatal(wrote[i])
			}
			if collected[i] {
				collectors++
			}
		}
		if collectors > 1 || collectors == 1 && writers > 0 || collectors+writers == 0 {
			t.Fatalf("round %d: %d writers and %d collectors hold the digest", round, writers, collectors)
		}
	}
}

// BenchmarkBlobClaim is what a cluster-mode blob write pays for its claim:
// a write claim and its release.
func BenchmarkBlobClaim(b *testing.B) {
	x := open(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		d := fmt.Sprintf("%s-bench-%d", leaseDigest, i%64)
		if err := x.ClaimWrite(ctx, d, "w", time.Hour); err != nil {
			b.Fatal(err)
		}
		if err := x.ReleaseClaim(ctx, d, "w"); err != nil {
			b.Fatal(err)
		}
	}
}
