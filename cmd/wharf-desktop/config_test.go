package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultPaths(t *testing.T) {
	for _, c := range []struct {
		env        map[string]string
		cfg, data  string
		wantErrSub string
	}{
		{map[string]string{"HOME": "/home/ann"}, "/home/ann/.config/wharf/wharf.yml", "/home/ann/.local/share/wharf", ""},
		{map[string]string{"HOME": "/home/ann", "XDG_CONFIG_HOME": "/cfg", "XDG_DATA_HOME": "/dat"}, "/cfg/wharf/wharf.yml", "/dat/wharf", ""},
		// The spec says a relative XDG path is to be ignored.
		{map[string]string{"HOME": "/home/ann", "XDG_CONFIG_HOME": "rel", "XDG_DATA_HOME": "rel"}, "/home/ann/.config/wharf/wharf.yml", "/home/ann/.local/share/wharf", ""},
		{map[string]string{}, "", "", "pass --config FILE"},
	} {
		cfg, err1 := defaultConfigPath(env(c.env))
		data, err2 := defaultDataDir(env(c.env))
		if c.wantErrSub != "" {
			if err1 == nil || err2 == nil || !strings.Contains(err1.Error(), c.wantErrSub) {
				t.Errorf("%v: errors %v, %v; want %q", c.env, err1, err2, c.wantErrSub)
			}
			continue
		}
		if err1 != nil || err2 != nil || cfg != c.cfg || data != c.data {
			t.Errorf("%v: %q %q (%v %v), want %q %q", c.env, cfg, data, err1, err2, c.cfg, c.data)
		}
	}
}

// The first start writes the embedded default with the data under
// $XDG_DATA_HOME, so `wharf serve --config` runs the same setup; later
// starts never touch the file.
func TestFirstStartWritesTheEmbeddedDefault(t *testing.T) {
	home := t.TempDir()
	e := env(map[string]string{"HOME": home, "XDG_DATA_HOME": filepath.Join(home, "data")})
	path, created, err := ensureConfig("", e)
	if err != nil || !created {
		t.Fatalf("ensureConfig = %q, %v, %v", path, created, err)
	}
	if path != filepath.Join(home, ".config", "wharf", "wharf.yml") {
		t.Errorf("path %s", path)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v, mode %v", err, fi.Mode())
	}
	got, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Embedded()
	want.DataDir = filepath.Join(home, "data", "wharf")
	if got.YAML() != want.YAML() {
		t.Errorf("first-start config differs from the embedded default:\n%s\nwant\n%s", got.YAML(), want.YAML())
	}

	mine := []byte("# mine\nlisten: 127.0.0.1:5999\n")
	if err := os.WriteFile(path, mine, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, created, err := ensureConfig("", e); err != nil || created || p != path {
		t.Fatalf("second start: %q %v %v", p, created, err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, mine) {
		t.Errorf("an existing config was changed:\n%s", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("left behind in the config dir: %v", entries)
	}
}

func TestConfigFlag(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "w.yml")
	if _, _, err := ensureConfig(p, env(map[string]string{"HOME": dir})); err == nil || !strings.Contains(err.Error(), "leave out --config") {
		t.Errorf("missing --config file: %v", err)
	}
	os.WriteFile(p, []byte("not: [valid"), 0o600)
	// A file that does not parse is the app's to report (inline, with
	// the reason), not a reason to refuse to open the window.
	if got, created, err := ensureConfig(p, env(map[string]string{"HOME": dir})); err != nil || created || got != p {
		t.Errorf("ensureConfig(%s) = %q %v %v", p, got, created, err)
	}
}

func TestHelpAndBadFlags(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, env(nil)); code != 0 || !strings.Contains(out.String(), "wharf serve --config") || !strings.Contains(out.String(), "-no-start") {
		t.Errorf("--help: exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "--remote URL --user NAME") || !strings.Contains(out.String(), "WHARF_PASSWORD") {
		t.Errorf("--help does not explain --remote:\n%s", out.String())
	}
	for _, args := range [][]string{{"--bogus"}, {"wharf.yml"}, {"--log-level", "loud"}, {"--user", "root"}, {"--ca", "ca.crt"}} {
		out.Reset()
		if code := run(args, &out, env(nil)); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}
