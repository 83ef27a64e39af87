package setup

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// DefaultHostsDir is where containerd's CRI plugin and `ctr --hosts-dir`
// look for HOST/hosts.toml.
const DefaultHostsDir = "/etc/containerd/certs.d"

// PlanContainerd computes DIR/HOST/hosts.toml for each upstream host,
// sending pulls and resolves to mirror first (containerd adds ?ns=HOST,
// which wharf routes to the proxy for HOST) and then to the registry
// itself. read returns a file's bytes, nil when it does not exist.
//
// A hosts.toml setup wrote before is replaced; anyone else's keeps every
// line, with the mirror's [host] table inserted before its first table so
// containerd tries wharf first. A file that does not look like TOML is
// refused.
func PlanContainerd(dir, mirror string, ups []Upstream, read func(string) ([]byte, error)) ([]Change, error) {
	u, err := ParseMirror(mirror)
	if err != nil {
		return nil, err
	}
	if len(ups) == 0 {
		return nil, errors.New("wharf's config has no proxies, so there is nothing for containerd to pull through it")
	}
	table := fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", u.String())
	var out []Change
	for _, up := range ups {
		path := filepath.Join(dir, up.Host, "hosts.toml")
		cur, err := read(path)
		if err != nil {
			return nil, err
		}
		c := Change{Path: path, Before: cur}
		fresh := fmt.Sprintf("%s containerd`: pulls of %s images ask wharf first.\nserver = %q\n\n%s", marker, up.Host, up.Server, table)
		switch {
		case cur == nil || strings.HasPrefix(string(cur), marker):
			c.After = []byte(fresh)
		default:
			if err := checkTOML(cur); err != nil {
				return nil, fmt.Errorf("%s %w (%v)", path, ErrUnparsable, err)
			}
			if strings.Contains(string(cur), fmt.Sprintf("[host.%q]", u.String())) {
				c.After = cur
				break
			}
			c.After = []byte(insertBeforeFirstTable(string(cur), "# Added by `wharf setup containerd`: ask wharf first.\n"+table+"\n"))
		}
		out = append(out, c)
	}
	return out, nil
}

func insertBeforeFirstTable(s, ins string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "[") {
			return strings.Join(lines[:i], "") + ins + strings.Join(lines[i:], "")
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s + "\n" + ins
}
