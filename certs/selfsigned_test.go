package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
)

func selfSignedConfig(hosts ...string) config.TLS {
	return config.TLS{Mode: config.TLSSelfSigned, Hosts: hosts}
}

func TestSelfSignedGenerate(t *testing.T) {
	data := t.TempDir()
	m, err := New(selfSignedConfig("registry.lan", "10.1.2.3", "Upper.Example."), data, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(data, "tls")
	if got, want := m.CAFile(), SelfSignedCAPath(data); got != want || want != filepath.Join(dir, "ca.crt") {
		t.Errorf("CAFile() = %q, SelfSignedCAPath = %q, want %s", got, want, filepath.Join(dir, "ca.crt"))
	}
	wantPerm := map[string]os.FileMode{"": 0o700, "ca.key": 0o600, "server.key": 0o600, "ca.crt": 0o644, "server.crt": 0o644}
	for name, want := range wantPerm {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s/%s mode %o, want %o", dir, name, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}

	ca, _, err := loadPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || !strings.HasPrefix(ca.Subject.CommonName, "wharf local CA") {
		t.Errorf("CA %q IsCA=%v", ca.Subject.CommonName, ca.IsCA)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("CA lives %s, want about 10 years", life)
	}

	leaf, _, err := loadPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	hostname, _ := os.Hostname()
	for _, n := range []string{"localhost", strings.ToLower(hostname), "registry.lan", "upper.example"} {
		if !slices.Contains(leaf.DNSNames, n) {
			t.Errorf("server certificate DNS names %v lack %q", leaf.DNSNames, n)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3"} {
		if !slices.ContainsFunc(leaf.IPAddresses, net.ParseIP(ip).Equal) {
			t.Errorf("server certificate IPs %v lack %s", leaf.IPAddresses, ip)
		}
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 398*24*time.Hour || life < 390*24*time.Hour {
		t.Errorf("server certificate lives %s, want about 397 days", life)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range []string{"registry.lan", "10.1.2.3", "localhost", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	t.Log(m.Describe())
	if d := m.Describe(); !strings.Contains(d, "self-signed") || !strings.Contains(d, m.CAFile()) || !strings.Contains(d, "registry.lan") {
		t.Errorf("Describe() = %q", d)
	}
}

func TestSelfSignedReuseAndRegenerate(t *testing.T) {
	data := t.TempDir()
	read := func(name string) []byte { return mustRead(t, filepath.Join(data, "tls", name)) }
	log, logs := testLogger(t)

	if _, err := New(selfSignedConfig("a.lan"), data, log); err != nil {
		t.Fatal(err)
	}
	ca, server := read("ca.crt"), read("server.crt")

	if _, err := New(selfSignedConfig("a.lan"), data, log); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read("ca.crt"), ca) || !bytes.Equal(read("server.crt"), server) {
		t.Fatal("second start did not reuse the CA and server certificate")
	}

	// A name added to tls.hosts reissues the server certificate only.
	m, err := New(selfSignedConfig("a.lan", "b.lan"), data, log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read("ca.crt"), ca) {
		t.Error("the CA changed when hosts changed")
	}
	if bytes.Equal(read("server.crt"), server) {
		t.Fatal("server certificate not reissued for a new host")
	}
	if !logs.Contains("new names b.lan") {
		t.Errorf("reason not logged:\n%s", logs)
	}
	if c, _ := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{}); !slices.Contains(c.Leaf.DNSNames, "b.lan") {
		t.Errorf("serving names %v, want b.lan among them", c.Leaf.DNSNames)
	}
	server = read("server.crt")

	// A name removed does not matter: the certificate still covers the rest.
	if _, err := New(selfSignedConfig("b.lan"), data, log); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read("server.crt"), server) {
		t.Error("server certificate reissued although it covers every name")
	}

	// 380 days later the certificate is within 30 days of expiry.
	later := func() time.Time { return time.Now().Add(380 * 24 * time.Hour) }
	if _, err := newSelfSigned(filepath.Join(data, "tls"), []string{"b.lan"}, log, later); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read("ca.crt"), ca) {
		t.Error("the CA changed when the server certificate expired")
	}
	if bytes.Equal(read("server.crt"), server) {
		t.Error("server certificate near expiry not reissued")
	}
}

// TestSelfSignedRenewWhileRunning: a server up for a year renews its
// certificate on a handshake.
func TestSelfSignedRenewWhileRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	log, _ := testLogger(t)
	s, err := newSelfSigned(dir, nil, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	server := mustRead(t, filepath.Join(dir, "server.crt"))
	old, _ := s.getCertificate(nil)
	s.mu.Lock()
	s.now = func() time.Time { return time.Now().Add(390 * 24 * time.Hour) }
	s.mu.Unlock()
	renewed, _ := s.getCertificate(nil)
	if renewed == old || !renewed.Leaf.NotAfter.After(old.Leaf.NotAfter) {
		t.Error("running server did not renew its certificate near expiry")
	}
	if bytes.Equal(mustRead(t, filepath.Join(dir, "server.crt")), server) {
		t.Error("renewed certificate not written")
	}
}

func TestSelfSignedBrokenCA(t *testing.T) {
	data := t.TempDir()
	if _, err := New(selfSignedConfig(), data, nil); err != nil {
		t.Fatal(err)
	}
	// A CA that clients trust is never replaced behind their back.
	if err := os.WriteFile(filepath.Join(data, "tls", "ca.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(selfSignedConfig(), data, nil)
	if err == nil || !strings.Contains(err.Error(), "ca.key") {
		t.Errorf("New with a broken ca.key: %v, want an error naming it", err)
	}

	// A missing CA is made anew, and the server certificate with it.
	os.Remove(filepath.Join(data, "tls", "ca.key"))
	server := mustRead(t, filepath.Join(data, "tls", "server.crt"))
	if _, err := New(selfSignedConfig(), data, nil); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(mustRead(t, filepath.Join(data, "tls", "server.crt")), server) {
		t.Error("server certificate of the old CA kept")
	}
}

func TestSelfSignedHandshake(t *testing.T) {
	data := t.TempDir()
	m, err := New(selfSignedConfig(), data, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          stdlog.New(io.Discard, "", 0), // the refused handshakes below
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	addr := l.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(t, m.CAFile()))

	for _, host := range []string{"127.0.0.1", "localhost"} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("handshake as %s trusting ca.crt: %v", host, err)
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Errorf("negotiated %q, want h2", p)
		}
		conn.Close()
	}

	_, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	_, err = tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost"})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("without ca.crt: %v, want an unknown authority error", err)
	}

	// And through net/http with HTTP/2, as a registry client would.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
	resp, err := c.Get("https://localhost:" + port + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Errorf("request went over %q, want HTTP/2.0", body)
	}
}

func TestClientInstructions(t *testing.T) {
	got := ClientInstructions("/var/lib/wharf/tls/ca.crt", "registry.lan:5000")
	for _, want := range []string{
		"sudo cp /var/lib/wharf/tls/ca.crt /etc/docker/certs.d/registry.lan:5000/ca.crt",
		"sudo cp /var/lib/wharf/tls/ca.crt /etc/containerd/certs.d/registry.lan:5000/ca.crt",
		`ca = "/etc/containerd/certs.d/registry.lan:5000/ca.crt"`,
		`[host."https://registry.lan:5000"]`,
		"sudo cp /var/lib/wharf/tls/ca.crt /etc/containers/certs.d/registry.lan:5000/ca.crt",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("instructions lack %q:\n%s", want, got)
		}
	}
	got = ClientInstructions("/data dir/ca.crt", "registry.lan:443")
	if !strings.Contains(got, "sudo cp '/data dir/ca.crt' /etc/docker/certs.d/registry.lan/ca.crt") {
		t.Errorf("port 443 or quoting wrong:\n%s", got)
	}
}
