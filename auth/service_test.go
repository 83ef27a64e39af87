package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
)

type fakeDirectory struct {
	mu    sync.Mutex
	down  bool
	users map[string]string
	calls int
}

func (f *fakeDirectory) Authenticate(_ context.Context, user, pw string) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return Identity{}, fmt.Errorf("%w: connection refused", ErrUnavailable)
	}
	if p, ok := f.users[user]; ok && p == pw && pw != "" {
		return Identity{User: user, Groups: []string{"devs"}, Source: "ldap"}, nil
	}
	return Identity{}, ErrInvalidCredentials
}

func newTestService(t *testing.T, dir *fakeDirectory) *Service {
	t.Helper()
	path := filepath.Join(t.TempDir(), "htpasswd")
	if _, err := SetPassword(path, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	cfg := config.Auth{Htpasswd: path, TokenTTL: config.Duration(time.Minute), MaxFailures: 5, FailureWindow: config.Duration(time.Minute)}
	if dir != nil {
		cfg.LDAP = &config.LDAP{URL: "ldap://unused"}
	}
	o := Options{}
	if dir != nil {
		o.LDAP = dir
	}
	s, err := New(cfg, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoginSourcesAndLDAPOutage(t *testing.T) {
	dir := &fakeDirectory{users: map[string]string{"lena": "lena-pw"}}
	s := newTestService(t, dir)
	ctx := context.Background()
	if id, err := s.Login(ctx, "alice", "alice-pw", "10.0.0.1:1"); err != nil || id.Source != "htpasswd" {
		t.Fatalf("htpasswd user: %+v %v", id, err)
	}
	if id, err := s.Login(ctx, "lena", "lena-pw", "10.0.0.1:1"); err != nil || id.Source != "ldap" || id.Groups[0] != "devs" {
		t.Fatalf("ldap user: %+v %v", id, err)
	}
	// An htpasswd user's wrong password never falls through to LDAP.
	calls := dir.calls
	if _, err := s.Login(ctx, "alice", "nope", "10.0.0.2:1"); !errors.Is(err, ErrInvalidCredentials) || dir.calls != calls {
		t.Fatalf("wrong htpasswd password: %v (ldap calls %d→%d)", err, calls, dir.calls)
	}
	dir.mu.Lock()
	dir.down = true
	dir.mu.Unlock()
	if _, err := s.Login(ctx, "lena", "lena-pw", "10.0.0.1:1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ldap down: %v", err)
	}
	if _, err := s.Login(ctx, "alice", "alice-pw", "10.0.0.1:1"); err != nil {
		t.Fatalf("htpasswd user while ldap is down: %v", err)
	}
}

func TestBruteForceIsSlowedThenRefusedPerAddress(t *testing.T) {
	s := newTestService(t, nil)
	now := time.Unix(1_700_000_000, 0)
	s.limit.now = func() time.Time { return now }
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the slow-down waits end at once: only its length is checked
	for i := 0; i < 5; i++ {
		if _, err := s.Login(ctx, "alice", "guess", "10.0.0.9:1234"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if d := s.limit.fail("10.0.0.9", "x"); d <= 0 {
		t.Errorf("no slow-down after many failures")
	}
	var lim *LimitedError
	if _, err := s.Login(context.Background(), "alice", "alice-pw", "10.0.0.9:999"); !errors.As(err, &lim) || lim.RetryAfter <= 0 {
		t.Fatalf("blocked address, right password: %v", err)
	}
	// The owner from another address gets in: a name is never locked out.
	if _, err := s.Login(context.Background(), "alice", "alice-pw", "10.0.0.10:1"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	// After the window the address may try again.
	now = now.Add(2 * time.Minute)
	if _, err := s.Login(context.Background(), "alice", "alice-pw", "10.0.0.9:1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestLimiterDelays(t *testing.T) {
	l := newLimiter(100, time.Minute)
	var got []time.Duration
	for i := 0; i < 9; i++ {
		got = append(got, l.fail("a", "u"))
	}
	want := []time.Duration{0, 0, 0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	// Failures for the same user from many addresses slow too.
	l2 := newLimiter(100, time.Minute)
	var last time.Duration
	for i := 0; i < 6; i++ {
		last = l2.fail(fmt.Sprintf("10.0.0.%d", i), "victim")
	}
	if last == 0 {
		t.Error("distributed guessing at one user is not slowed")
	}
}

func TestIdentifyTokensAndBasic(t *testing.T) {
	s := newTestService(t, nil)
	req := func(h string) *http.Request {
		r, _ := http.NewRequest("GET", "http://x/v2/", nil)
		r.RemoteAddr = "10.1.1.1:5"
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		return r
	}
	if id, err := s.Identify(req("")); err != nil || !id.Anonymous() {
		t.Fatalf("no header: %+v %v", id, err)
	}
	r := req("")
	r.SetBasicAuth("", "")
	if id, err := s.Identify(r); err != nil || !id.Anonymous() {
		t.Fatalf("empty basic is anonymous: %+v %v", id, err)
	}
	r = req("")
	r.SetBasicAuth("alice", "alice-pw")
	if id, err := s.Identify(r); err != nil || id.User != "alice" {
		t.Fatalf("basic: %+v %v", id, err)
	}
	tok, exp, err := s.IssueToken(Identity{User: "alice", Groups: []string{"g"}, Source: "htpasswd"}, nil)
	if err != nil || time.Until(exp) <= 0 {
		t.Fatal(err)
	}
	if id, err := s.Identify(req("Bearer " + tok)); err != nil || id.User != "alice" || id.Groups[0] != "g" {
		t.Fatalf("bearer: %+v %v", id, err)
	}
	// Tampering anywhere fails; so does another server's key and expiry.
	for _, bad := range []string{tok[:len(tok)-2] + "AA", strings.Replace(tok, "wharf1.", "wharf1.e", 1), "garbage", "wharf1.", "wharf1.a.b"} {
		if _, err := s.Identify(req("Bearer " + bad)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	other := newTestService(t, nil)
	if _, err := other.Identify(req("Bearer " + tok)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of another key: %v", err)
	}
	s.tokens.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := s.Identify(req("Bearer " + tok)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("expired token: %v", err)
	}
	if _, err := s.Identify(req("Digest x")); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("unknown scheme: %v", err)
	}
}

func TestTokenKeyPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := loadTokenKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := loadTokenKey(dir)
	if string(a) != string(b) || len(a) != 32 {
		t.Error("the token key changed across loads")
	}
}

func TestNilServiceAllowsAll(t *testing.T) {
	s, err := New(config.Auth{}, "", Options{})
	if err != nil || s != nil {
		t.Fatalf("New without users: %v %v", s, err)
	}
	r, _ := http.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer x")
	if id, err := s.Identify(r); err != nil || !id.Anonymous() || s.Policy().Enabled() {
		t.Error("nil service must be anonymous and allow everything")
	}
}

// TestTokensEndWithTheUser: removing an htpasswd user or changing their
// password ends the tokens issued to them at once; the other users'
// tokens keep working.
func TestTokensEndWithTheUser(t *testing.T) {
	s := newTestService(t, nil)
	reread := func() {
		s.htpasswd.mu.Lock()
		s.htpasswd.checked = time.Time{} // reread now rather than within the second
		s.htpasswd.mu.Unlock()
	}
	if _, err := SetPassword(s.htpasswd.path, "bob", "bob-pw"); err != nil {
		t.Fatal(err)
	}
	reread()
	req := func(tok string) *http.Request {
		r, _ := http.NewRequest("GET", "http://x/v2/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		return r
	}
	issue := func(user string) string {
		tok, _, err := s.IssueToken(Identity{User: user, Source: "htpasswd"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice, bob := issue("alice"), issue("bob")
	for _, tok := range []string{alice, bob} {
		if _, err := s.Identify(req(tok)); err != nil {
			t.Fatalf("fresh token: %v", err)
		}
	}
	// Change alice's password and remove bob, as `wharf user` does.
	if _, err := SetPassword(s.htpasswd.path, "alice", "new-pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := DeleteUser(s.htpasswd.path, "bob"); err != nil {
		t.Fatal(err)
	}
	reread()
	for name, tok := range map[string]string{"alice (password changed)": alice, "bob (removed)": bob} {
		if _, err := s.Identify(req(tok)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: token still accepted: %v", name, err)
		}
	}
	if _, err := s.Identify(req(issue("alice"))); err != nil {
		t.Errorf("a token issued after the change: %v", err)
	}
	if _, _, err := s.IssueToken(Identity{User: "bob", Source: "htpasswd"}, nil); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("token for a removed user: %v", err)
	}
	// An LDAP identity carries no fingerprint and is not looked up here.
	tok, _, err := s.IssueToken(Identity{User: "carol", Source: "ldap"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Identify(req(tok)); err != nil {
		t.Errorf("ldap token: %v", err)
	}
}

// TestReloadSwapsTogether: Reload reports each changed key and applies
// token_ttl, the login limits and the admins; an unusable users file
// leaves everything as it was.
func TestReloadSwapsTogether(t *testing.T) {
	s := newTestService(t, nil)
	cfg := s.cfg
	cfg.TokenTTL = config.Duration(10 * time.Minute)
	cfg.MaxFailures = 2
	cfg.Admins = []string{"alice"}
	changed, err := s.Reload(cfg)
	if err != nil || strings.Join(changed, ",") != "auth.admins,auth.token_ttl,auth.max_failures/failure_window" {
		t.Fatalf("changed %v, %v", changed, err)
	}
	_, exp, err := s.IssueToken(Identity{User: "alice", Source: "htpasswd"}, nil)
	if err != nil || time.Until(exp) < 9*time.Minute {
		t.Fatalf("token after token_ttl 10m: expires %v, %v", exp, err)
	}
	if !s.Policy().IsAdmin(Identity{User: "alice"}) {
		t.Error("alice is not an admin after the reload")
	}
	for i := 0; i < 2; i++ {
		s.Login(context.Background(), "alice", "wrong", "10.9.9.9:1")
	}
	var le *LimitedError
	if _, err := s.Login(context.Background(), "alice", "alice-pw", "10.9.9.9:1"); !errors.As(err, &le) {
		t.Errorf("third login from an address after max_failures 2: %v", err)
	}

	bad := cfg
	bad.Htpasswd = filepath.Join(t.TempDir(), "no-such-dir", "htpasswd")
	os.MkdirAll(bad.Htpasswd, 0o700) // a directory where the file should be
	if _, err := s.Reload(bad); err == nil {
		t.Fatal("reload with a directory as the users file was taken")
	}
	if s.cfg.Htpasswd != cfg.Htpasswd {
		t.Error("a refused reload changed the users file")
	}
}
