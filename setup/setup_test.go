package setup

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
)

func TestPlanDocker(t *testing.T) {
	for _, tc := range []struct {
		name, current, mirror string
		want                  map[string]any // the merged file; nil: unchanged
		insecure              string
		err                   error
	}{
		{name: "no file", mirror: "http://127.0.0.1:5000",
			want: map[string]any{"registry-mirrors": []any{"http://127.0.0.1:5000"}}},
		{name: "keeps other keys, mirror goes first", mirror: "http://10.1.2.3:5000/",
			current:  `{"storage-driver":"vfs","registry-mirrors":["https://m.example"],"log-opts":{"max-size":"10m"},"insecure-registries":["a:1"]}`,
			insecure: "10.1.2.3:5000",
			want: map[string]any{"storage-driver": "vfs", "log-opts": map[string]any{"max-size": "10m"},
				"registry-mirrors": []any{"http://10.1.2.3:5000", "https://m.example"}, "insecure-registries": []any{"a:1", "10.1.2.3:5000"}}},
		{name: "https needs no insecure entry", mirror: "https://wharf.example",
			current: "{}", want: map[string]any{"registry-mirrors": []any{"https://wharf.example"}}},
		{name: "already set up", mirror: "http://10.1.2.3:5000", insecure: "10.1.2.3:5000",
			current: `{"registry-mirrors":["http://10.1.2.3:5000/"],"insecure-registries":["10.1.2.3:5000"]}`},
		{name: "broken JSON", current: `{"registry-mirrors": [`, mirror: "http://127.0.0.1:5000", err: ErrUnparsable},
		{name: "two values", current: `{} {}`, mirror: "http://127.0.0.1:5000", err: ErrUnparsable},
		{name: "mirrors not a list", current: `{"registry-mirrors": "x"}`, mirror: "http://127.0.0.1:5000", err: errAny},
		{name: "mirror with a path", mirror: "http://127.0.0.1:5000/v2", err: errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cur []byte
			if tc.current != "" {
				cur = []byte(tc.current)
			}
			p, err := PlanDocker("/etc/docker/daemon.json", cur, tc.mirror)
			if tc.err != nil {
				if err == nil || tc.err != errAny && !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Insecure != tc.insecure {
				t.Errorf("insecure %q, want %q", p.Insecure, tc.insecure)
			}
			if tc.want == nil {
				if p.Changed() {
					t.Errorf("changed an already set-up file:\n%s", p.After)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(p.After, &got); err != nil {
				t.Fatalf("%v\n%s", err, p.After)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestCmdlineConflicts(t *testing.T) {
	got := CmdlineConflicts([]string{"/usr/bin/dockerd", "-H", "fd://", "--registry-mirror", "https://m", "--insecure-registry=a:1", "--containerd=/x"})
	want := []string{"--registry-mirror https://m", "--insecure-registry=a:1"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDaemonJSON(t *testing.T) {
	env := map[string]string{"HOME": "/home/u", "XDG_CONFIG_HOME": ""}
	if got := DaemonJSON(false, func(k string) string { return env[k] }); got != "/etc/docker/daemon.json" {
		t.Error(got)
	}
	if got := DaemonJSON(true, func(k string) string { return env[k] }); got != "/home/u/.config/docker/daemon.json" {
		t.Error(got)
	}
	env["XDG_CONFIG_HOME"] = "/x"
	if got := DaemonJSON(true, func(k string) string { return env[k] }); got != "/x/docker/daemon.json" {
		t.Error(got)
	}
}

func TestMirrorURL(t *testing.T) {
	ip := func() (string, error) { return "192.0.2.7", nil }
	for _, tc := range []struct{ yaml, want string }{
		{"listen: :5000\n", "http://192.0.2.7:5000"},
		{"listen: 0.0.0.0:5001\n", "http://192.0.2.7:5001"},
		{"listen: 127.0.0.1:5000\n", "http://127.0.0.1:5000"},
		{"listen: '[::]:5000'\n", "http://192.0.2.7:5000"},
	} {
		cfg, err := config.Parse([]byte(tc.yaml + "data_dir: /tmp/x\n"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := MirrorURL(cfg, ip)
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.yaml, got, err, tc.want)
		}
	}
}

func TestParseHubImage(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                       "docker.io/library/busybox:latest",
		"hello-world:latest":            "docker.io/library/hello-world:latest",
		"someuser/app:1.0":              "docker.io/someuser/app:1.0",
		"docker.io/library/busybox:1.2": "docker.io/library/busybox:1.2",
		"ghcr.io/x/y:1":                 "",
		"localhost:5000/x":              "",
		"busybox@sha256:00":             "",
		"Busybox":                       "",
	} {
		got, err := ParseHubImage(in)
		if want == "" {
			if err == nil {
				t.Errorf("%q: %v, want an error", in, got)
			}
			continue
		}
		if err != nil || got.String() != want {
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
}

func testUpstreams() []Upstream {
	return []Upstream{
		{Host: "docker.io", Server: "https://registry-1.docker.io"},
		{Host: "ghcr.io", Server: "https://ghcr.io", Proxy: "ghcr"},
	}
}

func TestUpstreams(t *testing.T) {
	cfg, err := config.Parse([]byte(`listen: :5000
data_dir: /tmp/x
proxies:
  - name: ghcr
    upstream: https://ghcr.io
    aliases: [ghcr.example]
  - name: hub
    upstream: https://registry-1.docker.io
    default: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Upstream{
		{Host: "docker.io", Server: "https://registry-1.docker.io"},
		{Host: "ghcr.io", Server: "https://ghcr.io", Proxy: "ghcr"},
		{Host: "ghcr.example", Server: "https://ghcr.example", Proxy: "ghcr"},
	}
	if got := Upstreams(cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestPlanContainerd(t *testing.T) {
	files := map[string]string{
		"/h/ghcr.io/hosts.toml": "# mine\nserver = \"https://ghcr.io\"\n\n[host.\"https://other.mirror\"]\n  capabilities = [\n    \"pull\",\n  ]\n",
	}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, nil
	}
	cs, err := PlanContainerd("/h", "http://10.0.0.5:5000", testUpstreams(), read)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Path != "/h/docker.io/hosts.toml" || cs[1].Path != "/h/ghcr.io/hosts.toml" {
		t.Fatalf("changes: %+v", cs)
	}
	hub := string(cs[0].After)
	for _, s := range []string{`server = "https://registry-1.docker.io"`, `[host."http://10.0.0.5:5000"]`, `capabilities = ["pull", "resolve"]`} {
		if !strings.Contains(hub, s) {
			t.Errorf("docker.io hosts.toml lacks %s:\n%s", s, hub)
		}
	}
	ghcr := string(cs[1].After)
	if i, j := strings.Index(ghcr, `[host."http://10.0.0.5:5000"]`), strings.Index(ghcr, `[host."https://other.mirror"]`); i < 0 || j < 0 || i > j || !strings.HasPrefix(ghcr, "# mine\nserver") {
		t.Errorf("ghcr.io hosts.toml does not keep the file with wharf inserted first:\n%s", ghcr)
	}
	for _, c := range cs {
		if err := checkTOML(c.After); err != nil {
			t.Errorf("%s: %v\n%s", c.Path, err, c.After)
		}
	}
	// Planned again over its own output: nothing changes.
	for _, c := range cs {
		files[c.Path] = string(c.After)
	}
	again, err := PlanContainerd("/h", "http://10.0.0.5:5000", testUpstreams(), read)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again {
		if c.Changed() {
			t.Errorf("%s changes on a second run:\n%s", c.Path, c.After)
		}
	}
	files["/h/docker.io/hosts.toml"] = "server = \"https://registry-1.docker.io\n[host\n"
	if _, err := PlanContainerd("/h", "http://10.0.0.5:5000", testUpstreams(), read); !errors.Is(err, ErrUnparsable) {
		t.Errorf("broken hosts.toml: %v, want ErrUnparsable", err)
	}
}

func TestPlanPodman(t *testing.T) {
	c, err := PlanPodman("/d/50-wharf.conf", "http://10.0.0.5:5000", testUpstreams(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := marker + " podman`: podman, skopeo and buildah pull through wharf first.\n" + `
[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "10.0.0.5:5000"
insecure = true

[[registry]]
prefix = "ghcr.io"
location = "ghcr.io"

[[registry.mirror]]
location = "10.0.0.5:5000/ghcr"
insecure = true
`
	if string(c.After) != want {
		t.Errorf("got:\n%s\nwant:\n%s", c.After, want)
	}
	if again, _ := PlanPodman("/d/50-wharf.conf", "http://10.0.0.5:5000", testUpstreams(), c.After); again.Changed() {
		t.Error("changes on a second run")
	}
	other := []byte("unqualified-search-registries = [\"docker.io\"]\n")
	merged, err := PlanPodman("/r.conf", "https://w.example", testUpstreams(), other)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(merged.After); !strings.HasPrefix(s, string(other)) || strings.Contains(s, "insecure") || !strings.Contains(s, `location = "w.example/ghcr"`) {
		t.Errorf("merged:\n%s", s)
	}
	if _, err := PlanPodman("/r.conf", "http://10.0.0.5:5000", testUpstreams(), []byte("[[registry]]\nprefix = \"docker.io\"\nlocation = \"x\"\n")); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("a file configuring docker.io already: %v", err)
	}
	if _, err := PlanPodman("/r.conf", "http://10.0.0.5:5000", testUpstreams(), []byte("[[registry]\n")); !errors.Is(err, ErrUnparsable) {
		t.Errorf("broken file: %v", err)
	}
}

func TestCheckTOML(t *testing.T) {
	for s, ok := range map[string]bool{
		"":                                  true,
		"a = 1\n[t]\nb = \"x]\" # c [\n":    true,
		"a = [\n 1,\n 2,\n]\n[[t.u]]\n":     true,
		"a = \"\"\"\nfree [ text\n\"\"\"\n": true,
		"a = [\n":                           false,
		"just words\n":                      false,
		"[t\n":                              false,
		"{\"json\": true}\n":                false,
	} {
		if err := checkTOML([]byte(s)); (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", s, err, ok)
		}
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "daemon.json")
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if b, err := Apply(Change{Path: path, After: []byte("{}\n")}, now); err != nil || b != "" {
		t.Fatalf("new file: backup %q, %v", b, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	backup, err := Apply(Change{Path: path, Before: []byte("{}\n"), After: []byte("{\"a\":1}\n")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(backup); string(b) != "{}\n" || filepath.Dir(backup) != filepath.Dir(path) {
		t.Errorf("backup %s holds %q", backup, b)
	}
	if b, _ := os.ReadFile(path); string(b) != "{\"a\":1}\n" {
		t.Errorf("file holds %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the old file's 0600", fi.Mode().Perm())
	}
	// Planned from other bytes than the file now holds: refused, untouched.
	if _, err := Apply(Change{Path: path, Before: []byte("{}\n"), After: []byte("x")}, now); !errors.Is(err, ErrChangedSincePlan) {
		t.Errorf("stale plan: %v", err)
	}
	if _, err := Apply(Change{Path: filepath.Join(dir, "gone"), Before: []byte("{}"), After: []byte("x")}, now); !errors.Is(err, ErrChangedSincePlan) {
		t.Errorf("stale plan of a removed file: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 2 {
		t.Errorf("left behind: %v", ents)
	}
}

func TestFindDocker(t *testing.T) {
	env := map[string]string{"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"}
	getenv := func(k string) string { return env[k] }
	sock := func(p string) bool { return p == "/run/user/1000/docker.sock" }
	none := func(string) bool { return false }
	for _, tc := range []struct {
		name   string
		euid   int
		exists func(string) bool
		host   string
		want   DockerDaemon
	}{
		{"root", 0, sock, "", DockerDaemon{false, "/etc/docker/daemon.json", "unix:///var/run/docker.sock", "/var/run/docker.pid"}},
		{"user with a rootless daemon", 1000, sock, "", DockerDaemon{true, "/home/u/.config/docker/daemon.json", "unix:///run/user/1000/docker.sock", "/run/user/1000/docker.pid"}},
		{"user of the system daemon", 1000, none, "", DockerDaemon{false, "/etc/docker/daemon.json", "unix:///var/run/docker.sock", "/var/run/docker.pid"}},
		{"DOCKER_HOST", 0, none, "tcp://10.0.0.1:2375", DockerDaemon{false, "/etc/docker/daemon.json", "tcp://10.0.0.1:2375", "/var/run/docker.pid"}},
	} {
		env["DOCKER_HOST"] = tc.host
		if got := FindDocker(tc.euid, getenv, tc.exists); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
