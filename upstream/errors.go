package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// Kind classifies an upstream failure by what the caller should do about it.
type Kind int

const (
	// NotFound: the upstream answered 404 (manifest, blob or repository unknown).
	NotFound Kind = iota + 1
	// Unauthorized: the upstream wants credentials we do not have, or
	// rejected the ones configured.
	Unauthorized
	// Denied: authentication worked but access to this repository was
	// refused (403, or a token without the requested scope). Docker Hub
	// answers this way for repositories that do not exist.
	Denied
	// TooManyRequests: the upstream rate-limited us (429); see RetryAfter.
	TooManyRequests
	// Unavailable: connection refused or reset, DNS or TLS failure, 5xx.
	Unavailable
	// Timeout: no response headers within Config.Timeout, a body stalled for
	// Config.IdleTimeout, or the caller's deadline expired.
	Timeout
	// BadResponse: the upstream answered, but wrongly: digest mismatch,
	// oversize or malformed body, unexpected status.
	BadResponse
	// Invalid: the request was refused before it was sent (malformed
	// repository name, reference or digest).
	Invalid
)

var kindNames = map[Kind]string{
	NotFound:        "not found",
	Unauthorized:    "unauthorized",
	Denied:          "denied",
	TooManyRequests: "too many requests",
	Unavailable:     "unavailable",
	Timeout:         "timeout",
	BadResponse:     "bad response",
	Invalid:         "invalid request",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is the one error type the client returns for upstream failures.
// Context cancellation is returned as the context's error, wrapped, not as
// an *Error; an expired deadline is both an *Error of Kind Timeout and
// errors.Is(err, context.DeadlineExceeded).
type Error struct {
	Kind       Kind
	Upstream   string        // Client.Name()
	Op         string        // what was attempted, e.g. "GET manifest library/busybox:latest"
	Status     int           // HTTP status, 0 when there was no response
	Code       string        // upstream OCI error code, e.g. MANIFEST_UNKNOWN, if any
	Message    string        // upstream's message or ours
	RetryAfter time.Duration // from Retry-After on 429/503, 0 if absent
	Err        error         // underlying cause, if any

	final bool // retrying cannot help: a used-up quota, a certificate we do not trust
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("upstream ")
	b.WriteString(e.Upstream)
	if e.Op != "" {
		b.WriteString(": ")
		b.WriteString(e.Op)
	}
	b.WriteString(": ")
	b.WriteString(e.Kind.String())
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.Status)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, or 0.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return 0
}

func IsNotFound(err error) bool        { return KindOf(err) == NotFound }
func IsUnauthorized(err error) bool    { return KindOf(err) == Unauthorized }
func IsDenied(err error) bool          { return KindOf(err) == Denied }
func IsTooManyRequests(err error) bool { return KindOf(err) == TooManyRequests }
func IsUnavailable(err error) bool     { return KindOf(err) == Unavailable }
func IsTimeout(err error) bool         { return KindOf(err) == Timeout }
func IsBadResponse(err error) bool     { return KindOf(err) == BadResponse }
func IsInvalid(err error) bool         { return KindOf(err) == Invalid }

// retryable reports whether another attempt of a GET or HEAD may succeed.
// Timeouts are not retried: Config.Timeout is the promise of how long a
// slow upstream may hold a caller.
func retryable(err error) bool {
	e, ok := errors.AsType[*Error](err)
	if !ok || e.final {
		return false
	}
	switch e.Kind {
	case Unavailable:
		return e.Status != http.StatusNotImplemented
	case TooManyRequests:
		return true
	}
	return false
}

const maxErrorBody = 64 << 10

// statusError turns a non-success response into an *Error and closes its
// body. A 401 reaching here could not be answered with (fresh) credentials.
func (c *Client) statusError(op string, resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{Upstream: c.name, Op: op, Status: resp.StatusCode}
	if resp.Request == nil || resp.Request.Method != http.MethodHead {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if code, msg, ok := oci.ParseEnvelope(body); ok {
			e.Code, e.Message = code, msg
		} else if s := strings.TrimSpace(string(body)); s != "" && len(s) < 512 {
			e.Message = s
		}
	}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		e.Kind = NotFound
	case s == http.StatusUnauthorized:
		e.Kind = Unauthorized
		if ch, ok := parseChallenges(resp.Header.Values("WWW-Authenticate")); ok && ch.params["error"] == "insufficient_scope" {
			e.Kind = Denied
		}
	case s == http.StatusForbidden:
		e.Kind = Denied
	case s == http.StatusTooManyRequests:
		e.Kind = TooManyRequests
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		// Docker Hub's pull quota: with nothing left and no hint when to
		// come back, retrying within seconds only burns attempts.
		if rem, _, ok := parseQuota(resp.Header.Get("ratelimit-remaining")); ok && rem == 0 && e.RetryAfter == 0 {
			e.final = true
		}
	case s == http.StatusRequestTimeout:
		e.Kind = Timeout
	case s >= 500:
		e.Kind = Unavailable
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		e.Kind = BadResponse
		if e.Message == "" {
			e.Message = "unexpected status " + resp.Status
		}
	}
	return e
}

// transportError classifies a failure to get (or keep reading) a response.
// ctx is the caller's context; cause is the attempt context's cause, which
// tells our own timers apart from the caller's cancellation.
func (c *Client) transportError(op string, ctx context.Context, cause error, err error) error {
	if ctx.Err() != nil {
		cerr := context.Cause(ctx)
		if errors.Is(cerr, context.DeadlineExceeded) {
			return &Error{Kind: Timeout, Upstream: c.name, Op: op, Message: "deadline exceeded", Err: cerr}
		}
		return fmt.Errorf("upstream %s: %s: %w", c.name, op, cerr)
	}
	switch {
	case errors.Is(cause, errHeaderTimeout):
		return &Error{Kind: Timeout, Upstream: c.name, Op: op, Message: fmt.Sprintf("no response within %s", c.timeout)}
	case errors.Is(cause, errIdleTimeout):
		return &Error{Kind: Timeout, Upstream: c.name, Op: op, Message: fmt.Sprintf("no data for %s", c.idleTimeout)}
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return &Error{Kind: Timeout, Upstream: c.name, Op: op, Err: err}
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return &Error{Kind: Unavailable, Upstream: c.name, Op: op, Err: err, final: true}
	}
	return &Error{Kind: Unavailable, Upstream: c.name, Op: op, Err: err}
}

func (c *Client) badResponse(op, msg string) *Error {
	return &Error{Kind: BadResponse, Upstream: c.name, Op: op, Message: msg}
}

func (c *Client) invalid(op, msg string) *Error {
	return &Error{Kind: Invalid, Upstream: c.name, Op: op, Message: msg}
}

// invalidOCI is invalid with the message of oci's validation error, which
// says what is wrong with the name or digest.
func (c *Client) invalidOCI(op string, err error) *Error {
	if _, ok := oci.AsError(err); ok {
		// Keeps oci's code: a bad digest is DIGEST_INVALID, not NAME_INVALID.
		return &Error{Kind: Invalid, Upstream: c.name, Op: op, Err: err}
	}
	return c.invalid(op, err.Error())
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
