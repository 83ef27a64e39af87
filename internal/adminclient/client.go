// Package adminclient talks to a running wharf's admin API: over the
// network as an admin (the desktop app managing a box without a screen),
// or over the admin socket in the data dir (the `wharf cache` and `wharf
// gc` commands, which need no login).
package adminclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/server"
)

// Client is one wharf's admin API. Its methods are safe for concurrent use.
type Client struct {
	base   string // scheme://host:port, no trailing slash
	prefix string // "/-/admin" over the network, "" on the socket
	where  string // what errors name: the URL or the socket
	hc     *http.Client
	user   string
	pw     string
}

// Options are how Dial logs in and what it trusts.
type Options struct {
	User, Password string
	// CAFile is a PEM file of certificates to trust besides the system's:
	// a wharf with tls.mode self-signed exports its CA (`wharf tls ca`).
	CAFile string
	// Transport replaces the HTTP transport (tests); CAFile is then unused.
	Transport http.RoundTripper
}

// Dial checks the address and returns a client for the wharf at rawURL
// (https://box.example.org:5000; a bare host:port means https). It does
// not connect: WhoAmI does, and says whether the login is an admin's.
// Plain http is refused except on loopback: the admin's password would
// cross the network in clear.
func Dial(rawURL string, o Options) (*Client, error) {
	raw := strings.TrimSpace(rawURL)
	if raw == "" {
		return nil, errors.New("give the address of the wharf to manage, like https://box.example.org:5000")
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%q is not a wharf address: give scheme, host and port only, like https://box.example.org:5000", rawURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return nil, fmt.Errorf("%s is plain http: the admin password would cross the network unencrypted; turn on TLS on that wharf (tls.mode: self-signed is one line) and use https://%s", u.Host, u.Host)
		}
	default:
		return nil, fmt.Errorf("%q: the scheme must be https (or http on this machine)", rawURL)
	}
	if o.User == "" {
		return nil, errors.New("give the user name of an admin of that wharf (its auth.admins)")
	}
	rt := o.Transport
	if rt == nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("reading the CA to trust: %w", err)
			}
			pool, _ := x509.SystemCertPool()
			if pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate (export wharf's CA with `wharf tls ca` on that machine)", o.CAFile)
			}
			tc.RootCAs = pool
		}
		rt = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	}
	base := u.Scheme + "://" + u.Host
	return &Client{base: base, prefix: "/-/admin", where: base, user: o.User, pw: o.Password,
		hc: &http.Client{Transport: rt, Timeout: 10 * time.Minute}}, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Socket returns a client for the admin socket at path; the server trusts
// whoever can open it (the user running wharf), so there is no login.
func Socket(path string) *Client {
	return &Client{base: "http://wharf", where: path, hc: &http.Client{
		Timeout: 10 * time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// URL is the wharf's address (scheme://host:port), or the socket's path.
func (c *Client) URL() string { return c.where }

// User is who the client logs in as.
func (c *Client) User() string { return c.user }

// Call sends one admin request, path relative to the admin API (/cache/ls),
// and decodes the JSON answer into out (nil: ignore it). An error answer
// becomes an error with the server's message, which is written for people.
func (c *Client) Call(ctx context.Context, method, path string, q url.Values, body, out any) error {
	return c.do(ctx, method, c.prefix+path, q, body, out)
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pw)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.user == "" {
			return fmt.Errorf("cannot reach wharf at %s: %w (is it running? are you the user running it?)", c.where, unwrapURLError(err))
		}
		return fmt.Errorf("cannot reach wharf at %s: %w", c.where, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.answerError(resp)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s answered %s with something other than wharf's JSON: %w", c.where, path, err)
	}
	return nil
}

// unwrapURLError drops url.Error's "Get \"https://…\":" prefix: the
// message already names the address.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Error is an answer other than 200 from the admin API.
type Error struct {
	Status  int
	Code    string // the OCI error code, when the body had one
	Message string
}

func (e *Error) Error() string { return e.Message }

func (c *Client) answerError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	code, msg, ok := oci.ParseEnvelope(body)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		msg = "the login was refused: check the user name and password (" + strings.TrimSpace(msg) + ")"
	case ok && msg != "":
	case ok:
		msg = code + " (HTTP " + strconv.Itoa(resp.StatusCode) + ")"
	default:
		msg = fmt.Sprintf("%s answered HTTP %d, not wharf's admin API: is that address a wharf?", c.where, resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Code: code, Message: msg}
}

// WhoAmI checks the login: it answers who the server sees, and fails
// (with a message for people) when the user is not an admin.
func (c *Client) WhoAmI(ctx context.Context) (server.WhoAmI, error) {
	var w server.WhoAmI
	err := c.Call(ctx, http.MethodGet, "/whoami", nil, nil, &w)
	return w, err
}

// Report is the server's status, as GET /-/status and `wharf status` show it.
func (c *Client) Report(ctx context.Context) (server.Report, error) {
	var r server.Report
	err := c.do(ctx, http.MethodGet, "/-/status", nil, nil, &r)
	return r, err
}

// Transfers lists the upstream fetches under way.
func (c *Client) Transfers(ctx context.Context) ([]server.Transfer, error) {
	var t []server.Transfer
	err := c.Call(ctx, http.MethodGet, "/transfers", nil, nil, &t)
	return t, err
}

// Events returns the events after seq that the server still keeps.
func (c *Client) Events(ctx context.Context, after uint64) (server.EventsReport, error) {
	var r server.EventsReport
	err := c.Call(ctx, http.MethodGet, "/events", url.Values{"after": {strconv.FormatUint(after, 10)}}, nil, &r)
	return r, err
}

// CacheStats is the cache's usage against its budget.
func (c *Client) CacheStats(ctx context.Context) (server.CacheStats, error) {
	var st server.CacheStats
	err := c.Call(ctx, http.MethodGet, "/cache/stats", nil, nil, &st)
	return st, err
}

// CacheList lists cached blobs by size or last use, of one proxy or all;
// limit 0 lists everything.
func (c *Client) CacheList(ctx context.Context, sortBy, proxy string, limit int) ([]server.CacheEntry, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if sortBy != "" {
		q.Set("sort", sortBy)
	}
	if proxy != "" {
		q.Set("proxy", proxy)
	}
	var rows []server.CacheEntry
	err := c.Call(ctx, http.MethodGet, "/cache/ls", q, nil, &rows)
	return rows, err
}

// EvictImage drops one cached image.
func (c *Client) EvictImage(ctx context.Context, image string) (cache.EvictReport, error) {
	var r cache.EvictReport
	err := c.Call(ctx, http.MethodPost, "/cache/evict", url.Values{"image": {image}}, nil, &r)
	return r, err
}

// PinImage pins an image (pin true) or unpins it.
func (c *Client) PinImage(ctx context.Context, image string, pin bool) (server.PinResult, error) {
	path := "/cache/unpin"
	if pin {
		path = "/cache/pin"
	}
	var r server.PinResult
	err := c.Call(ctx, http.MethodPost, path, url.Values{"image": {image}}, nil, &r)
	return r, err
}

// Prewarm caches an image through the server (manifest, config, layers);
// it returns when the whole image is cached.
func (c *Client) Prewarm(ctx context.Context, image string) (server.PrewarmResult, error) {
	var r server.PrewarmResult
	err := c.Call(ctx, http.MethodPost, "/cache/warm", url.Values{"image": {image}}, nil, &r)
	return r, err
}

// GC collects hosted garbage, or with DryRun says what it would collect.
func (c *Client) GC(ctx context.Context, req server.GCRequest) (server.GCReport, error) {
	q := url.Values{}
	if req.DryRun {
		q.Set("dry_run", "1")
	}
	if req.Grace != nil {
		q.Set("grace", req.Grace.String())
	}
	var r server.GCReport
	err := c.Call(ctx, http.MethodPost, "/gc", q, nil, &r)
	return r, err
}

// Users lists the htpasswd users.
func (c *Client) Users(ctx context.Context) (server.UsersReport, error) {
	var r server.UsersReport
	err := c.Call(ctx, http.MethodGet, "/users", nil, nil, &r)
	return r, err
}

// SetPassword adds a user or resets their password.
func (c *Client) SetPassword(ctx context.Context, user, password string) (server.UserChange, error) {
	var r server.UserChange
	err := c.Call(ctx, http.MethodPut, "/users/"+url.PathEscape(user), nil, server.SetPasswordRequest{Password: password}, &r)
	return r, err
}

// RemoveUser removes a user.
func (c *Client) RemoveUser(ctx context.Context, user string) error {
	return c.Call(ctx, http.MethodDelete, "/users/"+url.PathEscape(user), nil, nil, nil)
}
