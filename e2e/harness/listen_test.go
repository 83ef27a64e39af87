//go:build linux

package harness

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// ListenAddrs finds the sockets a process listens on, and only those.
func TestListenAddrs(t *testing.T) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer b.Close()
	// A connected socket is not a listener.
	c, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := ListenAddrs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.Addr().String(), b.Addr().String()}
	if !slices.Equal(got, want) {
		t.Fatalf("ListenAddrs = %v, want %v", got, want)
	}

	p := StartProcess(t, "sleep", t.TempDir(), nil, Tool(t, "sleep"), "60")
	if got, err := ListenAddrs(p.Pid()); err != nil || len(got) != 0 {
		t.Fatalf("sleep listens on %v (%v)", got, err)
	}
}

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
