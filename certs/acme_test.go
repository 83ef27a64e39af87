//go:build linux

package certs

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// These tests get real certificates from a real ACME CA, Pebble, which
// validates the challenges by connecting back to 127.0.0.1 (its DNS stub
// resolves harness.PebbleDomain there).

const acmeDomain = harness.PebbleDomain

func TestACMETLSALPN01(t *testing.T) {
	if testing.Short() {
		t.Skip("starts pebble")
	}
	t.Parallel()
	tlsLn := listenLoopback(t)
	tlsAddr := tlsLn.Addr().String()
	p := harness.StartPebble(t, harness.PebbleOptions{
		TLSPort:  port(t, tlsAddr),
		HTTPPort: deadPort(t), // nothing answers there: TLS-ALPN-01 must do
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.RootPEM(t))
	data := t.TempDir()
	log, logs := testLogger(t)
	m, err := New(acmeConfig(p, "off"), data, log)
	if err != nil {
		t.Fatal(err)
	}
	if h := m.HTTPHandler(tlsAddr); h != nil {
		t.Error("HTTPHandler is not nil with http_listen off")
	}
	if m.CAFile() != "" {
		t.Errorf("CAFile() = %q in mode acme", m.CAFile())
	}
	if d := m.Describe(); !strings.Contains(d, acmeDomain+" on first request") || !strings.Contains(d, p.DirectoryURL) {
		t.Errorf("Describe() before issuance = %q", d)
	}
	serveTLS(t, m, tlsLn)

	start := time.Now()
	leaf := handshake(t, tlsAddr, acmeDomain, roots)
	t.Logf("first handshake, with issuance: %s", time.Since(start))
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != acmeDomain {
		t.Errorf("issued for %v, want [%s]", leaf.DNSNames, acmeDomain)
	}
	if !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Errorf("issuer %q, want Pebble's", leaf.Issuer.CommonName)
	}
	// autocert offers only TLS-ALPN-01 without HTTPHandler, and pebble's
	// HTTP port is dead, so issuance proves TLS-ALPN-01 worked.
	if pl := p.Logs(); !strings.Contains(pl, "Issued certificate") || strings.Contains(pl, "Attempting to validate w/ HTTP") {
		t.Errorf("pebble did not issue through TLS-ALPN-01 alone; its log:\n%s", pl)
	}

	// A name off the allow-list fails at once, and the log says why.
	start = time.Now()
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr,
		&tls.Config{ServerName: "other.wharf.test", RootCAs: roots})
	if err == nil {
		t.Error("handshake for a host not in tls.hosts succeeded")
	} else if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusal took %s", took)
	}
	if !waitLog(logs, "server_name=other.wharf.test") || !logs.Contains("is not in tls.hosts") {
		t.Errorf("no log line naming the refused host:\n%s", logs)
	}

	// With pebble gone, a restart serves the certificate from the cache.
	p.Stop() // pebble exits on SIGTERM with that status, which is no news
	m2, err := New(acmeConfig(p, "off"), data, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(m2.Describe())
	if d := m2.Describe(); !strings.Contains(d, acmeDomain+" expires ") {
		t.Errorf("Describe() after issuance = %q, want the cached expiry", d)
	}
	ln2 := listenLoopback(t)
	addr2 := ln2.Addr().String()
	serveTLS(t, m2, ln2)
	if again := handshake(t, addr2, acmeDomain, roots); !again.Equal(leaf) {
		t.Error("restart got a different certificate instead of the cached one")
	}
}

func TestACMEHTTP01(t *testing.T) {
	if testing.Short() {
		t.Skip("starts pebble")
	}
	t.Parallel()
	tlsLn, httpLn := listenLoopback(t), listenLoopback(t)
	tlsAddr, httpAddr := tlsLn.Addr().String(), httpLn.Addr().String()
	p := harness.StartPebble(t, harness.PebbleOptions{
		HTTPPort: port(t, httpAddr),
		TLSPort:  deadPort(t), // nothing answers there: TLS-ALPN-01 fails, autocert falls back
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.RootPEM(t))
	log, _ := testLogger(t)
	m, err := New(acmeConfig(p, httpAddr), t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	h := m.HTTPHandler(tlsAddr)
	if h == nil {
		t.Fatal("no HTTPHandler in mode acme")
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(httpLn)
	t.Cleanup(func() { srv.Close() })
	serveTLS(t, m, tlsLn)

	leaf := handshake(t, tlsAddr, acmeDomain, roots)
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != acmeDomain {
		t.Errorf("issued for %v, want [%s]", leaf.DNSNames, acmeDomain)
	}
	if pl := p.Logs(); !strings.Contains(pl, "Attempting to validate w/ HTTP") {
		t.Errorf("pebble did not validate with HTTP-01; its log:\n%s", pl)
	}

	// Everything but challenges goes to https on the main listener's port.
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/v2/library/alpine/tags/list?n=5", nil)
	req.Host = acmeDomain
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://" + acmeDomain + ":" + strconv.Itoa(port(t, tlsAddr)) + "/v2/library/alpine/tags/list?n=5"
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		t.Errorf("GET: %s to %q, want 302 to %q", resp.Status, resp.Header.Get("Location"), want)
	}
	req, _ = http.NewRequest(http.MethodPut, "http://"+httpAddr+"/v2/x/manifests/latest", strings.NewReader("{}"))
	req.Host = acmeDomain
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "https://") {
		t.Errorf("PUT: %s %q, want 400 pointing at https", resp.Status, body)
	}
}

func TestRedirectPort443(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"registry.example.org", "https://registry.example.org/v2/"},
		{"registry.example.org:80", "https://registry.example.org/v2/"},
		{"[2001:db8::1]:80", "https://[2001:db8::1]/v2/"},
		{"[2001:db8::1]", "https://[2001:db8::1]/v2/"},
	} {
		rec := &redirectRecorder{header: http.Header{}}
		r, _ := http.NewRequest(http.MethodGet, "http://x/v2/", nil)
		r.Host = tc.host
		redirectHandler("443").ServeHTTP(rec, r)
		if got := rec.header.Get("Location"); got != tc.want {
			t.Errorf("Host %s: Location %q, want %q", tc.host, got, tc.want)
		}
	}
}

type redirectRecorder struct {
	header http.Header
	status int
}

func (r *redirectRecorder) Header() http.Header         { return r.header }
func (r *redirectRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *redirectRecorder) WriteHeader(s int)           { r.status = s }

func acmeConfig(p *harness.Pebble, httpListen string) config.TLS {
	return config.TLS{
		Mode:          config.TLSACME,
		Hosts:         []string{acmeDomain},
		Email:         "ops@wharf.test",
		ACMEDirectory: p.DirectoryURL,
		ACMECAFile:    p.CAFile,
		HTTPListen:    httpListen,
	}
}

// listenLoopback listens on a port of 127.0.0.1 the kernel picks, until
// cleanup. Tests listen before they tell pebble the port, so no other
// process can take it in between.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// deadPort is a port where a challenge cannot succeed: the test holds it
// and hangs up on every connection.
func deadPort(t *testing.T) int {
	t.Helper()
	l := listenLoopback(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return port(t, l.Addr().String())
}

// serveTLS runs an HTTPS server with m's TLS config on ln until cleanup.
func serveTLS(t *testing.T, m *Manager, ln net.Listener) {
	t.Helper()
	l := tls.NewListener(ln, m.TLSConfig())
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          stdlog.New(io.Discard, "", 0),
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// handshake connects as a client that trusts only roots and returns the
// server's certificate. The first handshake for a name waits for issuance.
func handshake(t *testing.T, addr, serverName string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: serverName, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("handshake with %s as %s: %v", addr, serverName, err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("negotiated %q, want h2", st.NegotiatedProtocol)
	}
	return st.PeerCertificates[0]
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitLog waits for a line that a server goroutine may still be writing,
// for up to 10 s: a loaded machine may not run that goroutine for a while.
func waitLog(logs *logBuffer, s string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if logs.Contains(s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
