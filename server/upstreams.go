package server

import (
	"strings"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/upstream"
)

// upstreamWatch is an upstream.Observer: it feeds one upstream client's
// traffic into the server's metrics and remembers its latest success and
// failure, which is what `wharf status` calls the upstream's health.
type upstreamWatch struct {
	m *metrics.Upstream

	mu       sync.Mutex
	lastOK   time.Time
	lastFail time.Time
	lastErr  string // the class of the last failure
}

func newUpstreamWatch(m *metrics.Metrics, name string) *upstreamWatch {
	return &upstreamWatch{m: m.Upstream(name)}
}

func (w *upstreamWatch) Exchange(endpoint, method string, status int, d time.Duration) {
	w.m.Request(endpoint, method, status, d)
	// Any answer but a 5xx or 429 shows the upstream up: a 404 is a
	// normal answer. Failures are recorded by Failed, with their class.
	if status > 0 && status < 500 && status != 429 {
		w.mu.Lock()
		w.lastOK = time.Now()
		w.mu.Unlock()
	}
}

func (w *upstreamWatch) Failed(endpoint string, k upstream.Kind) {
	class := kindLabel(k)
	w.m.Error(endpoint, class)
	switch k {
	case upstream.NotFound, upstream.Denied, upstream.Invalid:
		return // answers about content, not about the upstream's health
	}
	w.mu.Lock()
	w.lastFail, w.lastErr = time.Now(), class
	w.mu.Unlock()
}

func (w *upstreamWatch) Received(n int64) { w.m.Fetched(n) }

// Health of an upstream, as `wharf status` shows it.
const (
	HealthUnknown     = "unknown" // no traffic yet
	HealthOK          = "ok"
	HealthFailing     = "failing"
	HealthRateLimited = "rate-limited"
)

// health is the upstream's state judged by its latest answer.
func (w *upstreamWatch) health() (state string, lastOK, lastFail time.Time, lastErr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.lastOK.IsZero() && w.lastFail.IsZero():
		state = HealthUnknown
	case !w.lastFail.After(w.lastOK):
		state = HealthOK
	case w.lastErr == kindLabel(upstream.TooManyRequests):
		state = HealthRateLimited
	default:
		state = HealthFailing
	}
	return state, w.lastOK, w.lastFail, w.lastErr
}

// kindLabel is an upstream.Kind as a metric label: "too many requests"
// becomes too_many_requests.
func kindLabel(k upstream.Kind) string { return strings.ReplaceAll(k.String(), " ", "_") }
