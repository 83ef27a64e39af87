package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The request path finds its series by small array indexes rather than by
// hashing label values and taking a vector's lock on every call: that
// lookup was most of what metrics cost on a warm pull. Label values
// outside these lists still work, through the vector.
var (
	routeKinds = []string{"unknown", "base", "catalog", "tags", "manifest", "blob", "upload", "referrers"}
	methods    = []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "other"}
	classes    = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
)

func indexOf(list []string, v string) int {
	for i, s := range list {
		if s == v {
			return i
		}
	}
	return -1
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// requestTable holds the request series by route, method and class,
// created on first use so the exposition lists only those seen.
type requestTable [8][8][6]atomic.Pointer[requestSeries]

// requestSeries finds the series of a request; method and status are
// mapped to their bounded labels here.
func (m *Metrics) requestSeries(route, method string, status int) *requestSeries {
	me := indexOf(methods, method)
	if me < 0 {
		me = len(methods) - 1 // other
	}
	c := classIndex(status)
	r := indexOf(routeKinds, route)
	if r < 0 {
		return &requestSeries{m.requests.WithLabelValues(route, methods[me], classes[c]), m.duration.WithLabelValues(route, methods[me])}
	}
	slot := &m.reqTable[r][me][c]
	if s := slot.Load(); s != nil {
		return s
	}
	s := &requestSeries{m.requests.WithLabelValues(route, methods[me], classes[c]), m.duration.WithLabelValues(route, methods[me])}
	slot.CompareAndSwap(nil, s)
	return slot.Load()
}

// classIndex is the index in classes of a status's class (1xx…5xx, other).
func classIndex(status int) int {
	if c := status / 100; c >= 1 && c <= 5 {
		return c - 1
	}
	return len(classes) - 1
}

// proxySeries is one proxy's cache counters by kind and result.
type proxySeries [3][3]prometheus.Counter

// proxyTable maps proxy names to their series: read without a lock,
// copied on the rare write (a proxy seen for the first time).
type proxyTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*proxySeries]
}

func (m *Metrics) proxySeries(proxy string) *proxySeries {
	if t := m.proxies.m.Load(); t != nil {
		if s, ok := (*t)[proxy]; ok {
			return s
		}
	}
	m.proxies.mu.Lock()
	defer m.proxies.mu.Unlock()
	old := map[string]*proxySeries{}
	if t := m.proxies.m.Load(); t != nil {
		if s, ok := (*t)[proxy]; ok {
			return s
		}
		old = *t
	}
	s := &proxySeries{}
	for k, kind := range cacheKinds {
		for r, result := range cacheResults {
			s[k][r] = m.cache.WithLabelValues(proxy, kind, result)
		}
	}
	next := make(map[string]*proxySeries, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[proxy] = s
	m.proxies.m.Store(&next)
	return s
}
