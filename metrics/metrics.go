// Package metrics owns wharf's Prometheus instruments. A Metrics value has
// its own registry (never Prometheus' global one) so several servers can
// run in one process; every method is safe on a nil *Metrics.
package metrics

import (
	"net/http"
	"strconv"
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
	upBytes  *prometheus.CounterVec
}

// New registers wharf's instruments on a fresh registry.
func New(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_http_requests_total",
			Help: "HTTP requests answered, by route kind, method and status class.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wharf_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route kind and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_served_bytes_total",
			Help: "Bytes of blobs and manifests sent to clients, by source.",
		}, []string{"source"}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wharf_uploads_in_progress",
			Help: "Blob upload requests currently receiving data.",
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_requests_total",
			Help: "Proxy requests by proxy, kind (blob, manifest, tag) and result (hit, miss, stale).",
		}, []string{"proxy", "kind", "result"}),
		joined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_coalesced_total",
			Help: "Clients that joined an upstream fetch already under way instead of starting one.",
		}, []string{"proxy"}),
		upBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_upstream_fetched_bytes_total",
			Help: "Blob bytes fetched from upstream registries and cached.",
		}, []string{"proxy"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wharf_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version"})
	buildInfo.WithLabelValues(version).Set(1)
	reg.MustRegister(m.requests, m.duration, m.served, m.uploads, m.cache, m.joined, m.upBytes, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	m.requests.WithLabelValues(route, method, statusClass(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// ServedBytes counts bytes sent from a source (hosted, hit, miss, stale).
func (m *Metrics) ServedBytes(source string, n int64) {
	if m == nil || n <= 0 {
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

func statusClass(s int) string {
	if s < 100 || s > 599 {
		return "other"
	}
	return strconv.Itoa(s/100) + "xx"
}

// CacheResult counts a proxy answer: kind is blob, manifest or tag; result
// is hit, miss or stale.
func (m *Metrics) CacheResult(proxy, kind, result string) {
	if m != nil {
		m.cache.WithLabelValues(proxy, kind, result).Inc()
	}
}

// CoalescedFetch counts a client that joined a fetch already running.
func (m *Metrics) CoalescedFetch(proxy string) {
	if m != nil {
		m.joined.WithLabelValues(proxy).Inc()
	}
}

// UpstreamBytes counts blob bytes fetched and cached from an upstream.
func (m *Metrics) UpstreamBytes(proxy string, n int64) {
	if m != nil && n > 0 {
		m.upBytes.WithLabelValues(proxy).Add(float64(n))
	}
}
