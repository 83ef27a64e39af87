//go:build linux

package harness

import (
	"slices"
	"strings"
	"testing"
)

// Shared hands start a testing.TB that outlives tests: its cleanups run
// at stop, last first; a skip and a failure come back as values.
func TestShared(t *testing.T) {
	var ran []int
	v, stop, skip, err := Shared("ok", func(tb testing.TB) int {
		tb.Cleanup(func() { ran = append(ran, 1) })
		tb.Cleanup(func() { ran = append(ran, 2) })
		dir := tb.TempDir()
		if dir == "" || tb.Name() != "ok" {
			tb.Fatalf("TempDir %q, Name %q", dir, tb.Name())
		}
		return 7
	})
	if v != 7 || skip != "" || err != nil || len(ran) != 0 {
		t.Fatalf("Shared = %d, %q, %v; cleanups ran early: %v", v, skip, err, ran)
	}
	stop()
	if !slices.Equal(ran, []int{2, 1}) {
		t.Errorf("cleanups ran %v, want [2 1]", ran)
	}

	_, stop, skip, err = Shared("skips", func(tb testing.TB) int { tb.Skipf("no %s here", "postgres"); return 0 })
	stop()
	if skip != "no postgres here" || err != nil {
		t.Errorf("a skipping start: %q, %v", skip, err)
	}
	_, stop, skip, err = Shared("fails", func(tb testing.TB) int { tb.Fatalf("broken %d", 3); return 0 })
	stop()
	if skip != "" || err == nil || !strings.Contains(err.Error(), "fails: broken 3") {
		t.Errorf("a failing start: %q, %v", skip, err)
	}
}
