// Package testclock is a clock that moves only when a test advances it,
// for tests of access order, TTLs and ages: two reads a few nanoseconds
// apart on a fast machine (or within one coarse clock tick) must not
// decide which item is older, and a TTL must not expire, or fail to, by
// how busy the machine is. Tests only.
package testclock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New starts a clock at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time: what the code under test reads.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
