// Package metrics owns wharf's Prometheus instruments. A Metrics value has
// its own registry (never Prometheus' global one) so several servers can
// run in one process; every method is safe on a nil *Metrics, which is how
// callers run without metrics.
//
// Names follow Prometheus conventions: a wharf_ prefix, base units in the
// name (_bytes, _seconds), _total on counters, and only low-cardinality
// labels — a proxy, upstream or storage owner from the config, a route
// kind, a status class. Never a repository name or a digest.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	served   *prometheus.CounterVec
	uploads  prometheus.Gauge
	cache    *prometheus.CounterVec
	joined   *prometheus.CounterVec
	filled   *prometheus.CounterVec
	evicted  *prometheus.CounterVec
	evictedB *prometheus.CounterVec
	gcRuns   prometheus.Counter
	gcFreed  prometheus.Counter
	auth     *prometheus.CounterVec
	up       upstreamVecs
	state    *stateCollector
	cluster  clusterOnce

	// Series found once, then reused on the request path.
	reqTable requestTable
	proxies  proxyTable
	servedBy [4]prometheus.Counter // by sources
}

// Sources of served bytes, as ServedBytes takes them.
var sources = []string{"hit", "miss", "stale", "hosted"}

// New registers wharf's instruments on a fresh registry.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_http_requests_total",
			Help: "HTTP requests to the registry API answered, by route kind, method and status class.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wharf_http_request_duration_seconds",
			Help:    "Time to answer registry API requests, by route kind and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_served_bytes_total",
			Help: "Bytes of blobs and manifests sent to clients, by source: hit (from the cache), miss (fetched upstream for this request), stale (cached copy served because the upstream failed), hosted.",
		}, []string{"source"}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wharf_uploads_in_progress",
			Help: "Blob upload requests currently receiving data.",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_requests_total",
			Help: "Proxy requests by proxy, kind (blob, manifest by digest, tag) and result (hit, miss, stale).",
		}, []string{"proxy", "kind", "result"}),
		joined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_coalesced_total",
			Help: "Clients that joined an upstream fetch already under way instead of starting one.",
		}, []string{"proxy"}),
		filled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_filled_bytes_total",
			Help: "Blob bytes fetched from the upstream, verified and committed to the cache.",
		}, []string{"proxy"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_evictions_total",
			Help: "Cached blobs evicted to stay within a storage budget, by proxy.",
		}, []string{"proxy"}),
		evictedB: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_evicted_bytes_total",
			Help: "Bytes of cached blobs evicted to stay within a storage budget, by proxy.",
		}, []string{"proxy"}),
		gcRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_runs_total",
			Help: "Garbage collections of unreferenced hosted blobs.",
		}),
		gcFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_freed_bytes_total",
			Help: "Bytes freed by garbage collection.",
		}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_auth_attempts_total",
			Help: "Client authentication attempts by method and result (success, failure).",
		}, []string{"method", "result"}),
		up:    newUpstreamVecs(),
		state: newStateCollector(),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wharf_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	for i, s := range sources {
		m.servedBy[i] = m.served.WithLabelValues(s)
	}
	reg.MustRegister(m.requests, m.duration, m.served, m.uploads, m.cache, m.joined, m.filled,
		m.evicted, m.evictedB, m.gcRuns, m.gcFreed, m.auth, buildInfo, m.state,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.up.register(reg)
	return m
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry exposes the registry for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// ObserveRequest records one answered request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	s := m.requestSeries(route, method, status)
	s.count.Inc()
	s.duration.Observe(d.Seconds())
}

// ServedBytes counts bytes sent from a source (hosted, hit, miss, stale).
func (m *Metrics) ServedBytes(source string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	if i := indexOf(sources, source); i >= 0 {
		m.servedBy[i].Add(float64(n))
		return
	}
	m.served.WithLabelValues(source).Add(float64(n))
}

// UploadStarted and UploadDone track uploads receiving data.
func (m *Metrics) UploadStarted() {
	if m != nil {
		m.uploads.Inc()
	}
}

// UploadDone is the pair of UploadStarted.
func (m *Metrics) UploadDone() {
	if m != nil {
		m.uploads.Dec()
	}
}

// statusClass is a status's label: 2xx, 4xx… or other.
func statusClass(s int) string { return classes[classIndex(s)] }

// methodLabel keeps the method label bounded: a client can send any token
// as a method.
func methodLabel(m string) string {
	if indexOf(methods, m) < 0 {
		return "other"
	}
	return m
}

// AuthResult counts one client authentication attempt by method (basic,
// bearer, ldap…).
func (m *Metrics) AuthResult(method string, ok bool) {
	if m == nil {
		return
	}
	result := "failure"
	if ok {
		result = "success"
	}
	m.auth.WithLabelValues(method, result).Inc()
}
