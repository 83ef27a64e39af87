//go:build linux

package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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

	gets, sent := relay.WaitCount(t, http.MethodGet, blobPath, 1)
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

// TestProxyManifestCoalescingRealOrigin asks a wharf process for one
// uncached tag, and then one uncached manifest by digest, from 30 clients
// at once: a CI fleet starting one job. Docker Hub counts manifest GETs
// against the pull limit, so the origin (Distribution, behind a counting
// relay) must see one GET each, and at most one HEAD for the tag. The relay
// plays a slow upstream without a clock: it holds every manifest request
// until all the clients have sent theirs.
func TestProxyManifestCoalescingRealOrigin(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	const clients = 30

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	byTag := pushLargeImage(t, origin.Addr+"/library/app:1", 4<<10)
	byDigest := pushLargeImage(t, origin.Addr+"/library/app:2", 4<<10)

	relay := harness.StartRelay(t, origin.URL)
	var (
		mu      sync.Mutex
		gate    chan struct{}
		arrived chan struct{}
	)
	relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		if !strings.Contains(r.URL.Path, "/manifests/") {
			return false
		}
		mu.Lock()
		g, a := gate, arrived
		mu.Unlock()
		select {
		case a <- struct{}{}:
		default:
		}
		select {
		case <-g:
		case <-r.Context().Done():
			return true
		}
		forward.ServeHTTP(w, r)
		return true
	})
	w := startProxyWharf(t, fmt.Sprintf(contractConfig, relay.URL, unreachableUpstream))

	// storm sends clients GETs of ref at once, lets the origin answer once
	// every client has sent its request and the first manifest request has
	// reached the relay, and checks every client got img's manifest.
	storm := func(t *testing.T, ref string, img v1.Image) {
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		want := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}
		mu.Lock()
		gate, arrived = make(chan struct{}), make(chan struct{}, 1)
		g, a := gate, arrived
		mu.Unlock()
		defer func() {
			select {
			case <-g:
			default:
				close(g)
			}
		}()

		var sent sync.WaitGroup
		sent.Add(clients)
		url := manifestURL(w, "library/app", ref)
		results := make([]fetchResult, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var once sync.Once
				ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
					WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(sent.Done) },
				})
				results[i] = fetch(ctx, url, 2*time.Minute, "Accept", manifestAccept)
			}()
		}
		allSent := make(chan struct{})
		go func() { sent.Wait(); close(allSent) }()
		for _, ch := range []chan struct{}{allSent, a} {
			select {
			case <-ch:
			case <-time.After(time.Minute):
				t.Fatal("timed out waiting for the clients' requests to reach wharf and wharf's to reach the relay")
			}
		}
		close(g)
		wg.Wait()
		for i, r := range results {
			switch {
			case r.Err != nil || r.Status != http.StatusOK:
				t.Errorf("client %d: status %d, %v: %s", i, r.Status, r.Err, r.Body)
			case r.Digest != want.String() || !bytes.Equal(r.Body, raw):
				t.Errorf("client %d: got %d bytes, %s; want the origin's %s", i, r.N, r.Digest, want)
			}
		}
		if m := regexp.MustCompile(`msg="cached manifest".*ref=` + regexp.QuoteMeta(ref) + ` .*clients_joined=(\d+)`).FindStringSubmatch(w.Logs()); m != nil {
			t.Logf("wharf: %d clients, clients_joined=%s", clients, m[1])
		}
	}

	t.Run("tag", func(t *testing.T) {
		storm(t, "1", byTag)
		path := "/v2/library/app/manifests/1"
		gets, _ := relay.WaitCount(t, http.MethodGet, path, 1)
		heads, _ := relay.Count(http.MethodHead, path)
		t.Logf("relay saw %d manifest GET(s) and %d HEAD(s) for the tag", gets, heads)
		if gets != 1 || heads > 1 {
			t.Errorf("origin got %d GETs and %d HEADs of the tag, want 1 GET and at most 1 HEAD", gets, heads)
		}
		// The tag is fresh now: served without the origin.
		if r := fetch(t.Context(), manifestURL(w, "library/app", "1"), time.Minute, "Accept", manifestAccept); !r.complete() {
			t.Errorf("warm GET: status %d, %v", r.Status, r.Err)
		}
		if n := relay.CountMatching(http.MethodGet, "/manifests/") + relay.CountMatching(http.MethodHead, "/manifests/"); n != gets+heads {
			t.Errorf("warm GET went to the origin: %d manifest requests in all", n)
		}
	})

	t.Run("digest", func(t *testing.T) {
		d, err := byDigest.Digest()
		if err != nil {
			t.Fatal(err)
		}
		storm(t, d.String(), byDigest)
		path := "/v2/library/app/manifests/" + d.String()
		gets, _ := relay.WaitCount(t, http.MethodGet, path, 1)
		heads, _ := relay.Count(http.MethodHead, path)
		t.Logf("relay saw %d manifest GET(s) and %d HEAD(s) for the digest", gets, heads)
		if gets != 1 || heads != 0 {
			t.Errorf("origin got %d GETs and %d HEADs of the digest, want 1 GET", gets, heads)
		}
	})
}
