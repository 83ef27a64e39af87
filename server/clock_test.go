package server_test

import (
	"sync"
	"time"

	"github.com/wharf-registry/wharf/server"
)

// testClock is a clock that moves only when a test advances it, for tests
// of access order and TTLs: two reads a few nanoseconds apart on a fast
// machine (or the same coarse clock tick) must not decide which image is
// older, and a TTL must not expire, or fail to, by how busy the machine
// is.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

// newTestClock starts at the real time, so anything the server stamps
// with time.Now (outside the clock seam) is not years apart from it.
func newTestClock() *testClock {
	return &testClock{now: time.Now().Truncate(time.Second)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *testClock) option() server.Option { return server.WithClock(c.Now) }
