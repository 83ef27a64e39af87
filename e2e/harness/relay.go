//go:build linux

package harness

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Relay is an in-process reverse proxy put between the server under test and
// an origin registry, so a test can count what crossed it (requests and body
// bytes per path) and inject faults: a cut stream, wrong bytes, a stall, a
// 429. It keeps the origin's answers otherwise untouched.
type Relay struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT

	proxy *httputil.ReverseProxy

	stop chan struct{} // closed at cleanup, releasing stalled handlers

	mu       sync.Mutex
	target   *url.URL
	fault    RelayFault
	requests []RelayRequest
	recorded chan struct{} // closed and replaced whenever a request is recorded
}

// RelayRequest records one request the relay answered.
type RelayRequest struct {
	Method string
	Path   string // URL path, e.g. /v2/library/busybox/blobs/sha256:...
	Query  string
	Range  string // the Range header, if any
	Status int    // 0 when the handler aborted before writing headers
	Bytes  int64  // response body bytes written to the client
	Start  time.Time
	End    time.Time
}

// RelayFault may answer a request itself. It returns false to let the relay
// forward the request unchanged. forward sends r to the origin and copies the
// answer to w, so a fault can also wrap w (see the Relay* writers below) and
// forward.
type RelayFault func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool

// StartRelay starts a relay to origin (a base URL such as
// http://127.0.0.1:PORT); it stops at cleanup.
func StartRelay(t testing.TB, origin string) *Relay {
	t.Helper()
	rl := &Relay{stop: make(chan struct{}), recorded: make(chan struct{})}
	rl.SetTarget(t, origin)
	rl.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rl.mu.Lock()
			target := rl.target
			rl.mu.Unlock()
			pr.SetURL(target)
		},
		// The relay must not add its own buffering delays: bytes go on
		// as they come.
		FlushInterval: -1,
		Transport: &http.Transport{
			Proxy:               nil, // never an HTTP(S)_PROXY from the environment
			DisableCompression:  true,
			MaxIdleConnsPerHost: 32,
		},
		// Dial errors to a stopped origin are expected in fault tests;
		// they become 502s without a line on the test's output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(http.HandlerFunc(rl.serve))
	t.Cleanup(srv.Close)
	// Runs before srv.Close, which waits for handlers: stalls end first.
	t.Cleanup(func() { close(rl.stop) })
	rl.URL = srv.URL
	rl.Addr = strings.TrimPrefix(srv.URL, "http://")
	return rl
}

// SetTarget points the relay at another origin base URL.
func (rl *Relay) SetTarget(t testing.TB, origin string) {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		t.Fatalf("relay target %q: %v", origin, err)
	}
	rl.mu.Lock()
	rl.target = &url.URL{Scheme: u.Scheme, Host: u.Host}
	rl.mu.Unlock()
}

// SetFault installs a fault (nil: forward everything).
func (rl *Relay) SetFault(f RelayFault) {
	rl.mu.Lock()
	rl.fault = f
	rl.mu.Unlock()
}

// Requests returns every request answered so far, in the order they ended.
func (rl *Relay) Requests() []RelayRequest {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return slices.Clone(rl.requests)
}

// Count returns how many requests with method to path were answered, and
// the body bytes sent for them. Requests still running are not counted.
func (rl *Relay) Count(method, path string) (n int, bytes int64) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	for _, r := range rl.requests {
		if r.Method == method && r.Path == path {
			n++
			bytes += r.Bytes
		}
	}
	return n, bytes
}

// WaitCount waits until n requests with method to path were answered and
// returns Count's figures then. A client can have read a whole response
// a moment before the relay's handler returns and records it.
func (rl *Relay) WaitCount(t testing.TB, method, path string, n int) (int, int64) {
	t.Helper()
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for {
		rl.mu.Lock()
		ch := rl.recorded
		rl.mu.Unlock()
		if got, b := rl.Count(method, path); got >= n {
			return got, b
		}
		select {
		case <-ch:
		case <-deadline.C:
			got, b := rl.Count(method, path)
			t.Errorf("relay: %d %s %s answered after a minute, want %d", got, method, path, n)
			return got, b
		}
	}
}

// CountMatching counts answered requests whose method matches and whose path
// contains substr.
func (rl *Relay) CountMatching(method, substr string) int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	n := 0
	for _, r := range rl.requests {
		if r.Method == method && strings.Contains(r.Path, substr) {
			n++
		}
	}
	return n
}

func (rl *Relay) serve(w http.ResponseWriter, r *http.Request) {
	rec := RelayRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Range: r.Header.Get("Range"), Start: time.Now()}
	cw := &countingWriter{ResponseWriter: w}
	// Recorded on the way out even when a fault aborts the connection with
	// panic(http.ErrAbortHandler).
	defer func() {
		rec.Status, rec.Bytes, rec.End = cw.status, cw.n, time.Now()
		rl.mu.Lock()
		rl.requests = append(rl.requests, rec)
		close(rl.recorded)
		rl.recorded = make(chan struct{})
		rl.mu.Unlock()
	}()
	rl.mu.Lock()
	fault := rl.fault
	rl.mu.Unlock()
	if fault != nil && fault(cw, r, rl.proxy) {
		return
	}
	rl.proxy.ServeHTTP(cw, r)
}

// countingWriter counts body bytes and notes the status.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// RelayHookWriter passes a response through and calls AfterBytes once the
// body has reached Limit bytes (before any byte past it is written). The hook
// may block (a pause), return an error to stop the copy (the relay then cuts
// the connection), or return nil to let the rest through. Corrupt, when set,
// is called on each chunk with its offset in the body and may change the
// bytes in place.
type RelayHookWriter struct {
	http.ResponseWriter
	Limit      int64
	AfterBytes func() error
	Corrupt    func(offset int64, p []byte)
	// BytesPerSecond, when positive, paces the body to that rate.
	BytesPerSecond int64

	n     int64
	fired bool
	err   error
	start time.Time
}

// Write implements io.Writer.
func (h *RelayHookWriter) Write(p []byte) (int, error) {
	if h.err != nil {
		return 0, h.err
	}
	written := 0
	for len(p) > 0 {
		chunk := p
		if !h.fired && h.AfterBytes != nil {
			if h.n >= h.Limit {
				h.fired = true
				h.Flush()
				if h.err = h.AfterBytes(); h.err != nil {
					return written, h.err
				}
				continue
			}
			if rest := h.Limit - h.n; int64(len(chunk)) > rest {
				chunk = chunk[:rest]
			}
		}
		if h.BytesPerSecond > 0 {
			if h.start.IsZero() {
				h.start = time.Now()
			}
			if len(chunk) > 64<<10 {
				chunk = chunk[:64<<10]
			}
			due := h.start.Add(time.Duration(float64(h.n) / float64(h.BytesPerSecond) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		if h.Corrupt != nil {
			c := slices.Clone(chunk)
			h.Corrupt(h.n, c)
			chunk = c
		}
		m, err := h.ResponseWriter.Write(chunk)
		h.n += int64(m)
		written += m
		if err != nil {
			return written, err
		}
		p = p[m:]
	}
	return written, nil
}

// Flush implements http.Flusher.
func (h *RelayHookWriter) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (h *RelayHookWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// RelayAbort is a fault that cuts the connection (the client sees a reset or a
// truncated body); call it from a fault after writing whatever it wants.
func RelayAbort() {
	panic(http.ErrAbortHandler)
}

// Stall answers with the origin's status and headers, flushed, and then
// sends no body byte until the client goes away or the test ends; then it
// cuts the connection. Use it from a fault, for requests with a body (GET).
func (rl *Relay) Stall(w http.ResponseWriter, r *http.Request, forward http.Handler) {
	hw := &RelayHookWriter{ResponseWriter: w, Limit: 0, AfterBytes: func() error {
		rl.Hold(r)
		return context.Canceled
	}}
	forward.ServeHTTP(&stallHeaders{hw}, r)
	if hw.fired {
		RelayAbort()
	}
	// An answer without a body (a HEAD) cannot stall after its headers;
	// it went through whole.
}

// Hold blocks until the client of r goes away or the test ends, for faults
// that answer nothing at all.
func (rl *Relay) Hold(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-rl.stop:
	}
}

// stallHeaders flushes the headers as soon as they are written, so the
// client has its status line before the stall.
type stallHeaders struct{ *RelayHookWriter }

func (s *stallHeaders) WriteHeader(code int) {
	s.RelayHookWriter.ResponseWriter.WriteHeader(code)
	s.RelayHookWriter.Flush()
}
