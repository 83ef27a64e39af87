package server

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
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
	// Storage is the blobs stored by owner, from the index's counters.
	Storage []StorageReport `json:"storage"`
	// Budget is the cache budget (cache.max_size) against what proxied
	// content takes.
	Budget BudgetReport `json:"budget"`
	// IndexEntries counts the index's records by type; IndexAsOf is when
	// they were counted (at most every 15 s).
	IndexEntries map[string]int64 `json:"index_entries,omitempty"`
	IndexAsOf    *time.Time       `json:"index_as_of,omitempty"`
	// Replicas, in cluster mode, are the replicas whose heartbeat the
	// database saw in the last 30 s, this one included.
	Replicas []ReplicaReport `json:"replicas,omitempty"`
}

// BudgetReport is proxied content against cache.max_size (MaxBytes 0:
// no budget; eviction then only follows max_unused).
type BudgetReport struct {
	MaxBytes      int64   `json:"max_bytes"`
	UsedBytes     int64   `json:"used_bytes"`
	HighWatermark float64 `json:"high_watermark,omitempty"`
	LowWatermark  float64 `json:"low_watermark,omitempty"`
	// Evictions and EvictedBytes count every eviction since start.
	Evictions    int64 `json:"evictions"`
	EvictedBytes int64 `json:"evicted_bytes"`
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

// StorageReport is the space one owner's blobs take: a proxy, hosted, or
// recovered (files found on disk without a record). Proxied content counts
// against the budget.
type StorageReport struct {
	Owner   string `json:"owner"`
	Proxied bool   `json:"proxied"`
	Bytes   int64  `json:"bytes"`
	Blobs   int64  `json:"blobs"`
}

// Report builds the summary. It may wait up to a second for a fresh
// count of the index.
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
		Replicas: s.replicaReports(),
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
	var err error
	if r.Storage, err = s.storage(); err != nil {
		s.log.Warn("reading storage use from the index failed", "err", err)
	}
	r.Budget = s.budget(r.Storage)
	for _, pc := range sum.Proxies {
		r.Budget.Evictions += pc.Evictions
		r.Budget.EvictedBytes += pc.EvictedBytes
	}
	if u := s.countsIfRunning(reportRefresh); u != nil && u.err == nil {
		r.IndexEntries, r.IndexAsOf = u.entries, &u.at
	}
	return r
}

// storage reads each owner's usage from the index's counters: the
// configured proxies and hosted first, then any other owner holding blobs
// (recovered files, a proxy since removed from the config).
func (s *Server) storage() ([]StorageReport, error) {
	s.mu.Lock()
	idx, running := s.idx, s.state == StateRunning
	s.mu.Unlock()
	var all map[string]index.Usage
	if running && idx != nil {
		if err := idx.View(func(tx index.Txn) error {
			var err error
			all, err = tx.Usages()
			return err
		}); err != nil {
			return nil, err
		}
	}
	owners := make([]string, 0, len(s.cfg.Proxies)+1)
	for _, p := range s.cfg.Proxies {
		owners = append(owners, p.Name)
	}
	owners = append(owners, index.OriginHosted)
	for _, o := range slices.Sorted(maps.Keys(all)) {
		if !slices.Contains(owners, o) && all[o].Count > 0 {
			owners = append(owners, o)
		}
	}
	out := make([]StorageReport, 0, len(owners))
	for _, o := range owners {
		u := all[o]
		out = append(out, StorageReport{Owner: o, Proxied: (index.BlobRecord{Origin: o}).Evictable(), Bytes: u.Bytes, Blobs: u.Count})
	}
	return out, nil
}

// budget is the configured budget against the proxied owners' use.
func (s *Server) budget(storage []StorageReport) BudgetReport {
	b := BudgetReport{MaxBytes: int64(s.cfg.Cache.MaxSize)}
	s.mu.Lock()
	life := s.life
	s.mu.Unlock()
	if life != nil {
		lb := life.Budget()
		b.MaxBytes, b.HighWatermark, b.LowWatermark = lb.MaxSize, lb.High, lb.Low
	}
	for _, sr := range storage {
		if sr.Proxied {
			b.UsedBytes += sr.Bytes
		}
	}
	return b
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

// countsIfRunning returns index counts no older than maxAge (or the
// last ones, when a count takes longer than a second), or nil while the
// server is not running (no count can be asked for then).
func (s *Server) countsIfRunning(maxAge time.Duration) *indexCounts {
	s.mu.Lock()
	running := s.state == StateRunning
	s.mu.Unlock()
	if !running {
		return nil
	}
	u := s.counts.get(maxAge)
	if u != nil && u.err != nil {
		s.log.Warn("counting index entries failed", "err", u.err)
	}
	return u
}

// metricsState is read on every scrape: rate limits, storage, budget,
// index size.
func (s *Server) metricsState() metrics.State {
	var st metrics.State
	for _, ps := range s.Status().Proxies {
		if rl := ps.RateLimit; rl != nil {
			st.RateLimits = append(st.RateLimits, metrics.RateLimit{Upstream: ps.Name, Limit: rl.Limit, Remaining: rl.Remaining, Window: rl.Window})
		}
	}
	storage, err := s.storage()
	if err != nil {
		s.log.Warn("reading storage use from the index failed", "err", err)
	}
	for _, sr := range storage {
		st.Storage = append(st.Storage, metrics.Storage{Owner: sr.Owner, Bytes: sr.Bytes, Blobs: sr.Blobs})
	}
	b := s.budget(storage)
	st.CacheUsed, st.CacheBudget = b.UsedBytes, b.MaxBytes
	if u := s.countsIfRunning(DefaultIndexCountMaxAge); u != nil && u.err == nil {
		st.IndexEntries = u.entries
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
