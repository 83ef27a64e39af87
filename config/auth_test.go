package config

import (
	"strings"
	"testing"
	"time"
)

// The auth contract of issue 5, added to the earlier contract configs.
func TestAuthContract(t *testing.T) {
	c, err := Parse([]byte(`listen: 127.0.0.1:5000
data_dir: ./data
proxies:
  - name: hub
    upstream: http://127.0.0.1:5001
    default: true
  - name: other
    upstream: http://127.0.0.1:5002
hosted:
  - name: team
cache:
  max_size: 300MiB
auth:
  htpasswd: ./htpasswd
`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Auth.Enabled() || c.Auth.Htpasswd != "./htpasswd" || c.Auth.TokenTTL.Std() != DefaultTokenTTL {
		t.Errorf("auth = %+v", c.Auth)
	}
	if !c.Proxies[0].AllowsAnonymousPull() || c.Hosted[0].AnonymousPull {
		t.Error("defaults: proxies anonymous, hosted not")
	}
	if c.TLS.Mode != TLSOff || c.TLS.Enabled() {
		t.Errorf("tls default %+v", c.TLS)
	}
}

func TestAuthAndTLSValues(t *testing.T) {
	c, err := Parse([]byte(`hosted:
  - name: team
    anonymous_pull: true
proxies:
  - name: hub
    upstream: https://registry-1.docker.io
    anonymous_pull: false
auth:
  htpasswd: /etc/wharf/htpasswd
  admins: [root, group:ops]
  ldap:
    url: ldaps://ldap.example.org
    bind_dn: cn=reader,dc=example,dc=org
    bind_password: hunter2
    base_dn: ou=people,dc=example,dc=org
  rules:
    - repository: team/*
      push: [group:devs]
tls:
  mode: acme
  hosts: [registry.example.org]
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Auth.LDAP
	if l.UserFilter != "(uid={username})" || l.GroupAttribute != "memberOf" || l.Timeout.Std() != 5*time.Second || l.CacheTTL.Std() != time.Minute {
		t.Errorf("ldap defaults %+v", l)
	}
	if c.TLS.ACMEDirectory != LetsEncryptURL || c.TLS.HTTPListen != ":80" {
		t.Errorf("acme defaults %+v", c.TLS)
	}
	if !c.Hosted[0].AnonymousPull || c.Proxies[0].AllowsAnonymousPull() {
		t.Error("anonymous_pull not read")
	}
	out := c.Sanitize().YAML()
	if strings.Contains(out, "hunter2") || !strings.Contains(out, "******") {
		t.Errorf("bind password not masked:\n%s", out)
	}
	if c.Auth.LDAP.BindPassword != "hunter2" {
		t.Error("Sanitize changed the original")
	}
}

func TestAuthAndTLSErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"auth:\n  rules:\n    - repository: x/*\n      pull: [a]\n", "need a user source"},
		{"auth:\n  htpasswd: h\n  token_ttl: 10s\n", "auth.token_ttl"},
		{"auth:\n  htpasswd: h\n  rules:\n    - repository: x/*\n", "at least one of pull, push and delete"},
		{"auth:\n  htpasswd: h\n  rules:\n    - pull: [a]\n", "repository glob"},
		{"auth:\n  htpasswd: h\n  rules:\n    - repository: \"x/[\"\n      pull: [a]\n", "not a valid glob"},
		{"auth:\n  htpasswd: h\n  admins: [\"*\"]\n", "everyone an admin"},
		{"auth:\n  ldap:\n    url: http://x\n    base_dn: o=x\n", "not an ldap://"},
		{"auth:\n  ldap:\n    url: ldap://x\n", "auth.ldap.base_dn"},
		{"auth:\n  ldap:\n    url: ldaps://x\n    start_tls: true\n    base_dn: o=x\n", "already TLS"},
		{"auth:\n  ldap:\n    url: ldap://x\n    base_dn: o=x\n    user_filter: (uid=x)\n", "{username}"},
		{"auth:\n  ldap:\n    url: ldap://x\n    base_dn: o=x\n    bind_password: p\n", "bind_dn"},
		{"tls:\n  mode: on\n", "not one of off, files"},
		{"tls:\n  mode: files\n", "cert_file and key_file"},
		{"tls:\n  mode: acme\n", "tls.hosts"},
		{"tls:\n  mode: acme\n  hosts: [a.example]\n  http_listen: eighty\n", "tls.http_listen"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestPerProxyBudgets(t *testing.T) {
	c, err := Parse([]byte(`proxies:
  - name: hub
    upstream: https://registry-1.docker.io
  - name: ghcr
    upstream: https://ghcr.io
cache:
  max_size: 20GiB
  proxies:
    ghcr:
      max_size: 5GiB
      max_unused: 7d
`))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Cache.Proxies["ghcr"]; b.MaxSize != 5<<30 || b.MaxUnused.Std() != 7*24*time.Hour {
		t.Errorf("ghcr budget %+v", b)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"proxies:\n  - name: hub\n    upstream: https://x\ncache:\n  proxies:\n    quay:\n      max_size: 1GiB\n", `no proxy named "quay" (proxies: hub)`},
		{"proxies:\n  - name: hub\n    upstream: https://x\ncache:\n  proxies:\n    hub: {}\n", "set max_size, max_unused or both"},
	} {
		if _, err := Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
