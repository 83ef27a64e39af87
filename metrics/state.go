package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// State is what a running server reports at scrape time: values that are
// read rather than counted.
type State struct {
	RateLimits []RateLimit
	Storage    []Storage
	// CacheUsed is what proxied content takes, the figure eviction holds
	// under CacheBudget (0: no budget).
	CacheUsed, CacheBudget int64
	// IndexEntries counts index records by type (blob, manifest, tag…).
	IndexEntries map[string]int64
}

// RateLimit is an upstream's last reported pull quota.
type RateLimit struct {
	Upstream  string
	Limit     int // -1 when not reported
	Remaining int // -1 when not reported
	Window    time.Duration
}

// Storage is the space used by one owner of blobs: a proxy, hosted or
// recovered.
type Storage struct {
	Owner string
	Bytes int64
	Blobs int64
}

// SetState installs the function read on every scrape (nil: none). It
// must be cheap: a scrape waits for it.
func (m *Metrics) SetState(f func() State) {
	if m == nil {
		return
	}
	if f == nil {
		m.state.f.Store(nil)
		return
	}
	m.state.f.Store(&f)
}

type stateCollector struct {
	f atomic.Pointer[func() State]

	limit, remaining, window *prometheus.Desc
	used, blobs              *prometheus.Desc
	cacheUsed, cacheBudget   *prometheus.Desc
	entries                  *prometheus.Desc
}

func newStateCollector() *stateCollector {
	return &stateCollector{
		limit: prometheus.NewDesc("wharf_upstream_pull_limit",
			"Pulls the upstream allows per window, as it last reported (Docker Hub's ratelimit-limit).", []string{"upstream"}, nil),
		remaining: prometheus.NewDesc("wharf_upstream_pulls_remaining",
			"Pulls left in the upstream's window, as it last reported (Docker Hub's ratelimit-remaining).", []string{"upstream"}, nil),
		window: prometheus.NewDesc("wharf_upstream_pull_limit_window_seconds",
			"Length of the upstream's rate-limit window.", []string{"upstream"}, nil),
		used: prometheus.NewDesc("wharf_storage_used_bytes",
			"Bytes of blobs stored, by owner (a proxy's name, hosted, or recovered).", []string{"owner"}, nil),
		blobs: prometheus.NewDesc("wharf_storage_blobs",
			"Blobs stored, by owner (a proxy's name, hosted, or recovered).", []string{"owner"}, nil),
		cacheUsed: prometheus.NewDesc("wharf_cache_used_bytes",
			"Bytes of proxied content stored: what eviction keeps within the budget.", nil, nil),
		cacheBudget: prometheus.NewDesc("wharf_cache_budget_bytes",
			"The cache budget for proxied content (cache.max_size); absent when none is set.", nil, nil),
		entries: prometheus.NewDesc("wharf_index_entries",
			"Records in the index, by type.", []string{"type"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.limit, c.remaining, c.window, c.used, c.blobs, c.cacheUsed, c.cacheBudget, c.entries} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.f.Load()
	if f == nil {
		return
	}
	st := (*f)()
	gauge := func(d *prometheus.Desc, v float64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, label)
	}
	for _, rl := range st.RateLimits {
		if rl.Limit >= 0 {
			gauge(c.limit, float64(rl.Limit), rl.Upstream)
		}
		if rl.Remaining >= 0 {
			gauge(c.remaining, float64(rl.Remaining), rl.Upstream)
		}
		if rl.Window > 0 {
			gauge(c.window, rl.Window.Seconds(), rl.Upstream)
		}
	}
	for _, s := range st.Storage {
		gauge(c.used, float64(s.Bytes), s.Owner)
		gauge(c.blobs, float64(s.Blobs), s.Owner)
	}
	ch <- prometheus.MustNewConstMetric(c.cacheUsed, prometheus.GaugeValue, float64(st.CacheUsed))
	if st.CacheBudget > 0 {
		ch <- prometheus.MustNewConstMetric(c.cacheBudget, prometheus.GaugeValue, float64(st.CacheBudget))
	}
	for typ, n := range st.IndexEntries {
		gauge(c.entries, float64(n), typ)
	}
}
