package registry

import (
	"net/http"
	"strings"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/oci"
)

// ProxyNamespace routes names to a pull-through cache.
type ProxyNamespace struct {
	Name string
	// Default serves every name outside the other namespaces (Docker's
	// registry-mirrors sends /v2/library/busybox/...).
	Default bool
	// DockerHub: single-component names get "library/" as on Docker Hub.
	DockerHub bool
	// Hosts are the upstream's host names, matched against ?ns=.
	Hosts []string
	// AnonymousPull: with auth on, pulls need no login.
	AnonymousPull bool
	Proxy         *cache.Proxy
}

// target is where a repository name leads.
type target struct {
	proxy *ProxyNamespace // nil: hosted
	repo  string          // for a proxy: the repository name upstream
	ns    string          // the ?ns= the client sent, echoed as OCI-Namespace
}

// resolve maps a repository name (and containerd's ?ns=) to a namespace.
func (h *Handler) resolve(r *http.Request, name string) (target, error) {
	if ns := r.URL.Query().Get("ns"); ns != "" {
		host := strings.ToLower(ns)
		for i := range h.o.Proxies {
			p := &h.o.Proxies[i]
			for _, hh := range p.Hosts {
				if hh == host {
					return target{proxy: p, repo: p.normalize(name), ns: ns}, nil
				}
			}
		}
		return target{}, oci.Errorf(oci.CodeNameUnknown, "no proxy is configured for registry %q (ns=%s); add one with that upstream or alias", ns, ns)
	}
	if h.isHosted(name) && !h.o.HostAll {
		return target{repo: name}, nil
	}
	first, rest, ok := strings.Cut(name, "/")
	if ok {
		for i := range h.o.Proxies {
			if p := &h.o.Proxies[i]; p.Name == first {
				return target{proxy: p, repo: p.normalize(rest)}, nil
			}
		}
	}
	if h.o.HostAll {
		return target{repo: name}, nil
	}
	for i := range h.o.Proxies {
		if p := &h.o.Proxies[i]; p.Default {
			return target{proxy: p, repo: p.normalize(name)}, nil
		}
	}
	return target{}, oci.Errorf(oci.CodeNameUnknown, "repository %s is not in any configured namespace (%s)", name, h.namespaceList())
}

func (p *ProxyNamespace) normalize(name string) string {
	if p.DockerHub && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

func (h *Handler) namespaceList() string {
	var parts []string
	for _, n := range h.o.HostedNamespaces {
		parts = append(parts, "hosted "+n+"/")
	}
	for _, p := range h.o.Proxies {
		parts = append(parts, "proxy "+p.Name+"/")
	}
	if len(parts) == 0 {
		return "none configured"
	}
	return strings.Join(parts, ", ")
}

// readOnly is the answer to a write on a proxy namespace.
func (h *Handler) readOnly(tg target) error {
	hosted := "none is configured"
	if len(h.o.HostedNamespaces) > 0 {
		hosted = strings.Join(h.o.HostedNamespaces, "/, ") + "/"
	}
	return oci.Errorf(oci.CodeUnsupported, "%s/ is a read-only proxy of an upstream registry; push to a hosted namespace instead (%s)", tg.proxy.Name, hosted)
}
