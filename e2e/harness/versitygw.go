//go:build linux

package harness

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// VersityGW is an S3-compatible server of the test's own: versitygw with
// its posix backend on a temp dir, on a loopback port. Buckets are
// directories of Dir: a test makes one with MakeBucket.
type VersityGW struct {
	Proc      *Process
	Endpoint  string // http://127.0.0.1:PORT, what storage.s3.endpoint takes
	Region    string
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root: one directory per bucket

	bin, addr string
	home      string // the process's working directory, home and log
	t         testing.TB
}

// VersityGWBin finds versitygw in $ROOT/.cache/bin, where
// scripts/test-deps.sh installs it, skipping (or failing under
// WHARF_E2E_REQUIRE=1) when it is not there.
func VersityGWBin(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(ModuleRoot(t), ".cache", "bin", "versitygw")
	if !isExecutable(bin) {
		skipOrFail(t, "missing %s (scripts/test-deps.sh installs it)", bin)
	}
	return bin
}

// StartVersityGW starts the server and waits until it answers HTTP.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	home := t.TempDir()
	dir := filepath.Join(home, "s3")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return startVersityGW(t, dir, home)
}

// StartVersityGWOn is StartVersityGW with the posix backend's root at dir,
// an existing directory: a SmallFS's, for "the S3 server's disk is full".
// The log stays out of it, in a temp dir.
func StartVersityGWOn(t testing.TB, dir string) *VersityGW {
	t.Helper()
	return startVersityGW(t, dir, t.TempDir())
}

func startVersityGW(t testing.TB, dir, home string) *VersityGW {
	t.Helper()
	g := &VersityGW{bin: VersityGWBin(t), Region: "us-east-1", AccessKey: "wharf-test-key", SecretKey: "wharf-test-secret",
		Dir: dir, home: home, t: t}
	onFreePort(t, "versitygw", func(addr string, retryBind bool) bool {
		g.addr = addr
		return g.start(retryBind)
	})
	g.Endpoint = "http://" + g.addr
	return g
}

func (g *VersityGW) start(retryBind bool) bool {
	g.t.Helper()
	// Global flags go before the backend's name.
	g.Proc = StartProcess(g.t, "versitygw", g.home, []string{"PATH=/usr/bin:/bin", "HOME=" + g.home},
		g.bin, "--access", g.AccessKey, "--secret", g.SecretKey, "--port", g.addr, "--region", g.Region, "posix", g.Dir)
	var retry func(string) bool
	if retryBind {
		retry = addrInUse
	}
	client := &http.Client{Timeout: 5 * time.Second}
	return g.Proc.waitReady(g.t, ReadyTimeout, func() error {
		resp, err := client.Get("http://" + g.addr + "/")
		if err != nil {
			return err
		}
		resp.Body.Close() // any answer (403 without a signature) means it serves
		return nil
	}, retry)
}

// MakeBucket creates a bucket: with the posix backend, a directory.
func (g *VersityGW) MakeBucket(name string) {
	g.t.Helper()
	if err := os.Mkdir(filepath.Join(g.Dir, name), 0o755); err != nil {
		g.t.Fatal(err)
	}
}

// Stop stops the server: "the S3 server stopped".
func (g *VersityGW) Stop() error { return g.Proc.Stop() }

// Restart starts a stopped server again on the same port and directory.
func (g *VersityGW) Restart() {
	g.t.Helper()
	g.Proc.Stop()
	if !g.start(false) {
		g.t.Fatalf("versitygw did not come back on %s", g.addr)
	}
}

// Addr is the server's host:port.
func (g *VersityGW) Addr() string { return g.addr }

func (g *VersityGW) String() string {
	host, port, _ := net.SplitHostPort(g.addr)
	return fmt.Sprintf("versitygw on %s port %s, posix backend %s", host, port, g.Dir)
}
