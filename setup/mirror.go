package setup

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/wharf-registry/wharf/config"
)

// MirrorURL is the URL clients should use for a wharf running cfg:
// https when TLS is on (the ACME host name when there is one), and the
// listen address, with hostIP (the machine's non-loopback address) in
// place of "all interfaces": a rootless daemon or a VM does not reach the
// host through 127.0.0.1.
func MirrorURL(cfg *config.Config, hostIP func() (string, error)) (string, error) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		scheme = "https"
		if cfg.TLS.Mode == config.TLSACME && len(cfg.TLS.Hosts) > 0 {
			host = cfg.TLS.Hosts[0]
		}
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if host, err = hostIP(); err != nil {
			return "", fmt.Errorf("wharf listens on all interfaces (%s) and this machine's address is unknown: %w; pass --mirror http://ADDRESS:%s", cfg.Listen, err, port)
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// HostIP is the first non-loopback IPv4 address of an interface that is
// up, else the first such IPv6 one.
func HostIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String(), nil
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", errors.New("no non-loopback address")
}

// ParseMirror checks a --mirror value and returns it without a trailing
// slash; a bare HOST:PORT means http.
func ParseMirror(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("mirror %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("mirror %q: want http://HOST:PORT or https://HOST[:PORT]", s)
	}
	if u.Path != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("mirror %q: Docker takes a registry's root URL, without a path", s)
	}
	return u, nil
}

// loopback reports whether host (no port) names this machine: Docker
// treats 127.0.0.0/8 as insecure-allowed already.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Image is a Docker Hub image reference split for the registry API.
type Image struct {
	Repo string // library/busybox
	Tag  string // latest
}

func (i Image) String() string { return "docker.io/" + i.Repo + ":" + i.Tag }

// ParseHubImage reads busybox, busybox:1, library/busybox:latest or
// docker.io/someuser/app:1.0 as a Docker Hub image with a tag.
func ParseHubImage(s string) (Image, error) {
	ref := s
	for _, p := range []string{"docker.io/", "index.docker.io/", "registry-1.docker.io/"} {
		ref = strings.TrimPrefix(ref, p)
	}
	if strings.Contains(ref, "@") {
		return Image{}, fmt.Errorf("test image %q: give a tag, not a digest", s)
	}
	repo, tag := ref, "latest"
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	if first, _, ok := strings.Cut(repo, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return Image{}, fmt.Errorf("test image %q is not on Docker Hub; a registry mirror only serves Docker Hub images", s)
	}
	if !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	if repo == "library/" || tag == "" || repo != strings.ToLower(repo) {
		return Image{}, fmt.Errorf("test image %q: want NAME[:TAG], e.g. library/hello-world:latest", s)
	}
	return Image{Repo: repo, Tag: tag}, nil
}
