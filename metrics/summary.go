package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Summary is the counters a person asks about (`wharf status`), read from
// the instruments rather than kept twice.
type Summary struct {
	// Proxies are cache figures by proxy name.
	Proxies map[string]ProxyCounts
	// Upstreams are traffic figures by upstream name.
	Upstreams map[string]UpstreamCounts
	// Served is bytes sent to clients by source (hit, miss, stale, hosted).
	Served            map[string]int64
	UploadsInProgress int64
}

// ProxyCounts sums one proxy's cache answers over blob, manifest and tag.
type ProxyCounts struct {
	Hits, Misses, Stale int64
	Coalesced           int64
	FilledBytes         int64
	Evictions           int64
	EvictedBytes        int64
}

// UpstreamCounts is one upstream's traffic.
type UpstreamCounts struct {
	Requests     int64
	Errors       map[string]int64 // by class
	FetchedBytes int64
}

// Summary reads the current values (zero when m is nil).
func (m *Metrics) Summary() Summary {
	s := Summary{Proxies: map[string]ProxyCounts{}, Upstreams: map[string]UpstreamCounts{}, Served: map[string]int64{}}
	if m == nil {
		return s
	}
	each(m.cache, func(l map[string]string, v float64) {
		pc := s.Proxies[l["proxy"]]
		switch l["result"] {
		case "hit":
			pc.Hits += int64(v)
		case "miss":
			pc.Misses += int64(v)
		case "stale":
			pc.Stale += int64(v)
		}
		s.Proxies[l["proxy"]] = pc
	})
	proxyAdd := func(c prometheus.Collector, f func(*ProxyCounts, int64)) {
		each(c, func(l map[string]string, v float64) {
			pc := s.Proxies[l["proxy"]]
			f(&pc, int64(v))
			s.Proxies[l["proxy"]] = pc
		})
	}
	proxyAdd(m.joined, func(pc *ProxyCounts, v int64) { pc.Coalesced += v })
	proxyAdd(m.filled, func(pc *ProxyCounts, v int64) { pc.FilledBytes += v })
	proxyAdd(m.evicted, func(pc *ProxyCounts, v int64) { pc.Evictions += v })
	proxyAdd(m.evictedB, func(pc *ProxyCounts, v int64) { pc.EvictedBytes += v })

	upAdd := func(c prometheus.Collector, f func(*UpstreamCounts, map[string]string, int64)) {
		each(c, func(l map[string]string, v float64) {
			uc := s.Upstreams[l["upstream"]]
			f(&uc, l, int64(v))
			s.Upstreams[l["upstream"]] = uc
		})
	}
	upAdd(m.up.requests, func(uc *UpstreamCounts, _ map[string]string, v int64) { uc.Requests += v })
	upAdd(m.up.fetched, func(uc *UpstreamCounts, _ map[string]string, v int64) { uc.FetchedBytes += v })
	upAdd(m.up.errors, func(uc *UpstreamCounts, l map[string]string, v int64) {
		if uc.Errors == nil {
			uc.Errors = map[string]int64{}
		}
		uc.Errors[l["class"]] += v
	})
	each(m.served, func(l map[string]string, v float64) { s.Served[l["source"]] += int64(v) })
	each(m.uploads, func(_ map[string]string, v float64) { s.UploadsInProgress = int64(v) })
	return s
}

// each visits every counter or gauge series of c with its labels.
func each(c prometheus.Collector, f func(labels map[string]string, v float64)) {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) != nil {
			continue
		}
		l := make(map[string]string, len(d.Label))
		for _, lp := range d.Label {
			l[lp.GetName()] = lp.GetValue()
		}
		switch {
		case d.Counter != nil:
			f(l, d.Counter.GetValue())
		case d.Gauge != nil:
			f(l, d.Gauge.GetValue())
		}
	}
}
