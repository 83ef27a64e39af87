package metrics

// Cache results and kinds, as CacheResult takes them.
var (
	cacheKinds   = []string{"blob", "manifest", "tag"}
	cacheResults = []string{"hit", "miss", "stale"}
)

// InitProxy creates a proxy's series at zero, so dashboards and rate()
// see them before the first request rather than a gap.
func (m *Metrics) InitProxy(proxy string) {
	if m == nil {
		return
	}
	m.proxySeries(proxy)
	m.joined.WithLabelValues(proxy)
	m.filled.WithLabelValues(proxy)
	m.evicted.WithLabelValues(proxy)
	m.evictedB.WithLabelValues(proxy)
}

// CacheResult counts a proxy answer: kind is blob, manifest (by digest) or
// tag (a manifest by tag); result is hit, miss or stale.
func (m *Metrics) CacheResult(proxy, kind, result string) {
	if m == nil {
		return
	}
	k, r := indexOf(cacheKinds, kind), indexOf(cacheResults, result)
	if k < 0 || r < 0 {
		m.cache.WithLabelValues(proxy, kind, result).Inc()
		return
	}
	m.proxySeries(proxy)[k][r].Inc()
}

// CoalescedFetch counts a client that joined a fetch already running.
func (m *Metrics) CoalescedFetch(proxy string) {
	if m != nil {
		m.joined.WithLabelValues(proxy).Inc()
	}
}

// CacheFilled counts blob bytes fetched from an upstream, verified and
// committed to the cache.
func (m *Metrics) CacheFilled(proxy string, n int64) {
	if m != nil && n > 0 {
		m.filled.WithLabelValues(proxy).Add(float64(n))
	}
}

// Evicted counts n blobs of bytes total removed from proxy's cache to stay
// within its budget.
func (m *Metrics) Evicted(proxy string, n int, bytes int64) {
	if m == nil || n <= 0 {
		return
	}
	m.evicted.WithLabelValues(proxy).Add(float64(n))
	if bytes > 0 {
		m.evictedB.WithLabelValues(proxy).Add(float64(bytes))
	}
}

// GCRun counts one garbage collection that freed the given bytes.
func (m *Metrics) GCRun(freed int64) {
	if m == nil {
		return
	}
	m.gcRuns.Inc()
	if freed > 0 {
		m.gcFreed.Add(float64(freed))
	}
}
