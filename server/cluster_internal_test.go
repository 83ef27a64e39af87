package server

import (
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

// The address other replicas reach this one at: cluster.advertise when
// set, else the bound address, else (listen on every address) the first
// non-loopback one.
func TestAdvertise(t *testing.T) {
	s := &Server{cfg: &config.Config{}, log: slog.New(slog.DiscardHandler)}
	if got := s.advertise(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5001}); got != "http://127.0.0.1:5001" {
		t.Errorf("bound 127.0.0.1:5001: %q", got)
	}
	if got := s.advertise(&net.TCPAddr{IP: net.ParseIP("::1"), Port: 5001}); got != "http://[::1]:5001" {
		t.Errorf("bound [::1]:5001: %q", got)
	}
	got := s.advertise(&net.TCPAddr{IP: net.IPv6unspecified, Port: 5000})
	if ip := firstNonLoopback(); ip != nil {
		if want := "http://" + net.JoinHostPort(ip.String(), "5000"); got != want {
			t.Errorf("bound [::]:5000: %q, want %q", got, want)
		}
	} else if !strings.HasSuffix(got, ":5000") {
		t.Errorf("bound [::]:5000 on a machine without a non-loopback address: %q", got)
	}
	s.cfg.Cluster.Advertise = "https://10.0.0.5:5000"
	if got := s.advertise(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5001}); got != "https://10.0.0.5:5000" {
		t.Errorf("with cluster.advertise: %q", got)
	}
}

// A replica restarted on its data dir keeps its id (its upload sessions
// stay its own); another data dir is another replica.
func TestReplicaIDKept(t *testing.T) {
	dir := t.TempDir()
	a, err := replicaID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := replicaID(dir); err != nil || b != a {
		t.Errorf("restarted: %q, %v; want %q", b, err, a)
	}
	if c, err := replicaID(t.TempDir()); err != nil || c == a {
		t.Errorf("another data dir: %q, %v; want an id other than %q", c, err, a)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(a, host+"-") {
		t.Errorf("id %q does not start with the host name %q", a, host)
	}
}
