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
	// The config names the port the first start bound; it was free when
	// the old process exited, but a socket may hold it for a moment.
	for i := 1; ; i++ {
		logStart := len(d.Logs())
		nd.Process = StartProcess(t, "docker-registry", d.Dir, cleanEnv([]string{"REGISTRY_"}), bin, "serve", filepath.Join(d.Dir, "config.yml"))
		if nd.waitReady(t, ReadyTimeout, func() error { return pingV2(nd.URL, "", http.StatusOK, http.StatusUnauthorized) },
			func(log string) bool { return i < rebindAttempts && addrInUse(log[min(logStart, len(log)):]) }) {
			return &nd
		}
		t.Logf("docker-registry: %s is taken; starting again once it is free", d.Addr)
		waitBindable(d.Addr, ReadyTimeout)
	}
}
