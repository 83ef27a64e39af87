package setup

import (
	"net/url"
	"strings"

	"github.com/wharf-registry/wharf/config"
)

// Upstream is a registry host whose pulls a client should send to wharf.
type Upstream struct {
	Host   string // as clients name it: docker.io, ghcr.io
	Server string // the registry itself, for containerd's fallback
	// Proxy is the wharf proxy name serving this host under a path
	// prefix (/v2/PROXY/...); empty for the default proxy, which serves
	// Docker Hub names at the root.
	Proxy string
}

// Upstreams lists the hosts wharf's proxies serve: docker.io for the
// default proxy (what registry-mirrors and ?ns=docker.io reach), each
// other proxy's upstream host and its aliases.
func Upstreams(cfg *config.Config) []Upstream {
	var out []Upstream
	seen := map[string]bool{}
	add := func(u Upstream) {
		if !seen[u.Host] {
			seen[u.Host] = true
			out = append(out, u)
		}
	}
	for _, p := range cfg.Proxies {
		if p.Default {
			add(Upstream{Host: "docker.io", Server: "https://registry-1.docker.io"})
		}
	}
	for _, p := range cfg.Proxies {
		if p.Default {
			continue
		}
		u, err := url.Parse(p.Upstream)
		if err != nil || u.Host == "" {
			continue
		}
		host := strings.ToLower(u.Host)
		if isDockerHub(host) {
			continue // a second Docker Hub proxy: docker.io goes to the default one
		}
		add(Upstream{Host: host, Server: u.Scheme + "://" + u.Host, Proxy: p.Name})
		for _, a := range p.Aliases {
			add(Upstream{Host: strings.ToLower(a), Server: "https://" + a, Proxy: p.Name})
		}
	}
	return out
}

func isDockerHub(host string) bool {
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return true
	}
	return false
}
