package upstream

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is the pull quota Docker Hub last reported, from its
// ratelimit-limit / ratelimit-remaining headers ("100;w=21600").
type RateLimit struct {
	Limit     int           // pulls allowed per window, -1 if not reported
	Remaining int           // pulls left in the window, -1 if not reported
	Window    time.Duration // 0 if not reported
	Source    string        // docker-ratelimit-source: the IP or account the quota belongs to
	Seen      time.Time
}

// RateLimit returns the last quota the upstream reported, if it ever did.
func (c *Client) RateLimit() (RateLimit, bool) {
	if rl := c.rate.Load(); rl != nil {
		return *rl, true
	}
	return RateLimit{}, false
}

func (c *Client) observeRateLimit(h http.Header) {
	limit, lw, ok1 := parseQuota(h.Get("ratelimit-limit"))
	remaining, rw, ok2 := parseQuota(h.Get("ratelimit-remaining"))
	if !ok1 && !ok2 {
		return
	}
	c.rate.Store(&RateLimit{
		Limit:     limit,
		Remaining: remaining,
		Window:    max(lw, rw),
		Source:    h.Get("docker-ratelimit-source"),
		Seen:      c.now(),
	})
}

// parseQuota reads "100;w=21600" (count; window in seconds).
func parseQuota(v string) (n int, window time.Duration, ok bool) {
	if v == "" {
		return -1, 0, false
	}
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n < 0 {
		return -1, 0, false
	}
	for _, p := range parts[1:] {
		if k, val, _ := strings.Cut(strings.TrimSpace(p), "="); k == "w" {
			if s, err := strconv.Atoi(val); err == nil && s > 0 {
				window = time.Duration(s) * time.Second
			}
		}
	}
	return n, window, true
}
