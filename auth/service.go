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
	policy   *Policy
	htpasswd *Htpasswd
	ldap     Source
	tokens   *tokenSigner
	limit    *limiter
	log      *slog.Logger
	metrics  *metrics.Metrics
	cache    *loginCache
}

// Options are the parts of a Service that are not configuration.
type Options struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// LDAP replaces the directory built from the config (tests).
	LDAP Source
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
	key, err := loadTokenKey(dataDir)
	if err != nil {
		return nil, err
	}
	s := &Service{
		policy:  NewPolicy(cfg),
		tokens:  &tokenSigner{key: key, ttl: cfg.TokenTTL.Std(), now: time.Now},
		limit:   newLimiter(cfg.MaxFailures, cfg.FailureWindow.Std()),
		log:     o.Logger,
		metrics: o.Metrics,
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
	return s.policy
}

// Close releases directory connections.
func (s *Service) Close() error {
	if s == nil {
		return nil
	}
	if c, ok := s.ldap.(interface{ Close() error }); ok {
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
	if wait, blocked := s.limit.blocked(addr); blocked {
		s.log.Warn("login refused: too many failures from this address", "user", user, "remote", addr, "retry_after", wait.Round(time.Second))
		return Identity{}, &LimitedError{RetryAfter: wait}
	}
	gen := fileStamp{}
	if s.htpasswd != nil {
		gen = s.htpasswd.Generation()
	}
	key := cacheKey(user, password, gen)
	if id, ok := s.cache.get(key); ok {
		return id, nil
	}
	method := "htpasswd"
	var id Identity
	var err error
	switch {
	case s.htpasswd != nil && s.htpasswd.Has(user):
		id, err = s.htpasswd.Authenticate(ctx, user, password)
	case s.ldap != nil:
		method = "ldap"
		id, err = s.ldap.Authenticate(ctx, user, password)
	case s.htpasswd != nil:
		id, err = s.htpasswd.Authenticate(ctx, user, password) // unknown: same bcrypt time
	default:
		err = ErrInvalidCredentials
	}
	s.metrics.AuthResult(method, err == nil)
	if err == nil {
		s.limit.success(user)
		if method == "htpasswd" {
			s.cache.put(key, id)
		}
		return id, nil
	}
	if errors.Is(err, ErrUnavailable) {
		s.log.Error("login could not be checked: the user directory is unavailable", "user", user, "remote", addr, "source", method, "err", err)
		return Identity{}, err
	}
	wait := s.limit.fail(addr, user)
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
		id, fp, err := s.tokens.verify(strings.TrimSpace(cred))
		if err == nil && fp != "" && s.htpasswd != nil {
			if now, ok := s.htpasswd.Fingerprint(id.User); !ok || now != fp {
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
	var fp string
	if id.Source == "htpasswd" && s.htpasswd != nil {
		var ok bool
		if fp, ok = s.htpasswd.Fingerprint(id.User); !ok {
			return "", time.Time{}, ErrInvalidCredentials // removed since the login
		}
	}
	return s.tokens.issue(id, fp, access)
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
