package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/wharf-registry/wharf/metrics"
)

// Report is what `wharf status` shows and GET /-/status serves as JSON:
// the lifecycle Status plus what the metrics and the index say about how
// much the cache saves and whether the upstreams are healthy.
type Report struct {
	Version       string    `json:"version"`
	State         State     `json:"state"`
	Addr          string    `json:"addr"`
	MetricsAddr   string    `json:"metrics_addr,omitempty"`
	Started       time.Time `json:"started"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Error         string    `json:"error,omitempty"`

	// Cache sums every proxy's answers.
	Cache CacheReport `json:"cache"`
	// ServedBytes is bytes sent to clients by source: hit and stale came
	// from the cache, miss from an upstream while it was cached, hosted
	// from pushes.
	ServedBytes       map[string]int64 `json:"served_bytes"`
	UploadsInProgress int64            `json:"uploads_in_progress"`
	Proxies           []ProxyReport    `json:"proxies"`
	Storage           []StorageReport  `json:"storage"`
	// StorageAsOf is when the storage figures were computed (they are
	// refreshed at most every 15 s).
	StorageAsOf *time.Time `json:"storage_as_of,omitempty"`
}

// CacheReport counts proxy answers. HitRatio is the share answered from
// the cache (hits and stale serves), nil before the first answer.
type CacheReport struct {
	Hits      int64    `json:"hits"`
	Misses    int64    `json:"misses"`
	Stale     int64    `json:"stale"`
	Coalesced int64    `json:"coalesced"`
	HitRatio  *float64 `json:"hit_ratio"`
}

// ProxyReport is one proxy and its upstream.
type ProxyReport struct {
	Name     string      `json:"name"`
	Upstream string      `json:"upstream"`
	Default  bool        `json:"default,omitempty"`
	Cache    CacheReport `json:"cache"`
	// FetchedBytes is every body byte received from the upstream;
	// FilledBytes the blob bytes verified and kept.
	FetchedBytes     int64            `json:"fetched_bytes"`
	FilledBytes      int64            `json:"filled_bytes"`
	Evictions        int64            `json:"evictions"`
	EvictedBytes     int64            `json:"evicted_bytes"`
	UpstreamRequests int64            `json:"upstream_requests"`
	UpstreamErrors   map[string]int64 `json:"upstream_errors,omitempty"`
	// Health is unknown (no traffic yet), ok, failing or rate-limited,
	// judged by the upstream's latest answer.
	Health      string           `json:"health"`
	LastSuccess *time.Time       `json:"last_success,omitempty"`
	LastFailure *time.Time       `json:"last_failure,omitempty"`
	LastError   string           `json:"last_error,omitempty"`
	RateLimit   *RateLimitReport `json:"rate_limit,omitempty"`
}

// RateLimitReport is the pull quota the upstream last reported; -1 for a
// figure it did not send.
type RateLimitReport struct {
	Limit         int       `json:"limit"`
	Remaining     int       `json:"remaining"`
	WindowSeconds float64   `json:"window_seconds,omitempty"`
	Source        string    `json:"source,omitempty"`
	Seen          time.Time `json:"seen"`
}

// StorageReport is the space one owner's blobs take: a proxy, or hosted.
type StorageReport struct {
	Owner  string `json:"owner"`
	Bytes  int64  `json:"bytes"`
	Blobs  int64  `json:"blobs"`
	Budget int64  `json:"budget_bytes,omitempty"` // 0: none configured
}

// Report builds the summary. It may wait up to a second for fresh
// storage figures.
func (s *Server) Report() Report {
	st := s.Status()
	sum := s.metrics.Summary()
	s.mu.Lock()
	watches := s.watches
	s.mu.Unlock()
	r := Report{
		Version: st.Version, State: st.State, Addr: st.Addr, MetricsAddr: s.MetricsAddr(),
		Started: st.Started, UptimeSeconds: st.Uptime.Seconds(), Error: st.Err,
		ServedBytes: sum.Served, UploadsInProgress: sum.UploadsInProgress,
	}
	for i, ps := range st.Proxies {
		pc := sum.Proxies[ps.Name]
		uc := sum.Upstreams[ps.Name]
		pr := ProxyReport{
			Name: ps.Name, Upstream: ps.Upstream, Default: ps.Default,
			Cache:        cacheReport(pc.Hits, pc.Misses, pc.Stale, pc.Coalesced),
			FetchedBytes: uc.FetchedBytes, FilledBytes: pc.FilledBytes,
			Evictions: pc.Evictions, EvictedBytes: pc.EvictedBytes,
			UpstreamRequests: uc.Requests, UpstreamErrors: uc.Errors,
			Health: HealthUnknown,
		}
		if i < len(watches) {
			var ok, fail time.Time
			pr.Health, ok, fail, pr.LastError = watches[i].health()
			pr.LastSuccess, pr.LastFailure = timePtr(ok), timePtr(fail)
		}
		if rl := ps.RateLimit; rl != nil {
			pr.RateLimit = &RateLimitReport{Limit: rl.Limit, Remaining: rl.Remaining, WindowSeconds: rl.Window.Seconds(), Source: rl.Source, Seen: rl.Seen}
		}
		r.Cache.Hits += pc.Hits
		r.Cache.Misses += pc.Misses
		r.Cache.Stale += pc.Stale
		r.Cache.Coalesced += pc.Coalesced
		r.Proxies = append(r.Proxies, pr)
	}
	r.Cache = cacheReport(r.Cache.Hits, r.Cache.Misses, r.Cache.Stale, r.Cache.Coalesced)
	u := s.usageIfRunning()
	r.Storage = s.storageReport(u)
	if u != nil {
		r.StorageAsOf = &u.at
	}
	return r
}

func cacheReport(hits, misses, stale, coalesced int64) CacheReport {
	c := CacheReport{Hits: hits, Misses: misses, Stale: stale, Coalesced: coalesced}
	if n := hits + misses + stale; n > 0 {
		ratio := float64(hits+stale) / float64(n)
		c.HitRatio = &ratio
	}
	return c
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// usageIfRunning returns the storage figures, or nil while the server is
// not running (no scan can be asked for then).
func (s *Server) usageIfRunning() *usage {
	s.mu.Lock()
	running := s.state == StateRunning
	s.mu.Unlock()
	if !running {
		return nil
	}
	return s.usage.get()
}

// storageReport lists every proxy and hosted, with zeros when nothing is
// stored (or the figures are not in yet).
func (s *Server) storageReport(u *usage) []StorageReport {
	if u != nil && u.err != nil {
		s.log.Warn("reading storage figures from the index failed", "err", u.err)
	}
	names := make([]string, 0, len(s.cfg.Proxies))
	for _, p := range s.cfg.Proxies {
		names = append(names, p.Name)
	}
	var out []StorageReport
	for _, o := range u.owners(names) {
		sr := StorageReport{Owner: o}
		if u != nil {
			sr.Bytes, sr.Blobs = u.bytes[o], u.blobs[o]
		}
		out = append(out, sr)
	}
	return out
}

// metricsState is read on every scrape: rate limits, storage, index size.
func (s *Server) metricsState() metrics.State {
	var st metrics.State
	for _, ps := range s.Status().Proxies {
		if rl := ps.RateLimit; rl != nil {
			st.RateLimits = append(st.RateLimits, metrics.RateLimit{Upstream: ps.Name, Limit: rl.Limit, Remaining: rl.Remaining, Window: rl.Window})
		}
	}
	u := s.usageIfRunning()
	for _, sr := range s.storageReport(u) {
		st.Storage = append(st.Storage, metrics.Storage{Owner: sr.Owner, Bytes: sr.Bytes, Blobs: sr.Blobs, Budget: sr.Budget})
	}
	if u != nil && u.err == nil {
		var blobs int64
		for _, n := range u.blobs {
			blobs += n
		}
		st.IndexEntries = map[string]int64{"blob": blobs, "manifest": u.manifests}
	}
	return st
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(s.Report())
}
