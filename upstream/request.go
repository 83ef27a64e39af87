package upstream

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	userAgent    = "wharf"
	maxRedirects = 10
)

var (
	errHeaderTimeout = errors.New("response header timeout")
	errIdleTimeout   = errors.New("body idle timeout")
	errBodyClosed    = errors.New("response body closed")
)

// request is one logical call to the upstream; do turns it into attempts,
// each of which may follow redirects and answer one auth challenge.
type request struct {
	op      string // for errors and logs
	method  string
	path    string // e.g. /v2/library/busybox/manifests/latest
	query   url.Values
	scope   string // token scope, "" for none
	header  http.Header
	ok      []int // statuses returned to the caller as success
	noRetry bool
}

// do runs r with retries. Only GET and HEAD are retried, and only before a
// response is handed back: a body that fails mid-stream is the caller's to
// resume (GetBlob takes an offset for that).
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	retries := c.retries
	if r.noRetry || (r.method != http.MethodGet && r.method != http.MethodHead) {
		retries = 0
	}
	for attempt := 0; ; attempt++ {
		resp, err := c.attempt(ctx, r)
		if err == nil {
			return resp, nil
		}
		if attempt >= retries || !retryable(err) {
			return nil, err
		}
		wait, ok := c.retryWait(ctx, attempt, err)
		if !ok {
			return nil, err
		}
		c.log.Warn("upstream request failed, retrying", "op", r.op, "attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, c.transportError(r.op, ctx, nil, ctx.Err())
		case <-t.C:
		}
	}
}

// retryWait picks the delay before retry number attempt+1, or reports that
// waiting is pointless: a Retry-After beyond maxRetryAfter, a Docker Hub
// quota that is used up, or a caller deadline that would pass first.
func (c *Client) retryWait(ctx context.Context, attempt int, err error) (time.Duration, bool) {
	e, _ := errors.AsType[*Error](err)
	var wait time.Duration
	switch {
	case e != nil && e.RetryAfter > 0:
		if e.RetryAfter > c.maxRetryAfter {
			return 0, false
		}
		wait = e.RetryAfter
	default:
		d := c.backoffBase << attempt
		if d > c.backoffMax || d <= 0 {
			d = c.backoffMax
		}
		// Jitter in [d/2, d) keeps many cache fills that failed together
		// from retrying together.
		wait = d/2 + rand.N(d/2+1)
	}
	if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
		return 0, false
	}
	return wait, true
}

// attempt sends r once, answering at most one 401 challenge and following
// redirects. Credentials go only to the configured registry origin: a blob
// redirected to a CDN host is fetched without Authorization.
func (c *Client) attempt(ctx context.Context, r request) (*http.Response, error) {
	target := &url.URL{Scheme: c.base.Scheme, Host: c.base.Host, Path: r.path}
	if len(r.query) > 0 {
		target.RawQuery = r.query.Encode()
	}
	authAnswered := false
	redirects := 0
	for {
		req, err := http.NewRequestWithContext(ctx, r.method, target.String(), nil)
		if err != nil {
			return nil, c.invalid(r.op, err.Error())
		}
		for k, v := range r.header {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		onRegistry := sameOrigin(target, c.base)
		var sent string
		if onRegistry {
			if sent, err = c.auth.authorize(ctx, req, r.scope); err != nil {
				return nil, err
			}
		}

		start := time.Now()
		resp, err := c.send(ctx, req, r.op)
		if err != nil {
			c.log.Debug("upstream request", "op", r.op, "method", r.method, "host", target.Host, "path", target.Path, "err", err)
			return nil, err
		}
		c.log.Debug("upstream request", "op", r.op, "method", r.method, "host", target.Host, "path", target.Path,
			"status", resp.StatusCode, "duration", time.Since(start))
		if onRegistry {
			c.observeRateLimit(resp.Header)
		}

		switch st := resp.StatusCode; {
		case slices.Contains(r.ok, st):
			return resp, nil
		case st == http.StatusUnauthorized && onRegistry && !authAnswered && c.auth.challenged(resp.Header, sent, r.scope):
			authAnswered = true
			drain(resp)
		case isRedirect(st):
			loc, err := resp.Location()
			drain(resp)
			if err != nil {
				return nil, c.badResponse(r.op, "redirect without a usable Location")
			}
			if redirects++; redirects > maxRedirects {
				return nil, c.badResponse(r.op, "too many redirects")
			}
			if loc.Scheme != "http" && loc.Scheme != "https" {
				return nil, c.badResponse(r.op, "redirect to unsupported scheme "+loc.Scheme)
			}
			if target.Scheme == "https" && loc.Scheme == "http" {
				return nil, c.badResponse(r.op, "refusing redirect from https to http")
			}
			target = loc
		default:
			return nil, c.statusError(r.op, resp)
		}
	}
}

// send is one HTTP exchange. The attempt context carries a timer that
// cancels it if headers take longer than c.timeout; the returned body
// enforces c.idleTimeout per read and releases the context on Close.
func (c *Client) send(ctx context.Context, req *http.Request, op string) (*http.Response, error) {
	actx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(c.timeout, func() { cancel(errHeaderTimeout) })
	start := time.Now()
	resp, err := c.rt.RoundTrip(req.WithContext(actx))
	timer.Stop()
	if err == nil && actx.Err() != nil {
		resp.Body.Close()
		err = context.Cause(actx)
	}
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	if err == nil || ctx.Err() == nil {
		// A caller that hung up says nothing about the upstream.
		c.obs.Exchange(endpointOf(op), req.Method, status, time.Since(start))
	}
	if err != nil {
		cause := context.Cause(actx)
		cancel(nil)
		return nil, c.transportError(op, ctx, cause, err)
	}
	resp.Body = newIdleBody(c, op, ctx, actx, cancel, resp.Body)
	return resp, nil
}

// idleBody fails a read that waits longer than the idle timeout for data.
// The timer runs only inside Read, so a consumer that is slow to ask for
// more is not mistaken for a stalled upstream.
type idleBody struct {
	c      *Client
	op     string
	ctx    context.Context // the caller's
	actx   context.Context // the attempt's; its cause tells our timers apart
	cancel context.CancelCauseFunc
	body   io.ReadCloser
	timer  *time.Timer
}

func newIdleBody(c *Client, op string, ctx, actx context.Context, cancel context.CancelCauseFunc, body io.ReadCloser) *idleBody {
	b := &idleBody{c: c, op: op, ctx: ctx, actx: actx, cancel: cancel, body: body}
	b.timer = time.AfterFunc(c.idleTimeout, func() { cancel(errIdleTimeout) })
	b.timer.Stop()
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.c.idleTimeout)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if n > 0 {
		b.c.obs.Received(int64(n))
	}
	if err != nil && err != io.EOF {
		err = b.c.transportError(b.op, b.ctx, context.Cause(b.actx), err)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(errBodyClosed)
	return err
}

// drain reads a little of a body we discard so its connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// sameOrigin compares scheme and host:port, with default ports filled in,
// so that 127.0.0.1:5000 and 127.0.0.1:5001 are different hosts (Go's own
// redirect policy ignores the port when deciding to forward Authorization).
func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && hostPort(a) == hostPort(b)
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
