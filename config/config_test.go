package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

// contract is the configuration the README promises will work as written.
const contract = `listen: 127.0.0.1:5000
data_dir: ./data
hosted:
  - name: team
`

func TestContractConfig(t *testing.T) {
	c, err := config.Parse([]byte(contract))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:5000" || c.DataDir != "./data" || len(c.Hosted) != 1 || c.Hosted[0].Name != "team" {
		t.Errorf("parsed %+v", c)
	}
	if c.HostAll {
		t.Error("a config with hosted namespaces must not host everything")
	}
	checkDefaultLog(t, c)
}

func checkDefaultLog(t *testing.T, c *config.Config) {
	t.Helper()
	if c.Log.Level != "info" || c.Log.Format != "text" || c.Log.AccessLog == nil || !*c.Log.AccessLog {
		t.Errorf("log defaults = %+v (access_log %v)", c.Log, c.Log.AccessLog)
	}
}

func TestDefaults(t *testing.T) {
	e := config.Embedded()
	if config.DefaultListen != ":5000" || e.Listen != config.DefaultListen || config.DefaultDataDir != "./data" || e.DataDir != config.DefaultDataDir {
		t.Errorf("Embedded() = %+v", e)
	}
	checkDefaultLog(t, e)
	if err := e.Validate(); err != nil {
		t.Errorf("Embedded() does not validate: %v", err)
	}
	if config.Embedded() == e || config.Embedded().Log.AccessLog == e.Log.AccessLog {
		t.Error("Embedded() shares state between calls")
	}
	for _, in := range []string{"", "\n\n", "  \n\t\n", "# only a comment\n", "---\n"} {
		c, err := config.Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if c.Listen != ":5000" || c.DataDir != "./data" || c.HostAll || len(c.Hosted) != 0 {
			t.Errorf("Parse(%q) = %+v", in, c)
		}
		checkDefaultLog(t, c)
	}
}

func TestParseValues(t *testing.T) {
	c, err := config.Parse([]byte(`
listen: ":8080"
data_dir: /var/lib/wharf
log:
  level: debug
  format: json
  access_log: false
hosted:
  - name: team
  - name: other/sub
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.DataDir != "/var/lib/wharf" || c.Log.Level != "debug" || c.Log.Format != "json" ||
		c.Log.AccessLog == nil || *c.Log.AccessLog || len(c.Hosted) != 2 || c.Hosted[1].Name != "other/sub" {
		t.Errorf("parsed %+v, log %+v", c, c.Log)
	}
}

// TestParseErrors checks that every message names the key and the line.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, each required
	}{
		{"unknown top-level key", "listen: :5000\nstorge: x\n", []string{"line 2", "unknown key storge"}},
		{"unknown nested key", "log:\n  level: info\n  colour: true\n", []string{"line 3", "unknown key colour"}},
		{"unknown key in hosted", "hosted:\n  - name: team\n    upstream: x\n", []string{"line 3", "unknown key upstream"}},
		{"two unknown keys", "a: 1\nlisten: :1\nb: 2\n", []string{"line 1: unknown key a", "line 3: unknown key b"}},
		{"misspelt key", "data-dir: ./data\n", []string{"line 1", "unknown key data-dir"}},
		{"list for a string", "listen: [a, b]\n", []string{"line 1", "cannot unmarshal"}},
		{"string for a list", "data_dir: x\nhosted: team\n", []string{"line 2", "cannot unmarshal"}},
		{"string for a bool", "log:\n  access_log: maybe\n", []string{"line 2", "cannot unmarshal"}},
		{"map for a string", "hosted:\n  - name: {a: b}\n", []string{"line 2", "cannot unmarshal"}},
		{"syntax", "listen: :5000\n\tdata_dir: x\n", []string{"line 2"}},
		{"invalid listen", "listen: 5000\n", []string{"line 1: listen", `"5000" is not host:port`}},
		{"listen without port", "data_dir: x\nlisten: 127.0.0.1\n", []string{"line 2: listen"}},
		{"listen empty port", "listen: \"127.0.0.1:\"\n", []string{"line 1: listen"}},
		{"listen bad brackets", "listen: \"[::1\"\n", []string{"line 1: listen"}},
		{"listen port out of range", "listen: \":99999\"\n", []string{"line 1: listen", "no valid port"}},
		{"listen negative port", "listen: \"127.0.0.1:-1\"\n", []string{"line 1: listen", "no valid port"}},
		{"listen unknown service", "listen: \"127.0.0.1:nosuchservice\"\n", []string{"line 1: listen", "no valid port"}},
		{"log level", "log:\n  level: verbose\n", []string{"line 2: log.level", "verbose"}},
		{"log format", "log:\n  format: xml\n", []string{"line 2: log.format", "xml"}},
		{"invalid namespace", "hosted:\n  - name: team\n  - name: Team/App\n", []string{"line 3: hosted[1].name", `"Team/App" is not a valid`}},
		{"namespace with ..", "hosted:\n  - name: a/../b\n", []string{"line 2: hosted[0].name"}},
		{"empty namespace", "hosted:\n  - name: team\n  - name: \"\"\n", []string{"line 3: hosted[1].name", "needs a name"}},
		{"namespace without name key", "hosted:\n  - name: team\n  - {}\n", []string{"line 3: hosted[1].name", "needs a name"}},
		{"duplicate namespace", "hosted:\n  - name: team\n  - name: other\n  - name: team\n",
			[]string{"line 4: hosted[2].name", `"team" is already defined at hosted[0].name`}},
		{"nested namespace", "hosted:\n  - name: team/app\n  - name: team\n",
			[]string{"line 2: hosted[0].name", `"team/app" is nested inside "team"`}},
		{"prefix that is not nesting is fine but nesting is not", "hosted:\n  - name: team\n  - name: teamwork\n  - name: team/x/y\n",
			[]string{"line 4: hosted[2].name", `nested inside "team"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSeveralProblemsAtOnce(t *testing.T) {
	_, err := config.Parse([]byte(`listen: nope
log:
  level: loud
  format: xml
hosted:
  - name: UPPER
  - name: ok
  - name: ok
  - name: ok/inner
`))
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	want := []string{
		"line 1: listen",
		"line 3: log.level",
		"line 4: log.format",
		"line 6: hosted[0].name",
		"line 8: hosted[2].name",
		"line 9: hosted[3].name",
	}
	if len(ve.Problems) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(ve.Problems), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ve.Problems[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, ve.Problems[i], w)
		}
	}
	if !strings.HasPrefix(err.Error(), "invalid config:\n  - line 1: listen") || strings.Count(err.Error(), "\n  - ") != len(want) {
		t.Errorf("message layout:\n%s", err)
	}
	one := &config.ValidationError{Problems: []string{"x: bad"}}
	if one.Error() != "invalid config: x: bad" {
		t.Errorf("single-problem message = %q", one.Error())
	}
}

func TestWithOverrides(t *testing.T) {
	base, err := config.Parse([]byte(contract))
	if err != nil {
		t.Fatal(err)
	}
	c, err := base.WithOverrides(":6000", "/srv/wharf")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":6000" || c.DataDir != "/srv/wharf" || c.Hosted[0].Name != "team" {
		t.Errorf("overridden = %+v", c)
	}
	if base.Listen != "127.0.0.1:5000" || base.DataDir != "./data" {
		t.Errorf("WithOverrides changed its receiver: %+v", base)
	}
	for _, l := range []string{":0", "127.0.0.1:65535", "[::1]:5000", "localhost:5000", "0.0.0.0:443"} {
		if _, err := base.WithOverrides(l, ""); err != nil {
			t.Errorf("listen %q: %v", l, err)
		}
	}
	same, err := base.WithOverrides("", "")
	if err != nil || same == base || same.Listen != base.Listen || same.DataDir != base.DataDir {
		t.Errorf("empty overrides = %+v, %v", same, err)
	}
	_, err = base.WithOverrides("not-an-address", "")
	if err == nil || !strings.Contains(err.Error(), "listen") || !strings.Contains(err.Error(), "not-an-address") {
		t.Errorf("invalid override error = %v", err)
	}
	// The bad value came from the command line, not line 1 of the file.
	if err != nil && strings.Contains(err.Error(), "line 1") {
		t.Errorf("override error blames the file: %v", err)
	}
	emb := config.Embedded()
	e, err := emb.WithOverrides("127.0.0.1:0", "")
	if err != nil || e.Listen != "127.0.0.1:0" || e.DataDir != emb.DataDir || emb.Listen != ":5000" {
		t.Errorf("Embedded().WithOverrides = %+v, %v", e, err)
	}
}

// same compares configs by what they mean (nil and empty lists alike).
func same(t *testing.T, a, b *config.Config) {
	t.Helper()
	if a.Listen != b.Listen || a.DataDir != b.DataDir || a.HostAll != b.HostAll ||
		a.Log.Level != b.Log.Level || a.Log.Format != b.Log.Format ||
		(a.Log.AccessLog == nil) != (b.Log.AccessLog == nil) ||
		(a.Log.AccessLog != nil && *a.Log.AccessLog != *b.Log.AccessLog) ||
		len(a.Hosted) != len(b.Hosted) {
		t.Fatalf("configs differ:\n%+v\n%+v", a, b)
	}
	for i := range a.Hosted {
		if a.Hosted[i] != b.Hosted[i] {
			t.Fatalf("hosted[%d]: %+v vs %+v", i, a.Hosted[i], b.Hosted[i])
		}
	}
}

func TestSanitizeYAMLRoundTrip(t *testing.T) {
	for _, in := range []string{
		contract,
		"",
		"listen: \":5000\"\nlog:\n  level: warn\n  format: json\n  access_log: false\nhosted:\n  - name: a\n  - name: b/c\n",
		"listen: \"[::1]:5000\"\ndata_dir: \"/path with spaces/#not a comment\"\n",
	} {
		c, err := config.Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		s := c.Sanitize()
		if s == c {
			t.Fatal("Sanitize returned its receiver")
		}
		same(t, c, s)
		out := s.YAML()
		again, err := config.Parse([]byte(out))
		if err != nil {
			t.Fatalf("YAML output does not parse: %v\n%s", err, out)
		}
		same(t, c, again)
		if again.YAML() != out {
			t.Errorf("YAML not stable:\n%s\nvs\n%s", out, again.YAML())
		}
	}
	// The embedded default renders and parses too. HostAll is not config
	// data (yaml:"-"): it never comes back from YAML.
	e := config.Embedded()
	out := e.Sanitize().YAML()
	again, err := config.Parse([]byte(out))
	if err != nil {
		t.Fatalf("Embedded YAML does not parse: %v\n%s", err, out)
	}
	if again.HostAll {
		t.Error("HostAll came back from YAML")
	}
	again.HostAll = e.HostAll
	same(t, e, again)
	if again.YAML() != out {
		t.Errorf("Embedded YAML not stable:\n%s\nvs\n%s", out, again.YAML())
	}
}

func TestSanitizeCopiesHosted(t *testing.T) {
	c, err := config.Parse([]byte(contract))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sanitize()
	s.Hosted[0].Name = "changed"
	if c.Hosted[0].Name != "team" {
		t.Error("Sanitize shares the hosted list with the original")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "wharf.yaml")
	if err := os.WriteFile(good, []byte(contract), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(good)
	if err != nil || c.Hosted[0].Name != "team" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: :5000\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+": line 2: unknown key bogus") {
		t.Errorf("Load(bad) = %v", err)
	}
	_, err = config.Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}
