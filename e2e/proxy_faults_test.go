//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// faultConfig is a wharf config with one default proxy that gives its
// upstream 2 s to answer and trusts a tag for 1 s.
const faultConfig = `listen: {{.Listen}}
data_dir: ./data
proxies:
  - name: hub
    upstream: %s
    default: true
    timeout: 2s
    tag_ttl: 1s
hosted:
  - name: team
`

// TestProxyFaults breaks the upstream of a wharf process in the ways real
// origins break: killed mid-stream, a stream cut once, wrong bytes for a
// digest, a stall, 429 rate limiting, and gone entirely. Whatever happens,
// no client may get wrong or partial bytes as a complete answer, nothing bad
// may be cached, cached tags must still be served, and uncached requests
// must fail with an OCI error in bounded time.
//
// The subtests run in parallel (each with its own wharf and relay) so the
// stall, which waits out wharf's 60 s body idle timeout, overlaps the rest.
func TestProxyFaults(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	shared := harness.StartDistribution(t, harness.DistributionOptions{})

	t.Run("origin killed mid-stream", func(t *testing.T) {
		t.Parallel()
		origin := harness.StartDistribution(t, harness.DistributionOptions{})
		img := pushLargeImage(t, origin.Addr+"/library/killed:1", 32<<20)
		layer, size := layerOf(t, img)
		blobPath := "/v2/library/killed/blobs/" + layer.String()

		relay := harness.StartRelay(t, origin.URL)
		paused, release := make(chan struct{}), make(chan struct{})
		var fired atomic.Bool
		relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
			if r.Method != http.MethodGet || r.URL.Path != blobPath || !fired.CompareAndSwap(false, true) {
				return false
			}
			// Forward 8 MiB, then hold the stream while the test kills the
			// origin; then go on copying whatever the dead origin had
			// already sent, until its stream ends early.
			forward.ServeHTTP(&harness.RelayHookWriter{ResponseWriter: w, Limit: 8 << 20, AfterBytes: func() error {
				close(paused)
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return nil
			}}, r)
			return true
		})
		w := startProxyWharf(t, fmt.Sprintf(faultConfig, relay.URL))
		url := blobURL(w, "library/killed", layer)

		resc := make(chan fetchResult, 1)
		go func() { resc <- fetch(t.Context(), url, 2*time.Minute) }()
		select {
		case <-paused:
		case res := <-resc:
			close(release)
			t.Fatalf("the GET ended before the relay paused it: %d, %d bytes, %v", res.Status, res.N, res.Err)
		case <-time.After(30 * time.Second):
			close(release)
			t.Fatal("the blob GET never reached the relay's pause")
		}
		_ = origin.Kill() // SIGKILL: an exit error is expected
		killed := time.Now()
		close(release)
		res := <-resc
		t.Logf("client: status %d, %d of %d bytes, err %v, %s after the kill", res.Status, res.N, size, res.Err, time.Since(killed).Round(time.Millisecond))
		for _, r := range relay.Requests() {
			if r.Path == blobPath {
				t.Logf("relay: %s %s range=%q → %d, %d bytes", r.Method, r.Path[len(r.Path)-12:], r.Range, r.Status, r.Bytes)
			}
		}
		if res.complete() {
			t.Errorf("the client got a complete %d answer (%d bytes, %s) from a stream whose origin died", res.Status, res.N, res.Digest)
		}
		if blobCached(w, layer) {
			t.Errorf("wharf cached %s from a broken stream", layer)
		}

		// The origin comes back: the blob is fetched again, whole and right.
		origin.Restart(t)
		before, _ := relay.Count(http.MethodGet, blobPath)
		again := fetch(t.Context(), url, 2*time.Minute)
		if !again.complete() || again.Digest != layer.String() {
			t.Fatalf("after the origin came back: status %d, %d bytes, %s, err %v: %s", again.Status, again.N, again.Digest, again.Err, again.Body)
		}
		if after, _ := relay.Count(http.MethodGet, blobPath); after == before {
			t.Errorf("the GET after recovery did not reach the origin")
		}
		if !waitCached(w, layer) {
			t.Errorf("blob %s not cached after a good fetch", layer)
		}
	})

	t.Run("stream cut once is resumed", func(t *testing.T) {
		t.Parallel()
		img := pushLargeImage(t, shared.Addr+"/library/cut:1", 16<<20)
		layer, size := layerOf(t, img)
		blobPath := "/v2/library/cut/blobs/" + layer.String()
		relay := harness.StartRelay(t, shared.URL)
		var fired atomic.Bool
		relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
			if r.Method != http.MethodGet || r.URL.Path != blobPath || !fired.CompareAndSwap(false, true) {
				return false
			}
			forward.ServeHTTP(&harness.RelayHookWriter{ResponseWriter: w, Limit: 4 << 20, AfterBytes: func() error {
				return errors.New("relay: cutting the stream")
			}}, r)
			return true
		})
		w := startProxyWharf(t, fmt.Sprintf(faultConfig, relay.URL))
		res := fetch(t.Context(), blobURL(w, "library/cut", layer), 2*time.Minute)
		if !res.complete() || res.Digest != layer.String() {
			t.Fatalf("status %d, %d bytes, %s, err %v", res.Status, res.N, res.Digest, res.Err)
		}
		var ranges []string
		var sent int64
		for _, r := range relay.Requests() {
			if r.Method == http.MethodGet && r.Path == blobPath {
				ranges = append(ranges, r.Range)
				sent += r.Bytes
			}
		}
		t.Logf("relay GETs for the blob, by Range: %q; %d bytes for a %d-byte blob", ranges, sent, size)
		if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
			t.Errorf("want one full GET and one ranged resume, got ranges %q", ranges)
		}
		if sent > size+1<<20 {
			t.Errorf("origin sent %d bytes for a %d-byte blob: the resume started over", sent, size)
		}
		if !waitCached(w, layer) {
			t.Errorf("resumed blob %s not cached", layer)
		}
	})

	t.Run("wrong bytes", func(t *testing.T) {
		t.Parallel()
		img := pushLargeImage(t, shared.Addr+"/library/corrupt:1", 4<<20)
		layer, size := layerOf(t, img)
		blobPath := "/v2/library/corrupt/blobs/" + layer.String()
		small := harness.PushRandomImage(t, shared.Addr+"/library/corruptm:1", harness.ImageSpec{Layers: 1})
		manifestDigest := digest(t, small)
		manifestPath := "/v2/library/corruptm/manifests/" + manifestDigest.String()

		relay := harness.StartRelay(t, shared.URL)
		var corrupting atomic.Bool
		corrupting.Store(true)
		relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
			if !corrupting.Load() || r.Method != http.MethodGet || (r.URL.Path != blobPath && r.URL.Path != manifestPath) {
				return false
			}
			// Same length, one byte flipped in the middle.
			forward.ServeHTTP(&harness.RelayHookWriter{ResponseWriter: w, Corrupt: func(off int64, p []byte) {
				mid := size / 2
				if r.URL.Path == manifestPath {
					mid = 40
				}
				if k := mid - off; k >= 0 && k < int64(len(p)) {
					p[k] ^= 0x01
				}
			}}, r)
			return true
		})
		w := startProxyWharf(t, fmt.Sprintf(faultConfig, relay.URL))
		url := blobURL(w, "library/corrupt", layer)

		results := make([]fetchResult, 3)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = fetch(t.Context(), url, time.Minute)
			}()
		}
		wg.Wait()
		for i, r := range results {
			t.Logf("client %d: status %d, %d of %d bytes, err %v", i, r.Status, r.N, size, r.Err)
			if r.complete() {
				t.Errorf("client %d got a complete %d answer of wrong bytes (%d bytes, %s)", i, r.Status, r.N, r.Digest)
			}
		}
		if blobCached(w, layer) {
			t.Fatalf("wharf cached wrong bytes as %s", layer)
		}
		n1, _ := relay.Count(http.MethodGet, blobPath)
		if r := fetch(t.Context(), url, time.Minute); r.complete() {
			t.Errorf("second GET: a complete %d answer of wrong bytes", r.Status)
		}
		n2, _ := relay.Count(http.MethodGet, blobPath)
		if n2 <= n1 {
			t.Errorf("the second GET did not go to the origin (%d then %d GETs): something was cached", n1, n2)
		}

		// A manifest by digest whose bytes do not match is refused outright.
		m := fetch(t.Context(), manifestURL(w, "library/corruptm", manifestDigest.String()), time.Minute, "Accept", manifestAccept)
		t.Logf("corrupt manifest: status %d: %s", m.Status, m.Body)
		if m.Status < 500 || ociCode(m.Body) == "" {
			t.Errorf("manifest with wrong bytes: status %d, body %s; want a 5xx OCI error", m.Status, m.Body)
		}

		// The origin heals: right bytes, fetched from it, then cached.
		corrupting.Store(false)
		good := fetch(t.Context(), url, time.Minute)
		if !good.complete() || good.Digest != layer.String() {
			t.Fatalf("after healing: status %d, %d bytes, %s, err %v", good.Status, good.N, good.Digest, good.Err)
		}
		if n3, _ := relay.Count(http.MethodGet, blobPath); n3 <= n2 {
			t.Errorf("the healed GET did not go to the origin")
		}
		if !waitCached(w, layer) {
			t.Errorf("good blob %s not cached", layer)
		}
		mm := fetch(t.Context(), manifestURL(w, "library/corruptm", manifestDigest.String()), time.Minute, "Accept", manifestAccept)
		if mm.Status != http.StatusOK || mm.Digest != manifestDigest.String() {
			t.Errorf("healed manifest: status %d, body digest %s, want %s", mm.Status, mm.Digest, manifestDigest)
		}
	})

	t.Run("stall", func(t *testing.T) {
		t.Parallel()
		blobImg := pushLargeImage(t, shared.Addr+"/library/stall:1", 1<<20)
		layer, _ := layerOf(t, blobImg)
		blobPath := "/v2/library/stall/blobs/" + layer.String()
		mImg := harness.PushRandomImage(t, shared.Addr+"/library/stallm:1", harness.ImageSpec{Layers: 1})
		mDigest := digest(t, mImg)
		harness.PushRandomImage(t, shared.Addr+"/library/stallh:1", harness.ImageSpec{Layers: 1})

		relay := harness.StartRelay(t, shared.URL)
		relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
			switch {
			case r.Method == http.MethodGet && (r.URL.Path == blobPath || r.URL.Path == "/v2/library/stallm/manifests/"+mDigest.String()):
				relay.Stall(w, r, forward) // status and headers, then silence
				return true
			case strings.HasPrefix(r.URL.Path, "/v2/library/stallh/manifests/"):
				relay.Hold(r) // not even a status line
				return true
			}
			return false
		})
		w := startProxyWharf(t, fmt.Sprintf(faultConfig, relay.URL))

		cases := []struct {
			name, url string
			limit     time.Duration
		}{
			// A body that stops: bounded by wharf's upstream body idle
			// timeout (60 s, not configurable).
			{"blob body stalls", blobURL(w, "library/stall", layer), 2 * time.Minute},
			{"manifest body stalls", manifestURL(w, "library/stallm", mDigest.String()), 2 * time.Minute},
			// No answer at all: bounded by the proxy's timeout (2 s).
			{"no response headers", manifestURL(w, "library/stallh", "1"), 10 * time.Second},
		}
		results := make([]fetchResult, len(cases))
		var wg sync.WaitGroup
		for i, c := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = fetch(t.Context(), c.url, 3*time.Minute, "Accept", manifestAccept)
			}()
		}
		wg.Wait()
		for i, c := range cases {
			r := results[i]
			t.Logf("%s: status %d after %s (first byte %s), %d bytes, err %v: %s", c.name, r.Status,
				r.Elapsed.Round(time.Millisecond), r.FirstByte.Round(time.Millisecond), r.N, r.Err, r.Body)
			if r.complete() {
				t.Errorf("%s: a complete %d answer from a stalled upstream", c.name, r.Status)
			}
			if r.Elapsed > c.limit {
				t.Errorf("%s: the client waited %s (limit %s)", c.name, r.Elapsed.Round(time.Millisecond), c.limit)
			}
			if r.Err == nil && (r.Status < 500 || ociCode(r.Body) == "") {
				t.Errorf("%s: status %d, body %s; want a 5xx OCI error", c.name, r.Status, r.Body)
			}
		}
		if blobCached(w, layer) {
			t.Errorf("a stalled blob was cached")
		}
	})

	t.Run("429", func(t *testing.T) {
		t.Parallel()
		img1 := harness.PushRandomImage(t, shared.Addr+"/library/limited:1", harness.ImageSpec{Layers: 2})
		harness.PushRandomImage(t, shared.Addr+"/library/limited:2", harness.ImageSpec{Layers: 1})
		relay := harness.StartRelay(t, shared.URL)
		var limited atomic.Bool
		relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
			if !limited.Load() || !strings.Contains(r.URL.Path, "/manifests/") {
				return false
			}
			// Docker Hub's answer once the anonymous pull quota is spent.
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("ratelimit-limit", "100;w=21600")
			h.Set("ratelimit-remaining", "0;w=21600")
			h.Set("docker-ratelimit-source", "127.0.0.1")
			w.WriteHeader(http.StatusTooManyRequests)
			if r.Method != http.MethodHead {
				fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]}`)
			}
			return true
		})
		w := startProxyWharf(t, fmt.Sprintf(faultConfig, relay.URL))
		ref1 := w.Addr + "/library/limited:1"
		if d, err := pullImage(t, ref1); err != nil || d != digest(t, img1) {
			t.Fatalf("healthy pull: %s, %v", d, err)
		}

		limited.Store(true)
		time.Sleep(1500 * time.Millisecond) // past tag_ttl
		before := count429(relay)
		d, err := pullImage(t, ref1)
		if err != nil || d != digest(t, img1) {
			t.Errorf("cached tag while rate-limited: %s, %v; want %s served stale", d, err, digest(t, img1))
		}
		if count429(relay) == before {
			t.Errorf("wharf did not ask the upstream after the tag TTL; the stale path was not exercised")
		}
		if !strings.Contains(w.Logs(), "stale") {
			t.Errorf("wharf did not log serving the tag stale:\n%s", w.LogTail(20))
		}

		res := fetch(t.Context(), manifestURL(w, "library/limited", "2"), time.Minute, "Accept", manifestAccept)
		t.Logf("uncached tag while rate-limited: %d after %s, Retry-After %q: %s", res.Status, res.Elapsed.Round(time.Millisecond), res.Header.Get("Retry-After"), res.Body)
		if res.Status != http.StatusTooManyRequests || ociCode(res.Body) != "TOOMANYREQUESTS" {
			t.Errorf("uncached tag while rate-limited: %d %s; want 429 TOOMANYREQUESTS", res.Status, res.Body)
		}
		if res.Elapsed > 10*time.Second {
			t.Errorf("uncached tag took %s to fail", res.Elapsed)
		}
	})

	t.Run("origin stopped", func(t *testing.T) {
		t.Parallel()
		origin := harness.StartDistribution(t, harness.DistributionOptions{})
		img1 := harness.PushRandomImage(t, origin.Addr+"/library/gone:1", harness.ImageSpec{Layers: 2})
		img2 := harness.PushRandomImage(t, origin.Addr+"/library/gone:2", harness.ImageSpec{Layers: 1})
		w := startProxyWharf(t, fmt.Sprintf(faultConfig, origin.URL))
		ref1 := w.Addr + "/library/gone:1"
		if d, err := pullImage(t, ref1); err != nil || d != digest(t, img1) {
			t.Fatalf("healthy pull: %s, %v", d, err)
		}

		_ = origin.Kill()
		time.Sleep(1500 * time.Millisecond) // past tag_ttl
		start := time.Now()
		if d, err := pullImage(t, ref1); err != nil || d != digest(t, img1) {
			t.Errorf("cached tag with the origin gone: %s, %v; want %s served stale", d, err, digest(t, img1))
		}
		pullTook := time.Since(start)
		start = time.Now()
		desc, err := remote.Head(harness.Ref(t, ref1), remote.WithContext(t.Context()))
		if err != nil || desc.Digest != digest(t, img1) {
			t.Errorf("HEAD of the cached tag with the origin gone: %v, %v", desc, err)
		}
		// Each answer waits for the upstream client's retries against the
		// dead origin before falling back to the cache.
		t.Logf("stale answers with the origin gone: pull %s, HEAD %s", pullTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if pullTook > 10*time.Second {
			t.Errorf("serving the cached tag stale took %s", pullTook)
		}

		for _, c := range []struct{ name, url string }{
			{"uncached tag", manifestURL(w, "library/gone", "2")},
			{"uncached blob", blobURL(w, "library/gone", layerDigest(t, img2))},
		} {
			res := fetch(t.Context(), c.url, time.Minute, "Accept", manifestAccept)
			t.Logf("%s with the origin gone: %d after %s: %s", c.name, res.Status, res.Elapsed.Round(time.Millisecond), res.Body)
			if res.Status < 500 || ociCode(res.Body) == "" {
				t.Errorf("%s with the origin gone: %d %s; want a 5xx OCI error", c.name, res.Status, res.Body)
			}
			if res.Elapsed > 10*time.Second {
				t.Errorf("%s took %s to fail (proxy timeout 2s)", c.name, res.Elapsed)
			}
		}
	})
}

// pullImage pulls ref with go-containerregistry and reads every blob.
func pullImage(t *testing.T, ref string) (v1.Hash, error) {
	t.Helper()
	img, err := remote.Image(harness.Ref(t, ref), remote.WithContext(t.Context()))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := validate.Image(img); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

func count429(rl *harness.Relay) int {
	n := 0
	for _, r := range rl.Requests() {
		if r.Status == http.StatusTooManyRequests {
			n++
		}
	}
	return n
}
