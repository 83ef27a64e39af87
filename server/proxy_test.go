package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/config"
)

// origin is an in-process upstream registry (go-containerregistry's) with
// request counting and fault injection on blob GETs.
type origin struct {
	*httptest.Server
	reg          http.Handler
	blobGets     atomic.Int64
	manifestGets atomic.Int64
	manifestHead atomic.Int64
	tagLists     atomic.Int64
	mu           sync.Mutex
	blobHook     func(w http.ResponseWriter, r *http.Request) bool // true: handled
	down         atomic.Bool
}

func newOrigin(t testing.TB) *origin {
	o := &origin{}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	o.reg = reg
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.down.Load() {
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"down"}]}`, http.StatusServiceUnavailable)
			return
		}
		// go-containerregistry's registry serves any blob in any
		// repository; a real one (Distribution, Docker Hub) does not.
		// Repositories under private/ play one holding nothing.
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`))
			return
		}
		switch {
		case strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet && !strings.Contains(r.URL.Path, "/uploads/"):
			o.blobGets.Add(1)
			o.mu.Lock()
			hook := o.blobHook
			o.mu.Unlock()
			if hook != nil && hook(w, r) {
				return
			}
		case strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet:
			o.manifestGets.Add(1)
		case strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodHead:
			o.manifestHead.Add(1)
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			o.tagLists.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) setBlobHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	o.mu.Lock()
	o.blobHook = h
	o.mu.Unlock()
}

// holdHalf makes the origin send the first half of blob d, then wait for
// release before sending the rest.
func (o *origin) holdHalf(d v1.Hash, release <-chan struct{}) {
	o.setBlobHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, d.String()) {
			return false
		}
		rec := httptest.NewRecorder()
		newOriginPassthrough(o, rec, r)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(200)
		w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
		<-release
		w.Write(body[len(body)/2:])
		return true
	})
}

func (o *origin) push(t testing.TB, repo string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(o.URL, "http://")+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func proxyConfig(t testing.TB, originURL, extra string) *config.Config {
	t.Helper()
	y := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
log:
  access_log: false
proxies:
  - name: hub
    upstream: %s
    default: true
    timeout: 2s
%s
hosted:
  - name: team
`, t.TempDir(), originURL, extra)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func layerDigests(t testing.TB, img v1.Image) []v1.Hash {
	ls, _ := img.Layers()
	var out []v1.Hash
	for _, l := range ls {
		d, _ := l.Digest()
		out = append(out, d)
	}
	return out
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, []byte, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestProxyPullThroughAndHits(t *testing.T) {
	o := newOrigin(t)
	img, _ := random.Image(200<<10, 3)
	o.push(t, "library/busybox:latest", img)
	o.push(t, "someuser/app:1.0", img)
	s := start(t, proxyConfig(t, o.URL, ""))
	want, _ := img.Digest()

	// All the names Docker, containerd and people use reach the same cache.
	for _, n := range []string{"library/busybox:latest", "busybox:latest", "hub/library/busybox:latest", "hub/busybox:latest", "someuser/app:1.0"} {
		got, err := remote.Image(ref(t, s, n))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("%s: %s != %s", n, d, want)
		}
		ls, _ := got.Layers()
		for _, l := range ls {
			rc, _ := l.Compressed()
			io.Copy(io.Discard, rc)
			if err := rc.Close(); err != nil {
				t.Fatalf("%s layer: %v", n, err)
			}
		}
	}
	// Each layer was fetched once (ggcr reads no config for a digest
	// check). someuser/app has the same layers: the cache asked the
	// origin with a HEAD whether that repository has them, and fetched
	// nothing again.
	if g := o.blobGets.Load(); g != int64(len(layerDigests(t, img))) {
		t.Errorf("origin blob GETs = %d, want %d", g, len(layerDigests(t, img)))
	}
	// A digest cached for one repository is not served for another that
	// the origin does not have it in: no leaks across repositories.
	resp, body, _ := get(t, "http://"+s.Addr()+"/v2/private/other/blobs/"+layerDigests(t, img)[0].String())
	if resp.StatusCode != 404 || !strings.Contains(string(body), "BLOB_UNKNOWN") {
		t.Errorf("cross-repository blob = %d %s", resp.StatusCode, body)
	}
	manifestGets, heads := o.manifestGets.Load(), o.manifestHead.Load()
	// Within the tag TTL, pulling again asks the origin nothing.
	if _, err := remote.Image(ref(t, s, "busybox:latest")); err != nil {
		t.Fatal(err)
	}
	if o.manifestGets.Load() != manifestGets || o.manifestHead.Load() != heads {
		t.Errorf("a cached tag within its TTL went to the origin")
	}
	// A push to a proxy namespace is refused with a clear message.
	resp, body, _ = postEmpty("http://" + s.Addr() + "/v2/hub/library/busybox/blobs/uploads/")
	if resp.StatusCode != 405 || !strings.Contains(string(body), "UNSUPPORTED") || !strings.Contains(string(body), "team") {
		t.Errorf("push to proxy = %d %s", resp.StatusCode, body)
	}
	// Tag listing passes through.
	resp, body, _ = get(t, "http://"+s.Addr()+"/v2/library/busybox/tags/list")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"latest"`) {
		t.Errorf("tags = %d %s", resp.StatusCode, body)
	}
	// Unknown upstream content is a clean 404.
	resp, body, _ = get(t, "http://"+s.Addr()+"/v2/library/nothing/manifests/latest")
	if resp.StatusCode != 404 || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
		t.Errorf("unknown = %d %s", resp.StatusCode, body)
	}
	// containerd's ?ns= picks the proxy by upstream host; an unknown host is refused.
	resp, _, _ = get(t, "http://"+s.Addr()+"/v2/library/busybox/manifests/latest?ns=docker.io", "Accept", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != 200 || resp.Header.Get("OCI-Namespace") != "docker.io" {
		t.Errorf("ns=docker.io = %d, OCI-Namespace %q", resp.StatusCode, resp.Header.Get("OCI-Namespace"))
	}
	resp, body, _ = get(t, "http://"+s.Addr()+"/v2/library/busybox/manifests/latest?ns=quay.io")
	if resp.StatusCode != 404 || !strings.Contains(string(body), "NAME_UNKNOWN") {
		t.Errorf("ns=quay.io = %d %s", resp.StatusCode, body)
	}
}

func postEmpty(url string) (*http.Response, []byte, error) {
	resp, err := http.Post(url, "", nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b, nil
}

// bigLayerImage makes an image whose single layer is size bytes.
func bigLayerImage(t testing.TB, size int64) (v1.Image, v1.Hash) {
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img, layerDigests(t, img)[0]
}

func TestProxyCoalescesConcurrentMisses(t *testing.T) {
	o := newOrigin(t)
	img, layer := bigLayerImage(t, 8<<20)
	o.push(t, "library/big:1", img)
	s := start(t, proxyConfig(t, o.URL, ""))

	const clients = 20
	var firstBytes sync.WaitGroup
	firstBytes.Add(clients)
	release := make(chan struct{})
	// The origin sends half the layer, then waits until every client has
	// received its first bytes: proof that bytes stream before the
	// download ends, and that late joiners share the same fetch.
	o.holdHalf(layer, release)
	url := "http://" + s.Addr() + "/v2/library/big/blobs/" + layer.String()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url)
			if err != nil {
				errs <- err
				firstBytes.Done()
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			one := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, one); err != nil {
				errs <- err
				firstBytes.Done()
				return
			}
			h.Write(one)
			firstBytes.Done()
			io.Copy(h, resp.Body)
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != layer.String() {
				errs <- fmt.Errorf("client got %s", got)
			}
		}()
	}
	waited := make(chan struct{})
	go func() { firstBytes.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("not every client got bytes while the origin was still sending")
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if g := o.blobGets.Load(); g != 1 {
		t.Errorf("origin served the blob %d times, want 1", g)
	}
	// Now a hit, with ranges.
	resp, body, _ := get(t, url, "Range", "bytes=100-199")
	if resp.StatusCode != 206 || len(body) != 100 {
		t.Errorf("range on cached blob = %d, %d bytes", resp.StatusCode, len(body))
	}
}

// newOriginPassthrough serves r from the origin's registry (no counting,
// no hooks).
func newOriginPassthrough(o *origin, w http.ResponseWriter, r *http.Request) {
	o.reg.ServeHTTP(w, r)
}

func TestProxyNeverServesOrCachesBadBytes(t *testing.T) {
	o := newOrigin(t)
	img, layer := bigLayerImage(t, 1<<20)
	o.push(t, "library/bad:1", img)
	s := start(t, proxyConfig(t, o.URL, ""))
	url := "http://" + s.Addr() + "/v2/library/bad/blobs/" + layer.String()

	for _, fault := range []string{"wrong-bytes", "truncated"} {
		o.setBlobHook(func(w http.ResponseWriter, r *http.Request) bool {
			rec := httptest.NewRecorder()
			newOriginPassthrough(o, rec, r)
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(200)
			if fault == "wrong-bytes" {
				bad := bytes.Clone(body)
				bad[len(bad)-1] ^= 0xff
				w.Write(bad)
			} else {
				w.Write(body[:len(body)-10])
				// Then hang up mid-body.
				panic(http.ErrAbortHandler)
			}
			return true
		})
		resp, err := http.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == 200 {
				t.Fatalf("%s: client got a complete 200 body of %d bytes", fault, len(b))
			}
		}
		// Nothing was cached: with the origin healthy again, a fresh fetch
		// brings the right bytes.
		o.setBlobHook(nil)
		before := o.blobGets.Load()
		resp, body, err := get(t, url)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: refetch: %v %v", fault, resp, err)
		}
		if sum := sha256.Sum256(body); "sha256:"+hex.EncodeToString(sum[:]) != layer.String() {
			t.Fatalf("%s: wrong bytes after refetch", fault)
		}
		if o.blobGets.Load() != before+1 {
			t.Fatalf("%s: refetch did not go to the origin: bad bytes were cached", fault)
		}
		// Evict for the next round by using a fresh server.
		s.Shutdown(context.Background())
		s = start(t, proxyConfig(t, o.URL, ""))
		url = "http://" + s.Addr() + "/v2/library/bad/blobs/" + layer.String()
	}
}

func TestProxyServesStaleWhenOriginDown(t *testing.T) {
	o := newOrigin(t)
	img, _ := random.Image(1024, 1)
	o.push(t, "library/stale:1", img)
	clock := newTestClock()
	s := start(t, proxyConfig(t, o.URL, "    tag_ttl: 1h"), withClock(clock))
	if _, err := remote.Image(ref(t, s, "stale:1")); err != nil {
		t.Fatal(err)
	}
	o.down.Store(true)
	clock.Advance(61 * time.Minute) // past the TTL: the tag must be revalidated
	got, err := remote.Image(ref(t, s, "stale:1"))
	if err != nil {
		t.Fatalf("stale pull failed: %v", err)
	}
	a, _ := got.Digest()
	b, _ := img.Digest()
	if a != b {
		t.Fatal("stale digest differs")
	}
	// An uncached tag fails fast with a clear 5xx and an OCI body.
	startT := time.Now()
	resp, body, _ := get(t, "http://"+s.Addr()+"/v2/library/stale/manifests/2")
	if resp.StatusCode < 500 || !strings.Contains(string(body), `"errors"`) {
		t.Errorf("uncached while down = %d %s", resp.StatusCode, body)
	}
	if time.Since(startT) > 30*time.Second {
		t.Errorf("took %s", time.Since(startT))
	}
}

func TestProxyTooManyRequests(t *testing.T) {
	o := newOrigin(t)
	s := start(t, proxyConfig(t, o.URL, ""))
	o.setBlobHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`))
		return true
	})
	resp, body, _ := get(t, "http://"+s.Addr()+"/v2/library/x/blobs/sha256:"+strings.Repeat("a", 64))
	if resp.StatusCode != 429 || !strings.Contains(string(body), "TOOMANYREQUESTS") {
		t.Errorf("429 upstream = %d %s", resp.StatusCode, body)
	}
}

func TestProxyFillOutlivesClientAndServesRanges(t *testing.T) {
	o := newOrigin(t)
	img, layer := bigLayerImage(t, 4<<20)
	o.push(t, "library/hangup:1", img)
	s := start(t, proxyConfig(t, o.URL, ""))
	release := make(chan struct{})
	o.setBlobHook(func(w http.ResponseWriter, r *http.Request) bool {
		rec := httptest.NewRecorder()
		newOriginPassthrough(o, rec, r)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(200)
		w.Write(body[:1<<20])
		http.NewResponseController(w).Flush()
		<-release
		w.Write(body[1<<20:])
		return true
	})
	url := "http://" + s.Addr() + "/v2/library/hangup/blobs/" + layer.String()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	cancel() // the first client hangs up mid-download
	resp.Body.Close()

	// A range inside what has arrived streams while the fill runs; its
	// last byte waits for the digest check, like every span's last byte.
	rreq, _ := http.NewRequest(http.MethodGet, url, nil)
	rreq.Header.Set("Range", "bytes=10-19")
	rr, err := http.DefaultClient.Do(rreq)
	if err != nil || rr.StatusCode != 206 {
		t.Fatalf("range during fill: %v %v", rr, err)
	}
	defer rr.Body.Close()
	if _, err := io.ReadFull(rr.Body, make([]byte, 9)); err != nil {
		t.Fatalf("range during fill: %v", err)
	}
	close(release)
	if rest, err := io.ReadAll(rr.Body); err != nil || len(rest) != 1 {
		t.Fatalf("range end after verification: %d bytes, %v", len(rest), err)
	}
	// The fill finishes on its own and the blob becomes a hit.
	waitIdle(t, s)
	resp, got, err := get(t, url)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("blob after the fill finished: %v %v", resp, err)
	}
	if sum := sha256.Sum256(got); "sha256:"+hex.EncodeToString(sum[:]) != layer.String() {
		t.Fatal("wrong bytes")
	}
	if g := o.blobGets.Load(); g != 1 {
		t.Errorf("origin GETs = %d, want 1 (the fill must survive the client)", g)
	}
}
