package server

import (
	"sync"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
)

// DefaultIndexCountMaxAge is how old the index entry counts may be before a
// reader asks for fresh ones. Counting walks every key, so it runs at most
// this often, and never on a request's own goroutine. (Storage used comes
// from counters the index keeps, read fresh every time.)
const DefaultIndexCountMaxAge = 15 * time.Second

// countWait is how long a reader waits for fresh counts before it takes
// the last ones.
const countWait = time.Second

// reportRefresh is how old Report's index counts may be: a person asked.
const reportRefresh = 2 * time.Second

// WithIndexCountMaxAge sets how old the index entry counts in /metrics (and
// Report, which asks for counts at most 2 s old) may be (default
// DefaultIndexCountMaxAge). Tests use 0: every read counts afresh and
// waits for that count however long it takes, where a reader otherwise
// takes the last figures after countWait (a loaded machine can take
// longer than that, and a test would read counts from before its pulls).
func WithIndexCountMaxAge(d time.Duration) Option { return func(s *Server) { s.counts.maxAge = d } }

// indexCounts is what a count of the index found.
type indexCounts struct {
	at      time.Time
	entries map[string]int64 // by record type
	err     error
}

// countCache runs index scans in one goroutine of the server's (so
// Shutdown waits for it before closing the index) and hands out the last
// result.
type countCache struct {
	maxAge  time.Duration
	mu      sync.Mutex
	last    *indexCounts
	waiters []chan struct{}
	stopped bool // run has returned: nobody will count again
	kick    chan struct{}
}

func newCountCache() *countCache {
	return &countCache{maxAge: DefaultIndexCountMaxAge, kick: make(chan struct{}, 1)}
}

// get returns figures no older than maxAge (at most c.maxAge) when a scan
// finishes within countWait, else the last ones (nil before the first scan).
func (c *countCache) get(maxAge time.Duration) *indexCounts {
	maxAge = min(maxAge, c.maxAge)
	c.mu.Lock()
	if c.last != nil && time.Since(c.last.at) < maxAge || c.stopped {
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
	if maxAge <= 0 {
		<-done
	} else {
		t := time.NewTimer(countWait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// run scans once at start and then whenever asked, until stop closes.
func (c *countCache) run(idx index.Index, stop <-chan struct{}) {
	c.mu.Lock()
	c.stopped = false // a server started again
	c.mu.Unlock()
	for {
		// Only readers that asked before the scan started get its result
		// as fresh; later ones wait for the next scan (kick is buffered).
		c.mu.Lock()
		waiters := c.waiters
		c.waiters = nil
		c.mu.Unlock()
		u := countEntries(idx)
		c.mu.Lock()
		c.last = u
		c.mu.Unlock()
		for _, w := range waiters {
			close(w)
		}
		select {
		case <-stop:
			c.mu.Lock()
			c.stopped, waiters, c.waiters = true, c.waiters, nil
			c.mu.Unlock()
			for _, w := range waiters {
				close(w)
			}
			return
		case <-c.kick:
		}
	}
}

func countEntries(idx index.Index) *indexCounts {
	u := &indexCounts{}
	u.err = idx.View(func(tx index.Txn) error {
		var err error
		u.entries, err = tx.CountEntries()
		return err
	})
	u.at = time.Now()
	return u
}
