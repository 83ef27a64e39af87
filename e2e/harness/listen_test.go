//go:build linux

package harness

import (
	"path/filepath"
	"testing"
)

// servingAddrs reads the addresses from wharf's "wharf is serving" line
// (and the metrics one before it) in either log format, ignoring what an
// earlier run of the same log wrote.
func TestServingAddrs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wharf.log")
	old := `time=2026-12-02T17:00:00Z level=INFO msg="wharf is serving" scheme=http addr=127.0.0.1:1111 data_dir=/d` + "\n"
	text := `+ wharf serve --config x
time=2026-12-02T17:00:01Z level=INFO msg="serving /metrics on its own address" metrics_addr=127.0.0.1:2222
time=2026-12-02T17:00:01Z level=INFO msg="wharf is serving" scheme=http addr=127.0.0.1:3333 data_dir=/d hosted=team
`
	writeFile(t, path, old+text)
	addr, metrics, err := servingAddrs(path, int64(len(old)))
	if err != nil || addr != "127.0.0.1:3333" || metrics != "127.0.0.1:2222" {
		t.Errorf("text: %q %q %v", addr, metrics, err)
	}
	writeFile(t, path, `{"time":"x","level":"INFO","msg":"wharf is serving","scheme":"https","addr":"127.0.0.1:4444"}`+"\n")
	if addr, metrics, err := servingAddrs(path, 0); err != nil || addr != "127.0.0.1:4444" || metrics != "" {
		t.Errorf("json: %q %q %v", addr, metrics, err)
	}
	writeFile(t, path, old)
	if _, _, err := servingAddrs(path, int64(len(old))); err == nil {
		t.Error("found an address only an earlier run logged")
	}
}
