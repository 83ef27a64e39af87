package server

import (
	"strings"

	"github.com/wharf-registry/wharf/cache"
)

// Transfer is a blob one proxy is fetching from its upstream right now;
// Repo is named as in the upstream (library/alpine), without the proxy.
type Transfer struct {
	Proxy string `json:"proxy"`
	cache.Transfer
}

// Transfers lists the upstream fetches under way, proxy by proxy in
// config order; none unless the server is running. The desktop app polls
// it to draw progress bars, so it only takes short locks.
func (s *Server) Transfers() []Transfer {
	s.mu.Lock()
	proxies := s.proxies
	running := s.state == StateRunning
	s.mu.Unlock()
	if !running {
		return nil
	}
	var out []Transfer
	for _, p := range proxies {
		for _, t := range p.Proxy.Transfers() {
			t.Repo = strings.TrimPrefix(t.Repo, p.Name+"/")
			out = append(out, Transfer{Proxy: p.Name, Transfer: t})
		}
	}
	return out
}
