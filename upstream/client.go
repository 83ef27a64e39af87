// Package upstream is the client the pull-through cache uses to talk to one
// configured upstream registry (Docker Hub, another OCI registry): it fetches
// manifests, blobs and tag lists, handles token and basic authentication,
// retries, redirects and timeouts, and classifies every failure as an *Error
// with a Kind that the HTTP layer maps to an OCI status.
//
// Of wharf it imports only oci, whose names, digests and descriptors it
// speaks.
package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultIdleTimeout = 60 * time.Second
	DefaultRetries     = 3
)

// Config describes one upstream registry. It is plain data; New validates it.
type Config struct {
	// Name identifies the upstream in logs, errors and metrics. Defaults to
	// the URL's host.
	Name string
	// URL is the registry's base URL: scheme and host, no path, no user info,
	// e.g. https://registry-1.docker.io or http://127.0.0.1:5001.
	URL string
	// Username and Password are optional credentials, used for basic auth or
	// exchanged for bearer tokens. They are never logged.
	Username, Password string
	// CAFile is an optional PEM bundle trusted in addition to the system roots.
	CAFile string
	// Insecure skips TLS certificate verification.
	Insecure bool
	// DockerHub makes single-component names resolve to "library/NAME".
	DockerHub bool
	// Timeout bounds connecting plus waiting for response headers, per
	// attempt. Zero means DefaultTimeout.
	Timeout time.Duration
	// IdleTimeout bounds the wait for each read of a response body, so a
	// stalled stream fails instead of hanging. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Retries is how many times a failed GET or HEAD is tried again (on
	// connection errors, 429 and 5xx). Zero means DefaultRetries; a negative
	// value disables retries.
	Retries int
	// Logger receives debug request logs and retry warnings. Nil discards.
	Logger *slog.Logger
	// Transport replaces the client's own *http.Transport (tests). CAFile and
	// Insecure only configure the default transport, so they cannot be
	// combined with it.
	Transport http.RoundTripper
	// Observer, when set, is told of every exchange, failure and body byte
	// (metrics). Nil observes nothing.
	Observer Observer
}

// LogValue keeps credentials out of logs when a Config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("url", redactURL(c.URL)),
		slog.Bool("credentials", c.Username != "" || c.Password != ""),
		slog.String("ca_file", c.CAFile),
		slog.Bool("insecure", c.Insecure),
		slog.Bool("docker_hub", c.DockerHub),
		slog.Duration("timeout", c.Timeout),
		slog.Duration("idle_timeout", c.IdleTimeout),
		slog.Int("retries", c.Retries),
	)
}

// Client talks to one upstream registry. It is safe for concurrent use.
type Client struct {
	name      string
	base      *url.URL // scheme://host, no path
	username  string
	password  string
	dockerHub bool

	timeout     time.Duration
	idleTimeout time.Duration
	retries     int

	// Retry pacing; fields rather than constants so tests run fast.
	backoffBase   time.Duration // first retry delay, doubled per retry
	backoffMax    time.Duration
	maxRetryAfter time.Duration // a longer Retry-After fails at once instead of waiting

	log   *slog.Logger
	rt    http.RoundTripper
	owned *http.Transport // nil when Config.Transport was given
	now   func() time.Time

	auth *authenticator
	rate atomic.Pointer[RateLimit]
	obs  Observer
}

// New validates cfg, applies defaults and returns a Client. It does no I/O
// beyond reading CAFile: the first request (or Ping) discovers how the
// upstream wants to be authenticated.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("upstream: URL is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream: invalid URL %q", redactURL(cfg.URL))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("upstream: URL %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("upstream: URL %q has no host", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("upstream: URL %q: put credentials in username and password, not the URL", u.Redacted())
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return nil, fmt.Errorf("upstream: URL %q: only scheme and host are allowed", u.Redacted())
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("upstream: username and password must be given together")
	}
	if cfg.Timeout < 0 || cfg.IdleTimeout < 0 {
		return nil, errors.New("upstream: timeouts must not be negative")
	}
	if cfg.Transport != nil && (cfg.CAFile != "" || cfg.Insecure) {
		return nil, errors.New("upstream: ca_file and insecure cannot be combined with a custom transport")
	}

	c := &Client{
		name:          cfg.Name,
		base:          &url.URL{Scheme: u.Scheme, Host: u.Host},
		username:      cfg.Username,
		password:      cfg.Password,
		dockerHub:     cfg.DockerHub,
		timeout:       cfg.Timeout,
		idleTimeout:   cfg.IdleTimeout,
		retries:       cfg.Retries,
		backoffBase:   500 * time.Millisecond,
		backoffMax:    10 * time.Second,
		maxRetryAfter: 10 * time.Second,
		log:           cfg.Logger,
		rt:            cfg.Transport,
		now:           time.Now,
		obs:           cfg.Observer,
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	if c.name == "" {
		c.name = u.Host
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.idleTimeout == 0 {
		c.idleTimeout = DefaultIdleTimeout
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("upstream", c.name)
	if c.rt == nil {
		t, err := newTransport(cfg, c.timeout)
		if err != nil {
			return nil, err
		}
		c.rt, c.owned = t, t
	}
	c.auth = newAuthenticator(c)
	return c, nil
}

// NewTransport is the transport New builds when cfg.Transport is nil (CA
// bundle, insecure, timeouts). A caller that wants to watch the exchange
// wraps it and passes the wrapper as Transport, with CAFile and Insecure
// cleared.
func NewTransport(cfg Config) (*http.Transport, error) {
	t := cfg.Timeout
	if t == 0 {
		t = DefaultTimeout
	}
	return newTransport(cfg, t)
}

// newTransport builds the client's own connection pool, so one slow or
// misbehaving upstream cannot exhaust connections used for another.
func newTransport(cfg Config, timeout time.Duration) (*http.Transport, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: reading ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream: ca_file %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	if cfg.Insecure {
		tlsConf.InsecureSkipVerify = true
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		// Blobs are already compressed, and transparent gunzip would hide
		// the real Content-Length and break Range arithmetic.
		DisableCompression: true,
	}, nil
}

// Name is the configured upstream name (or its host).
func (c *Client) Name() string { return c.name }

// Host is the upstream's host[:port] as configured.
func (c *Client) Host() string { return c.base.Host }

// Close releases idle connections of the client's own transport. In-flight
// requests are not interrupted; the Client stays usable.
func (c *Client) Close() {
	if c.owned != nil {
		c.owned.CloseIdleConnections()
	}
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable>"
	}
	return u.Redacted()
}
