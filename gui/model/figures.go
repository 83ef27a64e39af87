package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/server"
)

// Figures are the dashboard's numbers, from one server.Report.
type Figures struct {
	// HitRatio is the share of proxied answers served from the cache.
	HitRatio string
	// Answers counts them: "3 hits · 1 miss · 0 stale".
	Answers string
	// FromCache is bytes sent to clients from the cache (hits and stale
	// serves): what the upstreams were spared.
	FromCache string
	// Upstream is bytes fetched from the upstreams.
	Upstream string
	// Hosted is bytes served from pushed repositories.
	Hosted string
	// Storage is proxied content against the cache budget.
	Storage string
	// StorageFill is Storage as a share of the budget for a bar, 0 with
	// no budget.
	StorageFill float64
	// RateLimit is the pull quota the upstreams last reported.
	RateLimit string
	// Uptime is how long the server has run.
	Uptime string
}

// FiguresOf computes the dashboard's numbers from a report.
func FiguresOf(r server.Report) Figures {
	f := Figures{
		HitRatio:  "no proxied pulls yet",
		Answers:   fmt.Sprintf("%s · %s · %d stale", plural(r.Cache.Hits, "hit", "hits"), plural(r.Cache.Misses, "miss", "misses"), r.Cache.Stale),
		FromCache: Bytes(SavedBytes(r)),
		Hosted:    Bytes(r.ServedBytes["hosted"]),
		RateLimit: RateLimits(r.Proxies),
		Uptime:    "—",
	}
	if r.Cache.HitRatio != nil {
		f.HitRatio = Percent(*r.Cache.HitRatio)
	}
	var fetched int64
	for _, p := range r.Proxies {
		fetched += p.FetchedBytes
	}
	f.Upstream = Bytes(fetched)
	if r.State == server.StateRunning {
		f.Uptime = Duration(time.Duration(r.UptimeSeconds * float64(time.Second)))
	}
	b := r.Budget
	if b.MaxBytes > 0 {
		f.StorageFill = min(float64(b.UsedBytes)/float64(b.MaxBytes), 1)
		f.Storage = fmt.Sprintf("%s of %s (%s)", Bytes(b.UsedBytes), Bytes(b.MaxBytes), Percent(float64(b.UsedBytes)/float64(b.MaxBytes)))
	} else {
		f.Storage = Bytes(b.UsedBytes) + ", no size budget (cache.max_size)"
	}
	return f
}

// SavedBytes is what the cache spared the upstreams: bytes sent to
// clients from the cache, fresh or stale.
func SavedBytes(r server.Report) int64 {
	return r.ServedBytes["hit"] + r.ServedBytes["stale"]
}

// RateLimits describes each upstream's last reported pull quota: "hub: 87
// of 100 pulls left per 6h".
func RateLimits(ps []server.ProxyReport) string {
	var parts []string
	for _, p := range ps {
		rl := p.RateLimit
		if rl == nil || rl.Remaining < 0 {
			continue
		}
		s := fmt.Sprintf("%s: %d pulls left", p.Name, rl.Remaining)
		if rl.Limit > 0 {
			s = fmt.Sprintf("%s: %d of %d pulls left", p.Name, rl.Remaining, rl.Limit)
		}
		if rl.WindowSeconds > 0 {
			s += " per " + window(time.Duration(rl.WindowSeconds*float64(time.Second)))
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no upstream has reported a pull limit yet"
	}
	return strings.Join(parts, "; ")
}

func window(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return Duration(d)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
