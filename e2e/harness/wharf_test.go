//go:build linux

package harness

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	CleanupBuild()
	os.Exit(code)
}

// wharf started on port 0 reports the port it bound, and a restart comes
// back on it, waiting while another socket holds it.
func TestWharfPortZeroAndRestart(t *testing.T) {
	skipShort(t)
	w := StartWharf(t, BuildWharf(t), HostedTeamConfig+"metrics:\n  listen: 127.0.0.1:0\n")
	if strings.HasSuffix(w.Addr, ":0") || w.URL != "http://"+w.Addr || w.MetricsAddr == "" || strings.HasSuffix(w.MetricsAddr, ":0") {
		t.Fatalf("Addr %q URL %q MetricsAddr %q", w.Addr, w.URL, w.MetricsAddr)
	}
	if err := pingV2(w.URL, "", 200); err != nil {
		t.Fatal(err)
	}
	addr := w.Addr
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	// Someone holds the port for a while after wharf let it go.
	held, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(2*time.Second, func() { held.Close() })
	w2 := w.Restart(t)
	if w2.Addr != addr {
		t.Errorf("restarted on %s, want %s", w2.Addr, addr)
	}
	if !strings.Contains(w2.Logs(), "address already in use") {
		t.Error("the restart never met the held port")
	}
	if err := pingV2(w2.URL, "", 200); err != nil {
		t.Fatal(err)
	}
}
