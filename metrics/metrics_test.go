package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// exercise calls every method, so every family has a series.
func exercise(m *Metrics) {
	m.ObserveRequest("manifest", "GET", 200, 3*time.Millisecond)
	m.ObserveRequest("blob", "BREW", 405, time.Millisecond)
	m.ObserveRequest("weird", "GET", 700, time.Millisecond)
	m.ServedBytes("hit", 100)
	m.ServedBytes("miss", 50)
	m.UploadStarted()
	m.UploadDone()
	m.InitProxy("hub")
	m.CacheResult("hub", "tag", "hit")
	m.CacheResult("hub", "blob", "miss")
	m.CoalescedFetch("hub")
	m.CacheFilled("hub", 50)
	m.Evicted("hub", 2, 4096)
	m.GCRun(1024)
	m.AuthResult("basic", true)
	m.AuthResult("ldap", false)
	u := m.Upstream("hub")
	u.Request("manifest", "GET", 200, 20*time.Millisecond)
	u.Request("blob", "GET", 0, time.Second)
	u.Error("blob", "timeout")
	u.Fetched(60)
	c := m.Cluster()
	c.FillStream("peer")
	c.PeerBytes(4096)
	c.Takeover()
	c.UploadForward("forwarded")
	c.Replicas(3)
	m.SetState(func() State {
		return State{
			RateLimits:   []RateLimit{{Upstream: "hub", Limit: 100, Remaining: 76, Window: 6 * time.Hour}},
			Storage:      []Storage{{Owner: "hub", Bytes: 1 << 20, Blobs: 3}, {Owner: "hosted", Bytes: 10, Blobs: 1}},
			CacheUsed:    1 << 20,
			CacheBudget:  10 << 30,
			IndexEntries: map[string]int64{"blob": 4, "manifest": 1},
		}
	})
}

func scrape(t testing.TB, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics = %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// A single box shows no cluster series.
func TestClusterSeriesOnlyWhenUsed(t *testing.T) {
	if out := scrape(t, New("1")); strings.Contains(out, "wharf_cluster_") {
		t.Error("cluster series without cluster mode")
	}
	m := New("1")
	if m.Cluster() != m.Cluster() {
		t.Error("Cluster registers twice")
	}
}

func TestNilMetricsIsSafe(t *testing.T) {
	var m *Metrics
	exercise(m) // must not panic
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
	if s := m.Summary(); len(s.Proxies) != 0 {
		t.Errorf("nil summary = %+v", s)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil handler = %d", rec.Code)
	}
}

func TestExposition(t *testing.T) {
	m := New("1.2.3")
	exercise(m)
	out := scrape(t, m)
	for _, want := range []string{
		`wharf_build_info{goversion="go`,
		`wharf_http_requests_total{code="2xx",method="GET",route="manifest"} 1`,
		`wharf_http_requests_total{code="4xx",method="other",route="blob"} 1`,
		`wharf_http_requests_total{code="other",method="GET",route="weird"} 1`,
		`wharf_http_request_duration_seconds_bucket{method="GET",route="manifest",le="0.005"} 1`,
		`wharf_served_bytes_total{source="hit"} 100`,
		`wharf_served_bytes_total{source="stale"} 0`,
		`wharf_cache_requests_total{kind="tag",proxy="hub",result="hit"} 1`,
		`wharf_cache_requests_total{kind="manifest",proxy="hub",result="stale"} 0`,
		`wharf_cache_coalesced_total{proxy="hub"} 1`,
		`wharf_cache_filled_bytes_total{proxy="hub"} 50`,
		`wharf_cache_evictions_total{proxy="hub"} 2`,
		`wharf_cache_evicted_bytes_total{proxy="hub"} 4096`,
		`wharf_gc_runs_total 1`,
		`wharf_gc_freed_bytes_total 1024`,
		`wharf_auth_attempts_total{method="ldap",result="failure"} 1`,
		`wharf_upstream_requests_total{code="error",endpoint="blob",method="GET",upstream="hub"} 1`,
		`wharf_upstream_request_duration_seconds_count{endpoint="manifest",upstream="hub"} 1`,
		`wharf_upstream_errors_total{class="timeout",endpoint="blob",upstream="hub"} 1`,
		`wharf_upstream_fetched_bytes_total{upstream="hub"} 60`,
		`wharf_upstream_pull_limit{upstream="hub"} 100`,
		`wharf_upstream_pulls_remaining{upstream="hub"} 76`,
		`wharf_upstream_pull_limit_window_seconds{upstream="hub"} 21600`,
		`wharf_storage_used_bytes{owner="hub"} 1.048576e+06`,
		`wharf_storage_blobs{owner="hosted"} 1`,
		`wharf_cache_used_bytes 1.048576e+06`,
		`wharf_cache_budget_bytes 1.073741824e+10`,
		`wharf_index_entries{type="manifest"} 1`,
		`wharf_uploads_in_progress 0`,
		`wharf_cluster_fill_streams_total{source="peer"} 1`,
		`wharf_cluster_fill_streams_total{source="upstream"} 0`,
		`wharf_cluster_peer_bytes_total 4096`,
		`wharf_cluster_fill_takeovers_total 1`,
		`wharf_cluster_upload_forwards_total{result="forwarded"} 1`,
		`wharf_cluster_upload_forwards_total{result="replica_gone"} 0`,
		`wharf_cluster_replicas 3`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	m.SetState(func() State { return State{CacheUsed: 5} })
	if out := scrape(t, m); strings.Contains(out, "wharf_cache_budget_bytes") || !strings.Contains(out, "wharf_cache_used_bytes 5") {
		t.Error("without a budget: wharf_cache_budget_bytes must be absent, wharf_cache_used_bytes present")
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestSummary(t *testing.T) {
	m := New("dev")
	exercise(m)
	m.CacheResult("hub", "tag", "stale")
	m.UploadStarted()
	s := m.Summary()
	if pc := s.Proxies["hub"]; pc != (ProxyCounts{Hits: 1, Misses: 1, Stale: 1, Coalesced: 1, FilledBytes: 50, Evictions: 2, EvictedBytes: 4096}) {
		t.Errorf("proxy counts = %+v", pc)
	}
	uc := s.Upstreams["hub"]
	if uc.Requests != 2 || uc.FetchedBytes != 60 || uc.Errors["timeout"] != 1 || len(uc.Errors) != 1 {
		t.Errorf("upstream counts = %+v", uc)
	}
	if s.Served["hit"] != 100 || s.Served["miss"] != 50 || s.UploadsInProgress != 1 {
		t.Errorf("served %v, uploads %d", s.Served, s.UploadsInProgress)
	}
}

// Two servers in one process each own their instruments.
func TestIndependentRegistries(t *testing.T) {
	a, b := New("a"), New("b")
	a.CacheResult("hub", "blob", "hit")
	if b.Summary().Proxies["hub"].Hits != 0 {
		t.Error("metrics leak between instances")
	}
}
