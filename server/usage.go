package server

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
)

// DefaultStorageRefresh is how old the index entry counts may be before a
// reader asks for fresh ones. Counting walks every key, so it runs at most
// this often, and never on a request's own goroutine. (Storage used comes
// from counters the index keeps, read fresh every time.)
const DefaultStorageRefresh = 15 * time.Second

// usageWait is how long a reader waits for fresh counts before it takes
// the last ones.
const usageWait = time.Second

// WithStorageRefresh sets how old the index entry counts in /metrics and
// Report may be (default DefaultStorageRefresh; tests use 0).
func WithStorageRefresh(d time.Duration) Option { return func(s *Server) { s.usage.maxAge = d } }

// usage is what a count of the index found.
type usage struct {
	at      time.Time
	entries map[string]int64 // by record type
	err     error
}

// usageCache runs index scans in one goroutine of the server's (so
// Shutdown waits for it before closing the index) and hands out the last
// result.
type usageCache struct {
	maxAge  time.Duration
	mu      sync.Mutex
	last    *usage
	waiters []chan struct{}
	kick    chan struct{}
}

func newUsageCache() *usageCache {
	return &usageCache{maxAge: DefaultStorageRefresh, kick: make(chan struct{}, 1)}
}

// get returns figures no older than maxAge when a scan finishes
// within usageWait, else the last ones (nil before the first scan).
func (c *usageCache) get() *usage {
	c.mu.Lock()
	if c.last != nil && time.Since(c.last.at) < c.maxAge {
		defer c.mu.Unlock()
		return c.last
	}
	done := make(chan struct{})
	c.waiters = append(c.waiters, done)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a scan is already asked for
	}
	t := time.NewTimer(usageWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// run scans once at start and then whenever asked, until stop closes.
func (c *usageCache) run(idx *index.Index, stop <-chan struct{}) {
	for {
		// Only readers that asked before the scan started get its result
		// as fresh; later ones wait for the next scan (kick is buffered).
		c.mu.Lock()
		waiters := c.waiters
		c.waiters = nil
		c.mu.Unlock()
		u := scanUsage(idx)
		c.mu.Lock()
		c.last = u
		c.mu.Unlock()
		for _, w := range waiters {
			close(w)
		}
		select {
		case <-stop:
			return
		case <-c.kick:
		}
	}
}

func scanUsage(idx *index.Index) *usage {
	u := &usage{}
	u.err = idx.View(func(tx *index.Txn) error {
		var err error
		u.entries, err = tx.CountEntries()
		return err
	})
	u.at = time.Now()
	return u
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
		if err := idx.View(func(tx *index.Txn) error {
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
		if !slices.Contains(owners, o) {
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
