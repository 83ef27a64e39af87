//go:build linux

package procnet

import (
	"net"
	"os"
	"os/exec"
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

	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	if got, err := ListenAddrs(sleep.Process.Pid); err != nil || len(got) != 0 {
		t.Fatalf("sleep listens on %v (%v)", got, err)
	}
}
