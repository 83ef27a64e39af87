//go:build linux

package harness

import (
	"errors"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv, when "1", turns every skip for a missing tool into a failure.
const RequireEnv = "WHARF_E2E_REQUIRE"

// toolDirs are searched after PATH: daemons live in sbin, which a non-login
// shell or a CI runner may leave off PATH.
var toolDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"}

// preferred pins tools where PATH would find the wrong one: /usr/local/bin/docker
// on these machines is a newer client than Debian's dockerd 20.10 speaks to
// comfortably, so the client that ships with the daemon wins.
var preferred = map[string]string{
	"docker": "/usr/bin/docker",
}

// LookTool returns the absolute path of an executable, or an error naming it.
func LookTool(name string) (string, error) {
	if filepath.IsAbs(name) {
		if isExecutable(name) {
			return name, nil
		}
		return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
	if p, ok := preferred[name]; ok && isExecutable(p) {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, d := range toolDirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Require skips the test when any tool is missing, or fails it when
// WHARF_E2E_REQUIRE=1. Tools are executable names or absolute paths.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := LookTool(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "missing tools %v (scripts/test-deps.sh installs them)", missing)
	}
}

// Tool returns the path of a tool, skipping or failing like Require when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	Require(t, name)
	p, _ := LookTool(name)
	return p
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf(format+" ("+RequireEnv+"=1)", args...)
	}
	t.Skipf(format, args...)
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// ModuleRoot returns the directory holding wharf's go.mod, found by walking up
// from the working directory (a test's working directory is its package dir).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.mod above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("module root: %v", rootErr)
	}
	return rootDir
}

// PickAddr returns "127.0.0.1:PORT" for a port that was free a moment ago,
// for the few programs that cannot listen on port 0 and say where they
// are (slapd takes port 0 to mean its default, 389), and for addresses
// two programs must know before either starts (an ACME server and the
// server it validates). Anything may take the port before the caller binds
// it, so callers retry with another port when the bind fails.
//
// The port is drawn below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), where port-0 listeners and outgoing
// connections never land, so only another PickAddr can collide with it.
func PickAddr(t testing.TB) string {
	t.Helper()
	lo := ephemeralLow()
	const floor = 10000
	for range 100 {
		port := floor + mrand.IntN(lo-floor)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		l.Close()
		return l.Addr().String()
	}
	t.Fatalf("no free port in %d-%d after 100 tries", floor, lo-1)
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 20000 {
				return lo
			}
		}
	}
	return 32768 // Linux's default
}

// rebindAttempts is how often a server restarted on its old port (or
// started on a PickAddr port) is started again when that port is taken:
// a port freed by a stopped server can be held for a moment by another
// socket, such as a client connection that got it as its local port.
const rebindAttempts = 5

// waitBindable waits, up to timeout, until addr can be listened on.
func waitBindable(addr string, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return
		}
	}
}

// addrInUse reports whether a program's log says a bind failed because
// the address was taken, the one failure PickAddr's callers retry.
func addrInUse(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "address already in use") ||
		strings.Contains(log, "errno=98")
}

// ShortTempDir makes a directory directly under /tmp for unix sockets, whose
// paths must stay under ~108 bytes (t.TempDir paths are long). It is removed
// at cleanup, after unmounting anything a daemon left mounted inside it.
func ShortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() {
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// onFreePort starts a program that cannot listen on port 0 on a picked
// loopback address, picking again while start reports the address taken
// (another test won the race for it): start gets the address and whether
// a bind failure may be retried, and says whether the program came up.
func onFreePort(t testing.TB, name string, start func(addr string, retryBind bool) bool) string {
	t.Helper()
	const attempts = 5
	for i := 1; ; i++ {
		addr := PickAddr(t)
		if start(addr, i < attempts) {
			return addr
		}
		t.Logf("%s: %s taken; picking another port", name, addr)
	}
}
