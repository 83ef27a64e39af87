package gui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/gui/model"
)

// uiThread makes the test goroutine the app's UI thread: the pump's one
// Do call queues the update, and waitFor runs queued updates until what
// the test waits for shows. Taps happen on the same goroutine, so widgets
// are never touched from two goroutines (-race agrees).
type uiThread struct {
	ch    chan func()
	done  chan struct{}
	calls atomic.Int64
}

func newUIThread() *uiThread { return &uiThread{ch: make(chan func()), done: make(chan struct{})} }

func (u *uiThread) do(f func()) {
	u.calls.Add(1)
	select {
	case u.ch <- f:
	case <-u.done:
	}
}

// waitLimit only bounds a failing test; nothing waits for it to pass.
const waitLimit = 2 * time.Minute

func (u *uiThread) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for !cond() {
		select {
		case f := <-u.ch:
			f()
		case <-deadline.C:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

type fixture struct {
	t   *testing.T
	ui  *uiThread
	app *App
	cfg string
}

// newFixture builds the app on a test Fyne app with the config text cfg.
func newFixture(t *testing.T, cfg string) *fixture {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "wharf.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	fa := test.NewTempApp(t)
	ui := newUIThread()
	app := New(fa, Options{
		ConfigPath: path,
		Do:         ui.do,
		Interfaces: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("192.0.2.10"), Mask: net.CIDRMask(24, 32)}}, nil
		},
		RefreshEvery: 20 * time.Millisecond,
		ReportEvery:  100 * time.Millisecond,
	})
	f := &fixture{t: t, ui: ui, app: app, cfg: path}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		drained := make(chan struct{})
		go func() { // be the UI thread while the server stops
			defer close(drained)
			for {
				select {
				case g := <-ui.ch:
					g()
				case <-ui.done:
					return
				}
			}
		}()
		if err := app.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		close(ui.done)
		<-drained // the last update has run: the next test's UI thread may start
	})
	return f
}

func (f *fixture) waitState(prefix string) {
	f.t.Helper()
	f.ui.waitFor(f.t, "state "+prefix, func() bool { return strings.HasPrefix(f.app.state.Text, prefix) })
}

func configFor(dataDir, listen, upstream string) string {
	return fmt.Sprintf(`# my own comment, which the app must keep
listen: %s
data_dir: %s
log:
  access_log: false
proxies:
  - name: hub
    upstream: %s
    default: true
hosted:
  - name: local
`, listen, dataDir, upstream)
}

// TestDashboardFollowsPullsThroughTheRealServer runs the embedded server
// with a real Distribution as the upstream, pulls an image through it
// twice, and reads the misses, hits and bytes off the dashboard's widgets;
// then stops and starts it with the buttons.
func TestDashboardFollowsPullsThroughTheRealServer(t *testing.T) {
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	pushed := harness.PushRandomImage(t, origin.Addr+"/library/demo:1", harness.ImageSpec{Layers: 3, LayerSize: 300 << 10})
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", origin.URL))
	a := f.app

	if a.state.Text != "Stopped" || a.startBtn.Disabled() || !a.stopBtn.Disabled() {
		t.Fatalf("before start: state %q, start enabled %v, stop enabled %v", a.state.Text, !a.startBtn.Disabled(), !a.stopBtn.Disabled())
	}
	test.Tap(a.startBtn)
	f.waitState("Running on 127.0.0.1:")
	addr := a.Lifecycle().Addr
	if len(a.addrList) != 1 || a.addrList[0] != addr {
		t.Errorf("addresses shown = %v, want [%s] (the server listens on loopback only)", a.addrList, addr)
	}
	if a.hitRatio.Text != "no proxied pulls yet" || !a.noPulls.Visible() {
		t.Errorf("fresh dashboard: hit ratio %q, empty-list note visible %v", a.hitRatio.Text, a.noPulls.Visible())
	}

	pull := func() {
		t.Helper()
		got := harness.PullImage(t, addr+"/library/demo:1") // reads every layer to the end
		gd, _ := got.Digest()
		wd, _ := pushed.Digest()
		if gd != wd {
			t.Fatalf("pulled %s, pushed %s", gd, wd)
		}
		gl, _ := got.Layers()
		wl, _ := pushed.Layers()
		for i := range wl {
			g, _ := gl[i].Digest()
			w, _ := wl[i].Digest()
			if g != w {
				t.Fatalf("layer %d: pulled %s, pushed %s", i, g, w)
			}
		}
	}
	var layerBytes int64
	ls, _ := pushed.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		layerBytes += n
	}
	fetchedBytes := func() int64 {
		var n int64
		if a.report != nil {
			for _, p := range a.report.Proxies {
				n += p.FetchedBytes
			}
		}
		return n
	}
	pull()
	f.ui.waitFor(t, "the first pull listed as a miss, with every layer fetched upstream", func() bool {
		return len(a.rows) == 1 && a.rows[0].Source == "miss" && fetchedBytes() >= layerBytes && a.upstream.Text == model.Bytes(fetchedBytes())
	})
	if !strings.Contains(a.rows[0].Text(), "library/demo:1") || a.noPulls.Visible() {
		t.Errorf("row %q, empty-list note visible %v", a.rows[0].Text(), a.noPulls.Visible())
	}
	if a.storage.Text == "0 B, no size budget (cache.max_size)" {
		t.Errorf("storage still empty after a pull: %q", a.storage.Text)
	}
	fetched := a.upstream.Text

	pull()
	f.ui.waitFor(t, "the second pull listed as a hit, with bytes served from the cache", func() bool {
		return len(a.rows) == 2 && a.rows[0].Source == "hit" && a.fromCache.Text != "0 B" && a.report.Cache.Hits > 0
	})
	if !strings.HasSuffix(a.hitRatio.Text, "%") || a.hitRatio.Text == "0%" {
		t.Errorf("hit ratio after a hit: %q", a.hitRatio.Text)
	}
	if a.upstream.Text != fetched {
		t.Errorf("a hit fetched from the upstream: %s, then %s", fetched, a.upstream.Text)
	}
	saved := a.series.Total()
	if saved <= 0 || !strings.Contains(a.savedTotal.Text, model.Bytes(saved)) {
		t.Errorf("bytes saved %d, label %q", saved, a.savedTotal.Text)
	}

	test.Tap(a.stopBtn)
	f.waitState("Stopped")
	if a.startBtn.Disabled() || !a.stopBtn.Disabled() || !a.restartBtn.Disabled() {
		t.Error("stopped: want Start enabled, Stop and Restart disabled")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("something still answers on %s after Stop", addr)
	}
	test.Tap(a.startBtn)
	f.waitState("Running on ")
	addr = a.Lifecycle().Addr
	pull()
	f.ui.waitFor(t, "a hit after the restart, from the cache kept on disk", func() bool {
		return len(a.rows) == 3 && a.rows[0].Source == "hit"
	})
	f.ui.waitFor(t, "bytes saved summed over both servers", func() bool { return a.series.Total() > saved })
}

// A port already in use and a config file that does not parse show the
// reason on the dashboard, leave the file alone, and Start works once the
// cause is gone.
func TestStartProblemsShowInline(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name   string
		cfg    func(data string) string
		reason []string
		fix    func(t *testing.T, f *fixture, data string)
	}{
		{
			name:   "port in use",
			cfg:    func(data string) string { return configFor(data, busy.Addr().String(), "https://registry-1.docker.io") },
			reason: []string{"listening on " + busy.Addr().String(), "address already in use"},
			fix: func(t *testing.T, f *fixture, data string) {
				write(t, f.cfg, configFor(data, "127.0.0.1:0", "https://registry-1.docker.io"))
			},
		},
		{
			name:   "config does not parse",
			cfg:    func(string) string { return "listen: [127.0.0.1:0\nproxies: {\n" },
			reason: []string{"wharf.yml", "line", "fix the file, then press Start"},
			fix: func(t *testing.T, f *fixture, data string) {
				write(t, f.cfg, configFor(data, "127.0.0.1:0", "https://registry-1.docker.io"))
			},
		},
		{
			name: "config with an unknown key",
			cfg: func(data string) string {
				return configFor(data, "127.0.0.1:0", "https://registry-1.docker.io") + "cahce:\n  max_size: 1GB\n"
			},
			reason: []string{"cahce", "wharf config check"},
			fix: func(t *testing.T, f *fixture, data string) {
				write(t, f.cfg, configFor(data, "127.0.0.1:0", "https://registry-1.docker.io"))
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			f := newFixture(t, c.cfg(data))
			before, _ := os.ReadFile(f.cfg)
			test.Tap(f.app.startBtn)
			f.waitState("Not running: it failed")
			if !f.app.problem.Visible() {
				t.Error("the reason is not shown")
			}
			for _, want := range c.reason {
				if !strings.Contains(f.app.problem.Text, want) {
					t.Errorf("reason %q lacks %q", f.app.problem.Text, want)
				}
			}
			if f.app.startBtn.Disabled() || !f.app.stopBtn.Disabled() {
				t.Error("failed: want Start enabled (to retry) and Stop disabled")
			}
			if after, _ := os.ReadFile(f.cfg); !bytes.Equal(before, after) {
				t.Errorf("the config file changed:\n%s", after)
			}
			c.fix(t, f, data)
			test.Tap(f.app.startBtn)
			f.waitState("Running on ")
			if f.app.problem.Visible() {
				t.Errorf("the old reason is still shown: %q", f.app.problem.Text)
			}
		})
	}
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Restart comes back on a new server with the file as it is now; Quit
// drains the server and quits the app.
func TestRestartAndQuit(t *testing.T) {
	data := t.TempDir()
	f := newFixture(t, configFor(data, "127.0.0.1:0", "https://registry-1.docker.io"))
	a := f.app
	test.Tap(a.startBtn)
	f.waitState("Running on ")
	first := a.Lifecycle().Addr
	test.Tap(a.restartBtn)
	f.ui.waitFor(t, "a restart", func() bool { return a.lastGen == 2 && strings.HasPrefix(a.state.Text, "Running on ") })
	if err := a.Start(); err == nil || !strings.Contains(err.Error(), "cannot start while the server is running") {
		t.Errorf("Start while running = %v", err)
	}
	second := a.Lifecycle().Addr
	if c, err := net.Dial("tcp", first); err == nil {
		c.Close()
		if first != second {
			t.Errorf("the first server still answers on %s", first)
		}
	}
	a.Quit()
	f.waitState("Stopped")
	if c, err := net.Dial("tcp", second); err == nil {
		c.Close()
		t.Errorf("something still answers on %s after Quit", second)
	}
	if p := a.Lifecycle().Phase; p != model.Stopped {
		t.Errorf("after Quit the server is %s", p)
	}
}

// The pump updates the window at a bounded rate however many events
// arrive: a big pull never floods the UI thread.
func TestPumpRateIsBounded(t *testing.T) {
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	harness.PushRandomImage(t, origin.Addr+"/library/many:1", harness.ImageSpec{Layers: 1, LayerSize: 1 << 10})
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", origin.URL))
	a := f.app
	test.Tap(a.startBtn)
	f.waitState("Running on ")
	addr := a.Lifecycle().Addr
	harness.PullImage(t, addr+"/library/many:1")
	f.ui.waitFor(t, "the first pull", func() bool { return len(a.rows) == 1 })

	start, calls := time.Now(), f.ui.calls.Load()
	const pulls = 40
	done := make(chan error, 1)
	ref := harness.Ref(t, addr+"/library/many:1")
	go func() {
		for i := 0; i < pulls; i++ {
			if _, err := remote.Get(ref); err != nil { // the manifest: one pull event each
				done <- err
				return
			}
		}
		done <- nil
	}()
	var pullErr error
	finished := false
	f.ui.waitFor(t, "every pull listed", func() bool {
		if !finished {
			select {
			case pullErr = <-done:
				finished = true
			default:
			}
		}
		return pullErr != nil || finished && len(a.rows) == 1+pulls
	})
	if pullErr != nil {
		t.Fatal(pullErr)
	}
	elapsed, n := time.Since(start), f.ui.calls.Load()-calls
	// One update per RefreshEvery, plus the one a tick may add at each end.
	if limit := int64(elapsed/a.opts.RefreshEvery) + 2; n > limit {
		t.Errorf("%d window updates in %v for %d pulls; want at most %d (one per %v)", n, elapsed, pulls, limit, a.opts.RefreshEvery)
	}
}

// A blob the upstream is still sending shows as a transfer with a
// progress bar at the share received, and goes away once it is cached.
func TestTransfersShowProgress(t *testing.T) {
	img, err := random.Image(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	layer, _ := ls[0].Digest()
	blob, _ := ls[0].Compressed()
	body, _ := io.ReadAll(blob)
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer.String()) {
			// Half the layer, then wait: the fill stays under way.
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:len(body)/2])
			http.NewResponseController(w).Flush()
			<-release
			w.Write(body[len(body)/2:])
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer origin.Close()
	if err := remote.Write(harness.Ref(t, strings.TrimPrefix(origin.URL, "http://")+"/library/slow:1"), img); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", origin.URL))
	a := f.app
	test.Tap(a.startBtn)
	f.waitState("Running on ")
	if len(a.transfers.Objects) != 1 || a.transfers.Objects[0] != a.noTransfer {
		t.Fatal("a transfer before any pull")
	}
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + a.Lifecycle().Addr + "/v2/library/slow/blobs/" + layer.String())
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		got <- err
	}()
	var bar *widget.ProgressBar
	var label *widget.Label
	f.ui.waitFor(t, "the transfer at half its size", func() bool {
		if len(a.transfers.Objects) != 1 || a.transfers.Objects[0] == a.noTransfer {
			return false
		}
		row := a.transfers.Objects[0].(*fyne.Container)
		label, bar = row.Objects[0].(*widget.Label), row.Objects[1].(*widget.ProgressBar)
		return bar.Value > 0.45
	})
	if bar.Value > 0.55 || !strings.Contains(label.Text, "hub/library/slow@"+layer.String()[:19]) || !strings.Contains(label.Text, " of "+model.Bytes(int64(len(body)))) {
		t.Errorf("transfer row %q at %.2f", label.Text, bar.Value)
	}
	open()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	f.ui.waitFor(t, "no transfer once the blob is cached", func() bool {
		return len(a.transfers.Objects) == 1 && a.transfers.Objects[0] == a.noTransfer
	})
}

// TestUseWithPreviewsTheRealSetupCommand: the "Use with Docker" tab runs
// the real `wharf setup` (built from this tree): Show the change prints
// what it would write for podman's drop-in and leaves the file unwritten;
// a target only root could write without pkexec offers the sudo command
// instead of a button.
func TestUseWithPreviewsTheRealSetupCommand(t *testing.T) {
	bin := harness.BuildWharf(t)
	dir := t.TempDir()
	dropIn := filepath.Join(dir, "registries.conf.d", "50-wharf.conf")
	cfg := filepath.Join(dir, "wharf.yml")
	write(t, cfg, configFor(filepath.Join(dir, "data"), "127.0.0.1:5999", "https://registry-1.docker.io"))
	fa := test.NewTempApp(t)
	ui := newUIThread()
	defer close(ui.done)
	app := New(fa, Options{ConfigPath: cfg, Do: ui.do, WharfBin: bin,
		SetupTargets: map[string]string{"podman": dropIn, "docker": filepath.Join(dir, "daemon.json"), "containerd": filepath.Join(dir, "certs.d")}})
	defer app.Shutdown(context.Background())
	if err := app.ShowTab("use"); err != nil {
		t.Fatal(err)
	}
	var podman *setupCard
	for _, c := range app.setupCards {
		if c.client.Name == "podman" {
			podman = c
		}
	}
	if podman == nil || podman.plan.Via != "" || podman.Apply.Disabled() {
		t.Fatalf("podman's drop-in in a writable directory should be applied as the user: %+v", podman)
	}
	test.Tap(podman.Preview)
	ui.waitFor(t, "the preview's output", func() bool { return app.setupRuns == 1 })
	out := podman.Output.Text
	if podman.Status.Text != "done" || !strings.Contains(out, dropIn) || !strings.Contains(out, "http://127.0.0.1:5999") || !strings.Contains(out, "Nothing written") {
		t.Fatalf("preview: status %q, output:\n%s", podman.Status.Text, out)
	}
	if _, err := os.Stat(dropIn); !os.IsNotExist(err) {
		t.Fatalf("the preview wrote %s: %v", dropIn, err)
	}

	// Root's file: through pkexec where there is one, else the command to
	// paste, with sudo.
	docker := model.SetupClient{Name: "docker", Title: "Docker", Flag: "--daemon-config", Target: "/etc/docker/daemon.json"}
	card := app.newSetupCard(docker, false, "/usr/bin/pkexec")
	if card.Apply.Disabled() || card.Apply.Text != "Apply as administrator" || card.plan.Apply[0] != "/usr/bin/pkexec" {
		t.Fatalf("root's file with pkexec: button %q, argv %q", card.Apply.Text, card.plan.Apply)
	}
	card = app.newSetupCard(docker, false, "")
	if !card.Apply.Disabled() || !strings.Contains(card.Terminal.Text, "sudo "+bin+" setup docker") {
		t.Fatalf("root's file, no pkexec: want a disabled Apply and the sudo command, got %q", card.Terminal.Text)
	}
}

// TestNotifiesAFailingUpstream: a pull through a proxy whose upstream
// refuses connections turns its health to failing, and the app says so in
// a desktop notification, once.
func TestNotifiesAFailingUpstream(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close() // nothing listens there now: connections are refused
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", deadURL))
	test.Tap(f.app.startBtn)
	f.waitState("Running on 127.0.0.1:")
	addr := f.app.Lifecycle().Addr
	failing := func() bool {
		return f.app.report != nil && len(f.app.report.Proxies) > 0 && f.app.report.Proxies[0].Health == "failing"
	}
	want := &fyne.Notification{Title: "Upstream failing: hub"}
	test.AssertNotificationSent(t, want, func() {
		go func() {
			resp, err := http.Get("http://" + addr + "/v2/library/demo/manifests/1")
			if err == nil {
				resp.Body.Close()
			}
		}()
		f.ui.waitFor(t, "the upstream reported failing", failing)
		// The text names the upstream and its error, as the report has it.
		al := (&model.Alerts{}).Next(f.app.report)
		if len(al) != 1 || !strings.Contains(al[0].Content, deadURL) {
			t.Fatalf("alerts for the report: %+v", al)
		}
		want.Content = al[0].Content
	})
	// Once per change: the next reports, still failing, send nothing.
	f.app.report = nil
	test.AssertNotificationSent(t, nil, func() {
		f.ui.waitFor(t, "another report", func() bool { return f.app.report != nil })
	})
}
