//go:build linux

package settings

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestLDAPConnection runs "test connection" against the OpenLDAP the e2e
// tests use, with settings saved by SetLDAP (the bind password in its file).
func TestLDAPConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts slapd")
	}
	s := harness.StartSlapd(t, harness.SlapdOptions{TLS: true})
	savedLDAP := func(t *testing.T, l LDAP) config.LDAP {
		t.Helper()
		_, cfg := saved(t, func(d *Doc) error { return d.SetLDAP(l) })
		return *cfg.Auth.LDAP
	}
	good := LDAP{URL: s.URL, BindDN: s.BindDN, BindPassword: s.BindPassword, BaseDN: s.BaseDN}
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := closed.Addr().String()
	closed.Close()
	host := strings.TrimSuffix(strings.TrimPrefix(s.URL, "ldap://"), "/")

	for _, tc := range []struct {
		name string
		edit func(l *LDAP)
		user string
		ok   bool
		want string
	}{
		{"found", func(*LDAP) {}, "alice", true, host + ": bound as " + s.BindDN + "; found alice with DN " + s.UserDN("alice") + " in groups devs, ops"},
		{"found by group search", func(l *LDAP) { l.GroupBaseDN = s.GroupBaseDN }, "bob", true, "found bob with DN " + s.UserDN("bob") + " in groups devs"},
		{"not found", func(*LDAP) {}, "mallory", false, "bound as " + s.BindDN + ", but user mallory was not found under " + s.BaseDN + " with filter (uid={username})"},
		{"bad bind password", func(l *LDAP) { l.BindPassword = "wrong" }, "alice", false, host + " refused the service account " + s.BindDN + ": wrong bind DN or password"},
		{"bad bind DN", func(l *LDAP) { l.BindDN = "cn=nobody,dc=example,dc=org" }, "alice", false, "refused the service account cn=nobody,dc=example,dc=org"},
		{"no such base", func(l *LDAP) { l.BaseDN = "ou=nowhere,dc=example,dc=org" }, "alice", false, "the base DN ou=nowhere,dc=example,dc=org does not exist"},
		{"ambiguous", func(l *LDAP) { l.UserFilter = "(|(uid={username})(objectClass=inetOrgPerson))" }, "alice", false, "several entries match alice"},
		{"unreachable", func(l *LDAP) { l.URL = "ldap://" + deadAddr }, "alice", false, "connection refused: nothing listens on " + deadAddr},
		{"StartTLS, CA not trusted", func(l *LDAP) { l.StartTLS = true }, "alice", false, "TLS certificate not trusted"},
		{"StartTLS with the CA", func(l *LDAP) { l.StartTLS, l.CAFile = true, s.CAFile }, "alice", true, "found alice"},
		{"ldaps with the CA", func(l *LDAP) { l.URL, l.CAFile = s.LDAPSURL, s.CAFile }, "carol", true, "found carol with DN " + s.UserDN("carol")},
		{"no user named", func(*LDAP) {}, " ", false, "name a user to look up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := good
			tc.edit(&l)
			got := TestLDAP(context.Background(), savedLDAP(t, l), tc.user)
			if got.OK != tc.ok || !strings.Contains(got.Message, tc.want) {
				t.Errorf("got %+v\nwant ok=%v and %q", got, tc.ok, tc.want)
			}
		})
	}

	t.Run("directory frozen", func(t *testing.T) {
		l := savedLDAP(t, good)
		l.Timeout = config.Duration(200 * time.Millisecond)
		s.Freeze()
		defer s.Thaw()
		if got := TestLDAP(context.Background(), l, "alice"); got.OK || !strings.Contains(got.Message, "no answer from "+host) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("missing bind password file", func(t *testing.T) {
		l := savedLDAP(t, good)
		l.BindPasswordFile += ".gone"
		if got := TestLDAP(context.Background(), l, "alice"); got.OK || !strings.Contains(got.Message, "reading bind_password_file") {
			t.Errorf("got %+v", got)
		}
	})
}
