//go:build linux

package e2e

import (
	"bufio"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// The release artefacts of scripts/dist.sh (`make dist`), tested as a user
// gets them: the .deb installed, upgraded and purged in a Debian root, the
// .rpm queried, the container image run read-only by a real dockerd, and
// the desktop files validated. The desktop bundle itself (`fyne package`,
// minutes of cgo) is built only by `make dist`, not here.

// distVersion and distUpgrade are the two releases the tests build.
const (
	distVersion = "v1.0.0"
	distUpgrade = "v1.0.1"
)

type distBuild struct {
	once sync.Once
	dir  string
	err  error
}

var (
	distMu     sync.Mutex
	distBuilds = map[string]*distBuild{}
	distDirs   []string
)

// buildDist runs scripts/dist.sh once per test binary for each version
// (the deb, rpm and image targets) and returns the directory it wrote.
// configFile, when not "", replaces packaging/wharf.yml as the package's
// default /etc/wharf/wharf.yml.
func buildDist(t *testing.T, version, configFile string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds the release packages")
	}
	harness.Require(t, "bash", "go")
	distMu.Lock()
	b, ok := distBuilds[version]
	if !ok {
		b = &distBuild{}
		distBuilds[version] = b
	}
	distMu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "wharf-dist-")
		if err != nil {
			b.err = err
			return
		}
		distMu.Lock()
		distDirs = append(distDirs, dir)
		distMu.Unlock()
		goTool, _ := harness.LookTool("go")
		root := harness.ModuleRoot(t)
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "dist.sh"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GO="+goTool, "DIST_DIR="+dir, "VERSION="+version,
			"DIST_TARGETS=deb rpm image", "DIST_CONFIG="+configFile)
		if configFile == "" {
			cmd.Env = cmd.Env[:len(cmd.Env)-1]
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("scripts/dist.sh (VERSION=%s): %v\n%s", version, err, out)
			return
		}
		b.dir = dir
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.dir
}

// cleanupDist removes what buildDist built; TestMain calls it.
func cleanupDist() {
	for _, d := range distDirs {
		os.RemoveAll(d)
	}
}

func distRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDistLintian: the .deb is lintian clean, pedantic tags included; the
// tags that stay are overridden in packaging/deb/lintian-overrides, each
// with its reason.
func TestDistLintian(t *testing.T) {
	lintian := harness.Tool(t, "lintian")
	dir := buildDist(t, distVersion, "")
	out, err := exec.Command(lintian, "--pedantic", "--display-info", "--fail-on", "error,warning,info,pedantic",
		filepath.Join(dir, "wharf_1.0.0_amd64.deb")).CombinedOutput()
	var tags []string
	tolerated := false
	for _, l := range strings.Split(string(out), "\n") {
		// A spelling hint in the binary comes from dependencies' strings
		// and comes and goes with their versions: its override may be
		// unused, which is not a problem of the package (lintian still
		// exits non-zero for it).
		if strings.Contains(l, "unused-override spelling-error-in-binary") {
			tolerated = true
			continue
		}
		if regexp.MustCompile(`^[EWIPX]: `).MatchString(l) {
			tags = append(tags, l)
		}
	}
	if (err != nil && !tolerated) || len(tags) > 0 {
		t.Errorf("lintian (%v):\n%s", err, out)
	}
}

// TestDistRPM reads the .rpm's file list, config flags and scriptlets.
func TestDistRPM(t *testing.T) {
	rpm := harness.Tool(t, "rpm")
	pkg := filepath.Join(buildDist(t, distVersion, ""), "wharf-1.0.0.x86_64.rpm")

	files := map[string]string{} // path → file flags (c: config, n: noreplace)
	for _, l := range strings.Split(strings.TrimSpace(distRun(t, rpm, "-qp", "--qf", `[%{FILENAMES} %{FILEMODES:perms} %{FILEFLAGS:fflags}\n]`, pkg)), "\n") {
		f := strings.Fields(l)
		flags := ""
		if len(f) > 2 {
			flags = f[2]
		}
		files[f[0]] = f[1] + " " + flags
	}
	for path, want := range map[string]string{
		"/usr/bin/wharf":                                     "-rwxr-xr-x ",
		"/etc/wharf/wharf.yml":                               "-rw-r--r-- cn",
		"/usr/lib/systemd/system/wharf.service":              "-rw-r--r-- ",
		"/usr/share/bash-completion/completions/wharf":       "-rw-r--r-- ",
		"/usr/share/zsh/vendor-completions/_wharf":           "-rw-r--r-- ",
		"/usr/share/man/man1/wharf.1.gz":                     "-rw-r--r-- ",
		"/usr/share/polkit-1/actions/org.wharf.setup.policy": "-rw-r--r-- ",
		"/usr/share/doc/wharf/copyright":                     "-rw-r--r-- ",
	} {
		if got, ok := files[path]; !ok {
			t.Errorf("%s missing from the rpm", path)
		} else if got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if v := distRun(t, rpm, "-qp", "--qf", "%{VERSION}-%{RELEASE} %{ARCH}", pkg); v != "1.0.0-1 x86_64" {
		t.Errorf("version %q", v)
	}
	scripts := distRun(t, rpm, "-qp", "--scripts", pkg)
	for _, want := range []string{"useradd --system", "install -d -o wharf -g wharf -m 0750 /var/lib/wharf",
		"systemctl enable wharf.service", "try-restart wharf.service", "disable --now wharf.service"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm scriptlets lack %q:\n%s", want, scripts)
		}
	}
}

// TestDistDebInstall installs the .deb into a throwaway Debian root,
// upgrades it over an admin's config change, removes and purges it.
func TestDistDebInstall(t *testing.T) {
	harness.Require(t, "chroot", "cp")
	cached := filepath.Join(harness.ModuleRoot(t), ".cache", "debroot")
	if _, err := os.Stat(filepath.Join(cached, ".wharf-ready")); err != nil {
		harness.Require(t, "debootstrap")
		distRun(t, "bash", filepath.Join(harness.ModuleRoot(t), "scripts", "dist-chroot.sh"), cached)
	}
	v1 := buildDist(t, distVersion, "")
	newDefault := filepath.Join(t.TempDir(), "wharf.yml")
	def, err := os.ReadFile(filepath.Join(harness.ModuleRoot(t), "packaging", "wharf.yml"))
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, newDefault, string(def)+"# a default new in 1.0.1\n")
	v2 := buildDist(t, distUpgrade, newDefault)

	root := filepath.Join(harness.ShortTempDir(t, "wdeb"), "root")
	distRun(t, "cp", "-a", cached, root)
	distRun(t, "cp", filepath.Join(v1, "wharf_1.0.0_amd64.deb"), filepath.Join(v2, "wharf_1.0.1_amd64.deb"), filepath.Join(root, "tmp"))
	in := func(args ...string) string {
		t.Helper()
		return distRun(t, "chroot", append([]string{root}, args...)...)
	}
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(root, p)); return err == nil }
	wants := "/etc/systemd/system/multi-user.target.wants/wharf.service"

	// Install.
	out := in("dpkg", "-i", "/tmp/wharf_1.0.0_amd64.deb")
	if !strings.Contains(out, "not started: edit /etc/wharf/wharf.yml, then run: systemctl start wharf") {
		t.Errorf("install printed no start hint:\n%s", out)
	}
	if got := in("wharf", "version"); got != "wharf v1.0.0\n" {
		t.Errorf("wharf version: %q", got)
	}
	if got := in("stat", "-c", "%U:%G %a", "/var/lib/wharf"); got != "wharf:wharf 750\n" {
		t.Errorf("/var/lib/wharf: %q, want wharf:wharf 750", got)
	}
	if got := in("getent", "passwd", "wharf"); !strings.Contains(got, ":/var/lib/wharf:/usr/sbin/nologin") {
		t.Errorf("wharf user: %q", got)
	}
	if !exists(wants) {
		t.Errorf("%s missing: the unit is not enabled", wants)
	}
	for _, p := range []string{"/usr/bin/wharf", "/lib/systemd/system/wharf.service", "/usr/share/man/man1/wharf.1.gz",
		"/usr/share/bash-completion/completions/wharf", "/usr/share/zsh/vendor-completions/_wharf",
		"/usr/share/doc/wharf/copyright", "/usr/share/doc/wharf/wharf-help.txt",
		"/usr/share/polkit-1/actions/org.wharf.setup.policy"} {
		if fi, err := os.Stat(filepath.Join(root, p)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: missing or empty (%v)", p, err)
		}
	}
	in("runuser", "-u", "wharf", "--", "wharf", "config", "check", "/etc/wharf/wharf.yml")

	// Upgrade over an admin's change: the change stays, the new default
	// lands beside it.
	cfg := filepath.Join(root, "etc/wharf/wharf.yml")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "# the admin's change")
	f.Close()
	writeTestFile(t, filepath.Join(root, "var/lib/wharf/blob"), "cached data")
	out = in("dpkg", "-i", "--force-confold", "/tmp/wharf_1.0.1_amd64.deb")
	if strings.Contains(out, "not started") {
		t.Errorf("upgrade printed the fresh-install hint:\n%s", out)
	}
	if got := in("wharf", "version"); got != "wharf v1.0.1\n" {
		t.Errorf("wharf version after upgrade: %q", got)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "# the admin's change") {
		t.Errorf("upgrade replaced the admin's config:\n%s", b)
	}
	if b, err := os.ReadFile(cfg + ".dpkg-dist"); err != nil || !strings.Contains(string(b), "new in 1.0.1") {
		t.Errorf("wharf.yml.dpkg-dist: %v\n%s", err, b)
	}

	// Remove keeps the data, the config and the user.
	in("dpkg", "-r", "wharf")
	if exists("/usr/bin/wharf") {
		t.Error("remove left /usr/bin/wharf")
	}
	for _, p := range []string{"/var/lib/wharf/blob", "/etc/wharf/wharf.yml"} {
		if !exists(p) {
			t.Errorf("remove deleted %s", p)
		}
	}
	in("getent", "passwd", "wharf")

	// Purge deletes them.
	in("dpkg", "-P", "wharf")
	for _, p := range []string{"/var/lib/wharf", "/etc/wharf", wants} {
		if exists(p) {
			t.Errorf("purge left %s", p)
		}
	}
	if err := exec.Command("chroot", root, "getent", "passwd", "wharf").Run(); err == nil {
		t.Error("purge left the wharf user")
	}
}

// TestDistDesktopFiles validates the desktop entry, the AppStream metainfo
// (as scripts/dist.sh fills it in) and the icon set.
func TestDistDesktopFiles(t *testing.T) {
	dfv := harness.Tool(t, "desktop-file-validate")
	asc := harness.Tool(t, "appstreamcli")
	dir := filepath.Join(harness.ModuleRoot(t), "packaging", "desktop")
	if out := distRun(t, dfv, filepath.Join(dir, "wharf-desktop.desktop")); strings.TrimSpace(out) != "" {
		t.Errorf("desktop-file-validate:\n%s", out)
	}
	const metainfo = "io.github.wharf_registry.wharf_desktop.metainfo.xml"
	src, err := os.ReadFile(filepath.Join(dir, metainfo))
	if err != nil {
		t.Fatal(err)
	}
	filled := strings.NewReplacer("@VERSION@", "1.0.0", "@DATE@", "2026-12-06").Replace(string(src))
	p := filepath.Join(t.TempDir(), metainfo)
	writeTestFile(t, p, filled)
	if out, err := exec.Command(asc, "validate", "--no-net", "--explain", p).CombinedOutput(); err != nil {
		t.Errorf("appstreamcli validate: %v\n%s", err, out)
	}

	if _, err := os.Stat(filepath.Join(dir, "icons", "wharf.svg")); err != nil {
		t.Error(err)
	}
	for _, size := range []int{16, 24, 32, 48, 64, 128, 256, 512} {
		p := filepath.Join(dir, "icons", fmt.Sprintf("%dx%d", size, size), "wharf.png")
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			continue
		}
		cfg, err := png.DecodeConfig(bufio.NewReader(f))
		f.Close()
		if err != nil || cfg.Width != size || cfg.Height != size {
			t.Errorf("%s: %dx%d, %v", p, cfg.Width, cfg.Height, err)
		}
	}
}

// waitState polls cond until it returns true or an error, or timeout passes.
func waitState(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 50 * time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
		time.Sleep(interval)
		interval = min(interval*2, 500*time.Millisecond)
	}
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDistDesktopBundle lays out the desktop bundle as scripts/dist.sh
// does (on a stand-in binary: building the real one needs cgo and fyne),
// installs it with its Makefile into a staging root and uninstalls it:
// one menu entry (the one the metainfo names, valid), the icon set, the
// metainfo and the polkit action land where the desktop and polkit look,
// and uninstall leaves nothing.
func TestDistDesktopBundle(t *testing.T) {
	mk := harness.Tool(t, "make")
	dfv := harness.Tool(t, "desktop-file-validate")
	root := harness.ModuleRoot(t)
	dir := t.TempDir()
	distRun(t, "bash", filepath.Join(root, "scripts", "desktop-bundle.sh"), "/bin/true", dir, "1.2.3", "2026-12-06")
	bundle := filepath.Join(dir, "wharf-desktop")
	stage := filepath.Join(dir, "root")
	distRun(t, mk, "-C", bundle, "install", "DESTDIR="+stage)
	var got []string
	filepath.WalkDir(stage, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			got = append(got, strings.TrimPrefix(p, stage))
		}
		return nil
	})
	want := []string{
		"/usr/local/bin/wharf-desktop",
		"/usr/local/share/applications/wharf-desktop.desktop",
		"/usr/local/share/icons/hicolor/scalable/apps/wharf.svg",
		"/usr/local/share/icons/hicolor/48x48/apps/wharf.png",
		"/usr/local/share/metainfo/io.github.wharf_registry.wharf_desktop.metainfo.xml",
		"/usr/share/polkit-1/actions/org.wharf.setup.policy",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("make install did not install %s; installed:\n%s", w, strings.Join(got, "\n"))
		}
	}
	entries := 0
	for _, g := range got {
		if strings.HasSuffix(g, ".desktop") {
			entries++
		}
	}
	if entries != 1 {
		t.Errorf("%d desktop entries installed, want one", entries)
	}
	if out := distRun(t, dfv, filepath.Join(stage, "usr/local/share/applications/wharf-desktop.desktop")); strings.TrimSpace(out) != "" {
		t.Errorf("desktop-file-validate of the installed entry:\n%s", out)
	}
	meta, err := os.ReadFile(filepath.Join(stage, "usr/local/share/metainfo/io.github.wharf_registry.wharf_desktop.metainfo.xml"))
	if err != nil || !strings.Contains(string(meta), "<launchable type=\"desktop-id\">wharf-desktop.desktop</launchable>") || !strings.Contains(string(meta), "1.2.3") {
		t.Errorf("installed metainfo does not name the installed entry or the version: %v", err)
	}
	distRun(t, mk, "-C", bundle, "uninstall", "DESTDIR="+stage)
	filepath.WalkDir(stage, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			t.Errorf("uninstall left %s", strings.TrimPrefix(p, stage))
		}
		return nil
	})
}
