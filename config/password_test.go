package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The desktop settings store upstream and LDAP passwords as files beside
// the config: password_file and bind_password_file must read back as the
// password, trailing newline trimmed, and a missing file must say which.
func TestPasswordFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "hub.password")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	c, err := Parse([]byte(`
proxies:
  - name: hub
    upstream: https://registry-1.docker.io
    username: me
    password_file: ` + pw + `
  - name: ghcr
    upstream: https://ghcr.io
    username: me
    password_file: ` + pw + `.gone
auth:
  ldap:
    url: ldap://127.0.0.1:389
    base_dn: ou=people,dc=example,dc=org
    bind_dn: cn=reader,dc=example,dc=org
    bind_password_file: ` + pw + `
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Proxies[0].ResolvePassword(); got != "s3cret" || err != nil {
		t.Errorf("password_file = %q, %v", got, err)
	}
	if _, err := c.Proxies[1].ResolvePassword(); err == nil || !strings.Contains(err.Error(), "proxy ghcr: reading password_file") {
		t.Errorf("missing password_file = %v", err)
	}
	if got, err := c.Auth.LDAP.ResolveBindPassword(); got != "s3cret" || err != nil {
		t.Errorf("bind_password_file = %q, %v", got, err)
	}
	if s := c.Sanitize().YAML(); strings.Contains(s, "s3cret") {
		t.Errorf("sanitized config shows the password:\n%s", s)
	}
	for _, bad := range []struct{ text, want string }{
		{"proxies: [{name: hub, upstream: \"https://ghcr.io\", password_file: /x}]", "a password needs a username"},
		{"proxies: [{name: hub, upstream: \"https://ghcr.io\", username: me, password: x, password_file: /x}]", "set only one of password, password_file and password_env"},
	} {
		if _, err := Parse([]byte(bad.text)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.text, err, bad.want)
		}
	}
}
