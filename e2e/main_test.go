//go:build linux

package e2e

import (
	"os"
	"testing"

	"github.com/wharf-registry/wharf/e2e/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.CleanupBuild()
	cleanupDist()
	os.Exit(code)
}

// startWharf builds wharf once and starts it with one hosted namespace, "team".
func startWharf(t *testing.T) *harness.Wharf {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts real processes")
	}
	return harness.StartWharf(t, harness.BuildWharf(t), harness.HostedTeamConfig)
}
