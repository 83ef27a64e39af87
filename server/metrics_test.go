package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

func startWith(t testing.TB, cfg *config.Config, opts ...server.Option) *server.Server {
	t.Helper()
	s, err := server.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func body(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sample reads one series' value from an exposition; -1 when absent.
func sample(exposition, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(exposition)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// pullAll pulls an image by tag and reads every layer.
func pullAll(t testing.TB, s *server.Server, repo string) {
	t.Helper()
	img, err := remote.Image(ref(t, s, repo))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, rc)
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A cold pull counts misses, a warm one hits; upstream traffic, bytes,
// rate limit and storage show in /metrics and in /-/status.
func TestMetricsAndStatusAfterPulls(t *testing.T) {
	o := newOrigin(t)
	img, _ := random.Image(64<<10, 3)
	o.push(t, "library/app:1", img)
	o.setBlobHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("RateLimit-Limit", "100;w=21600")
		w.Header().Set("RateLimit-Remaining", "97;w=21600")
		return false
	})
	s := startWith(t, proxyConfig(t, o.URL, ""), server.WithIndexCountMaxAge(0), server.WithVersion("9.9.9"))
	layers := int64(len(layerDigests(t, img)))
	var layerBytes int64
	ls, _ := img.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		layerBytes += n
	}

	// A fill is committed and counted just after its last byte reaches
	// the client: wait for the last one on a loaded machine, before the
	// warm pull (which would otherwise join a fill still finishing) and
	// before reading the figures.
	settled := func() string {
		waitIdle(t, s)
		_, text := body(t, "http://"+s.Addr()+"/metrics")
		return text
	}
	pullAll(t, s, "app:1") // cold
	settled()
	pullAll(t, s, "app:1") // warm
	text := settled()
	for series, want := range map[string]float64{
		`wharf_cache_requests_total{kind="tag",proxy="hub",result="miss"}`:                      1,
		`wharf_cache_requests_total{kind="tag",proxy="hub",result="hit"}`:                       1,
		`wharf_cache_requests_total{kind="blob",proxy="hub",result="miss"}`:                     float64(layers),
		`wharf_cache_requests_total{kind="blob",proxy="hub",result="hit"}`:                      float64(layers),
		`wharf_cache_requests_total{kind="tag",proxy="hub",result="stale"}`:                     0,
		`wharf_cache_filled_bytes_total{proxy="hub"}`:                                           float64(layerBytes),
		`wharf_upstream_requests_total{code="2xx",endpoint="blob",method="GET",upstream="hub"}`: float64(layers),
		`wharf_upstream_pull_limit{upstream="hub"}`:                                             100,
		`wharf_upstream_pulls_remaining{upstream="hub"}`:                                        97,
		`wharf_upstream_pull_limit_window_seconds{upstream="hub"}`:                              21600,
		`wharf_build_info{goversion="` + goVersion(text) + `",version="9.9.9"}`:                 1,
	} {
		if got := sample(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if hit, miss := sample(text, `wharf_served_bytes_total{source="hit"}`), sample(text, `wharf_served_bytes_total{source="miss"}`); hit < float64(layerBytes) || miss < float64(layerBytes) {
		t.Errorf("served bytes hit %v miss %v, want each >= %d", hit, miss, layerBytes)
	}
	if got := sample(text, `wharf_upstream_fetched_bytes_total{upstream="hub"}`); got < float64(layerBytes) {
		t.Errorf("fetched %v bytes, want >= %d", got, layerBytes)
	}
	if got := sample(text, `wharf_storage_used_bytes{owner="hub"}`); got < float64(layerBytes) {
		t.Errorf("storage used by hub = %v, want >= %d", got, layerBytes)
	}
	if got := sample(text, `wharf_storage_used_bytes{owner="hosted"}`); got != 0 {
		t.Errorf("storage used by hosted = %v, want 0", got)
	}
	if used := sample(text, `wharf_cache_used_bytes`); used != sample(text, `wharf_storage_used_bytes{owner="hub"}`) {
		t.Errorf("cache used = %v, want hub's", used)
	}
	if strings.Contains(text, "wharf_cache_budget_bytes") {
		t.Error("no cache.max_size, yet wharf_cache_budget_bytes is exposed")
	}
	if got := sample(text, `wharf_index_entries{type="manifest"}`); got != 1 {
		t.Errorf("index manifests = %v, want 1", got)
	}
	if !strings.Contains(text, `wharf_http_request_duration_seconds_bucket{method="GET",route="blob",le="`) {
		t.Error("no request duration histogram for blob GETs")
	}

	// The same figures, summarised for `wharf status`.
	code, js := body(t, "http://"+s.Addr()+"/-/status")
	if code != 200 {
		t.Fatalf("/-/status = %d %s", code, js)
	}
	var r server.Report
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	if r.Version != "9.9.9" || r.State != server.StateRunning || r.UptimeSeconds <= 0 || len(r.Proxies) != 1 {
		t.Fatalf("report = %s", js)
	}
	p := r.Proxies[0]
	if p.Name != "hub" || p.Cache.Hits != layers+1 || p.Cache.Misses != layers+1 || p.Cache.HitRatio == nil || *p.Cache.HitRatio != 0.5 {
		t.Errorf("proxy cache = %+v", p.Cache)
	}
	if r.Cache.Hits != p.Cache.Hits || r.ServedBytes["hit"] < layerBytes || p.FetchedBytes < layerBytes {
		t.Errorf("totals = %+v served %v fetched %d", r.Cache, r.ServedBytes, p.FetchedBytes)
	}
	if p.Health != server.HealthOK || p.LastSuccess == nil || p.LastFailure != nil {
		t.Errorf("health = %s (ok %v, fail %v)", p.Health, p.LastSuccess, p.LastFailure)
	}
	if p.RateLimit == nil || p.RateLimit.Remaining != 97 || p.RateLimit.Limit != 100 {
		t.Errorf("rate limit = %+v", p.RateLimit)
	}
	if len(r.Storage) != 2 || r.Storage[0].Owner != "hub" || !r.Storage[0].Proxied || r.Storage[0].Bytes < layerBytes || r.Storage[1].Owner != "hosted" || r.Storage[1].Proxied {
		t.Errorf("storage = %+v", r.Storage)
	}
	if r.Budget.MaxBytes != 0 || r.Budget.UsedBytes != r.Storage[0].Bytes {
		t.Errorf("budget = %+v", r.Budget)
	}
	if r.IndexEntries["manifest"] != 1 || r.IndexEntries["tag"] != 1 || r.IndexEntries["blob"] != r.Storage[0].Blobs || r.IndexAsOf == nil {
		t.Errorf("index entries = %v", r.IndexEntries)
	}
}

func goVersion(exposition string) string {
	m := regexp.MustCompile(`wharf_build_info\{goversion="([^"]+)"`).FindStringSubmatch(exposition)
	if m == nil {
		return ""
	}
	return m[1]
}

// An upstream that goes down turns its health to failing; the tag is
// served stale and counted so.
func TestStatusUpstreamFailing(t *testing.T) {
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
	if _, err := remote.Image(ref(t, s, "stale:1")); err != nil {
		t.Fatal(err)
	}
	r := s.Report()
	p := r.Proxies[0]
	if p.Cache.Stale != 1 || p.Health != server.HealthFailing || p.LastError != "unavailable" || p.UpstreamErrors["unavailable"] != 1 {
		t.Errorf("after the origin went down: cache %+v health %s last error %q errors %v", p.Cache, p.Health, p.LastError, p.UpstreamErrors)
	}
	_, text := body(t, "http://"+s.Addr()+"/metrics")
	if got := sample(text, `wharf_upstream_errors_total{class="unavailable",endpoint="manifest",upstream="hub"}`); got != 1 {
		t.Errorf("upstream errors = %v, want 1", got)
	}
	if got := sample(text, `wharf_upstream_requests_total{code="5xx",endpoint="manifest",method="HEAD",upstream="hub"}`); got < 2 {
		t.Errorf("5xx HEADs = %v, want every retry counted", got)
	}
}

// metrics.listen moves /metrics off the main listener; health and status
// answer on both.
func TestMetricsListen(t *testing.T) {
	cfg, err := config.Parse([]byte(fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\nmetrics:\n  listen: 127.0.0.1:0\nlog:\n  access_log: false\n", t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg)
	if s.MetricsAddr() == s.Addr() || s.MetricsAddr() == "" {
		t.Fatalf("metrics on %q, main on %q", s.MetricsAddr(), s.Addr())
	}
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{s.Addr(), "/metrics", 404},
		{s.MetricsAddr(), "/metrics", 200},
		{s.Addr(), "/readyz", 200},
		{s.MetricsAddr(), "/readyz", 200},
		{s.MetricsAddr(), "/healthz", 200},
		{s.MetricsAddr(), "/-/status", 200},
		{s.MetricsAddr(), "/v2/", 404},
	} {
		code, b := body(t, "http://"+c.addr+c.path)
		if code != c.want {
			t.Errorf("%s%s = %d, want %d", c.addr, c.path, code, c.want)
		}
		if code == 404 && ociCode([]byte(b)) != "NOT_FOUND" {
			t.Errorf("%s%s: %s, want a NOT_FOUND envelope", c.addr, c.path, b)
		}
	}
	if r := s.Report(); r.MetricsAddr != s.MetricsAddr() {
		t.Errorf("report metrics_addr = %q", r.MetricsAddr)
	}
	// The metrics port is released at shutdown, with the main one.
	addr := s.MetricsAddr()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics listener still answers after Shutdown")
	}
}

func TestMetricsListenBusyFailsStart(t *testing.T) {
	s1 := start(t, testConfig(t, ""))
	cfg, err := config.Parse([]byte(fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\nmetrics:\n  listen: %s\n", t.TempDir(), s1.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := server.New(cfg)
	if err := s2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Errorf("Start with a busy metrics address: %v", err)
	}
}

func TestReadyzChecks(t *testing.T) {
	cfg := testConfig(t, "")
	s := start(t, cfg)
	code, text := body(t, "http://"+s.Addr()+"/readyz")
	if code != 200 || text != "index: ok\ndata_dir: ok\nlisteners: ok\n" {
		t.Errorf("/readyz = %d %q", code, text)
	}
	// A data dir that cannot take a temp file is not ready.
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "tmp")); err != nil {
		t.Fatal(err)
	}
	code, text = body(t, "http://"+s.Addr()+"/readyz")
	if code != 503 || !strings.Contains(text, "data_dir: not writable") || !strings.Contains(text, "index: ok") {
		t.Errorf("/readyz without tmp = %d %q", code, text)
	}
	if code, _ := body(t, "http://"+s.Addr()+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d; the process answers", code)
	}
}

// With a budget, /metrics and the report show it, what proxied content
// takes against it, and the evictions that keep it there.
func TestBudgetAndEvictionFigures(t *testing.T) {
	o := newOrigin(t)
	for i := range 4 {
		img, _ := random.Image(1<<20, 1)
		o.push(t, fmt.Sprintf("library/img%d:1", i), img)
	}
	s := start(t, proxyConfig(t, o.URL, "cache:\n  max_size: 3MiB\n  high_watermark: 0.9\n  low_watermark: 0.6"))
	for i := range 4 {
		pullLayers(t, s, fmt.Sprintf("library/img%d:1", i))
		settle(t, s)
	}
	// settle waited for the fills to be committed: /metrics and the
	// report describe the same state.
	_, text := body(t, "http://"+s.Addr()+"/metrics")
	if m, r := int64(sample(text, "wharf_cache_used_bytes")), s.Report().Budget.UsedBytes; m != r {
		t.Errorf("wharf_cache_used_bytes = %d, report says %d", m, r)
	}
	if got := sample(text, "wharf_cache_budget_bytes"); got != 3<<20 {
		t.Errorf("wharf_cache_budget_bytes = %v, want %d", got, 3<<20)
	}
	if used := sample(text, "wharf_cache_used_bytes"); used <= 0 || used > 0.9*(3<<20) {
		t.Errorf("wharf_cache_used_bytes = %v, want within the high watermark", used)
	}
	r := s.Report()
	if r.Budget.MaxBytes != 3<<20 || r.Budget.HighWatermark != 0.9 || r.Budget.LowWatermark != 0.6 || r.Budget.UsedBytes != int64(sample(text, "wharf_cache_used_bytes")) {
		t.Errorf("budget = %+v", r.Budget)
	}
	if r.Budget.Evictions == 0 || r.Budget.EvictedBytes < 1<<20 {
		t.Errorf("no evictions counted: %+v", r.Budget)
	}
}
