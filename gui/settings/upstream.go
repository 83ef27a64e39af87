package settings

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/upstream"
)

// Result is what a "test" button shows: whether it worked, and a sentence
// saying what answered.
type Result struct {
	OK      bool
	Message string
}

func fail(format string, args ...any) Result {
	return Result{Message: fmt.Sprintf(format, args...)}
}

// TestUpstream pings p's upstream as the proxy would: GET /v2/, then the
// Basic or Bearer exchange its challenge asks for, with p's credentials
// (password_file, password_env or password) or anonymously. It tries once;
// p.Timeout (default 30s) and ctx bound it.
func TestUpstream(ctx context.Context, p config.Proxy) Result {
	pw, err := p.ResolvePassword()
	if err != nil {
		return fail("cannot read the password: %v", err)
	}
	host := p.Host()
	if host == "" {
		return fail("%q is not a registry URL", p.Upstream)
	}
	rt, err := probeTransport(p)
	if err != nil {
		return fail("%v", err)
	}
	defer rt.t.CloseIdleConnections()
	c, err := upstream.New(upstream.Config{
		Name: host, URL: p.Upstream, Username: p.Username, Password: pw,
		DockerHub: p.IsDockerHub(), Timeout: p.Timeout.Std(), Retries: -1, Transport: rt,
	})
	if err != nil {
		return fail("%s", strings.TrimPrefix(err.Error(), "upstream: "))
	}
	err = c.Ping(ctx)
	first, ok := rt.firstAnswer()
	if !ok {
		return fail("%s", unreachable(host, err))
	}
	switch first.StatusCode {
	case http.StatusOK:
		msg := host + " answered 200 without asking for credentials"
		if p.Username != "" {
			msg += "; the user name and password are not needed for /v2/"
		}
		return Result{OK: err == nil, Message: msg}
	case http.StatusUnauthorized:
	case http.StatusNotFound:
		return fail("not a registry: %s answered HTTP 404 on /v2/", host)
	case http.StatusTooManyRequests:
		return fail("%s answered 429: it is rate-limiting this address; try again later", host)
	default:
		return fail("%s answered HTTP %d on /v2/: not a registry, or one that is failing", host, first.StatusCode)
	}
	scheme, _, _ := strings.Cut(first.Header.Get("WWW-Authenticate"), " ")
	if scheme == "" {
		return fail("%s answered 401 on /v2/ without saying how to log in (no WWW-Authenticate): not a registry wharf can use", host)
	}
	msg := fmt.Sprintf("%s answered 401 with a %s challenge; ", host, strings.ToUpper(scheme[:1])+strings.ToLower(scheme[1:]))
	switch {
	case err == nil && p.Username != "":
		return Result{OK: true, Message: msg + "credentials accepted"}
	case err == nil:
		return Result{OK: true, Message: msg + "anonymous access granted"}
	case upstream.IsUnauthorized(err) && p.Username != "":
		return fail("%scredentials rejected: check the user name and password", msg)
	case upstream.IsUnauthorized(err):
		return fail("%sit wants credentials: set a user name and password", msg)
	}
	return fail("%sthen: %s", msg, unreachable(host, err))
}

// unreachable says why no answer came, in the words a person uses.
func unreachable(host string, err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		notTLS    tls.RecordHeaderError
		dnsErr    *net.DNSError
		netErr    net.Error
	)
	switch {
	case err == nil:
		return host + " answered nothing"
	case errors.As(err, &unknownCA), strings.Contains(err.Error(), "x509: certificate signed by unknown authority"): // go-ldap flattens StartTLS errors to text
		return "TLS certificate not trusted: " + host + " presents a certificate signed by an unknown authority (add its CA as ca_file)"
	case errors.As(err, &hostErr):
		return "TLS certificate not valid for " + host + ": " + hostErr.Error()
	case errors.As(err, &invalid):
		return "TLS certificate of " + host + " is not valid: " + invalid.Error()
	case errors.As(err, &notTLS), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return host + " does not speak TLS; use an http:// (or ldap://) URL if it serves plain text"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens on " + host
	case errors.As(err, &dnsErr):
		return "no such host: " + dnsErr.Name + " is not in DNS"
	case upstream.IsTimeout(err), errors.As(err, &netErr) && netErr.Timeout():
		return "no answer from " + host + " in time"
	}
	return "cannot reach " + host + ": " + err.Error()
}

// probeTransport is the transport the proxy's client builds, wrapped to
// remember the first answer to /v2/ and its challenge, which the client
// itself consumes.
func probeTransport(p config.Proxy) (*recorder, error) {
	t, err := upstream.NewTransport(upstream.Config{CAFile: p.CAFile, Insecure: p.Insecure, Timeout: p.Timeout.Std()})
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "upstream: "))
	}
	return &recorder{t: t}, nil
}

type recorder struct {
	t     *http.Transport
	mu    sync.Mutex
	first *http.Response // headers only
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.t.RoundTrip(req)
	if err == nil && strings.HasPrefix(req.URL.Path, "/v2") {
		r.mu.Lock()
		if r.first == nil {
			r.first = &http.Response{StatusCode: resp.StatusCode, Header: resp.Header.Clone()}
		}
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) firstAnswer() (*http.Response, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.first != nil
}
