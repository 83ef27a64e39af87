package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/metrics"
)

// Source checks a user name and password: ErrInvalidCredentials for a
// wrong pair, an error wrapping ErrUnavailable when it cannot tell.
type Source interface {
	Authenticate(ctx context.Context, user, password string) (Identity, error)
}

// Service is wharf's authentication: the user sources, the policy, the
// token signer and the failed-login limiter. A nil *Service means auth is
// off: every request is anonymous and allowed.
type Service struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	opts    Options

	// What the config decides; Reload swaps these together.
	mu       sync.RWMutex
	cfg      config.Auth
	policy   *Policy
	htpasswd *Htpasswd
	ldap     Source
	tokens   *tokenSigner
	limit    *limiter
	cache    *loginCache
}

// parts is a consistent view of what Reload may swap.
type parts struct {
	htpasswd *Htpasswd
	ldap     Source
	tokens   *tokenSigner
	limit    *limiter
	cache    *loginCache
}

func (s *Service) cur() parts {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return parts{s.htpasswd, s.ldap, s.tokens, s.limit, s.cache}
}

// Options are the parts of a Service that are not configuration.
type Options struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// LDAP replaces the directory built from the config (tests).
	LDAP Source
	// TokenKey, when set, signs bearer tokens instead of the key in
	// dataDir: in cluster mode every replica has the same one, so a token
	// one replica issued is good on all of them.
	TokenKey []byte
}

// New builds the Service for cfg; it returns nil when cfg configures no
// user source. dataDir holds the token signing key ("" keeps it in memory).
func New(cfg config.Auth, dataDir string, o Options) (*Service, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	key, err := o.TokenKey, error(nil)
	if len(key) == 0 {
		if key, err = loadTokenKey(dataDir); err != nil {
			return nil, err
		}
	}
	s := &Service{
		cfg:     cfg,
		policy:  NewPolicy(cfg),
		tokens:  &tokenSigner{key: key, ttl: cfg.TokenTTL.Std(), now: time.Now},
		limit:   newLimiter(cfg.MaxFailures, cfg.FailureWindow.Std()),
		log:     o.Logger,
		metrics: o.Metrics,
		opts:    o,
		cache:   newLoginCache(time.Minute, 10_000),
	}
	if cfg.Htpasswd != "" {
		if s.htpasswd, err = NewHtpasswd(cfg.Htpasswd, o.Logger); err != nil {
			return nil, err
		}
	}
	if cfg.LDAP != nil {
		s.ldap = o.LDAP
		if s.ldap == nil {
			if s.ldap, err = newLDAPSource(*cfg.LDAP, o.Logger); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Policy is the rules to decide requests with (nil: allow everything).
func (s *Service) Policy() *Policy {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.policy
}

// Reload applies a changed auth section while the server runs: rules and
// admins, the htpasswd file's path, the LDAP settings, token_ttl and the
// failed-login limits. Nothing is swapped unless everything new could be
// built. It returns the keys that changed. Switching auth off needs a
// restart; tokens already handed out stay valid (the rules are checked
// on every request, so new rules apply to them at once).
func (s *Service) Reload(cfg config.Auth) ([]string, error) {
	if !cfg.Enabled() {
		return nil, errors.New("turning auth off (no htpasswd and no ldap left) needs a restart")
	}
	s.mu.RLock()
	old := s.cfg
	s.mu.RUnlock()
	var changed []string
	h := s.cur().htpasswd
	if cfg.Htpasswd != old.Htpasswd {
		changed = append(changed, "auth.htpasswd")
		h = nil
		if cfg.Htpasswd != "" {
			var err error
			if h, err = NewHtpasswd(cfg.Htpasswd, s.log); err != nil {
				return nil, err
			}
		}
	}
	l := s.cur().ldap
	var oldLDAP Source
	if !reflect.DeepEqual(cfg.LDAP, old.LDAP) && s.opts.LDAP == nil {
		changed = append(changed, "auth.ldap")
		oldLDAP, l = l, nil
		if cfg.LDAP != nil {
			var err error
			if l, err = newLDAPSource(*cfg.LDAP, s.log); err != nil {
				return nil, err
			}
		}
	}
	if !reflect.DeepEqual(cfg.Rules, old.Rules) {
		changed = append(changed, "auth.rules")
	}
	if !reflect.DeepEqual(cfg.Admins, old.Admins) {
		changed = append(changed, "auth.admins")
	}
	s.mu.Lock()
	s.cfg, s.policy, s.htpasswd, s.ldap = cfg, NewPolicy(cfg), h, l
	if cfg.TokenTTL != old.TokenTTL {
		changed = append(changed, "auth.token_ttl")
		s.tokens = &tokenSigner{key: s.tokens.key, ttl: cfg.TokenTTL.Std(), now: s.tokens.now}
	}
	if cfg.MaxFailures != old.MaxFailures || cfg.FailureWindow != old.FailureWindow {
		changed = append(changed, "auth.max_failures/failure_window")
		s.limit = newLimiter(cfg.MaxFailures, cfg.FailureWindow.Std())
	}
	s.cache = newLoginCache(time.Minute, 10_000) // no login outlives a source change
	s.mu.Unlock()
	if c, ok := oldLDAP.(interface{ Close() error }); ok {
		c.Close()
	}
	return changed, nil
}

// Close releases directory connections.
func (s *Service) Close() error {
	if s == nil {
		return nil
	}
	if c, ok := s.cur().ldap.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// LimitedError is the answer to an address that failed too many logins.
type LimitedError struct{ RetryAfter time.Duration }

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many failed logins from this address; try again in %s", e.RetryAfter.Round(time.Second))
}

// Login checks a user name and password from the client at remote (an
// address as in http.Request.RemoteAddr). htpasswd users are checked
// there; other names go to LDAP when it is configured. Failures are
// counted, slowed and logged with user and address; passwords never are.
func (s *Service) Login(ctx context.Context, user, password, remote string) (Identity, error) {
	addr := remoteHost(remote)
	p := s.cur()
	if wait, blocked := p.limit.blocked(addr); blocked {
		s.log.Warn("login refused: too many failures from this address", "user", user, "remote", addr, "retry_after", wait.Round(time.Second))
		return Identity{}, &LimitedError{RetryAfter: wait}
	}
	gen := fileStamp{}
	if p.htpasswd != nil {
		gen = p.htpasswd.Generation()
	}
	key := cacheKey(user, password, gen)
	if id, ok := p.cache.get(key); ok {
		return id, nil
	}
	method := "htpasswd"
	var id Identity
	var err error
	switch {
	case p.htpasswd != nil && p.htpasswd.Has(user):
		id, err = p.htpasswd.Authenticate(ctx, user, password)
	case p.ldap != nil:
		method = "ldap"
		id, err = p.ldap.Authenticate(ctx, user, password)
	case p.htpasswd != nil:
		id, err = p.htpasswd.Authenticate(ctx, user, password) // unknown: same bcrypt time
	default:
		err = ErrInvalidCredentials
	}
	s.metrics.AuthResult(method, err == nil)
	if err == nil {
		p.limit.success(user)
		if method == "htpasswd" {
			p.cache.put(key, id)
		}
		return id, nil
	}
	if errors.Is(err, ErrUnavailable) {
		s.log.Error("login could not be checked: the user directory is unavailable", "user", user, "remote", addr, "source", method, "err", err)
		return Identity{}, err
	}
	wait := p.limit.fail(addr, user)
	s.log.Warn("login failed", "user", user, "remote", addr, "source", method)
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return Identity{}, ErrInvalidCredentials
}

// Identify finds who sent r: a bearer token from /auth/token, Basic
// credentials (checked like a login), or nobody. Basic with an empty
// user and password, which some clients send when they have none, is
// nobody too.
func (s *Service) Identify(r *http.Request) (Identity, error) {
	if s == nil {
		return Identity{}, nil
	}
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "":
		return Identity{}, nil
	case "bearer":
		p := s.cur()
		id, fp, err := p.tokens.verify(strings.TrimSpace(cred))
		if err == nil && fp != "" && p.htpasswd != nil {
			if now, ok := p.htpasswd.Fingerprint(id.User); !ok || now != fp {
				s.log.Info("token refused: its user was removed or changed password since it was issued; the client must log in again", "user", id.User)
				err = ErrInvalidToken
			}
		}
		s.metrics.AuthResult("token", err == nil)
		if err != nil {
			return Identity{}, err
		}
		return id, nil
	case "basic":
		user, pass, ok := r.BasicAuth()
		if !ok {
			return Identity{}, ErrInvalidCredentials
		}
		if user == "" && pass == "" {
			return Identity{}, nil
		}
		return s.Login(r.Context(), user, pass, r.RemoteAddr)
	}
	return Identity{}, ErrInvalidCredentials
}

// IssueToken signs a token for id with the access granted.
func (s *Service) IssueToken(id Identity, access []TokenAccess) (string, time.Time, error) {
	p := s.cur()
	var fp string
	if id.Source == "htpasswd" && p.htpasswd != nil {
		var ok bool
		if fp, ok = p.htpasswd.Fingerprint(id.User); !ok {
			return "", time.Time{}, ErrInvalidCredentials // removed since the login
		}
	}
	return p.tokens.issue(id, fp, access)
}

func remoteHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

func cacheKey(user, password string, gen fileStamp) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", user, password, gen.mod.UnixNano(), gen.size)
	return base64.RawStdEncoding.EncodeToString(h.Sum(nil))
}

// loginCache remembers successful password checks briefly, so Basic
// credentials on every request of a pull do not cost a bcrypt each. Keys
// are hashes of user and password: no password is kept.
type loginCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]cachedLogin
}

type cachedLogin struct {
	id  Identity
	exp time.Time
}

func newLoginCache(ttl time.Duration, max int) *loginCache {
	return &loginCache{ttl: ttl, max: max, now: time.Now, m: map[string]cachedLogin{}}
}

func (c *loginCache) get(k string) (Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.exp) {
		delete(c.m, k)
		return Identity{}, false
	}
	return e.id, true
}

func (c *loginCache) put(k string, id Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= c.max {
		for kk, e := range c.m {
			if !now.Before(e.exp) || len(c.m) >= c.max {
				delete(c.m, kk)
			}
		}
	}
	c.m[k] = cachedLogin{id: id, exp: now.Add(c.ttl)}
}

// Users is the htpasswd user source as it is now (nil when htpasswd is
// off): the admin API lists and changes its users through it.
func (s *Service) Users() *Htpasswd {
	if s == nil {
		return nil
	}
	return s.cur().htpasswd
}
