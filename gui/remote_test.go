package gui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/e2e/officebox"
	"github.com/wharf-registry/wharf/internal/adminclient"
)

// remoteFixture is a remote window on a test Fyne app, managing an
// OfficeBox over HTTPS as root, with the test goroutine as the UI thread.
func remoteFixture(t *testing.T, box *officebox.Box) (*App, *uiThread) {
	t.Helper()
	rc, err := adminclient.Dial(box.URL, adminclient.Options{User: "root", Password: "root-pw", CAFile: box.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	ui := newUIThread()
	a := New(test.NewTempApp(t), Options{Remote: rc, Do: ui.do, RefreshEvery: 20 * time.Millisecond, ReportEvery: 50 * time.Millisecond})
	t.Cleanup(func() { shutdownOnUIThread(t, a, ui) })
	return a, ui
}

// shutdownOnUIThread shuts a down while the test goroutine keeps running
// what the pump and background work hand to the UI thread.
func shutdownOnUIThread(t *testing.T, a *App, ui *uiThread) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(ctx) }()
	for {
		select {
		case f := <-ui.ch:
			f()
		case err := <-done:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
			close(ui.done)
			return
		}
	}
}

// TestRemoteWindowManagesTheOfficeBox drives a remote window against a
// wharf with TLS and logins: the dashboard follows a pull made by
// another client, the Cache tab pre-warms, pins and evicts, the Users
// tab adds and removes a user who can then (not) log in, and a wharf
// that stops answering shows as such.
func TestRemoteWindowManagesTheOfficeBox(t *testing.T) {
	box := officebox.Start(t)
	a, ui := remoteFixture(t, box)

	ui.waitFor(t, "connected", func() bool { return strings.HasSuffix(a.state.Text, ": running") })
	if !strings.Contains(a.state.Text, box.URL) || !strings.Contains(a.Win.Title(), "remote") ||
		!strings.HasPrefix(a.banner.Text, "REMOTE") || !strings.Contains(a.banner.Text, "as root (wharf 9.9.9)") {
		t.Errorf("not marked as remote: state %q, title %q, banner %q", a.state.Text, a.Win.Title(), a.banner.Text)
	}
	if a.startBtn.Visible() || a.stopBtn.Visible() || a.restartBtn.Visible() {
		t.Error("a remote window offers Start/Stop/Restart: that server is run on its own machine")
	}
	if len(a.addrList) != 1 || a.addrList[0] != box.Addr {
		t.Errorf("clients are told to use %v, want [%s]", a.addrList, box.Addr)
	}
	if err := a.ShowTab("registries"); err == nil {
		t.Error("a remote window has a Registries tab: that config file is on the other machine")
	}

	// A pull by someone else shows up: a miss, bytes fetched upstream.
	carol := remote.WithAuth(&authn.Basic{Username: "carol", Password: "carol-pw"})
	harness.PullImageHTTPS(t, box.Addr+"/app:1", box.CAPEM, "", "HTTP/2.0", carol)
	ui.waitFor(t, "the pull listed as a miss", func() bool {
		return len(a.rows) == 1 && a.rows[0].Source == "miss" && a.upstream.Text != "—" && a.upstream.Text != "0 B"
	})

	// Cache tab.
	if err := a.ShowTab("cache"); err != nil {
		t.Fatal(err)
	}
	c := &a.cache
	ui.waitFor(t, "the cache listed", func() bool { return len(c.listed) == 1 && c.listed[0].Repo != "" })
	c.image.SetText("app:1")
	test.Tap(c.pin)
	ui.waitFor(t, "pinned", func() bool { return strings.HasPrefix(c.result.Text, "Pinned hub/library/app:1") })
	test.Tap(c.evict)
	ui.waitFor(t, "evicted", func() bool { return strings.HasPrefix(c.result.Text, "Evicted ") })
	test.Tap(c.warmBtn)
	if c.warmBar.Visible() || !strings.Contains(c.result.Text, "the Dashboard shows its transfers") {
		t.Errorf("remote pre-warm: a bar that cannot move (%v), or %q", c.warmBar.Visible(), c.result.Text)
	}
	ui.waitFor(t, "pre-warmed", func() bool { return strings.HasPrefix(c.result.Text, "Pre-warmed hub/library/app:1: 2 layers") })
	test.Tap(c.gcPreview)
	ui.waitFor(t, "gc preview", func() bool { return !c.gcPreview.Disabled() && c.gcResult.Text != "Collecting…" })

	// Users tab.
	if err := a.ShowTab("users"); err != nil {
		t.Fatal(err)
	}
	u := &a.users
	ui.waitFor(t, "the users listed", func() bool { return strings.Join(u.names, ",") == "carol,root" })
	u.name.SetText("dave")
	u.pass.SetText("dave-pw")
	test.Tap(u.reset)
	if !strings.Contains(u.result.Text, "there is no user dave") {
		t.Errorf("reset of a user who does not exist: %q", u.result.Text)
	}
	test.Tap(u.add)
	ui.waitFor(t, "dave added", func() bool { return strings.Join(u.names, ",") == "carol,dave,root" })
	if u.result.Text != "Added dave: they can log in now." || u.pass.Text != "" {
		t.Errorf("after adding: %q, password field %q", u.result.Text, u.pass.Text)
	}
	login := func(user, pw string) error {
		rc, _ := adminclient.Dial(box.URL, adminclient.Options{User: user, Password: pw, CAFile: box.CAFile})
		_, err := rc.WhoAmI(context.Background())
		return err
	}
	var ae *adminclient.Error
	if err := login("dave", "dave-pw"); !errors.As(err, &ae) || ae.Status != 403 { // logged in, not an admin
		t.Errorf("dave logging in: %v", err)
	}
	tapRowButton(t, u.list, "dave", "Remove")
	ui.waitFor(t, "dave removed", func() bool { return strings.Join(u.names, ",") == "carol,root" })
	if err := login("dave", "dave-pw"); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("dave logging in after removal: %v", err)
	}
	tapRowButton(t, u.list, "root", "Remove")
	ui.waitFor(t, "removing yourself refused", func() bool { return strings.Contains(u.result.Text, "you are logged in as root") })

	// The box goes away: the window says so, and keeps asking.
	box.Server.Shutdown(context.Background())
	ui.waitFor(t, "not answering", func() bool { return strings.HasSuffix(a.state.Text, ": not answering") && a.problem.Visible() })
	if !strings.Contains(a.problem.Text, "cannot reach wharf at "+box.URL) || !strings.Contains(a.problem.Text, "asks again") {
		t.Errorf("problem line: %q", a.problem.Text)
	}
}

// TestConnectChecksTheLogin: the login window says what is wrong with a
// login, and opens the remote window, closing itself, once it works.
func TestConnectChecksTheLogin(t *testing.T) {
	box := officebox.Start(t)
	ui := newUIThread()
	fa := test.NewTempApp(t)
	var opened *App
	f, w := connect(fa, Options{Do: ui.do, ReportEvery: 50 * time.Millisecond}, Login{URL: box.URL, User: "root", CAFile: box.CAFile}, func(a *App) { opened = a })

	f.pass.SetText("wrong")
	test.Tap(f.connect)
	ui.waitFor(t, "the wrong password refused", func() bool { return strings.Contains(f.result.Text, "login was refused") })
	f.user.SetText("carol")
	f.pass.SetText("carol-pw")
	test.Tap(f.connect)
	ui.waitFor(t, "carol refused", func() bool { return strings.Contains(f.result.Text, "not an admin") })
	f.url.SetText("http://" + box.Addr) // the TLS port, spoken to in plain http
	test.Tap(f.connect)
	ui.waitFor(t, "plain http to a TLS port explained", func() bool { return strings.Contains(f.result.Text, "is that address a wharf?") })
	f.url.SetText(box.URL)
	f.user.SetText("root")
	f.pass.SetText("root-pw")
	test.Tap(f.connect)
	ui.waitFor(t, "the remote window opened", func() bool { return opened != nil })
	t.Cleanup(func() { shutdownOnUIThread(t, opened, ui) })
	ui.waitFor(t, "the remote window connected", func() bool { return strings.HasSuffix(opened.state.Text, ": running") })
	if f.pass.Text != "" || w.Content().Visible() && !strings.Contains(f.result.Text, "Connected to wharf 9.9.9") {
		t.Errorf("after connecting: password kept %v, result %q", f.pass.Text != "", f.result.Text)
	}
}
