package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

// adminClient talks to s's admin socket, as `wharf cache` does.
func adminClient(dataDir string) *http.Client {
	sock := filepath.Join(dataDir, server.AdminSocket)
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// Every mistake sent to the admin API is answered through the one OCI
// error writer with the status and code that say what was wrong.
func TestAdminAPIErrors(t *testing.T) {
	o := newOrigin(t)
	dir := t.TempDir()
	// A proxy that is not the default, so a bare name belongs to none.
	cfg, err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nlog:\n  access_log: false\nproxies:\n  - name: hub\n    upstream: %s\nhosted:\n  - name: team\n", dir, o.URL))
	if err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	hc := adminClient(dir)
	tests := []struct {
		method, path string
		status       int
		code         string // "" for a success
		allow        string
	}{
		{"GET", "/cache/stats", 200, "", ""},
		{"GET", "/cache/ls?sort=size&limit=0", 200, "", ""},
		{"GET", "/nope", 404, "NOT_FOUND", ""},
		{"GET", "/cache", 404, "NOT_FOUND", ""},
		{"POST", "/cache/stats", 405, "UNSUPPORTED", "GET"},
		{"GET", "/cache/evict", 405, "UNSUPPORTED", "POST"},
		{"DELETE", "/gc", 405, "UNSUPPORTED", "POST"},
		{"GET", "/cache/ls?sort=random", 400, "PARAMETER_INVALID", ""},
		{"GET", "/cache/ls?limit=ten", 400, "PAGINATION_NUMBER_INVALID", ""},
		{"GET", "/cache/ls?limit=-1", 400, "PAGINATION_NUMBER_INVALID", ""},
		{"POST", "/cache/evict", 400, "PARAMETER_INVALID", ""},
		{"POST", "/cache/evict?unused_for=soon", 400, "PARAMETER_INVALID", ""},
		{"POST", "/cache/evict?unused_for=-1h", 400, "PARAMETER_INVALID", ""},
		{"POST", "/cache/pin", 400, "PARAMETER_INVALID", ""},
		{"POST", "/cache/evict?image=hub/Library/alpine:1", 400, "NAME_INVALID", ""},
		{"POST", "/cache/pin?image=hub/library/alpine@sha256:nothex", 400, "DIGEST_INVALID", ""},
		{"POST", "/cache/unpin?image=hub/library/alpine:.bad", 400, "TAG_INVALID", ""},
		{"POST", "/cache/pin?image=alpine:3.20", 404, "NAME_UNKNOWN", ""},
		{"POST", "/cache/evict?image=hub/library/alpine:3.20", 404, "MANIFEST_UNKNOWN", ""},
		{"POST", "/gc?grace=soon", 400, "PARAMETER_INVALID", ""},
		{"POST", "/gc?grace=-1h", 400, "PARAMETER_INVALID", ""},
		{"POST", "/gc?dry_run=1", 200, "", ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://wharf"+tt.path, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || ociCode(b) != tt.code {
			t.Errorf("%s %s: %d %s, want %d %s", tt.method, tt.path, resp.StatusCode, b, tt.status, tt.code)
		}
		if tt.code != "" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.path, resp.Header.Get("Content-Type"))
		}
		if got := resp.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}
