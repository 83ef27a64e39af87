package setup

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DefaultRegistriesDropIn is the drop-in setup writes for podman, skopeo
// and buildah (containers-registries.conf.d(5)).
const DefaultRegistriesDropIn = "/etc/containers/registries.conf.d/50-wharf.conf"

// PlanPodman computes a registries.conf drop-in with a [[registry]] for
// each upstream host and wharf as its [[registry.mirror]]: at the root for
// docker.io, under /PROXY for the others (wharf serves proxies by path
// prefix). A plain-HTTP mirror gets insecure = true. current is the file's
// bytes, nil when it does not exist: a file setup wrote is replaced; in
// anyone else's the blocks are appended, unless it already configures one
// of the hosts (then the mirror belongs in that block, by hand).
func PlanPodman(path, mirror string, ups []Upstream, current []byte) (Change, error) {
	u, err := ParseMirror(mirror)
	if err != nil {
		return Change{}, err
	}
	if len(ups) == 0 {
		return Change{}, errors.New("wharf's config has no proxies, so there is nothing for podman to pull through it")
	}
	var blocks strings.Builder
	for _, up := range ups {
		loc := u.Host
		if up.Proxy != "" {
			loc += "/" + up.Proxy
		}
		fmt.Fprintf(&blocks, "\n[[registry]]\nprefix = %q\nlocation = %q\n\n[[registry.mirror]]\nlocation = %q\n", up.Host, up.Host, loc)
		if u.Scheme == "http" {
			blocks.WriteString("insecure = true\n")
		}
	}
	c := Change{Path: path, Before: current}
	if current == nil || strings.HasPrefix(string(current), marker) {
		c.After = []byte(marker + " podman`: podman, skopeo and buildah pull through wharf first.\n" + blocks.String())
		return c, nil
	}
	if err := checkTOML(current); err != nil {
		return Change{}, fmt.Errorf("%s %w (%v)", path, ErrUnparsable, err)
	}
	if strings.Contains(string(current), blocks.String()) {
		c.After = current
		return c, nil
	}
	for _, up := range ups {
		re := regexp.MustCompile(`(?m)^\s*(prefix|location)\s*=\s*["']` + regexp.QuoteMeta(up.Host) + `["']`)
		if re.Match(current) {
			return Change{}, fmt.Errorf("%s already has a [[registry]] for %s; add [[registry.mirror]] location = %q there by hand, or pass --registries-conf with a drop-in of its own", path, up.Host, u.Host)
		}
	}
	s := string(current)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	c.After = []byte(s + "\n# Added by `wharf setup podman`:" + blocks.String())
	return c, nil
}
