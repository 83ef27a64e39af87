package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestCacheCommands(t *testing.T) {
	img, _ := random.Image(32<<10, 2)
	origin := startOrigin(t, "library/alpine:3.20", img)
	dir := t.TempDir()
	s := startServer(t, dir, fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\ncache:\n  max_size: 1GiB\n", origin.URL))
	pullImage(t, s, "alpine:3.20")

	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCmd(append(args, "--data-dir", dir)...)
		if code != 0 {
			t.Fatalf("wharf %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := run("cache", "stats"); !strings.Contains(out, "proxied content:") || !strings.Contains(out, "1.0 GiB") {
		t.Errorf("stats:\n%s", out)
	}
	if out := run("cache", "ls", "--sort", "size"); !strings.Contains(out, "hub/library/alpine") || !strings.Contains(out, "hub/library/alpine:3.20") {
		t.Errorf("ls:\n%s", out)
	}
	if out := run("cache", "pin", "alpine:3.20"); !strings.Contains(out, "pinned hub/library/alpine:3.20") {
		t.Errorf("pin: %s", out)
	}
	if out := run("cache", "evict", "--unused-for", "0s"); !strings.Contains(out, "evicted 0 blobs") {
		t.Errorf("evict of pinned content: %s", out)
	}
	run("cache", "unpin", "hub/library/alpine:3.20")
	if out := run("cache", "evict", "alpine:3.20"); strings.Contains(out, "evicted 0 blobs") {
		t.Errorf("evict after unpin: %s", out)
	}
	// Clear errors for mistakes.
	if code, _, errOut := runCmd("cache", "pin", "nope:1", "--data-dir", dir); code == 0 || !strings.Contains(errOut, "not cached") {
		t.Errorf("pin of uncached image: %d %s", code, errOut)
	}
	// The server's OCI error reaches the user as its message, not JSON.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cache", "ls", "--sort", "bogus"}, "wharf: sort must be size or last-used, not \"bogus\"\n"},
		{[]string{"cache", "evict", "--unused-for", "soon"}, "wharf: unused_for: \"soon\" is not a duration like 30d or 12h\n"},
		{[]string{"cache", "pin", "Upper:1"}, "invalid repository name"},
	} {
		if code, _, errOut := runCmd(append(c.args, "--data-dir", dir)...); code != 1 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "{") {
			t.Errorf("wharf %v: exit %d: %q, want %q", c.args, code, errOut, c.want)
		}
	}
	if code, _, errOut := runCmd("cache", "stats", "--data-dir", t.TempDir()); code == 0 || !strings.Contains(errOut, "no running wharf") {
		t.Errorf("no server: %d %s", code, errOut)
	}
}

func TestWarm(t *testing.T) {
	idx, _ := random.Index(16<<10, 2, 2)
	origin := startOrigin(t, "library/multi:1", idx)
	s := startServer(t, t.TempDir(), fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\n", origin.URL))
	code, out, errOut := runCmd("warm", "multi:1", "--url", "http://"+s.Addr())
	if code != 0 {
		t.Fatalf("warm: %d %s %s", code, out, errOut)
	}
	// random.Index platforms are unset ("unknown"), so with no --platform
	// filter they are skipped as attestations would be; ask by digest.
	m, _ := idx.IndexManifest()
	code, out, errOut = runCmd("warm", "multi@"+m.Manifests[0].Digest.String(), "--url", "http://"+s.Addr())
	if code != 0 || !strings.Contains(out, "warmed 1 of 1 images") || !strings.Contains(out, "3 blobs") {
		t.Fatalf("warm by digest: %d %s %s", code, out, errOut)
	}
	st, err := s.CacheStats()
	if err != nil || st.ProxiedBlobs < 3 {
		t.Fatalf("cache after warm: %+v %v", st, err)
	}
	code, _, errOut = runCmd("warm", "library/nothing:1", "--url", "http://"+s.Addr())
	if code != 1 || !strings.Contains(errOut, "MANIFEST_UNKNOWN") {
		t.Fatalf("warm of a missing image: %d %s", code, errOut)
	}
}

// TestWarmLogin: a proxy closed to anonymous pulls is warmed with
// --username and a password from stdin or WHARF_PASSWORD, through the
// server's token service; without a login, or with a wrong password,
// warm fails saying what to do.
func TestWarmLogin(t *testing.T) {
	img, _ := random.Image(8<<10, 2)
	origin := startOrigin(t, "library/app:1", img)
	dir := t.TempDir()
	defer func(r any) { stdin = os.Stdin }(stdin)
	stdin = strings.NewReader("s3cret\n")
	htp := filepath.Join(dir, "htpasswd")
	if code, _, errOut := runCmd("user", "add", "ci", "--htpasswd", htp); code != 0 {
		t.Fatal(errOut)
	}
	s := startServer(t, filepath.Join(dir, "data"), fmt.Sprintf(
		"auth:\n  htpasswd: %s\nproxies:\n  - name: hub\n    upstream: %s\n    default: true\n    anonymous_pull: false\n", htp, origin.URL))
	u := "http://" + s.Addr()

	code, _, errOut := runCmd("warm", "app:1", "--url", u)
	if code == 0 || !strings.Contains(errOut, "needs a login") || !strings.Contains(errOut, "--username") {
		t.Fatalf("anonymous warm of a closed proxy: %d %s", code, errOut)
	}
	stdin = strings.NewReader("wrong\n")
	code, _, errOut = runCmd("warm", "app:1", "--url", u, "--username", "ci", "--password-stdin")
	if code == 0 || !strings.Contains(errOut, "refused the login") {
		t.Fatalf("warm with a wrong password: %d %s", code, errOut)
	}
	stdin = strings.NewReader("s3cret\n")
	code, out, errOut := runCmd("warm", "app:1", "--url", u, "-u", "ci", "--password-stdin")
	if code != 0 || !strings.Contains(out, "warmed 1 of 1 images") || !strings.Contains(out, "3 blobs") {
		t.Fatalf("warm with a login: %d %s %s", code, out, errOut)
	}
	t.Setenv("WHARF_PASSWORD", "s3cret")
	stdin = strings.NewReader("")
	code, out, errOut = runCmd("warm", "library/app:1", "--url", u, "--username", "ci")
	if code != 0 || !strings.Contains(out, "warmed 1 of 1 images") {
		t.Fatalf("warm with WHARF_PASSWORD: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCmd("warm", "app:1", "--url", u, "--password-stdin"); code != 2 || !strings.Contains(errOut, "needs --username") {
		t.Fatalf("--password-stdin alone: %d %s", code, errOut)
	}
	st, err := s.CacheStats()
	if err != nil || st.ProxiedBlobs < 3 {
		t.Fatalf("cache after warm: %+v %v", st, err)
	}
}
