package config

import (
	"net"
)

// Metrics configures where Prometheus scrapes wharf.
type Metrics struct {
	// Listen, when set, serves /metrics on this separate address, e.g.
	// 127.0.0.1:9090, and no longer on the main listener (/healthz,
	// /readyz and /-/status answer on both). Empty: /metrics is on the
	// main listener.
	Listen string `yaml:"listen,omitempty"`
}

func (c *Config) validateMetrics(add func(key, format string, args ...any)) {
	if c.Metrics.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(c.Metrics.Listen)
	if err != nil || port == "" {
		add("metrics.listen", "%q is not host:port (for example 127.0.0.1:9090)", c.Metrics.Listen)
		return
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		add("metrics.listen", "%q has no valid port (0-65535)", c.Metrics.Listen)
		return
	}
	mainHost, mainPort, err := net.SplitHostPort(c.Listen)
	if err != nil || p == 0 {
		return // the main listen error is reported on its own; port 0 picks a free one
	}
	if mp, err := net.LookupPort("tcp", mainPort); err == nil && mp == p && overlaps(host, mainHost) {
		add("metrics.listen", "%q is the same address as listen (%q); give metrics its own port, or remove metrics.listen to serve /metrics on the main listener", c.Metrics.Listen, c.Listen)
	}
}

// overlaps reports whether two listen hosts can clash on the same port:
// the same host, or either one all interfaces.
func overlaps(a, b string) bool {
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return a == b || wildcard(a) || wildcard(b)
}
