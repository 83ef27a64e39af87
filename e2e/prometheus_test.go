//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestPrometheusScrapesWharf runs a real Prometheus against a real wharf
// that caches a Distribution origin: after one cold and one warm pull the
// query API holds the misses and hits they caused; promtool finds nothing
// to lint in the exposition; every query of the shipped Grafana dashboard
// is valid PromQL that Prometheus evaluates; `wharf status` shows the same.
func TestPrometheusScrapesWharf(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "prometheus", "promtool", "docker-registry")
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	img := harness.PushRandomImage(t, origin.Addr+"/library/app:1", harness.ImageSpec{Layers: 3, LayerSize: 32 << 10})

	// /metrics on its own address, as an operator would keep it off the
	// registry port.
	// Port 0: the harness reads the port wharf got from its log.
	w := startProxyWharf(t, fmt.Sprintf(`listen: {{.Listen}}
data_dir: {{.DataDir}}
metrics:
  listen: 127.0.0.1:0
proxies:
  - name: hub
    upstream: %s
    default: true
hosted:
  - name: team
`, origin.URL))
	metricsAddr := w.MetricsAddr
	if metricsAddr == "" {
		t.Fatalf("wharf logged no metrics address:\n%s", w.LogTail(20))
	}
	if code := httpStatus(t, w.URL+"/metrics"); code != http.StatusNotFound {
		t.Errorf("main listener /metrics = %d, want 404 with metrics.listen set", code)
	}
	prom := harness.StartPrometheus(t, time.Second, metricsAddr)
	prom.WaitFor(t, 30*time.Second, `up{job="wharf"}`, func(s []harness.Sample) bool { return len(s) == 1 && s[0].Value == 1 })

	// A cold pull (every request a miss), then a warm one (every request
	// a hit): the manifest by tag, the config and the three layers.
	pull := func() {
		t.Helper()
		harness.PullImage(t, w.Addr+"/app:1", remote.WithContext(t.Context()))
	}
	pull()
	pull()
	layers, _ := img.Layers()
	blobs := float64(len(layers) + 1) // and the config
	want := map[string]float64{"tag hit": 1, "tag miss": 1, "blob hit": blobs, "blob miss": blobs}
	prom.WaitFor(t, 30*time.Second, `sum by (kind, result) (wharf_cache_requests_total{job="wharf",proxy="hub",result=~"hit|miss"})`, func(s []harness.Sample) bool {
		got := map[string]float64{}
		for _, x := range s {
			if x.Value > 0 {
				got[x.Metric["kind"]+" "+x.Metric["result"]] = x.Value
			}
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	var layerBytes float64
	for _, l := range layers {
		n, _ := l.Size()
		layerBytes += float64(n)
	}
	for expr, ok := range map[string]func(float64) bool{
		`sum(wharf_cache_requests_total{job="wharf",result="hit"}) / sum(wharf_cache_requests_total{job="wharf"})`: func(v float64) bool { return v == 0.5 },
		`wharf_served_bytes_total{job="wharf",source="hit"}`:                                                       func(v float64) bool { return v >= layerBytes },
		`wharf_cache_filled_bytes_total{job="wharf",proxy="hub"}`:                                                  func(v float64) bool { return v >= layerBytes },
		`sum(wharf_upstream_fetched_bytes_total{job="wharf",upstream="hub"})`:                                      func(v float64) bool { return v >= layerBytes },
		`sum(wharf_upstream_requests_total{job="wharf",upstream="hub",code="2xx"})`:                                func(v float64) bool { return v >= blobs+1 },
		`wharf_http_request_duration_seconds_count{job="wharf",route="blob",method="GET"}`:                         func(v float64) bool { return v == 2*blobs },
		`wharf_storage_used_bytes{job="wharf",owner="hub"}`:                                                        func(v float64) bool { return v >= layerBytes },
		`wharf_cache_used_bytes{job="wharf"}`:                                                                      func(v float64) bool { return v >= layerBytes },
		`count(wharf_build_info{job="wharf"})`:                                                                     func(v float64) bool { return v == 1 },
	} {
		prom.WaitFor(t, 30*time.Second, expr, func(s []harness.Sample) bool { return len(s) == 1 && ok(s[0].Value) })
	}

	// promtool lints what Prometheus just scraped.
	exposition := httpBody(t, "http://"+metricsAddr+"/metrics")
	if out, err := harness.CheckMetrics(t, exposition); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// Every dashboard query parses and evaluates, with Grafana's variables
	// filled in as Grafana would for "All" and a short range.
	for where, expr := range dashboardExprs(t) {
		q := strings.NewReplacer("$__rate_interval", "1m", "$__range", "5m", "$instance", ".*", "$proxy", ".*").Replace(expr)
		if _, err := prom.Query(q); err != nil {
			t.Errorf("dashboard %s: %v", where, err)
		}
	}

	// The person's view of the same server.
	out, err := w.Run("status", "--url", "http://"+metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"running", "hit ratio 50.0%", "hub → " + origin.URL + " (default): ok"} {
		if !strings.Contains(out, s) {
			t.Errorf("wharf status lacks %q:\n%s", s, out)
		}
	}
	t.Logf("wharf status:\n%s", out)
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// dashboardExprs returns every "expr" in the shipped Grafana dashboard,
// keyed by panel title and refId.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "packaging", "grafana", "wharf.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			if e, ok := v["expr"].(string); ok {
				ref, _ := v["refId"].(string)
				out[title+" "+ref] = e
			}
			for _, x := range v {
				walk(x, title)
			}
		case []any:
			for _, x := range v {
				walk(x, title)
			}
		}
	}
	walk(d, "")
	if len(out) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(out))
	}
	return out
}
