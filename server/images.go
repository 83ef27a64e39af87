package server

import (
	"fmt"
	"strings"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/oci"
)

// canonicalRepo maps a name as a user writes it ("alpine",
// "library/alpine", "hub/library/alpine", "ghcr/org/app") to the proxy
// and the canonical cached repository ("hub/library/alpine"), following
// the same rules as request routing.
func canonicalRepo(cfg *config.Config, name string) (proxy, canon string, err error) {
	first, rest, ok := strings.Cut(name, "/")
	if ok {
		for _, p := range cfg.Proxies {
			if p.Name == first {
				return p.Name, p.Name + "/" + normalizeHub(p, rest), nil
			}
		}
	}
	if p := cfg.DefaultProxy(); p != nil {
		return p.Name, p.Name + "/" + normalizeHub(*p, name), nil
	}
	return "", "", fmt.Errorf("%s is not in any proxy namespace; name it as PROXY/REPO (proxies: %s)", name, cfg.ProxyNames())
}

func normalizeHub(p config.Proxy, name string) string {
	if p.IsDockerHub() && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

// parseImage splits NAME[:TAG|@DIGEST] into the canonical repository and
// reference (tag "latest" when none is given).
func parseImage(cfg *config.Config, image string) (proxy, canon string, ref oci.Reference, err error) {
	name, tag := image, "latest"
	var dg string
	if i := strings.Index(image, "@"); i >= 0 {
		name, dg = image[:i], image[i+1:]
	} else if i := strings.LastIndex(image, ":"); i > 0 && !strings.Contains(image[i:], "/") {
		name, tag = image[:i], image[i+1:]
	}
	if err := oci.ValidateName(name); err != nil {
		return "", "", ref, err
	}
	if proxy, canon, err = canonicalRepo(cfg, name); err != nil {
		return "", "", ref, oci.Errorf(oci.CodeNameUnknown, "%v", err)
	}
	if dg != "" {
		d, err := oci.ParseDigest(dg)
		if err != nil {
			return "", "", ref, err
		}
		return proxy, canon, oci.Reference{Digest: d}, nil
	}
	if !oci.ValidTag(tag) {
		return "", "", ref, oci.Errorf(oci.CodeTagInvalid, "invalid tag %q: up to 128 characters of [A-Za-z0-9_.-], not starting with . or -", tag)
	}
	return proxy, canon, oci.Reference{Tag: tag}, nil
}

// pinRules turns the config's pin list into cache rules on canonical names.
func pinRules(cfg *config.Config) ([]cache.PinRule, error) {
	var out []cache.PinRule
	for _, rule := range cfg.Cache.Pin {
		repo, tag, err := config.SplitPin(rule)
		if err != nil {
			return nil, err
		}
		_, canon, err := canonicalRepo(cfg, repo)
		if err != nil {
			return nil, fmt.Errorf("cache.pin %q: %w", rule, err)
		}
		out = append(out, cache.PinRule{Rule: rule, Repo: canon, Tag: tag})
	}
	return out, nil
}
