package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type upstreamVecs struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	fetched  *prometheus.CounterVec
}

func newUpstreamVecs() upstreamVecs {
	return upstreamVecs{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_upstream_requests_total",
			Help: "HTTP requests sent to upstream registries and their token services, by upstream, endpoint (manifest, blob, tags, ping, token), method and status class (error: no response).",
		}, []string{"upstream", "endpoint", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wharf_upstream_request_duration_seconds",
			Help:    "Time from sending a request to an upstream until its response headers arrived (or it failed), by upstream and endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"upstream", "endpoint"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_upstream_errors_total",
			Help: "Upstream calls that failed after retries, and blob streams that broke, by upstream, endpoint and class (not_found, unauthorized, denied, too_many_requests, unavailable, timeout, bad_response, invalid_request).",
		}, []string{"upstream", "endpoint", "class"}),
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_upstream_fetched_bytes_total",
			Help: "Response body bytes received from upstream registries (blobs, manifests, tag lists, tokens).",
		}, []string{"upstream"}),
	}
}

func (v upstreamVecs) register(reg *prometheus.Registry) {
	reg.MustRegister(v.requests, v.duration, v.errors, v.fetched)
}

// Upstream is the instruments of one upstream registry, its name bound.
// A nil *Upstream records nothing.
type Upstream struct {
	requests *prometheus.CounterVec
	duration prometheus.ObserverVec
	errors   *prometheus.CounterVec
	fetched  prometheus.Counter
}

// Upstream returns the instruments for the named upstream (nil when m is).
func (m *Metrics) Upstream(name string) *Upstream {
	if m == nil {
		return nil
	}
	l := prometheus.Labels{"upstream": name}
	return &Upstream{
		requests: m.up.requests.MustCurryWith(l),
		duration: m.up.duration.MustCurryWith(l),
		errors:   m.up.errors.MustCurryWith(l),
		fetched:  m.up.fetched.With(l),
	}
}

// Request records one HTTP exchange: status 0 means no response came.
func (u *Upstream) Request(endpoint, method string, status int, d time.Duration) {
	if u == nil {
		return
	}
	code := "error"
	if status > 0 {
		code = statusClass(status)
	}
	u.requests.WithLabelValues(endpoint, methodLabel(method), code).Inc()
	u.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Error records a failed call of the given class.
func (u *Upstream) Error(endpoint, class string) {
	if u != nil {
		u.errors.WithLabelValues(endpoint, class).Inc()
	}
}

// Fetched counts n body bytes received.
func (u *Upstream) Fetched(n int64) {
	if u != nil && n > 0 {
		u.fetched.Add(float64(n))
	}
}
