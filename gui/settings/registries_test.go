package settings

import (
	"os"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

func TestRegistryEditsThatFail(t *testing.T) {
	ghcr := Proxy{Name: "ghcr", Upstream: "https://ghcr.io"}
	for _, tc := range []struct {
		name, want string
		edit       func(d *Doc) error
	}{
		{"empty proxy name", "a proxy needs a name", func(d *Doc) error { return d.AddProxy(Proxy{Upstream: "https://ghcr.io"}) }},
		{"duplicate proxy", `a proxy named "hub" already exists`, func(d *Doc) error { return d.AddProxy(Proxy{Name: "hub", Upstream: "https://ghcr.io"}) }},
		{"proxy named like hosted", `a hosted namespace named "team" already exists`, func(d *Doc) error { return d.AddProxy(Proxy{Name: "team", Upstream: "https://ghcr.io"}) }},
		{"bad URL", `"ghcr.io" is not a registry URL`, func(d *Doc) error { return d.AddProxy(Proxy{Name: "ghcr", Upstream: "ghcr.io"}) }},
		{"URL with spaces", `is not a registry URL`, func(d *Doc) error { return d.AddProxy(Proxy{Name: "ghcr", Upstream: "https://gh cr.io"}) }},
		{"bad proxy name", `"GHCR" is not a valid path prefix`, func(d *Doc) error { return d.AddProxy(Proxy{Name: "GHCR", Upstream: "https://ghcr.io"}) }},
		{"password without user", "a password needs a user name", func(d *Doc) error {
			return d.AddProxy(Proxy{Name: "ghcr", Upstream: "https://ghcr.io", Password: "x"})
		}},
		{"edit missing proxy", `there is no proxy "ghcr"`, func(d *Doc) error { return d.EditProxy("ghcr", ghcr) }},
		{"rename onto hosted", `a hosted namespace named "team" already exists`, func(d *Doc) error {
			return d.EditProxy("hub", Proxy{Name: "team", Upstream: config.DockerHubURL})
		}},
		{"remove missing proxy", `there is no proxy "ghcr"`, func(d *Doc) error { return d.RemoveProxy("ghcr") }},
		{"empty hosted", "a hosted namespace needs a name", func(d *Doc) error { return d.AddHosted(" ") }},
		{"duplicate hosted", `a hosted namespace named "team" already exists`, func(d *Doc) error { return d.AddHosted("team") }},
		{"nested hosted", `namespace "team/x" is nested inside "team"`, func(d *Doc) error { return d.AddHosted("team/x") }},
		{"remove missing hosted", `there is no hosted namespace "ci"`, func(d *Doc) error { return d.RemoveHosted("ci") }},
	} {
		t.Run(tc.name, func(t *testing.T) { failing(t, tc.want, tc.edit) })
	}
}

func TestProxyCredentialsGoToAPasswordFile(t *testing.T) {
	d := load(t, sample)
	if err := d.AddProxy(Proxy{Name: "ghcr", Upstream: "https://ghcr.io", Username: "me", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	text := read(t, d.Path())
	if strings.Contains(text, "s3cret") {
		t.Fatalf("the password is in the YAML:\n%s", text)
	}
	pw := d.secretPath("proxy-ghcr")
	if !strings.Contains(text, "password_file: "+pw) {
		t.Errorf("no password_file %s in:\n%s", pw, text)
	}
	if fi, err := os.Stat(pw); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v, %v", fi, err)
	}
	// The server reads it back as the proxy's password.
	cfg, err := config.Load(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cfg.Proxies[1].ResolvePassword(); got != "s3cret" || err != nil {
		t.Errorf("ResolvePassword = %q, %v", got, err)
	}

	// An edit without a password keeps it; one without a user drops it.
	if err := d.EditProxy("ghcr", Proxy{Name: "ghcr", Upstream: "https://ghcr.io", Username: "me2"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := d.proxy("ghcr"); p.PasswordFile != pw || p.Username != "me2" {
		t.Errorf("after an edit: %+v", p)
	}
	if err := d.EditProxy("ghcr", Proxy{Name: "ghcr", Upstream: "https://ghcr.io"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(read(t, d.Path()), "password_file") {
		t.Error("credentials still in the config")
	}
	if _, err := os.Stat(pw); !os.IsNotExist(err) {
		t.Errorf("the password file outlived its credentials: %v", err)
	}
}

func TestProxyEdits(t *testing.T) {
	d := load(t, sample)
	for _, p := range Presets()[1:] {
		if err := d.AddProxy(Proxy{Name: p.Name, Upstream: p.Upstream}); err != nil {
			t.Fatalf("preset %s: %v", p.Label, err)
		}
	}
	// A new default takes over from the old one.
	if err := d.EditProxy("quay", Proxy{Name: "quay", Upstream: "https://quay.io", Default: true}); err != nil {
		t.Fatal(err)
	}
	if got := d.Config().DefaultProxy().Name; got != "quay" {
		t.Errorf("default = %s", got)
	}
	if err := d.RemoveProxy("hub"); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveHosted("team"); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range d.Proxies() {
		names = append(names, p.Name)
	}
	if strings.Join(names, " ") != "ghcr quay k8s gcr mcr" || len(d.Hosted()) != 0 {
		t.Errorf("proxies %v, hosted %v", names, d.Hosted())
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(d.Path()); err != nil {
		t.Errorf("wharf config check would refuse the result: %v", err)
	}
	if text := read(t, d.Path()); !strings.Contains(text, "# wharf on the office box") {
		t.Errorf("comment lost:\n%s", text)
	}
}

func TestEditsOnAnEmptyOrFlowStyleFile(t *testing.T) {
	for _, text := range []string{"", "# just a comment\n", "~\n", "null\n", "---\n", "--- # c\n...\n", "{}\n", "proxies: [{name: hub, upstream: \"https://registry-1.docker.io\"}]\nhosted: []\n"} {
		d := load(t, text)
		if err := d.AddProxy(Proxy{Name: "ghcr", Upstream: "https://ghcr.io"}); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if err := d.AddHosted("team"); err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if _, err := d.Save(); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(d.Path())
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if cfg.Hosted[0].Name != "team" || cfg.Proxies[len(cfg.Proxies)-1].Name != "ghcr" {
			t.Errorf("%q became:\n%s", text, read(t, d.Path()))
		}
	}
}

func TestEditsOnOddlyWrittenFiles(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"null lists", "proxies:\nhosted:\n"},
		{"anchored proxy", "proxies:\n  - &hub {name: hub, upstream: \"https://registry-1.docker.io\"}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := load(t, tc.text)
			if err := d.AddProxy(Proxy{Name: "ghcr", Upstream: "https://ghcr.io", Default: true}); err != nil {
				t.Fatal(err)
			}
			if err := d.AddHosted("team"); err != nil {
				t.Fatal(err)
			}
			if got := d.Config().DefaultProxy(); got == nil || got.Name != "ghcr" {
				t.Errorf("default = %+v", got)
			}
		})
	}
}
