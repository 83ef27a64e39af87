package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHealthcheckHealthy(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "")
	code, out, errOut := runCmd("healthcheck", "--url", "http://"+s.Addr())
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("healthy server: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Without --url, the listen address of --config is asked.
	cfg := filepath.Join(t.TempDir(), "wharf.yml")
	os.WriteFile(cfg, []byte("listen: "+s.Addr()+"\n"), 0o644)
	if code, _, errOut := runCmd("healthcheck", "--config", cfg); code != 0 {
		t.Errorf("--config: exit %d: %s", code, errOut)
	}
}

// With tls.mode self-signed, --config gives https and the server's CA,
// found in $WHARF_DATA_DIR when that is set (as the systemd unit does)
// rather than in the config's data_dir.
func TestHealthcheckSelfSignedTLS(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "tls:\n  mode: self-signed\n")
	cfg := filepath.Join(t.TempDir(), "wharf.yml")
	os.WriteFile(cfg, []byte("listen: "+s.Addr()+"\ndata_dir: /nonexistent\ntls:\n  mode: self-signed\n"), 0o644)
	t.Setenv("WHARF_DATA_DIR", dir)
	if code, _, errOut := runCmd("healthcheck", "--config", cfg); code != 0 {
		t.Errorf("self-signed: exit %d: %s", code, errOut)
	}
	// Plain HTTP to a TLS listener is not healthy.
	if code, _, errOut := runCmd("healthcheck", "--url", "http://"+s.Addr()); code != 1 || !strings.HasPrefix(errOut, "wharf: unhealthy: ") {
		t.Errorf("http to https: exit %d: %q", code, errOut)
	}
}

func TestHealthcheckUnhealthy(t *testing.T) {
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("index: ok\ndata_dir: not writable: read-only file system\nlisteners: ok\n"))
	}))
	defer notReady.Close()
	code, _, errOut := runCmd("healthcheck", "--url", notReady.URL)
	if want := "wharf: unhealthy: " + notReady.URL + "/readyz: data_dir: not writable: read-only file system (503)\n"; code != 1 || errOut != want {
		t.Errorf("503: exit %d, %q; want 1, %q", code, errOut, want)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if code, _, errOut := runCmd("healthcheck", "--url", dead.URL); code != 1 || !strings.Contains(errOut, "cannot reach") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("nothing listening: exit %d, %q", code, errOut)
	}

	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	if code, _, errOut := runCmd("healthcheck", "--url", other.URL); code != 1 || !strings.Contains(errOut, "(404)") {
		t.Errorf("not wharf: exit %d, %q", code, errOut)
	}

	// A server that accepts but never answers is unhealthy after --timeout.
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	start := time.Now()
	if code, _, errOut := runCmd("healthcheck", "--url", hung.URL, "--timeout", "200ms"); code != 1 || !strings.Contains(errOut, "did not answer in time") {
		t.Errorf("hung: exit %d, %q", code, errOut)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("hung server held the healthcheck for %s", d)
	}

	// Docker reserves exit status 2 of a HEALTHCHECK: misuse is 1 too.
	if code, _, errOut := runCmd("healthcheck", "--bogus"); code != 1 || !strings.Contains(errOut, "bogus") {
		t.Errorf("bad flag: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("healthcheck", "extra"); code != 1 || !strings.Contains(errOut, "--url extra") {
		t.Errorf("argument: exit %d, %q", code, errOut)
	}
}
