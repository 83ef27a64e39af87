//go:build linux

package harness

import (
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func TestSlapdSeedAndRestart(t *testing.T) {
	skipShort(t)
	s := StartSlapd(t, SlapdOptions{})

	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.UserDN("alice"), s.Password("alice")); err != nil {
		t.Fatalf("alice bind: %v", err)
	}
	if err := c.Bind(s.UserDN("alice"), "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("wrong password: %v, want invalid credentials", err)
	}
	if err := c.Bind(s.BindDN, s.BindPassword); err != nil {
		t.Fatalf("service account bind: %v", err)
	}
	// The overlay set memberOf for the groups added after start.
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=alice)", []string{"memberOf", "userPassword"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search alice: %v, %v", res, err)
	}
	got := res.Entries[0].GetAttributeValues("memberOf")
	slices.Sort(got)
	want := []string{"cn=devs," + s.GroupBaseDN, "cn=ops," + s.GroupBaseDN}
	if !slices.Equal(got, want) {
		t.Errorf("alice memberOf = %v, want %v", got, want)
	}
	if pw := res.Entries[0].GetAttributeValues("userPassword"); len(pw) != 0 {
		t.Errorf("the service account can read userPassword: %v", pw)
	}

	s.Stop()
	if _, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second})); err == nil {
		t.Fatal("dial succeeded with slapd stopped")
	}
	s.Start()
	c2, err := s.Dial()
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	c2.Close()
}

func TestSlapdTLS(t *testing.T) {
	skipShort(t)
	s := StartSlapd(t, SlapdOptions{TLS: true, Users: []SlapdUser{{UID: "dave", Password: "pw"}}})

	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c.Bind(s.UserDN("dave"), "pw"); err != nil {
		t.Fatalf("bind over StartTLS: %v", err)
	}

	c2, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer c2.Close()
	if err := c2.Bind(s.UserDN("dave"), "pw"); err != nil {
		t.Fatalf("bind over ldaps: %v", err)
	}

	// An untrusting client fails the handshake.
	if c3, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{ServerName: "127.0.0.1"})); err == nil {
		c3.Close()
		t.Fatal("ldaps without the CA succeeded")
	}
}
