package registry

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// warmPull is an image cached by a proxy, and the requests a client makes
// to pull it: the manifest by tag, then the config and every layer.
type warmPull struct {
	store    *storage.Store
	idx      index.Index
	up       *upstream.Client
	requests []*http.Request
}

func newWarmPull(b *testing.B) *warmPull {
	b.Helper()
	origin := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(origin.Close)
	// Small layers make the per-request cost, which is what metrics add
	// to, the largest share of a pull: the worst case for the overhead.
	img, err := random.Image(16<<10, 3)
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(origin.URL, "http://")+"/library/app:1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	w := &warmPull{}
	if w.store, err = storage.Open(dir); err != nil {
		b.Fatal(err)
	}
	if w.idx, err = index.Open(filepath.Join(dir, "index"), index.Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.idx.Close() })
	if w.up, err = upstream.New(upstream.Config{Name: "hub", URL: origin.URL, DockerHub: true}); err != nil {
		b.Fatal(err)
	}
	mt, _ := img.MediaType()
	req := httptest.NewRequest(http.MethodGet, "/v2/library/app/manifests/1", nil)
	req.Header.Set("Accept", string(mt))
	w.requests = append(w.requests, req)
	cfg, _ := img.ConfigName()
	w.requests = append(w.requests, httptest.NewRequest(http.MethodGet, "/v2/library/app/blobs/"+cfg.String(), nil))
	ls, _ := img.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		w.requests = append(w.requests, httptest.NewRequest(http.MethodGet, "/v2/library/app/blobs/"+d.String(), nil))
	}
	return w
}

// handler is the registry over the shared cache, with metrics m (nil: off).
func (w *warmPull) handler(b *testing.B, m *metrics.Metrics) http.Handler {
	p := cache.New(cache.Options{Name: "hub", Upstream: w.up, Store: w.store, Index: w.idx, Metrics: m})
	b.Cleanup(p.Close)
	m.InitProxy("hub")
	return New(Options{
		Hosted:           hosted.New(w.store, w.idx, nil),
		HostedNamespaces: []string{"team"},
		Proxies:          []ProxyNamespace{{Name: "hub", Default: true, DockerHub: true, Proxy: p}},
		Metrics:          m,
		BlobCopy:         "sendfile",
	})
}

func (w *warmPull) pull(b *testing.B, h http.Handler) {
	for _, r := range w.requests {
		var rw discardWriter
		h.ServeHTTP(&rw, r)
		if rw.status != http.StatusOK {
			b.Fatalf("%s: %d", r.URL.Path, rw.status)
		}
	}
}

// discardWriter is a ResponseWriter that keeps only the status; like the
// server's, it offers ReadFrom.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header {
	if d.h == nil {
		d.h = http.Header{}
	}
	return d.h
}
func (d *discardWriter) WriteHeader(s int) {
	if d.status == 0 {
		d.status = s
	}
}
func (d *discardWriter) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return len(p), nil
}
func (d *discardWriter) ReadFrom(r io.Reader) (int64, error) {
	d.WriteHeader(http.StatusOK)
	return io.Copy(io.Discard, r)
}

// BenchmarkWarmPullMetrics measures what metrics cost on the warm-pull
// path: a pull of a cached image (manifest by tag, config, three 16 KiB
// layers; every request a hit) with metrics off (a nil *Metrics) and on.
// "http" pulls over loopback HTTP, as a client does; "handler" calls the
// registry handler directly, which leaves HTTP out and so makes the share
// of metrics look larger. Off and on alternate pull by pull and the
// figures are medians of the per-pair times, so machine noise (other
// processes, GC) falls on both alike and outliers do not count. It
// reports ns per pull for each and the overhead in percent (target:
// under 2). AA=1 runs metrics off on both sides to show the noise floor.
//
//	go test -run '^$' -bench WarmPullMetrics -benchtime 3000x -count 5 ./registry/
func BenchmarkWarmPullMetrics(b *testing.B) {
	for _, mode := range []string{"handler", "http"} {
		b.Run(mode, func(b *testing.B) { benchWarmPull(b, mode == "http") })
	}
}

func benchWarmPull(b *testing.B, overHTTP bool) {
	w := newWarmPull(b)
	m := metrics.New("bench")
	off, on := w.handler(b, nil), w.handler(b, m)
	if os.Getenv("AA") != "" {
		on = w.handler(b, nil)
	}
	pull := w.pull
	if overHTTP {
		pull = w.pullHTTP(b, off, on)
	}
	pull(b, off)   // cold: fills the cache
	for range 50 { // warm both up
		pull(b, off)
		pull(b, on)
	}
	before := m.Summary().Proxies["hub"].Hits
	tOff := make([]time.Duration, b.N)
	tOn := make([]time.Duration, b.N)
	diff := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, so neither always finds warm caches.
		first, second, t1, t2 := off, on, &tOff[i], &tOn[i]
		if i%2 == 1 {
			first, second, t1, t2 = on, off, &tOn[i], &tOff[i]
		}
		start := time.Now()
		pull(b, first)
		mid := time.Now()
		pull(b, second)
		*t1, *t2 = mid.Sub(start), time.Since(mid)
		diff[i] = tOn[i] - tOff[i]
	}
	b.StopTimer()
	if hits := m.Summary().Proxies["hub"].Hits - before; os.Getenv("AA") == "" && hits != int64(b.N)*int64(len(w.requests)) {
		b.Fatalf("%d hits in %d pulls of %d requests: not the warm path", hits, b.N, len(w.requests))
	}
	medOff := median(tOff)
	b.ReportMetric(float64(medOff.Nanoseconds()), "ns/pull-off")
	b.ReportMetric(float64(median(tOn).Nanoseconds()), "ns/pull-on")
	b.ReportMetric(100*float64(median(diff))/float64(medOff), "%overhead")
}

// pullHTTP serves both handlers on loopback and returns a pull that goes
// through the server of the handler it is given.
func (w *warmPull) pullHTTP(b *testing.B, handlers ...http.Handler) func(*testing.B, http.Handler) {
	urls := map[http.Handler]string{}
	for _, h := range handlers {
		srv := httptest.NewServer(h)
		b.Cleanup(srv.Close)
		urls[h] = srv.URL
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	buf := make([]byte, 64<<10)
	return func(b *testing.B, h http.Handler) {
		for _, r := range w.requests {
			req, _ := http.NewRequest(http.MethodGet, urls[h]+r.URL.Path, nil)
			req.Header = r.Header
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.CopyBuffer(io.Discard, onlyR{resp.Body}, buf)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("%s: %s", r.URL.Path, resp.Status)
			}
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
