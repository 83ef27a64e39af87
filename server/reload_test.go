package server_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestReloadAuth: a reload applies new rules, a new users file and a new
// admin list at once, names the sections that need a restart, and leaves
// everything as it was when the new config cannot be used.
func TestReloadAuth(t *testing.T) {
	o := newOrigin(t)
	dataDir := t.TempDir()
	first := writeHtpasswd(t, map[string]string{"alice": "alice-pw", "carol": "carol-pw"})
	second := writeHtpasswd(t, map[string]string{"alice": "alice-pw", "dave": "dave-pw"})
	conf := func(htpasswd, rules, extra string) *config.Config {
		t.Helper()
		cfg := proxyConfig(t, o.URL, fmt.Sprintf("auth:\n  htpasswd: %s\n  admins: [alice]\n  rules:\n%s%s", htpasswd, rules, extra))
		cfg.DataDir = dataDir // the same server, read again
		return cfg
	}
	onlyAlice := "    - repository: team/*\n      push: [alice]\n      pull: [alice]\n"
	carolToo := "    - repository: team/*\n      push: [alice, carol]\n      pull: ['*']\n"
	s := startWith(t, conf(first, onlyAlice, ""))
	img, _ := random.Image(2048, 1)
	if err := remote.Write(ref(t, s, "team/app:1"), img, basic("carol", "carol-pw")); !harness.Denied(err) {
		t.Fatalf("carol before the reload: %v", err)
	}

	applied, restart, err := s.Reload(conf(first, carolToo, ""))
	if err != nil || len(restart) != 0 || strings.Join(applied, ",") != "auth.rules" {
		t.Fatalf("reload of the rules: applied %v, restart %v, %v", applied, restart, err)
	}
	if err := remote.Write(ref(t, s, "team/app:1"), img, basic("carol", "carol-pw")); err != nil {
		t.Fatalf("carol after the reload: %v", err)
	}

	// A new users file: dave logs in, carol no longer does. A changed
	// proxy section is reported, not applied.
	extra := "cache:\n  max_size: 1GiB\n"
	applied, restart, err = s.Reload(conf(second, carolToo, extra))
	if err != nil || strings.Join(applied, ",") != "auth.htpasswd" || strings.Join(restart, ",") != "cache" {
		t.Fatalf("reload of the users file: applied %v, restart %v, %v", applied, restart, err)
	}
	if _, err := remote.Image(ref(t, s, "team/app:1"), basic("dave", "dave-pw")); err != nil {
		t.Fatalf("dave after the reload: %v", err)
	}
	if _, err := remote.Image(ref(t, s, "team/app:1"), basic("carol", "carol-pw")); !harness.Unauthorized(err) {
		t.Fatalf("carol after leaving the users file: %v", err)
	}

	// Unusable: a rule without a repository, or auth switched off.
	// Nothing changes.
	bad := conf(second, carolToo, extra)
	bad.Auth.Rules = append(bad.Auth.Rules, config.Rule{Pull: []string{"*"}})
	if _, _, err := s.Reload(bad); err == nil || !strings.Contains(err.Error(), "repository") {
		t.Fatalf("reload with an invalid rule: %v", err)
	}
	bad = conf(second, carolToo, extra)
	bad.Auth.Htpasswd = ""
	if _, _, err := s.Reload(bad); err == nil {
		t.Fatal("reload that switches auth off was taken")
	}
	if _, err := remote.Image(ref(t, s, "team/app:1"), basic("dave", "dave-pw")); err != nil {
		t.Fatalf("dave after a refused reload: %v", err)
	}
	if _, err := remote.Image(ref(t, s, "team/app:1")); !harness.Unauthorized(err) {
		t.Fatalf("anonymous after a refused reload: %v", err)
	}

	applied, restart, err = s.Reload(conf(second, carolToo, extra))
	if err != nil || len(applied) != 0 || strings.Join(restart, ",") != "cache" {
		t.Fatalf("reload with nothing new: applied %v, restart %v, %v", applied, restart, err)
	}
}
