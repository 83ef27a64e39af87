package server

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
)

// DefaultStorageRefresh is how old storage figures may be before a reader
// asks for fresh ones. A scan reads every blob record, so it runs at most
// this often, and never on a request's own goroutine.
const DefaultStorageRefresh = 15 * time.Second

// usageWait is how long a reader waits for fresh figures before it takes
// the last ones.
const usageWait = time.Second

// WithStorageRefresh sets how old the storage figures in /metrics and
// Report may be (default DefaultStorageRefresh; tests use 0).
func WithStorageRefresh(d time.Duration) Option { return func(s *Server) { s.usage.maxAge = d } }

// hostedOwner is the owner of pushed blobs: index.BlobRecord.Origin.
const hostedOwner = "hosted"

// usage is the storage figures a scan of the index found.
type usage struct {
	at        time.Time
	bytes     map[string]int64 // by owner: a proxy's name, or hosted
	blobs     map[string]int64
	manifests int64
	err       error
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
	u := &usage{bytes: map[string]int64{}, blobs: map[string]int64{}}
	u.err = idx.View(func(tx *index.Txn) error {
		if err := tx.EachBlob(func(r index.BlobRecord) error {
			owner := r.Origin
			if owner == "" {
				owner = hostedOwner
			}
			u.bytes[owner] += r.Size
			u.blobs[owner]++
			return nil
		}); err != nil {
			return err
		}
		return tx.EachManifest("", func(string, index.ManifestRecord) error {
			u.manifests++
			return nil
		})
	})
	u.at = time.Now()
	return u
}

// owners lists the configured proxies and hosted, then any other owner
// the index holds blobs of (a proxy since removed from the config).
func (u *usage) owners(proxies []string) []string {
	out := append(slices.Clone(proxies), hostedOwner)
	if u == nil {
		return out
	}
	for _, o := range slices.Sorted(maps.Keys(u.bytes)) {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}
