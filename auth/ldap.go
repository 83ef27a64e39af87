package auth

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/wharf-registry/wharf/config"
)

const (
	// ldapMaxIdle is how many connections bound as the service account
	// are kept between logins.
	ldapMaxIdle = 4
	// ldapIdleTimeout retires pooled connections before a firewall or NAT
	// forgets them silently, which would make the next login wait out
	// Timeout on a connection that leads nowhere.
	ldapIdleTimeout = time.Minute
	// ldapCacheMax bounds the login cache; the oldest entry goes first.
	ldapCacheMax = 10000
	// ldapMaxUserLen keeps absurd names out of filters and logs.
	ldapMaxUserLen = 256
)

// errLDAPClosed is what Authenticate reports after Close.
var errLDAPClosed = errors.New("ldap user source closed")

// LDAP is a user source backed by a directory: a service account (or an
// anonymous connection) finds the user's entry, a bind as that entry checks
// the password, and groups come from an attribute of the entry (memberOf)
// or from a search. Successful logins are cached for CacheTTL, so a
// password changed or an account disabled in the directory still works
// here until its entry expires. Safe for concurrent use.
type LDAP struct {
	cfg          config.LDAP
	bindPassword string
	tls          *tls.Config // ldaps:// and StartTLS; nil otherwise
	timeout      time.Duration
	log          *slog.Logger
	cache        *ldapCache // nil when CacheTTL is 0

	mu     sync.Mutex
	idle   []ldapIdleConn // bound as the service account, newest last
	closed bool
}

// NewLDAP checks cfg, resolves the bind password and loads the CA file. It
// does not contact the directory: a directory that is down at start makes
// logins fail with ErrUnavailable until it is back. Empty filter and
// attribute fields take config's defaults; a zero CacheTTL disables the
// cache.
func NewLDAP(cfg config.LDAP, log *slog.Logger) (*LDAP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.ApplyDefaults()
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return nil, fmt.Errorf("auth.ldap: url %q is not an ldap:// or ldaps:// URL", cfg.URL)
	}
	if u.Scheme == "ldaps" && cfg.StartTLS {
		return nil, errors.New("auth.ldap: ldaps:// is already TLS; start_tls is for ldap:// URLs")
	}
	if !strings.Contains(cfg.UserFilter, "{username}") {
		return nil, fmt.Errorf("auth.ldap: user_filter %q must contain {username}", cfg.UserFilter)
	}
	for _, f := range []string{cfg.UserFilter, cfg.GroupFilter} {
		probe := strings.NewReplacer("{username}", "x", "{dn}", "x").Replace(f)
		if _, err := ldap.CompileFilter(probe); err != nil {
			return nil, fmt.Errorf("auth.ldap: filter %q: %v", f, err)
		}
	}
	pw, err := cfg.ResolveBindPassword()
	if err != nil {
		return nil, err
	}
	if cfg.BindDN != "" && pw == "" {
		// A bind with a DN and no password is an unauthenticated bind,
		// which most directories accept as anonymous: fail loudly instead.
		return nil, fmt.Errorf("auth.ldap: bind_dn %s has no password", cfg.BindDN)
	}
	l := &LDAP{cfg: cfg, bindPassword: pw, timeout: time.Duration(cfg.Timeout), log: log}
	if u.Scheme == "ldaps" || cfg.StartTLS {
		l.tls = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			ServerName:         u.Hostname(),
			InsecureSkipVerify: cfg.Insecure,
		}
		if cfg.CAFile != "" {
			b, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("auth.ldap: ca_file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("auth.ldap: ca_file %s holds no PEM certificate", cfg.CAFile)
			}
			l.tls.RootCAs = pool
		}
		if cfg.Insecure {
			log.Warn("ldap: certificate verification is off (insecure); passwords can be read by anyone in the middle", "url", cfg.URL)
		}
	} else if cfg.CAFile != "" || cfg.Insecure {
		log.Warn("ldap: ca_file and insecure apply only to ldaps:// or start_tls; the connection is plain text", "url", cfg.URL)
	}
	if cfg.CacheTTL > 0 {
		l.cache = newLDAPCache(time.Duration(cfg.CacheTTL), ldapCacheMax)
	}
	return l, nil
}

// Authenticate checks user and password against the directory (or the
// cache of recent successful logins). A wrong password or an unknown,
// ambiguous or malformed user name is ErrInvalidCredentials; a directory
// that cannot be reached or answers with an error is ErrUnavailable.
func (l *LDAP) Authenticate(ctx context.Context, user, password string) (Identity, error) {
	// An empty password would make the bind an unauthenticated one, which
	// directories answer with success.
	if password == "" || !ldapValidUser(user) {
		return Identity{}, ErrInvalidCredentials
	}
	var key [sha256.Size]byte
	if l.cache != nil {
		key = l.cache.key(user, password)
		if id, ok := l.cache.get(key); ok {
			return id, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	id, err := l.authenticate(ctx, user, password)
	if err != nil {
		return Identity{}, err
	}
	if l.cache != nil {
		l.cache.put(key, id)
	}
	return id, nil
}

// ldapValidUser rejects names no directory user has and that could only
// confuse filters or logs: empty, too long, not UTF-8, with control
// characters (NUL included) or surrounding spaces, which LDAP matching
// ignores, so "alice " would log in as alice under another name.
func ldapValidUser(user string) bool {
	if user == "" || len(user) > ldapMaxUserLen || !utf8.ValidString(user) || strings.TrimSpace(user) != user {
		return false
	}
	for _, r := range user {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// ldapLoginErr is the outcome of one attempt that did not log the user in.
type ldapLoginErr struct {
	err error // ErrInvalidCredentials, or the failure that makes the directory unavailable
	op  string
	// retry: the failure came from a pooled connection the server had
	// closed, before anything was sent for this login but a search.
	retry bool
}

func (l *LDAP) authenticate(ctx context.Context, user, password string) (Identity, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := l.get(ctx)
		if err != nil {
			return Identity{}, l.unavailable(ctx, user, "connect", err)
		}
		id, keep, fail := l.login(ctx, c, reused && attempt == 0, user, password)
		if keep {
			l.put(c)
		} else {
			c.Close()
		}
		switch {
		case fail == nil:
			return id, nil
		case errors.Is(fail.err, ErrInvalidCredentials):
			return Identity{}, ErrInvalidCredentials
		case fail.retry:
			// The server dropped its connections (a restart): the other
			// idle ones are as dead as this one.
			l.dropIdle()
			continue
		}
		return Identity{}, l.unavailable(ctx, user, fail.op, fail.err)
	}
}

// login runs one attempt on c: find the entry, bind as it, bind back as the
// service account, read the groups. keep reports whether c is still bound
// as the service account and fit for the pool.
func (l *LDAP) login(ctx context.Context, c *ldap.Conn, reused bool, user, password string) (_ Identity, keep bool, _ *ldapLoginErr) {
	// Operations take no context; closing the connection is how a
	// cancelled caller stops waiting for one.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		if !stop() {
			keep = false
		}
	}()

	entry, err := l.findUser(c, user)
	switch {
	case errors.Is(err, ErrLDAPAmbiguousUser):
		l.log.Warn("ldap: the user filter matches several entries; refusing the login", "user", user, "filter", l.cfg.UserFilter)
		return Identity{}, true, &ldapLoginErr{err: ErrInvalidCredentials}
	case errors.Is(err, ErrLDAPNoUser):
		return Identity{}, true, &ldapLoginErr{err: ErrInvalidCredentials}
	case err != nil:
		return Identity{}, false, &ldapLoginErr{err: err, op: "search user", retry: reused && c.IsClosing() && ctx.Err() == nil}
	}

	err = c.Bind(entry.DN, password)
	if err != nil && !ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication) {
		return Identity{}, false, &ldapLoginErr{err: err, op: "bind user"}
	}
	// Whatever the outcome, the connection goes back to the service
	// account's rights before anything else uses it.
	if rerr := l.bindService(c); rerr != nil {
		if err != nil {
			return Identity{}, false, &ldapLoginErr{err: ErrInvalidCredentials}
		}
		return Identity{}, false, &ldapLoginErr{err: rerr, op: "bind service account"}
	}
	if err != nil {
		return Identity{}, true, &ldapLoginErr{err: ErrInvalidCredentials}
	}

	groups, err := l.groupsOf(c, user, entry)
	if err != nil {
		return Identity{}, false, &ldapLoginErr{err: err, op: "search groups"}
	}
	return Identity{User: user, Groups: groups, Source: "ldap"}, true, nil
}

// Lookup errors: the user filter matches no entry, or several.
var (
	ErrLDAPNoUser        = errors.New("no entry matches the user filter")
	ErrLDAPAmbiguousUser = errors.New("several entries match the user filter")
)

// LDAPEntry is a user's entry as a login finds it.
type LDAPEntry struct {
	DN     string
	Groups []string
}

// Lookup finds user's entry and groups as a login would, without checking
// a password: what a "test connection" button needs. It dials a fresh
// connection rather than taking a pooled one, so it tests the directory
// as it is now. A failure to connect or to bind the service account is
// the dial's error (go-ldap's *ldap.Error inside for a refused bind);
// ErrLDAPNoUser and ErrLDAPAmbiguousUser when not exactly one entry matches.
func (l *LDAP) Lookup(ctx context.Context, user string) (LDAPEntry, error) {
	if !ldapValidUser(user) {
		return LDAPEntry{}, fmt.Errorf("%q is not a user name a login could use", user)
	}
	c, err := l.dial(ctx)
	if err != nil {
		return LDAPEntry{}, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	entry, err := l.findUser(c, user)
	if err != nil {
		return LDAPEntry{}, err
	}
	groups, err := l.groupsOf(c, user, entry)
	if err != nil {
		return LDAPEntry{DN: entry.DN}, fmt.Errorf("search groups: %w", err)
	}
	return LDAPEntry{DN: entry.DN, Groups: groups}, nil
}

// findUser searches for the one entry of user, with the attribute that
// lists its groups when groups are not searched for.
func (l *LDAP) findUser(c *ldap.Conn, user string) (*ldap.Entry, error) {
	filter := strings.ReplaceAll(l.cfg.UserFilter, "{username}", ldap.EscapeFilter(user))
	attrs := []string{"1.1"} // no attributes
	if l.cfg.GroupBaseDN == "" {
		attrs = []string{l.cfg.GroupAttribute}
	}
	res, err := c.Search(l.searchRequest(l.cfg.BaseDN, filter, 2, attrs))
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		return nil, ErrLDAPAmbiguousUser
	case err != nil:
		return nil, err
	case len(res.Entries) == 0 || res.Entries[0].DN == "":
		return nil, ErrLDAPNoUser
	}
	return res.Entries[0], nil
}

// groupsOf names the groups of entry, sorted, from its group attribute or
// a search.
func (l *LDAP) groupsOf(c *ldap.Conn, user string, entry *ldap.Entry) ([]string, error) {
	var groups []string
	if l.cfg.GroupBaseDN == "" {
		groups = ldapGroupsFromDNs(entry.GetEqualFoldAttributeValues(l.cfg.GroupAttribute))
	} else {
		var err error
		if groups, err = l.searchGroups(c, user, entry.DN); err != nil {
			return nil, err
		}
	}
	slices.Sort(groups)
	return slices.Compact(groups), nil
}

func (l *LDAP) searchGroups(c *ldap.Conn, user, dn string) ([]string, error) {
	filter := strings.NewReplacer("{dn}", ldap.EscapeFilter(dn), "{username}", ldap.EscapeFilter(user)).Replace(l.cfg.GroupFilter)
	res, err := c.Search(l.searchRequest(l.cfg.GroupBaseDN, filter, 0, []string{l.cfg.GroupNameAttribute}))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		l.log.Warn("ldap: the directory's size limit cut the group search short; some groups are missing", "user", user, "groups", len(res.Entries))
		err = nil
	}
	if err != nil {
		return nil, err
	}
	var groups []string
	for _, e := range res.Entries {
		if name := e.GetEqualFoldAttributeValue(l.cfg.GroupNameAttribute); name != "" {
			groups = append(groups, name)
		}
	}
	return groups, nil
}

// ldapGroupsFromDNs names each group by the value of its DN's first RDN:
// cn=devs,ou=groups,dc=example,dc=org is devs.
func ldapGroupsFromDNs(dns []string) []string {
	var groups []string
	for _, s := range dns {
		dn, err := ldap.ParseDN(s)
		if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
			continue
		}
		if v := dn.RDNs[0].Attributes[0].Value; v != "" {
			groups = append(groups, v)
		}
	}
	return groups
}

func (l *LDAP) searchRequest(base, filter string, sizeLimit int, attrs []string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		sizeLimit, int(math.Ceil(l.timeout.Seconds())), false, filter, attrs, nil)
}

// bindService binds c as the service account, or anonymously without one.
func (l *LDAP) bindService(c *ldap.Conn) error {
	if l.cfg.BindDN == "" {
		return c.UnauthenticatedBind("")
	}
	return c.Bind(l.cfg.BindDN, l.bindPassword)
}

// get takes an idle connection (reused) or dials a new one.
func (l *LDAP) get(ctx context.Context) (_ *ldap.Conn, reused bool, _ error) {
	var stale []*ldap.Conn
	defer func() {
		for _, c := range stale {
			c.Close()
		}
	}()
	l.mu.Lock()
	for len(l.idle) > 0 {
		ic := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		// IsClosing: the server hung up while it sat idle.
		if ic.c.IsClosing() || time.Since(ic.since) > ldapIdleTimeout {
			stale = append(stale, ic.c)
			continue
		}
		l.mu.Unlock()
		return ic.c, true, nil
	}
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, false, errLDAPClosed
	}
	c, err := l.dial(ctx)
	return c, false, err
}

// dial connects, upgrades to TLS when configured and binds as the service
// account, all within one Timeout (and the caller's deadline).
func (l *LDAP) dial(ctx context.Context) (*ldap.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	d := &net.Dialer{Timeout: l.timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	opts := []ldap.DialOpt{ldap.DialWithDialer(d)}
	if l.tls != nil {
		opts = append(opts, ldap.DialWithTLSConfig(l.tls))
	}
	c, err := ldap.DialURL(l.cfg.URL, opts...)
	if err != nil {
		return nil, err
	}
	c.SetTimeout(l.timeout)
	// StartTLS's handshake has no timeout of its own.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if l.cfg.StartTLS {
		if err := c.StartTLS(l.tls); err != nil {
			c.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	if l.cfg.BindDN != "" {
		if err := c.Bind(l.cfg.BindDN, l.bindPassword); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind as %s: %w", l.cfg.BindDN, err)
		}
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

func (l *LDAP) put(c *ldap.Conn) {
	l.mu.Lock()
	if l.closed || len(l.idle) >= ldapMaxIdle || c.IsClosing() {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.idle = append(l.idle, ldapIdleConn{c: c, since: time.Now()})
	l.mu.Unlock()
}

func (l *LDAP) dropIdle() {
	l.mu.Lock()
	idle := l.idle
	l.idle = nil
	l.mu.Unlock()
	for _, ic := range idle {
		ic.c.Close()
	}
}

// unavailable logs why a login could not be checked and wraps
// ErrUnavailable. A caller that gave up is not the directory's fault and
// is not logged.
func (l *LDAP) unavailable(ctx context.Context, user, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, cerr)
	}
	l.log.Warn("ldap: cannot check a login; the directory is unavailable", "user", user, "url", l.cfg.URL, "op", op, "err", err)
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// Close closes the idle connections; logins in flight finish, later ones
// fail with ErrUnavailable.
func (l *LDAP) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.dropIdle()
	return nil
}

type ldapIdleConn struct {
	c     *ldap.Conn
	since time.Time
}

// ldapCache remembers successful logins. Keys are an HMAC of user and
// password under a key made at start, so neither is kept and a memory dump
// gives nothing to test guesses against offline.
type ldapCache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	hkey []byte

	mu      sync.Mutex
	entries map[[sha256.Size]byte]*list.Element
	order   *list.List // of *ldapCacheEntry, oldest first, so also soonest to expire
}

type ldapCacheEntry struct {
	key     [sha256.Size]byte
	id      Identity
	expires time.Time
}

func newLDAPCache(ttl time.Duration, size int) *ldapCache {
	hkey := make([]byte, 32)
	_, _ = rand.Read(hkey)
	return &ldapCache{
		ttl: ttl, max: size, now: time.Now, hkey: hkey,
		entries: map[[sha256.Size]byte]*list.Element{},
		order:   list.New(),
	}
}

func (c *ldapCache) key(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.hkey)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

func (c *ldapCache) get(k [sha256.Size]byte) (Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return Identity{}, false
	}
	e := el.Value.(*ldapCacheEntry)
	if !c.now().Before(e.expires) {
		c.remove(el)
		return Identity{}, false
	}
	id := e.id
	id.Groups = slices.Clone(id.Groups) // the caller may change its copy
	return id, true
}

func (c *ldapCache) put(k [sha256.Size]byte, id Identity) {
	now := c.now()
	id.Groups = slices.Clone(id.Groups)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.remove(el)
	}
	for el := c.order.Front(); el != nil && (c.order.Len() >= c.max || !now.Before(el.Value.(*ldapCacheEntry).expires)); el = c.order.Front() {
		c.remove(el)
	}
	c.entries[k] = c.order.PushBack(&ldapCacheEntry{key: k, id: id, expires: now.Add(c.ttl)})
}

func (c *ldapCache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*ldapCacheEntry).key)
	c.order.Remove(el)
}

func (c *ldapCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
