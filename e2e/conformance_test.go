//go:build linux

package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestConformance runs the OCI distribution-spec conformance program (every
// API and data workflow of its 1.1 profile) against a wharf process.
// WHARF_CONFORMANCE_FILTER narrows it to one branch, e.g.
// "OCI Conformance Test/sha512 blobs", when chasing a failure.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts real processes")
	}
	bin := harness.ConformanceBin(t)
	w := startWharf(t)
	opts := harness.ConformanceOptions{Registry: w.Addr, Repo1: "team/repo1", Repo2: "team/repo2"}
	if f := os.Getenv("WHARF_CONFORMANCE_FILTER"); f != "" {
		opts.Env = map[string]string{"OCI_FILTER_TEST": f}
	}
	res := harness.RunConformance(t, bin, opts)
	t.Logf("conformance: %d tests, %d failures, %d errors, %d skipped", res.Tests, res.Failures, res.Errors, res.Skipped)
	if len(res.SkipNames) > 0 {
		t.Logf("skipped (registry answered unsupported):\n  %s", strings.Join(res.SkipNames, "\n  "))
	}
	if !res.Passed() {
		t.Fatal(res.Summary())
	}
}
