package main

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/e2e/officebox"
)

// The screens `make screenshots` saves, in README order.
var screens = []string{"dashboard.png", "dashboard-error.png", "registries.png", "access.png", "cache.png", "use.png", "settings.png", "remote.png"}

// TestScreenshots runs the real wharf-desktop binary ($WHARF_DESKTOP_BIN)
// under Xvfb and saves each screen into $WHARF_SCREENSHOTS: the dashboard
// after pulls through it from a local Distribution origin, the dashboard
// when the port is taken, and the settings. `make screenshots` runs it;
// without those variables it is skipped.
func TestScreenshots(t *testing.T) {
	bin, out := os.Getenv("WHARF_DESKTOP_BIN"), os.Getenv("WHARF_SCREENSHOTS")
	if bin == "" || out == "" {
		t.Skip("set WHARF_DESKTOP_BIN and WHARF_SCREENSHOTS (make screenshots does)")
	}
	harness.Require(t, "Xvfb", "import", "xdotool")
	display := startXvfb(t)
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	harness.PushBusybox(t, origin.Addr+"/library/busybox:latest")
	harness.PushRandomImage(t, origin.Addr+"/demo/app:1.0", harness.ImageSpec{Layers: 4, LayerSize: 3 << 20})

	dir := harness.ShortTempDir(t, "shots")
	data := filepath.Join(dir, "data")
	cfg := func(listen string, extra ...string) string {
		path := filepath.Join(dir, "wharf.yml")
		write(t, path, fmt.Sprintf(`# a config like the first-start one, with a local upstream
listen: %q
data_dir: %s
hosted:
  - name: local
proxies:
  - name: hub
    upstream: %s
    default: true
cache:
  max_size: 20GiB
%s`, listen, data, origin.URL, strings.Join(extra, "")))
		return path
	}
	run := func(name, config string, args ...string) *harness.Process {
		env := append(os.Environ(), "DISPLAY="+display, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME="+dir,
			"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "share"), "DBUS_SESSION_BUS_ADDRESS=")
		return harness.StartProcess(t, name, dir, env, append([]string{bin, "--config", config, "--log-level", "debug"}, args...)...)
	}

	// 1. The dashboard after four pulls: two misses, then two hits.
	app := run("dashboard", cfg(":0"))
	port := servingPort(t, app)
	for _, img := range []string{"library/busybox:latest", "demo/app:1.0", "library/busybox:latest", "demo/app:1.0"} {
		harness.PullImage(t, "127.0.0.1:"+port+"/"+img)
	}
	waitLog(t, app, "the dashboard showing the four pulls with the bytes settled", settled(4))
	shoot(t, display, filepath.Join(out, "dashboard.png"))
	stopCleanly(t, app)

	// 2. The port is taken: the reason on the dashboard, not a crash.
	// (The data dir has a cache now: the figures show once it runs.)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	app = run("dashboard-error", cfg(busy.Addr().String()))
	waitLog(t, app, "the failed start on the dashboard", func(log string) bool {
		return strings.Contains(log, "wharf did not start") && strings.Contains(log, `msg="dashboard refreshed" state=failed`)
	})
	shoot(t, display, filepath.Join(out, "dashboard-error.png"))
	stopCleanly(t, app)

	// tab shoots a tab of a running server once the window shows what
	// ready says it waits for (the first refresh, by default).
	refreshed := func(log string) bool { return strings.Contains(log, `msg="dashboard refreshed" state=running`) }
	tab := func(name, config, what string, ready func(string) bool) {
		t.Helper()
		app := run(name, config, "--tab", name)
		servingPort(t, app)
		waitLog(t, app, what, ready)
		shoot(t, display, filepath.Join(out, name+".png"))
		stopCleanly(t, app)
	}

	// 3. Registries, with the proxy and namespace of the runs above.
	tab("registries", cfg(":0"), "a refresh", refreshed)

	// 4. Access: two htpasswd users, and the self-signed CA with the
	// commands that trust it.
	users := filepath.Join(dir, "users.htpasswd")
	for _, u := range []string{"alice", "ci"} {
		if _, err := auth.SetPassword(users, u, "screenshot-"+u); err != nil {
			t.Fatal(err)
		}
	}
	tab("access", cfg(":0", "auth:\n  htpasswd: "+users+"\ntls:\n  mode: self-signed\n"), "the CA's trust commands for the running server",
		func(log string) bool {
			return strings.Contains(log, `msg="trust commands shown"`) && strings.Contains(log, "ca_exists=true")
		})

	// 5. Cache: what the first run pulled, by proxy and repository.
	tab("cache", cfg(":0"), "the cache listed", cacheListedRE.MatchString)

	// 6. Use with Docker: `wharf setup` for each client, with the files
	// it would change on this machine.
	tab("use", cfg(":0"), "a refresh", refreshed)

	// 7. Settings.
	tab("settings", cfg(":0"), "a refresh", refreshed)

	// 8. A remote window on the office box (TLS self-signed, logins),
	// after someone pulled through it.
	box := officebox.Start(t)
	harness.PullImageHTTPS(t, box.Addr+"/app:1", box.CAPEM, "", "HTTP/2.0", remote.WithAuth(&authn.Basic{Username: "carol", Password: "carol-pw"}))
	env := append(os.Environ(), "DISPLAY="+display, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME="+dir, "WHARF_PASSWORD=root-pw",
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "share"), "DBUS_SESSION_BUS_ADDRESS=")
	app = harness.StartProcess(t, "remote", dir, env, bin, "--remote", box.URL, "--user", "root", "--ca", box.CAFile, "--log-level", "debug")
	waitLog(t, app, "the remote dashboard showing the pull", func(log string) bool {
		return strings.Contains(log, "connected to the remote wharf") && strings.Contains(log, `msg="dashboard refreshed" state=running pulls=1`)
	})
	shoot(t, display, filepath.Join(out, "remote.png"))
	stopCleanly(t, app)

	checkScreenshots(t, out)
}

// TestScreenshotsInDocs checks the committed screenshots: each there, not
// blank, and unlike the others.
func TestScreenshotsInDocs(t *testing.T) {
	checkScreenshots(t, filepath.Join("..", "..", "docs", "screenshots"))
}

func checkScreenshots(t *testing.T, dir string) {
	t.Helper()
	seen := map[string]string{}
	for _, name := range screens {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("screenshot %s: %v (make screenshots writes it)", name, err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		if n := colors(img); n < 16 {
			t.Errorf("screenshot %s is blank: %d colors", name, n)
		}
		key := pixels(img)
		if other, ok := seen[key]; ok {
			t.Errorf("screenshots %s and %s are the same picture", other, name)
		}
		seen[key] = name
	}
}

func colors(img image.Image) int {
	set := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			set[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(set)
}

func pixels(img image.Image) string {
	var buf bytes.Buffer
	b := img.Bounds()
	fmt.Fprintf(&buf, "%v", b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			buf.Write([]byte{byte(r >> 8), byte(g >> 8), byte(bl >> 8), byte(a >> 8)})
		}
	}
	return buf.String()
}

// startXvfb starts a virtual display; Xvfb picks a free display number
// and writes it to -displayfd.
func startXvfb(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("Xvfb did not say its display: %v", err)
	}
	return ":" + strings.TrimSpace(line)
}

var servingRE = regexp.MustCompile(`msg="wharf is serving" .*addr=\S*:(\d+)`)

func servingPort(t *testing.T, p *harness.Process) string {
	t.Helper()
	var port string
	waitLog(t, p, "wharf is serving", func(log string) bool {
		if m := servingRE.FindStringSubmatch(log); m != nil {
			port = m[1]
			return true
		}
		return false
	})
	return port
}

var cacheListedRE = regexp.MustCompile(`msg="cache listed" rows=[1-9]`)

var refreshRE = regexp.MustCompile(`msg="dashboard refreshed" state=running pulls=(\d+) saved=(\d+) fetched="?([^"]*?)"? transfers=0`)

// settled is true once two refreshes in a row show n pulls, no transfer
// and the same bytes: the numbers on screen are final.
func settled(n int) func(string) bool {
	return func(log string) bool {
		ms := refreshRE.FindAllStringSubmatch(log, -1)
		if len(ms) < 2 {
			return false
		}
		a, b := ms[len(ms)-2], ms[len(ms)-1]
		return a[1] == fmt.Sprint(n) && b[1] == a[1] && b[2] == a[2] && b[3] == a[3] && a[2] != "0"
	}
}

func waitLog(t *testing.T, p *harness.Process, what string, ok func(log string) bool) {
	t.Helper()
	p.WaitReady(t, 2*time.Minute, func() error {
		if ok(p.Logs()) {
			return nil
		}
		return fmt.Errorf("no sign of %s in the log yet", what)
	})
}

// shoot saves the wharf window as a PNG once it has been painted (the
// first frames of a new window can be empty).
func shoot(t *testing.T, display, path string) {
	t.Helper()
	env := append(os.Environ(), "DISPLAY="+display)
	deadline := time.Now().Add(time.Minute)
	for {
		search := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^wharf( — remote: .*)?$")
		search.Env = env
		id, err := search.Output()
		win := strings.Fields(string(id))
		if err == nil && len(win) > 0 {
			cmd := exec.Command("import", "-window", win[0], path)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("import: %v\n%s", err, out)
			}
			if f, err := os.Open(path); err == nil {
				img, err := png.Decode(f)
				f.Close()
				if err == nil && colors(img) >= 16 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no painted wharf window to capture on %s (xdotool: %v %q)", display, err, id)
		}
		time.Sleep(100 * time.Millisecond) // polling the X server for a painted window
	}
}

func stopCleanly(t *testing.T, p *harness.Process) {
	t.Helper()
	if err := p.Stop(); err != nil {
		t.Errorf("%s: SIGTERM: %v", p.Name, err)
	}
	if log := p.Logs(); !strings.Contains(log, "wharf-desktop stopped") {
		t.Errorf("%s did not stop cleanly:\n%s", p.Name, p.LogTail(20))
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
