package settings

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
)

func TestUpstreamFailureShapes(t *testing.T) {
	handler := func(status int, challenge string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if challenge != "" {
				w.Header().Set("WWW-Authenticate", challenge)
			}
			w.WriteHeader(status)
		})
	}
	plain := func(h http.Handler) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	tlsSrv := httptest.NewUnstartedServer(handler(200, ""))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644)

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	// The hanging handler returns when the client gives up.
	slow := plain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))

	open := plain(handler(200, ""))

	// A Docker Hub-like registry: /v2/ wants a bearer token, which the
	// token service hands to anyone (anonymous pulls) or to "u" with "p".
	bearer := plain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			if u, p, ok := r.BasicAuth(); ok && (u != "u" || p != "p") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Write([]byte(`{"token":"t"}`))
		case r.Header.Get("Authorization") == "Bearer t":
			w.WriteHeader(http.StatusOK)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	bearerHost := strings.TrimPrefix(bearer, "http://")
	for _, tc := range []struct {
		name   string
		proxy  config.Proxy
		ok     bool
		prefix string
	}{
		{"open registry", config.Proxy{Upstream: open}, true, strings.TrimPrefix(open, "http://") + " answered 200 without asking for credentials"},
		{"open registry, credentials given", config.Proxy{Upstream: open, Username: "u", Password: "p"}, true, strings.TrimPrefix(open, "http://") + " answered 200 without asking for credentials; the user name and password are not needed"},
		{"connection refused", config.Proxy{Upstream: "http://" + closedAddr}, false, "connection refused: nothing listens on " + closedAddr},
		{"untrusted TLS", config.Proxy{Upstream: tlsSrv.URL}, false, "TLS certificate not trusted"},
		{"TLS with ca_file", config.Proxy{Upstream: tlsSrv.URL, CAFile: caFile}, true, "127.0.0.1"},
		{"HTTPS to a plain server", config.Proxy{Upstream: strings.Replace(open, "http:", "https:", 1)}, false, strings.TrimPrefix(open, "http://") + " does not speak TLS"},
		{"not a registry", config.Proxy{Upstream: plain(http.NotFoundHandler())}, false, "not a registry: "},
		{"server error", config.Proxy{Upstream: plain(handler(502, ""))}, false, "answered HTTP 502 on /v2/"},
		{"bearer, anonymous", config.Proxy{Upstream: bearer}, true, bearerHost + " answered 401 with a Bearer challenge; anonymous access granted"},
		{"bearer, credentials", config.Proxy{Upstream: bearer, Username: "u", Password: "p"}, true, bearerHost + " answered 401 with a Bearer challenge; credentials accepted"},
		{"bearer, wrong credentials", config.Proxy{Upstream: bearer, Username: "u", Password: "x"}, false, bearerHost + " answered 401 with a Bearer challenge; credentials rejected"},
		{"rate-limited", config.Proxy{Upstream: plain(handler(429, ""))}, false, "answered 429: it is rate-limiting"},
		{"401 without challenge", config.Proxy{Upstream: plain(handler(401, ""))}, false, "without saying how to log in"},
		{"basic, no credentials", config.Proxy{Upstream: plain(handler(401, `Basic realm="x"`))}, false, "answered 401 with a Basic challenge; it wants credentials"},
		{"basic, wrong credentials", config.Proxy{Upstream: plain(handler(401, `Basic realm="x"`)), Username: "u", Password: "p"}, false, "answered 401 with a Basic challenge; credentials rejected"},
		{"no answer in time", config.Proxy{Upstream: slow, Timeout: config.Duration(100 * time.Millisecond)}, false, "no answer from "},
		{"missing password file", config.Proxy{Upstream: open, Username: "u", PasswordFile: "/nonexistent/pw"}, false, "cannot read the password"},
		{"unknown host", config.Proxy{Upstream: "https://registry.invalid"}, false, "no such host: registry.invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TestUpstream(context.Background(), tc.proxy)
			if got.OK != tc.ok || !strings.Contains(got.Message, tc.prefix) {
				t.Errorf("got %+v, want ok=%v and %q", got, tc.ok, tc.prefix)
			}
		})
	}
}
