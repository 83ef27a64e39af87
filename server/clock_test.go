package server_test

import (
	"time"

	"github.com/wharf-registry/wharf/internal/testclock"
	"github.com/wharf-registry/wharf/server"
)

// newTestClock starts at the real time, so anything the server stamps
// with time.Now (outside the clock seam) is not years apart from it.
func newTestClock() *testclock.Clock {
	return testclock.New(time.Now().Truncate(time.Second))
}

// withClock has the server read c.
func withClock(c *testclock.Clock) server.Option { return server.WithClock(c.Now) }
