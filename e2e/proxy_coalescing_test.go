//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestProxyCoalescingRealOrigin asks a wharf process for one uncached large
// blob from 20 clients at once. A counting relay in front of the origin
// (Distribution) must see exactly one GET for it, carrying the blob once;
// every client must get the right bytes; and since the relay paces the
// download, every client must have had its first bytes before the origin
// finished sending: bytes are streamed to all waiters as they arrive, not
// after the fill.
func TestProxyCoalescingRealOrigin(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	const (
		size    = 64 << 20
		clients = 20
		rate    = 32 << 20 // bytes/s through the relay: the fill takes ~2 s
	)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	img := pushLargeImage(t, origin.Addr+"/library/big:1", size)
	layer, layerSize := layerOf(t, img)
	blobPath := "/v2/library/big/blobs/" + layer.String()

	relay := harness.StartRelay(t, origin.URL)
	relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		if r.URL.Path != blobPath {
			return false
		}
		forward.ServeHTTP(&harness.RelayHookWriter{ResponseWriter: w, BytesPerSecond: rate}, r)
		return true
	})
	w := startProxyWharf(t, fmt.Sprintf(contractConfig, relay.URL, unreachableUpstream))

	url := blobURL(w, "library/big", layer)
	start := time.Now()
	results := make([]fetchResult, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = fetch(t.Context(), url, 2*time.Minute)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	gets, sent := relay.Count(http.MethodGet, blobPath)
	var originEnd time.Time
	for _, r := range relay.Requests() {
		if r.Method == http.MethodGet && r.Path == blobPath {
			originEnd = r.End
		}
	}
	t.Logf("%d clients, %d MiB blob: %s wall; relay saw %d GET(s) carrying %d bytes (blob %d)",
		clients, size>>20, elapsed.Round(time.Millisecond), gets, sent, layerSize)
	if gets != 1 {
		t.Errorf("origin was asked for the blob %d times, want 1: %+v", gets, relay.Requests())
	}
	if sent < layerSize || sent > layerSize+64<<10 {
		t.Errorf("origin sent %d bytes for a %d-byte blob, want it once", sent, layerSize)
	}
	var slowestFirst time.Duration
	for i, r := range results {
		switch {
		case r.Err != nil:
			t.Errorf("client %d: %v after %d bytes", i, r.Err, r.N)
		case r.Status != http.StatusOK:
			t.Errorf("client %d: status %d: %s", i, r.Status, r.Body)
		case r.N != layerSize || r.Digest != layer.String():
			t.Errorf("client %d: got %d bytes with digest %s, want %d bytes %s", i, r.N, r.Digest, layerSize, layer)
		}
		first := r.Start.Add(r.FirstByte)
		if !originEnd.IsZero() && !first.Before(originEnd) {
			t.Errorf("client %d: first byte at +%s, after the origin finished sending at +%s", i,
				first.Sub(start).Round(time.Millisecond), originEnd.Sub(start).Round(time.Millisecond))
		}
		slowestFirst = max(slowestFirst, first.Sub(start))
	}
	t.Logf("slowest first byte at +%s; origin done at +%s", slowestFirst.Round(time.Millisecond), originEnd.Sub(start).Round(time.Millisecond))
	if !waitCached(w, layer) {
		t.Errorf("blob %s is not in wharf's data dir after the fill", layer)
	}
	if m := regexp.MustCompile(`msg="cached blob".*digest=` + regexp.QuoteMeta(layer.String()) + `.*clients_joined=(\d+)`).FindStringSubmatch(w.Logs()); m != nil {
		t.Logf("wharf: clients_joined=%s", m[1])
	}

	// A cached blob is served without the origin.
	if r := fetch(t.Context(), url, time.Minute); !r.complete() || r.Digest != layer.String() {
		t.Errorf("warm GET: status %d, %d bytes, %s, err %v", r.Status, r.N, r.Digest, r.Err)
	}
	if n, _ := relay.Count(http.MethodGet, blobPath); n != 1 {
		t.Errorf("warm GET went to the origin (%d GETs)", n)
	}
}
