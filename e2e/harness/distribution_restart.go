//go:build linux

package harness

import (
	"net/http"
	"path/filepath"
	"testing"
)

// Restart starts docker-registry again after Stop or Kill, on the same
// address, config and storage (and token server), so a test can take an
// origin away and bring it back with its content. It returns a new
// Distribution; the old one stays stopped.
func (d *Distribution) Restart(t testing.TB) *Distribution {
	t.Helper()
	if d.Running() {
		t.Fatalf("docker-registry restart: pid %d still running", d.Pid())
	}
	bin := Tool(t, "docker-registry")
	nd := *d
	nd.Process = StartProcess(t, "docker-registry", d.Dir, cleanEnv([]string{"REGISTRY_"}), bin, "serve", filepath.Join(d.Dir, "config.yml"))
	nd.WaitReady(t, ReadyTimeout, func() error { return pingV2(nd.URL, "", http.StatusOK, http.StatusUnauthorized) })
	return &nd
}
