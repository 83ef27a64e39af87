//go:build linux

package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// ldapLog is a logger whose output a test can read while logins run.
type ldapLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *ldapLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *ldapLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *ldapLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func startSlapd(t *testing.T, opts harness.SlapdOptions) *harness.Slapd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts slapd")
	}
	return harness.StartSlapd(t, opts)
}

// ldapConfig is the config for s as config.Parse would default it, in
// memberOf mode.
func ldapConfig(s *harness.Slapd) config.LDAP {
	return config.LDAP{
		URL:                s.URL,
		BindDN:             s.BindDN,
		BindPassword:       s.BindPassword,
		BaseDN:             s.BaseDN,
		UserFilter:         "(uid={username})",
		GroupAttribute:     "memberOf",
		GroupFilter:        "(|(member={dn})(uniqueMember={dn})(memberUid={username}))",
		GroupNameAttribute: "cn",
		Timeout:            config.Duration(2 * time.Second),
		CacheTTL:           config.Duration(time.Minute),
	}
}

func newTestLDAP(t *testing.T, cfg config.LDAP, log *slog.Logger) *LDAP {
	t.Helper()
	l, err := NewLDAP(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLDAPLogin(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	memberOf := ldapConfig(s)
	search := ldapConfig(s)
	search.GroupBaseDN = s.GroupBaseDN
	anonymous := ldapConfig(s)
	anonymous.BindDN, anonymous.BindPassword = "", ""

	for name, cfg := range map[string]config.LDAP{"memberOf": memberOf, "group search": search, "anonymous search": anonymous} {
		t.Run(name, func(t *testing.T) {
			var log ldapLog
			l := newTestLDAP(t, cfg, log.logger())
			ctx := t.Context()
			for _, tc := range []struct {
				user   string
				groups []string
			}{
				{"alice", []string{"devs", "ops"}},
				{"bob", []string{"devs"}},
				{"carol", nil},
			} {
				id, err := l.Authenticate(ctx, tc.user, s.Password(tc.user))
				if err != nil {
					t.Fatalf("%s: %v", tc.user, err)
				}
				if id.User != tc.user || id.Source != "ldap" || !slices.Equal(id.Groups, tc.groups) {
					t.Errorf("%s: got %+v, want groups %v", tc.user, id, tc.groups)
				}
			}

			bad := []struct{ user, password string }{
				{"alice", "wrong"},
				{"alice", s.Password("bob")},
				{"alice", s.Password("alice") + " "},
				{"nobody", "whatever"},
				{"alice", ""},
				{"", "x"},
				{"alice\x00", s.Password("alice")},
				{" alice", s.Password("alice")},
				{"ali\nce", s.Password("alice")},
				{strings.Repeat("a", 300), "x"},
				// Filter injection: escaped, these match no entry.
				{"*", s.Password("alice")},
				{"*)(uid=*", s.Password("alice")},
				{"alice)(|(uid=*", s.Password("alice")},
				{"*)(|(objectClass=*", s.Password("alice")},
				{"al*", s.Password("alice")},
				{`alice\2a`, s.Password("alice")},
			}
			for _, b := range bad {
				id, err := l.Authenticate(ctx, b.user, b.password)
				if !errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrUnavailable) {
					t.Errorf("user %q: got %+v, %v; want ErrInvalidCredentials", b.user, id, err)
				}
			}
			for _, b := range bad {
				if b.password != "" && strings.Contains(log.String(), b.password) {
					t.Errorf("log holds a password:\n%s", log.String())
				}
			}
			if out := log.String(); strings.Contains(out, "level=WARN") {
				t.Errorf("unexpected warnings:\n%s", out)
			}
		})
	}
}

// An empty password must never reach the directory, where it would be an
// unauthenticated bind that succeeds. The "directory" is a listener that
// counts connections and hangs up on each: none may arrive for the
// rejected logins. (A port merely free a moment ago could be taken by
// another test's server in between.)
func TestLDAPRejectsBeforeAsking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	cfg := config.LDAP{
		URL:        "ldap://" + ln.Addr().String() + "/",
		BaseDN:     "ou=people,dc=example,dc=org",
		UserFilter: "(uid={username})",
		Timeout:    config.Duration(time.Second),
	}
	l := newTestLDAP(t, cfg, nil)
	for _, c := range []struct{ user, password string }{{"alice", ""}, {"", "pw"}, {"a\x00b", "pw"}} {
		if _, err := l.Authenticate(t.Context(), c.user, c.password); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%q/%q: %v, want ErrInvalidCredentials", c.user, c.password, err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("rejected logins opened %d connections to the directory", n)
	}
	if _, err := l.Authenticate(t.Context(), "alice", "pw"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("directory hanging up: %v, want ErrUnavailable", err)
	}
}

func TestLDAPAmbiguousUser(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	cfg := ldapConfig(s)
	// Matches alice and bob whoever logs in.
	cfg.UserFilter = "(|(uid={username})(uid=bob))"
	var log ldapLog
	l := newTestLDAP(t, cfg, log.logger())
	if _, err := l.Authenticate(t.Context(), "alice", s.Password("alice")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("got %v, want ErrInvalidCredentials", err)
	}
	if out := log.String(); !strings.Contains(out, "several entries") || !strings.Contains(out, "user=alice") {
		t.Errorf("no warning naming the user:\n%s", out)
	}
	// Three matches are more than the size limit of 2.
	cfg.UserFilter = "(|(uid={username})(uid=bob)(uid=carol))"
	l = newTestLDAP(t, cfg, nil)
	if _, err := l.Authenticate(t.Context(), "alice", s.Password("alice")); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("three matches: got %v, want ErrInvalidCredentials", err)
	}
}

func TestLDAPUnavailable(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	cfg := ldapConfig(s)
	timeout := 500 * time.Millisecond
	cfg.Timeout = config.Duration(timeout)
	var log ldapLog
	l := newTestLDAP(t, cfg, log.logger())
	ctx := t.Context()

	login := func(user, password string) (time.Duration, error) {
		start := time.Now()
		_, err := l.Authenticate(ctx, user, password)
		return time.Since(start), err
	}
	for _, u := range []string{"alice", "bob"} { // two connections' worth in the pool
		if _, err := login(u, s.Password(u)); err != nil {
			t.Fatal(err)
		}
	}

	s.Stop()
	if _, err := login("alice", s.Password("alice")); err != nil {
		t.Errorf("cached login with the directory down: %v", err)
	}
	for _, c := range []struct{ user, password string }{
		{"carol", s.Password("carol")},
		{"alice", "wrong"}, // cannot be checked, so not "invalid" either
	} {
		d, err := login(c.user, c.password)
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s with the directory down: %v, want ErrUnavailable", c.user, err)
		}
		t.Logf("%s with the directory down: %s", c.user, d)
		if d > timeout {
			t.Errorf("%s: took %s with the directory down; timeout is %s", c.user, d, timeout)
		}
	}
	out := log.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "user=carol") {
		t.Errorf("no warning naming carol:\n%s", out)
	}
	for _, u := range []string{"alice", "carol"} {
		if strings.Contains(out, s.Password(u)) {
			t.Errorf("log holds %s's password:\n%s", u, out)
		}
	}

	// The pool drops the dead connections and the next login dials.
	s.Start()
	for _, u := range []string{"carol", "bob", "alice", "carol"} {
		if _, err := login(u, s.Password(u)+"-not-cached"); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s after restart, wrong password: %v, want ErrInvalidCredentials", u, err)
		}
		if _, err := login(u, s.Password(u)); err != nil {
			t.Errorf("%s after restart: %v", u, err)
		}
	}

	// A hung directory (SIGSTOP) answers nothing: the pooled connection's
	// search times out after Timeout.
	s.Freeze()
	l.cache = nil
	d, err := login("bob", s.Password("bob"))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("hung directory: %v, want ErrUnavailable", err)
	}
	t.Logf("hung directory: %s", d)
	if d > 3*timeout {
		t.Errorf("hung directory: took %s; timeout is %s", d, timeout)
	}
	// The caller's deadline is kept when it is shorter than Timeout.
	l2 := newTestLDAP(t, ldapConfig(s), nil) // Timeout 2s
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = l2.Authenticate(short, "bob", s.Password("bob"))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("caller deadline of 200ms: took %s", d)
	}
	s.Thaw()
	if _, err := login("bob", s.Password("bob")); err != nil {
		t.Errorf("after thaw: %v", err)
	}
}

// A pooled connection the server closes just as a login uses it (the
// reader has not noticed yet) costs a retry on a new connection, not a
// failed login.
func TestLDAPRetriesDeadPooledConnection(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	l := newTestLDAP(t, ldapConfig(s), nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = c.Read(make([]byte, 1)) // the search arrives: hang up
		c.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dead := ldap.NewConn(nc, false)
	dead.Start()
	l.put(dead)

	id, err := l.Authenticate(t.Context(), "alice", s.Password("alice"))
	if err != nil || id.User != "alice" {
		t.Fatalf("got %+v, %v", id, err)
	}
	if !dead.IsClosing() {
		t.Error("the dead connection was not used")
	}
}

// A service account the directory rejects is a broken setup, not a
// wrong user password.
func TestLDAPServiceAccountRejected(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	cfg := ldapConfig(s)
	cfg.BindPassword = "not the reader's"
	var log ldapLog
	l := newTestLDAP(t, cfg, log.logger())
	if _, err := l.Authenticate(t.Context(), "alice", s.Password("alice")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if out := log.String(); !strings.Contains(out, "user=alice") || strings.Contains(out, cfg.BindPassword) || strings.Contains(out, s.Password("alice")) {
		t.Errorf("log:\n%s", out)
	}
}

func TestLDAPConcurrent(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	for _, ttl := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("cache ", ttl), func(t *testing.T) {
			cfg := ldapConfig(s)
			cfg.GroupBaseDN = s.GroupBaseDN
			cfg.CacheTTL = config.Duration(ttl)
			l := newTestLDAP(t, cfg, nil)
			want := map[string][]string{"alice": {"devs", "ops"}, "bob": {"devs"}, "carol": nil}
			users := []string{"alice", "bob", "carol"}
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for g := range 12 {
				wg.Go(func() {
					for i := range 10 {
						u := users[(g+i)%len(users)]
						pw := s.Password(u)
						wrong := (g+i)%4 == 0
						if wrong {
							pw += "x"
						}
						id, err := l.Authenticate(t.Context(), u, pw)
						switch {
						case wrong && !errors.Is(err, ErrInvalidCredentials):
							errs <- fmt.Errorf("%s wrong password: %v", u, err)
						case !wrong && err != nil:
							errs <- fmt.Errorf("%s: %v", u, err)
						case !wrong && (id.User != u || !slices.Equal(id.Groups, want[u])):
							errs <- fmt.Errorf("%s: got %+v", u, id)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			l.mu.Lock()
			idle := len(l.idle)
			l.mu.Unlock()
			if idle > ldapMaxIdle {
				t.Errorf("%d idle connections, want at most %d", idle, ldapMaxIdle)
			}
		})
	}
}

func TestLDAPTLS(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{TLS: true})
	startTLS := ldapConfig(s)
	startTLS.StartTLS = true
	startTLS.CAFile = s.CAFile
	ldaps := ldapConfig(s)
	ldaps.URL = s.LDAPSURL
	ldaps.CAFile = s.CAFile
	insecure := ldaps
	insecure.CAFile, insecure.Insecure = "", true
	untrusted := ldaps
	untrusted.CAFile = ""
	untrustedStartTLS := startTLS
	untrustedStartTLS.CAFile = ""

	for _, tc := range []struct {
		name string
		cfg  config.LDAP
		ok   bool
	}{
		{"StartTLS with CA file", startTLS, true},
		{"ldaps with CA file", ldaps, true},
		{"ldaps insecure", insecure, true},
		{"ldaps untrusted", untrusted, false},
		{"StartTLS untrusted", untrustedStartTLS, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLDAP(t, tc.cfg, nil)
			id, err := l.Authenticate(t.Context(), "alice", s.Password("alice"))
			if !tc.ok {
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("got %+v, %v; want ErrUnavailable", id, err)
				}
				return
			}
			if err != nil || !slices.Equal(id.Groups, []string{"devs", "ops"}) {
				t.Fatalf("got %+v, %v", id, err)
			}
			if _, err := l.Authenticate(t.Context(), "bob", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}

func TestNewLDAPErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := config.LDAP{URL: "ldap://127.0.0.1:1/", BaseDN: "dc=example,dc=org", UserFilter: "(uid={username})"}
	for _, tc := range []struct {
		name string
		mod  func(*config.LDAP)
	}{
		{"http URL", func(c *config.LDAP) { c.URL = "http://x/" }},
		{"no host", func(c *config.LDAP) { c.URL = "ldap:///" }},
		{"ldaps and StartTLS", func(c *config.LDAP) { c.URL, c.StartTLS = "ldaps://x/", true }},
		{"filter without {username}", func(c *config.LDAP) { c.UserFilter = "(uid=alice)" }},
		{"broken filter", func(c *config.LDAP) { c.UserFilter = "(uid={username}" }},
		{"bind DN without password", func(c *config.LDAP) { c.BindDN = "cn=reader,dc=example,dc=org" }},
		{"password env unset", func(c *config.LDAP) {
			c.BindDN, c.BindPasswordEnv = "cn=reader,dc=example,dc=org", "WHARF_TEST_NO_SUCH_VARIABLE"
		}},
		{"missing CA file", func(c *config.LDAP) { c.StartTLS, c.CAFile = true, filepath.Join(dir, "none.pem") }},
		{"CA file not PEM", func(c *config.LDAP) { c.StartTLS, c.CAFile = true, notPEM }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mod(&cfg)
			if l, err := NewLDAP(cfg, nil); err == nil {
				l.Close()
				t.Fatal("NewLDAP accepted it")
			}
		})
	}
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := base
	cfg.BindDN, cfg.BindPasswordFile = "cn=reader,dc=example,dc=org", pwFile
	l, err := NewLDAP(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.bindPassword != "s3cret" {
		t.Errorf("bind password from file = %q", l.bindPassword)
	}
}

func TestLDAPCache(t *testing.T) {
	c := newLDAPCache(time.Minute, 3)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }

	alice := Identity{User: "alice", Groups: []string{"devs"}, Source: "ldap"}
	ka := c.key("alice", "pw")
	if ka == c.key("alice", "pw2") || ka == c.key("alicep", "w") || ka != c.key("alice", "pw") {
		t.Fatal("keys do not tell user and password apart")
	}
	if c2 := newLDAPCache(time.Minute, 3); c2.key("alice", "pw") == ka {
		t.Error("two caches share a key: the HMAC key is not random")
	}
	if _, ok := c.get(ka); ok {
		t.Fatal("hit in an empty cache")
	}
	c.put(ka, alice)
	alice.Groups[0] = "changed by the caller"
	id, ok := c.get(ka)
	if !ok || id.User != "alice" || !slices.Equal(id.Groups, []string{"devs"}) {
		t.Fatalf("get = %+v, %v", id, ok)
	}
	id.Groups[0] = "changed again"
	if id, _ := c.get(ka); id.Groups[0] != "devs" {
		t.Fatalf("a caller changed the cached groups: %v", id.Groups)
	}

	now = now.Add(59 * time.Second)
	if _, ok := c.get(ka); !ok {
		t.Fatal("expired before its TTL")
	}
	now = now.Add(time.Second)
	if _, ok := c.get(ka); ok {
		t.Fatal("still there after its TTL")
	}
	if n := c.len(); n != 0 {
		t.Fatalf("expired entry kept: %d entries", n)
	}

	// Full: the oldest goes.
	keys := make([][32]byte, 5)
	for i := range keys {
		keys[i] = c.key(fmt.Sprint("user", i), "pw")
		c.put(keys[i], Identity{User: fmt.Sprint("user", i)})
		now = now.Add(time.Second)
	}
	if n := c.len(); n != 3 {
		t.Fatalf("%d entries, want the bound of 3", n)
	}
	for i, k := range keys {
		if _, ok := c.get(k); ok != (i >= 2) {
			t.Errorf("user%d cached = %v", i, ok)
		}
	}
	// Expired entries go before live ones are evicted.
	now = now.Add(time.Minute)
	c.put(ka, alice)
	if n := c.len(); n != 1 {
		t.Errorf("%d entries after the others expired, want 1", n)
	}
	// Putting a key again refreshes it rather than adding a second entry.
	c.put(ka, alice)
	if n := c.len(); n != 1 {
		t.Errorf("%d entries after putting the same key twice", n)
	}
}

// A failed login is not cached: the right password works right after a
// wrong one, and a wrong one after a right one fails.
func TestLDAPCachesOnlySuccess(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	l := newTestLDAP(t, ldapConfig(s), nil)
	ctx := t.Context()
	if _, err := l.Authenticate(ctx, "bob", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if n := l.cache.len(); n != 0 {
		t.Fatalf("a failed login was cached (%d entries)", n)
	}
	if _, err := l.Authenticate(ctx, "bob", s.Password("bob")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Authenticate(ctx, "bob", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password after a good login: %v", err)
	}
	if n := l.cache.len(); n != 1 {
		t.Fatalf("%d cache entries, want 1", n)
	}
}

func TestLDAPLookup(t *testing.T) {
	s := startSlapd(t, harness.SlapdOptions{})
	memberOf := ldapConfig(s)
	search := ldapConfig(s)
	search.GroupBaseDN = s.GroupBaseDN
	for name, cfg := range map[string]config.LDAP{"memberOf": memberOf, "group search": search} {
		t.Run(name, func(t *testing.T) {
			l := newTestLDAP(t, cfg, nil)
			e, err := l.Lookup(context.Background(), "alice")
			if err != nil || e.DN != s.UserDN("alice") || !slices.Equal(e.Groups, []string{"devs", "ops"}) {
				t.Errorf("Lookup(alice) = %+v, %v", e, err)
			}
			if _, err := l.Lookup(context.Background(), "nobody"); !errors.Is(err, ErrLDAPNoUser) {
				t.Errorf("Lookup(nobody) = %v, want ErrLDAPNoUser", err)
			}
		})
	}
	wide := ldapConfig(s)
	wide.UserFilter = "(|(uid={username})(objectClass=inetOrgPerson))"
	if _, err := newTestLDAP(t, wide, nil).Lookup(context.Background(), "alice"); !errors.Is(err, ErrLDAPAmbiguousUser) {
		t.Errorf("Lookup with a filter matching everyone = %v, want ErrLDAPAmbiguousUser", err)
	}
	bad := ldapConfig(s)
	bad.BindPassword = "wrong"
	if _, err := newTestLDAP(t, bad, nil).Lookup(context.Background(), "alice"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("Lookup with a wrong bind password = %v, want invalid credentials", err)
	}
}
