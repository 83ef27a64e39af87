package settings

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

func TestAccessEditsThatFail(t *testing.T) {
	ldapOK := LDAP{URL: "ldap://127.0.0.1:389", BaseDN: "ou=people,dc=example,dc=org"}
	for _, tc := range []struct {
		name, want string
		edit       func(d *Doc) error
	}{
		{"anonymous pull of nothing", `there is no hosted namespace or proxy "nope"`, func(d *Doc) error { return d.SetAnonymousPull("nope", true) }},
		{"ldap bad URL", `"http://x" is not a directory address`, func(d *Doc) error { l := ldapOK; l.URL = "http://x"; return d.SetLDAP(l) }},
		{"ldap no base", "set where users are searched", func(d *Doc) error { l := ldapOK; l.BaseDN = ""; return d.SetLDAP(l) }},
		{"ldap password without DN", "a bind password needs a bind DN", func(d *Doc) error { l := ldapOK; l.BindPassword = "x"; return d.SetLDAP(l) }},
		{"ldap bad filter", "must contain {username}", func(d *Doc) error { l := ldapOK; l.UserFilter = "(uid=alice)"; return d.SetLDAP(l) }},
		{"ldaps with start_tls", "ldaps:// is already TLS", func(d *Doc) error {
			l := ldapOK
			l.URL, l.StartTLS = "ldaps://127.0.0.1:636", true
			return d.SetLDAP(l)
		}},
		{"tls mode", `"on" is not a TLS mode`, func(d *Doc) error { return d.SetTLS(TLS{Mode: "on"}) }},
		{"tls files without files", "mode files needs cert_file and key_file", func(d *Doc) error { return d.SetTLS(TLS{Mode: config.TLSFiles}) }},
		{"acme without hosts", "mode acme needs the host names", func(d *Doc) error { return d.SetTLS(TLS{Mode: config.TLSACME}) }},
		{"users without htpasswd", "htpasswd users are off", func(d *Doc) error { _, err := d.Users(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) { failing(t, tc.want, tc.edit) })
	}
}

func TestAnonymousPullAndAuthSwitches(t *testing.T) {
	d := load(t, sample)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.SetHtpasswd("htpasswd"))
	must(d.SetAnonymousPull("team", true))
	must(d.SetAnonymousPull("hub", false))
	c := d.Config()
	if !c.Hosted[0].AnonymousPull || c.Proxies[0].AllowsAnonymousPull() {
		t.Errorf("switches not set: %+v %+v", c.Hosted[0], c.Proxies[0])
	}
	if want := filepath.Join(filepath.Dir(d.Path()), "htpasswd"); c.Auth.Htpasswd != want {
		t.Errorf("htpasswd = %s, want %s", c.Auth.Htpasswd, want)
	}
	ch, err := d.Save()
	must(err)
	if ch.String() != "applies after a restart (hosted, proxies, auth (turning it on))" {
		t.Errorf("change: %s", ch)
	}
	// Back to the defaults: the keys go away again.
	must(d.SetAnonymousPull("team", false))
	must(d.SetAnonymousPull("hub", true))
	must(d.SetHtpasswd(""))
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if text := read(t, d.Path()); strings.Contains(text, "anonymous_pull") || strings.Contains(text, "auth") {
		t.Errorf("defaults written out:\n%s", text)
	}
}

func TestLDAPSettingsKeepThePasswordOutOfTheYAML(t *testing.T) {
	d := load(t, sample+"auth:\n  htpasswd: ./htpasswd # local users\n")
	l := LDAP{URL: "ldap://127.0.0.1:389", BindDN: "cn=reader,dc=example,dc=org", BindPassword: "reader-secret", BaseDN: "ou=people,dc=example,dc=org"}
	if err := d.SetLDAP(l); err != nil {
		t.Fatal(err)
	}
	ch, err := d.Save()
	if err != nil {
		t.Fatal(err)
	}
	if ch.String() != "applies now (auth)" {
		t.Errorf("change: %s", ch)
	}
	text := read(t, d.Path())
	if strings.Contains(text, "reader-secret") || !strings.Contains(text, "# local users") {
		t.Errorf("saved:\n%s", text)
	}
	pw := d.Config().Auth.LDAP.BindPasswordFile
	if fi, err := os.Stat(pw); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("bind password file %s: %v %v", pw, fi, err)
	}
	if got, _ := d.Config().Auth.LDAP.ResolveBindPassword(); got != "reader-secret" {
		t.Errorf("bind password reads back as %q", got)
	}
	if err := d.RemoveLDAP(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pw); !os.IsNotExist(err) {
		t.Errorf("bind password file left behind: %v", err)
	}
	if d.Config().Auth.Htpasswd == "" {
		t.Error("removing LDAP removed htpasswd too")
	}
}

func TestUsers(t *testing.T) {
	d := load(t, sample+"auth: {htpasswd: ./htpasswd}\n")
	if err := d.SetHtpasswd("users"); err != nil {
		t.Fatal(err)
	}
	u, err := d.Users()
	if err != nil {
		t.Fatal(err)
	}
	if names, err := u.List(); err != nil || len(names) != 0 {
		t.Fatalf("List of a missing file = %v, %v", names, err)
	}
	for _, n := range []string{"carol", "alice"} {
		if err := u.Add(n, n+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	if names, _ := u.List(); !slices.Equal(names, []string{"alice", "carol"}) {
		t.Errorf("List = %v", names)
	}
	if fi, _ := os.Stat(u.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	before := read(t, u.Path)
	for _, tc := range []struct {
		name, want string
		op         func() error
	}{
		{"add existing", "user alice already exists", func() error { return u.Add("alice", "x") }},
		{"add empty name", "user name is empty", func() error { return u.Add("", "x") }},
		{"add bad name", "must not contain ':'", func() error { return u.Add("a:b", "x") }},
		{"add empty password", "password is empty", func() error { return u.Add("dave", "") }},
		{"reset missing", "there is no user dave", func() error { return u.ResetPassword("dave", "x") }},
		{"reset too long", "longer than 72 bytes", func() error { return u.ResetPassword("alice", strings.Repeat("x", 73)) }},
		{"remove missing", "there is no user dave", func() error { return u.Remove("dave") }},
	} {
		if err := tc.op(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if read(t, u.Path) != before {
			t.Fatalf("%s changed the file", tc.name)
		}
	}
	if err := u.ResetPassword("alice", "new"); err != nil {
		t.Fatal(err)
	}
	if read(t, u.Path) == before {
		t.Error("reset did not change the hash")
	}
	if err := u.Remove("carol"); err != nil {
		t.Fatal(err)
	}
	if names, _ := u.List(); !slices.Equal(names, []string{"alice"}) {
		t.Errorf("List = %v", names)
	}
	if err := (Users{Path: filepath.Join(t.TempDir(), "none")}).Remove("x"); err == nil || !strings.Contains(err.Error(), "there is no user x") {
		t.Errorf("Remove from a missing file = %v", err)
	}
}

func TestTLSAndCATrust(t *testing.T) {
	d := load(t, sample)
	if err := d.SetTLS(TLS{Mode: config.TLSSelfSigned, Hosts: []string{"registry.lan"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetTLS(TLS{Mode: config.TLSFiles, CertFile: "/etc/wharf/cert.pem", KeyFile: "/etc/wharf/key.pem"}); err != nil {
		t.Fatal(err)
	}
	if c := d.Config().TLS; c.Mode != config.TLSFiles || len(c.Hosts) != 0 || c.CertFile == "" {
		t.Errorf("tls = %+v", c)
	}
	if err := d.SetTLS(TLS{Mode: config.TLSOff}); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "my data")
	d = load(t, "data_dir: "+dir+"\nlisten: :5000\n")
	ca := d.CATrust("registry.lan:5000")
	if ca.File != filepath.Join(dir, "tls", "ca.crt") || ca.Exists {
		t.Errorf("CA = %+v", ca)
	}
	q := "'" + ca.File + "'"
	want := map[string][]string{
		"Debian, Ubuntu": {"sudo cp " + q + " /usr/local/share/ca-certificates/wharf.crt", "sudo update-ca-certificates"},
		"Fedora, RHEL":   {"sudo cp " + q + " /etc/pki/ca-trust/source/anchors/wharf.crt", "sudo update-ca-trust"},
		"macOS":          {"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain " + q},
		"Docker":         {"sudo mkdir -p /etc/docker/certs.d/registry.lan:5000", "sudo cp " + q + " /etc/docker/certs.d/registry.lan:5000/ca.crt"},
	}
	for _, s := range ca.Steps {
		if !slices.Equal(s.Commands, want[s.System]) {
			t.Errorf("%s: %q, want %q", s.System, s.Commands, want[s.System])
		}
	}
	os.MkdirAll(filepath.Join(dir, "tls"), 0o755)
	os.WriteFile(ca.File, []byte("x"), 0o644)
	if ca := d.CATrust("registry.lan:443"); !ca.Exists || ca.Steps[3].Commands[1] != "sudo cp "+q+" /etc/docker/certs.d/registry.lan/ca.crt" {
		t.Errorf("CA = %+v", ca)
	}
	if ca := d.CATrust(""); !strings.HasSuffix(ca.HostPort, ":5000") {
		t.Errorf("default host = %s", ca.HostPort)
	}
}
