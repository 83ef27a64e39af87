package certs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/config"
)

func filesConfig(dir string) config.TLS {
	return config.TLS{
		Mode:     config.TLSFiles,
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
	}
}

func servedCN(t *testing.T, m *Manager) string {
	t.Helper()
	c, err := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: "example.test"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf.Subject.CommonName
}

func TestFilesLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filesConfig(dir)
	other := filepath.Join(dir, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestPair(t, cfg.CertFile, cfg.KeyFile, "one.test")
	writeTestPair(t, filepath.Join(other, "cert.pem"), filepath.Join(other, "key.pem"), "two.test")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		cert, key string
		want      []string // substrings of the error
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), cfg.KeyFile, []string{"cert_file", "nope.pem"}},
		{"missing key", cfg.CertFile, filepath.Join(dir, "nokey.pem"), []string{"key_file", "nokey.pem"}},
		{"cert not PEM", garbage, cfg.KeyFile, []string{"cert_file " + garbage, "no PEM CERTIFICATE"}},
		{"key not PEM", cfg.CertFile, garbage, []string{"key_file " + garbage, "no PEM private key"}},
		{"key of another cert", cfg.CertFile, filepath.Join(other, "key.pem"), []string{"does not belong", cfg.CertFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.CertFile, c.KeyFile = tc.cert, tc.key
			m, err := New(c, t.TempDir(), nil)
			if err == nil {
				t.Fatalf("New succeeded: %s", m.Describe())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestFilesReload(t *testing.T) {
	dir := t.TempDir()
	cfg := filesConfig(dir)
	writeTestPair(t, cfg.CertFile, cfg.KeyFile, "one.test")
	log, logs := testLogger(t)
	m, err := New(cfg, t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(m.Describe())
	if d := m.Describe(); !strings.Contains(d, "one.test") || !strings.Contains(d, cfg.CertFile) {
		t.Errorf("Describe() = %q, want the name and the file", d)
	}
	if m.CAFile() != "" || m.HTTPHandler(":443") != nil {
		t.Error("files mode has a CA file or an HTTP handler")
	}
	f := m.src.(*fileSource)
	clock := time.Now()
	f.mu.Lock()
	f.now = func() time.Time { return clock }
	f.lastCheck = clock
	f.mu.Unlock()
	advance := func(d time.Duration) {
		f.mu.Lock()
		clock = clock.Add(d)
		f.mu.Unlock()
	}

	if cn := servedCN(t, m); cn != "one.test" {
		t.Fatalf("serving %q, want one.test", cn)
	}

	writeTestPair(t, cfg.CertFile, cfg.KeyFile, "two.test")
	if cn := servedCN(t, m); cn != "one.test" {
		t.Errorf("files looked at again within %s: serving %q", reloadInterval, cn)
	}
	advance(reloadInterval)
	if cn := servedCN(t, m); cn != "two.test" {
		t.Fatalf("after replacing the files: serving %q, want two.test", cn)
	}

	// A renewal tool that writes the certificate before the key leaves a
	// mismatched pair for a moment; the old certificate stays.
	writeTestPair(t, filepath.Join(dir, "next.pem"), filepath.Join(dir, "next.key"), "three.test")
	replaceFile(t, cfg.CertFile, mustRead(t, filepath.Join(dir, "next.pem")))
	advance(reloadInterval)
	if cn := servedCN(t, m); cn != "two.test" {
		t.Errorf("with a mismatched pair: serving %q, want two.test", cn)
	}
	if !logs.Contains("do not load; keeping the loaded certificate") {
		t.Errorf("no warning about the broken files in the log:\n%s", logs)
	}
	replaceFile(t, cfg.KeyFile, mustRead(t, filepath.Join(dir, "next.key")))
	advance(reloadInterval)
	if cn := servedCN(t, m); cn != "three.test" {
		t.Errorf("after the key arrived: serving %q, want three.test", cn)
	}

	// A garbage file, then the file gone: the old certificate stays.
	replaceFile(t, cfg.CertFile, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	advance(reloadInterval)
	if cn := servedCN(t, m); cn != "three.test" {
		t.Errorf("with a garbage certificate: serving %q, want three.test", cn)
	}
	if err := os.Remove(cfg.CertFile); err != nil {
		t.Fatal(err)
	}
	advance(reloadInterval)
	if cn := servedCN(t, m); cn != "three.test" {
		t.Errorf("with the certificate gone: serving %q, want three.test", cn)
	}
	if !logs.Contains("unreadable") {
		t.Errorf("no warning about the missing file in the log:\n%s", logs)
	}
	writeTestPair(t, cfg.CertFile, cfg.KeyFile, "four.test")
	advance(reloadInterval)
	if cn := servedCN(t, m); cn != "four.test" {
		t.Errorf("after restoring the files: serving %q, want four.test", cn)
	}
	if !logs.Contains("TLS certificate reloaded") {
		t.Errorf("reload not logged:\n%s", logs)
	}
}

// TestFilesConcurrentHandshakes gives the race detector handshakes that
// reload while others read.
func TestFilesConcurrentHandshakes(t *testing.T) {
	dir := t.TempDir()
	cfg := filesConfig(dir)
	writeTestPair(t, cfg.CertFile, cfg.KeyFile, "one.test")
	m, err := New(cfg, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.src.(*fileSource).interval = 0
	get := m.TLSConfig().GetCertificate
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				if c, err := get(&tls.ClientHelloInfo{}); err != nil || c == nil {
					t.Errorf("GetCertificate: %v, %v", c, err)
					return
				}
			}
		}()
	}
	for i := range 5 {
		writeTestPair(t, cfg.CertFile, cfg.KeyFile, "n"+string(rune('a'+i))+".test")
	}
	for range 4 {
		<-done
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
