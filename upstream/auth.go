package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// The token flow is written here rather than taken from go-containerregistry's
// transport.NewWithContext: that transport holds one token whose scope list
// grows with every repository it is asked for and ignores expires_in, while a
// pull-through cache serves thousands of repositories concurrently and wants a
// token per scope, reused until it expires. Its realm check also refuses
// token services on private addresses, which rules out self-hosted upstreams
// whose auth service lives on another internal host.

const (
	maxTokenBody       = 1 << 20
	defaultTokenExpiry = 60 * time.Second // distribution's token spec default
	tokenCacheSweep    = 1024             // sweep expired tokens past this many
	tokenCacheMax      = 8192
)

// challenge is a parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string // lower case: "bearer" or "basic"
	params map[string]string
}

// authenticator remembers how the upstream asked to be authenticated and
// caches bearer tokens per scope.
type authenticator struct {
	c       *Client
	fetches singleflight.Group

	mu     sync.Mutex
	ch     *challenge // nil until the upstream has challenged us
	tokens map[string]cachedToken
}

type cachedToken struct {
	value   string
	expires time.Time
}

func newAuthenticator(c *Client) *authenticator {
	return &authenticator{c: c, tokens: map[string]cachedToken{}}
}

// authorize adds credentials for scope to req, if the upstream has asked for
// any, and returns what it sent so a 401 can invalidate exactly that token.
func (a *authenticator) authorize(ctx context.Context, req *http.Request, scope string) (string, error) {
	a.mu.Lock()
	ch := a.ch
	a.mu.Unlock()
	if ch == nil {
		return "", nil
	}
	switch ch.scheme {
	case "basic":
		if a.c.username != "" {
			req.SetBasicAuth(a.c.username, a.c.password)
			return "basic", nil
		}
	case "bearer":
		tok, err := a.token(ctx, ch, scope)
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return tok, nil
	}
	return "", nil
}

// challenged handles a 401 from the registry: it records the challenge and
// drops the token that was refused. It reports whether trying again with
// fresh credentials can help.
func (a *authenticator) challenged(h http.Header, sent, scope string) bool {
	ch, ok := parseChallenges(h.Values("WWW-Authenticate"))
	if !ok {
		return false
	}
	if ch.scheme == "basic" && (a.c.username == "" || sent == "basic") {
		return false
	}
	if ch.scheme == "bearer" && ch.params["realm"] == "" {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.ch; old != nil && old.scheme == "bearer" {
		key := tokenKey(old, scope)
		if t, ok := a.tokens[key]; ok && t.value == sent {
			delete(a.tokens, key)
		}
	}
	a.ch = &ch
	return true
}

func tokenKey(ch *challenge, scope string) string {
	return ch.params["realm"] + " " + ch.params["service"] + " " + scope
}

// token returns a cached, unexpired token for scope or fetches one. Callers
// asking for the same scope at once share one fetch; the fetch is detached
// from any single caller so one hanging up does not fail the others.
func (a *authenticator) token(ctx context.Context, ch *challenge, scope string) (string, error) {
	key := tokenKey(ch, scope)
	a.mu.Lock()
	t, ok := a.tokens[key]
	a.mu.Unlock()
	if ok && a.c.now().Before(t.expires) {
		return t.value, nil
	}
	res := a.fetches.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.c.timeout+a.c.idleTimeout)
		defer cancel()
		return a.fetch(fctx, ch, scope, key)
	})
	select {
	case <-ctx.Done():
		return "", a.c.transportError("token "+scope, ctx, nil, ctx.Err())
	case r := <-res:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// fetch asks the token service for a token (distribution's token spec, GET
// with optional basic auth) and caches it.
func (a *authenticator) fetch(ctx context.Context, ch *challenge, scope, key string) (string, error) {
	c := a.c
	op := "token " + scope
	if scope == "" {
		op = "token"
	}
	realm, err := c.checkRealm(ch.params["realm"])
	if err != nil {
		return "", c.badResponse(op, err.Error())
	}
	q := realm.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	realm.RawQuery = q.Encode()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", c.badResponse(op, "bad realm")
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	if c.username != "" {
		req.SetBasicAuth(c.username, c.password)
	}
	start := c.now()
	resp, err := c.send(ctx, req, op)
	if err != nil {
		return "", err
	}
	c.log.Debug("upstream token request", "op", op, "host", realm.Host, "status", resp.StatusCode, "duration", time.Since(start))
	if resp.StatusCode != http.StatusOK {
		return "", c.statusError(op, resp)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return "", err
	}
	if len(body) > maxTokenBody {
		return "", c.badResponse(op, "token response too large")
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", c.badResponse(op, "malformed token response")
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", c.badResponse(op, "token response holds no token")
	}

	// Renew a little early so a token never expires in flight.
	life := defaultTokenExpiry
	if tr.ExpiresIn > 0 {
		life = time.Duration(min(tr.ExpiresIn, int64(24*time.Hour/time.Second))) * time.Second
	}
	life -= min(10*time.Second, life/4)
	now := c.now()
	a.mu.Lock()
	if len(a.tokens) >= tokenCacheSweep {
		for k, t := range a.tokens {
			if !now.Before(t.expires) || len(a.tokens) >= tokenCacheMax {
				delete(a.tokens, k)
			}
		}
	}
	a.tokens[key] = cachedToken{value: tok, expires: now.Add(life)}
	a.mu.Unlock()
	return tok, nil
}

// checkRealm refuses token services that would leak credentials: plain
// http for an https registry, and link-local addresses (cloud metadata
// services). Private and loopback addresses are allowed: self-hosted
// registries legitimately run their auth service there.
func (c *Client) checkRealm(realm string) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, errors.New("challenge realm is not an absolute http(s) URL")
	}
	if c.base.Scheme == "https" && u.Scheme != "https" {
		return nil, errors.New("refusing http token realm for an https registry")
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() {
			return nil, errors.New("refusing token realm on address " + ip.String())
		}
	}
	return u, nil
}

// parseChallenges parses WWW-Authenticate values and picks the challenge we
// can answer, bearer before basic.
func parseChallenges(values []string) (challenge, bool) {
	var all []challenge
	for _, v := range values {
		all = append(all, parseChallengeHeader(v)...)
	}
	for _, want := range []string{"bearer", "basic"} {
		for _, ch := range all {
			if ch.scheme == want {
				return ch, true
			}
		}
	}
	return challenge{}, false
}

// parseChallengeHeader parses one header value, which may hold several
// challenges: `Bearer realm="https://a/token",service="s", Basic realm="x"`.
func parseChallengeHeader(s string) []challenge {
	var out []challenge
	p := &headerParser{s: s}
	for p.i < len(p.s) {
		p.skip(" \t,")
		scheme := p.token()
		if scheme == "" {
			if p.i < len(p.s) {
				p.i++ // a character no token starts with
			}
			continue
		}
		ch := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
		for {
			p.skip(" \t")
			start := p.i
			key := p.token()
			p.skip(" \t")
			if key == "" || !p.consume('=') {
				// Not a parameter: the start of the next challenge (or a
				// token68, which no registry challenge uses).
				p.i = start
				break
			}
			p.skip(" \t")
			var val string
			if p.peek() == '"' {
				val = p.quoted()
			} else {
				val = p.token()
			}
			ch.params[strings.ToLower(key)] = val
			p.skip(" \t")
			if !p.consume(',') {
				break
			}
		}
		out = append(out, ch)
	}
	return out
}

type headerParser struct {
	s string
	i int
}

func (p *headerParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *headerParser) consume(b byte) bool {
	if p.peek() == b && p.i < len(p.s) {
		p.i++
		return true
	}
	return false
}

func (p *headerParser) skip(set string) {
	for p.i < len(p.s) && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

// token reads an RFC 7230 token.
func (p *headerParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *headerParser) quoted() string {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		ch := p.s[p.i]
		p.i++
		switch ch {
		case '\\':
			if p.i < len(p.s) {
				b.WriteByte(p.s[p.i])
				p.i++
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
