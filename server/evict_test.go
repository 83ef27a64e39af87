package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/server"
)

// pullAll pulls an image through s and reads every layer.
func pullLayers(t *testing.T, s *server.Server, repo string) {
	t.Helper()
	img, err := remote.Image(ref(t, s, repo))
	if err != nil {
		t.Fatalf("pull %s: %v", repo, err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<16)
		for {
			if _, err := rc.Read(buf); err != nil {
				break
			}
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
	}
}

// settle waits for the fills to be committed (a fill is indexed a moment
// after its client got the last byte: enforcing before that measures the
// cache without it, and the next pass then frees more than the test
// expects), then saves access times and enforces the budget. With nothing
// in use, one pass brings every budget under its low watermark; the
// callers check that.
func settle(t *testing.T, s *server.Server) {
	t.Helper()
	ctx := context.Background()
	waitIdle(t, s)
	if err := s.Lifecycle().Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lifecycle().Enforce(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitIdle waits until no blob is being filled or read: a fill is
// committed and indexed a moment after its client got the last byte.
func waitIdle(t *testing.T, s *server.Server) {
	t.Helper()
	select {
	case <-s.Lifecycle().Idle():
	case <-time.After(time.Minute):
		t.Fatalf("%d blobs still being filled or read after a minute", s.Lifecycle().InFlight())
	}
}

func TestEvictionKeepsBudgetInLRUOrder(t *testing.T) {
	o := newOrigin(t)
	imgs := map[string]v1.Image{}
	for i := 0; i < 6; i++ {
		img, err := random.Image(1<<20, 1)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("library/img%d:1", i)
		o.push(t, name, img)
		imgs[name] = img
	}
	clock := newTestClock()
	s := start(t, proxyConfig(t, o.URL, "cache:\n  max_size: 3MiB\n  high_watermark: 0.9\n  low_watermark: 0.6"), withClock(clock))
	budget := int64(3 << 20)

	// Each image is read a minute after the one before: the LRU order is
	// the order of the pulls, whatever the machine's clock resolution.
	for i := 0; i < 3; i++ {
		clock.Advance(time.Minute)
		pullLayers(t, s, fmt.Sprintf("library/img%d:1", i))
		settle(t, s)
	}
	// img0 is read again: it is now the most recently used.
	clock.Advance(time.Minute)
	pullLayers(t, s, "library/img0:1")
	settle(t, s)
	for i := 3; i < 6; i++ {
		clock.Advance(time.Minute)
		pullLayers(t, s, fmt.Sprintf("library/img%d:1", i))
		settle(t, s)
		u, err := s.Lifecycle().ProxiedUsage()
		if err != nil {
			t.Fatal(err)
		}
		if u.Bytes > int64(0.9*float64(budget)) {
			t.Fatalf("after img%d: proxied usage %d over the high watermark of %d", i, u.Bytes, budget)
		}
	}
	// img1 and img2 were the least recently used: evicted first. Pulling
	// them again is transparent (fetched from the origin again).
	before := o.blobGets.Load()
	pullLayers(t, s, "library/img1:1")
	if o.blobGets.Load() == before {
		t.Fatal("img1 was still cached: eviction did not follow LRU order")
	}
	// The most recent image is still a hit.
	before = o.blobGets.Load()
	pullLayers(t, s, "library/img5:1")
	if o.blobGets.Load() != before {
		t.Fatal("img5 (most recently used) was evicted")
	}
}

func TestEvictUnusedFor(t *testing.T) {
	o := newOrigin(t)
	img, _ := random.Image(64<<10, 2)
	o.push(t, "library/old:1", img)
	clock := newTestClock()
	s := start(t, proxyConfig(t, o.URL, ""), withClock(clock))
	pullLayers(t, s, "library/old:1")
	waitIdle(t, s) // blobs being committed are in use, never evicted
	if err := s.Lifecycle().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clock.Advance(59 * time.Minute)
	rep, err := s.Lifecycle().EvictUnusedFor(ctx, time.Hour)
	if err != nil || rep.Blobs != 0 {
		t.Fatalf("evicted content read 59 minutes ago as unused for an hour: %+v %v", rep, err)
	}
	clock.Advance(2 * time.Minute)
	if rep, err = s.Lifecycle().EvictUnusedFor(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Lifecycle().ProxiedUsage(); u.Bytes != 0 || rep.Blobs == 0 {
		t.Fatalf("unused for 61 minutes: evicted %+v, usage after %+v", rep, u)
	}
	// Everything comes back on demand, manifests included.
	pullLayers(t, s, "library/old:1")
}

// A proxy's own budget (cache.proxies.NAME) bounds that proxy only: its
// least recently used content goes, another proxy's stays.
func TestPerProxyBudget(t *testing.T) {
	big, small := newOrigin(t), newOrigin(t)
	for i := 0; i < 4; i++ {
		img, _ := random.Image(1<<20, 1)
		big.push(t, fmt.Sprintf("library/img%d:1", i), img)
		img, _ = random.Image(1<<20, 1)
		small.push(t, fmt.Sprintf("library/img%d:1", i), img)
	}
	clock := newTestClock()
	s := start(t, proxyConfig(t, big.URL, fmt.Sprintf(`  - name: small
    upstream: %s
cache:
  high_watermark: 0.9
  low_watermark: 0.6
  proxies:
    small:
      max_size: 2MiB`, small.URL)), withClock(clock))
	budget := int64(2 << 20)
	usage := func(origin string) int64 {
		st, err := s.CacheStats()
		if err != nil {
			t.Fatal(err)
		}
		return st.Origins[origin].Bytes
	}
	for i := 0; i < 4; i++ {
		clock.Advance(time.Minute)
		pullLayers(t, s, fmt.Sprintf("library/img%d:1", i))
		pullLayers(t, s, fmt.Sprintf("small/library/img%d:1", i))
		settle(t, s)
		if u := usage("small"); u > int64(0.9*float64(budget)) {
			t.Fatalf("after img%d: proxy small holds %d, over 90%% of its %d budget", i, u, budget)
		}
	}
	if u := usage("hub"); u < 4<<20 {
		t.Errorf("proxy hub (no budget of its own) holds %d, want all 4 MiB it fetched", u)
	}
	// small's oldest image was evicted; its newest is a hit.
	before := small.blobGets.Load()
	pullLayers(t, s, "small/library/img3:1")
	if small.blobGets.Load() != before {
		t.Error("small's most recent image was evicted")
	}
	pullLayers(t, s, "small/library/img0:1")
	if small.blobGets.Load() == before {
		t.Error("small's least recent image is still cached")
	}
	st, _ := s.CacheStats()
	if st.ProxyBudgets["small"].MaxSize != budget {
		t.Errorf("cache stats: %+v", st.ProxyBudgets)
	}
}
