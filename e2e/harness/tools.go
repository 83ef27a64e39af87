//go:build linux

package harness

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
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

// FreeAddr returns "127.0.0.1:PORT" for a port that was free a moment ago.
// Another process may take it before the caller binds it; the kernel hands out
// ephemeral ports in sequence, so that is rare enough for tests.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
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
