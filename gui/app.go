package gui

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/internal/adminclient"
	"github.com/wharf-registry/wharf/server"
)

// App is wharf-desktop: the window, the tray and the controller of the
// embedded server. Widgets are fields so tests can read and tap them.
type App struct {
	fa   fyne.App
	opts Options
	c    *controller
	Win  fyne.Window

	cancel context.CancelFunc
	pumped chan struct{}

	// UI-thread state: touched only by show and by handlers.
	recent    model.Recent
	series    model.Series
	lastGen   int
	rows      []model.Row
	report    *server.Report // the last one shown
	alerts    model.Alerts   // notifications: upstream failing, cache nearly full
	shownLife model.Lifecycle

	// loopDone is set once Fyne's loop has returned (Shutdown): quitting
	// it again would run on the pump's goroutine and panic.
	loopDone atomic.Bool

	tabs *container.AppTabs

	// Dashboard.
	state      *widget.Label
	problem    *widget.Label // why the server failed, and what to do
	startBtn   *widget.Button
	stopBtn    *widget.Button
	restartBtn *widget.Button
	addrs      *fyne.Container // one row per address, with a copy button
	addrList   []string
	hitRatio   *widget.Label
	answers    *widget.Label
	fromCache  *widget.Label
	upstream   *widget.Label
	hosted     *widget.Label
	storage    *widget.Label
	storageBar *widget.ProgressBar
	rateLimit  *widget.Label
	uptime     *widget.Label
	transfers  *fyne.Container
	noTransfer *widget.Label
	pulls      *widget.List
	noPulls    *widget.Label
	chart      *savedChart
	savedTotal *widget.Label

	// Registries, Access and Cache tabs (registries.go, access.go, cache.go).
	reg   registries
	acc   access
	cache cacheTab

	// Use with Docker, containerd, podman.
	setupCards []*setupCard
	setupRuns  int // setup commands finished (tests wait on it)

	// A remote window (remote.go).
	banner *widget.Label
	users  remoteUsers
	// Remote windows this app opened from its Settings tab.
	remoteLogin *loginForm
	remotes     []*App

	// Settings.
	startOnLaunch *widget.Check
	keepRunning   *widget.Check

	// Tray.
	trayStatus *fyne.MenuItem
	trayStart  *fyne.MenuItem
	trayStop   *fyne.MenuItem
	trayMenu   *fyne.Menu
}

// New builds the window and its widgets from fa and starts the pump. It
// does not start the server: Start does (the command calls it when the
// start-on-launch setting is on). Call it on the UI thread.
func New(fa fyne.App, opts Options) *App {
	opts.defaults()
	a := &App{fa: fa, opts: opts, c: newController(opts), pumped: make(chan struct{}), lastGen: -1}
	a.recent.Max = 100
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	if opts.Remote != nil {
		a.Win = fa.NewWindow("wharf — remote: " + opts.Remote.URL())
		a.Win.SetContent(a.buildRemote())
	} else {
		a.Win = fa.NewWindow("wharf")
		a.Win.SetContent(a.build())
	}
	a.Win.Resize(fyne.NewSize(1100, 760))
	a.Win.SetCloseIntercept(a.closeWindow)
	a.setupTray()
	if opts.Remote != nil {
		a.show(snapshot{life: model.Lifecycle{Phase: model.Starting}})
		go a.remotePump(ctx)
	} else {
		a.show(snapshot{life: model.Lifecycle{Phase: model.Stopped}})
		go a.pump(ctx)
	}
	return a
}

// Remote is the wharf a remote window manages (nil: the one in this process).
func (a *App) Remote() string {
	if a.opts.Remote == nil {
		return ""
	}
	return a.opts.Remote.URL()
}

// Start starts the server (see controller.Start).
func (a *App) Start() error { return a.c.Start() }

// Stop drains and stops the server.
func (a *App) Stop() error { return a.c.Stop() }

// Restart stops the server and starts it with the config file as it is.
func (a *App) Restart() error { return a.c.Restart() }

// Lifecycle is the server's state now (any goroutine).
func (a *App) Lifecycle() model.Lifecycle { return a.c.Lifecycle() }

// Quit stops the server, draining requests, then quits the app. It
// returns at once; the pump quits the app when the server is down.
func (a *App) Quit() {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.opts.DrainTimeout+5*a.opts.RefreshEvery)
		defer cancel()
		if err := a.c.StopAndWait(ctx); err != nil {
			a.opts.Logger.Error("quitting", "err", err)
		}
		a.c.poke()
	}()
}

// Shutdown stops the server and waits for it (or ctx): what the command
// does after the app's loop returned, and what tests call.
func (a *App) Shutdown(ctx context.Context) error {
	a.loopDone.Store(true)
	err := a.c.StopAndWait(ctx)
	a.cancel()
	<-a.pumped
	for _, r := range a.remotes {
		r.Shutdown(ctx)
	}
	return err
}

// ShowTab brings a tab to the front by its title or the title's first
// word: "dashboard", "registries", "access", "cache", "use" (Use with
// Docker) or "settings".
func (a *App) ShowTab(name string) error {
	for i, t := range a.tabs.Items {
		if strings.EqualFold(t.Text, name) || strings.EqualFold(strings.Fields(t.Text)[0], name) {
			a.tabs.SelectIndex(i)
			return nil
		}
	}
	var names []string
	for _, t := range a.tabs.Items {
		names = append(names, strings.ToLower(strings.Fields(t.Text)[0]))
	}
	return fmt.Errorf("no tab %q; there are %s", name, strings.Join(names, ", "))
}

func (a *App) closeWindow() {
	if a.opts.Remote != nil {
		a.cancel() // the pump ends; the remote wharf goes on
		a.Win.Close()
		if a.opts.QuitOnClose && !a.loopDone.Load() {
			a.fa.Quit()
		}
		return
	}
	if a.fa.Preferences().BoolWithFallback(PrefKeepRunningOnClose, true) {
		if _, ok := a.trayCapable(); ok {
			a.Win.Hide()
			return
		}
	}
	a.Quit()
}

func (a *App) build() fyne.CanvasObject {
	a.tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Dashboard", theme.HomeIcon(), a.buildDashboard()),
		container.NewTabItemWithIcon("Registries", theme.StorageIcon(), a.buildRegistries()),
		container.NewTabItemWithIcon("Access", theme.AccountIcon(), a.buildAccess()),
		container.NewTabItemWithIcon("Cache", theme.FolderIcon(), a.buildCache()),
		container.NewTabItemWithIcon("Use with Docker", theme.ComputerIcon(), a.buildUseWith()),
		container.NewTabItemWithIcon("Settings", theme.SettingsIcon(), a.buildSettings()),
	)
	a.tabs.OnSelected = a.tabSelected
	return a.tabs
}

func (a *App) buildSettings() fyne.CanvasObject {
	prefs := a.fa.Preferences()
	a.startOnLaunch = widget.NewCheck("Start the server when wharf-desktop launches", func(on bool) { prefs.SetBool(PrefStartOnLaunch, on) })
	a.startOnLaunch.SetChecked(prefs.BoolWithFallback(PrefStartOnLaunch, true))
	a.keepRunning = widget.NewCheck("Keep the server running when the window is closed (quit from the tray)", func(on bool) { prefs.SetBool(PrefKeepRunningOnClose, on) })
	a.keepRunning.SetChecked(prefs.BoolWithFallback(PrefKeepRunningOnClose, true))

	cfgPath := widget.NewLabel(a.opts.ConfigPath)
	cfgPath.Wrapping = fyne.TextWrapBreak
	copyCfg := widget.NewButtonWithIcon("Copy path", theme.ContentCopyIcon(), func() { a.fa.Clipboard().SetContent(a.opts.ConfigPath) })
	howto := widget.NewLabel("wharf-desktop runs the server with this file, read again at every Start and Restart. " +
		"`wharf serve --config " + a.opts.ConfigPath + "` runs the same setup without a window, and " +
		"`wharf config check " + a.opts.ConfigPath + "` validates an edit before you restart.")
	howto.Wrapping = fyne.TextWrapWord
	a.remoteLogin = newLoginForm(a.opts.Do, Login{}, a.openRemote)
	return container.NewVScroll(container.NewVBox(
		widget.NewCard("This app", "", container.NewVBox(a.startOnLaunch, a.keepRunning)),
		widget.NewCard("Server configuration", "", container.NewVBox(
			container.NewBorder(nil, nil, nil, copyCfg, cfgPath), howto)),
		widget.NewCard("Manage a wharf on another machine", "Its dashboard, cache and users in a window of their own, "+
			"through its admin API over HTTPS as one of its admins (`wharf-desktop --remote URL --user NAME` opens it directly).",
			a.remoteLogin.box),
	))
}

// openRemote shows a remote window for rc (UI thread).
func (a *App) openRemote(rc *adminclient.Client) {
	o := a.opts
	o.Remote, o.QuitOnClose, o.Tray = rc, false, false
	r := New(a.fa, o)
	a.remotes = append(a.remotes, r)
	r.Win.Show()
}

func bold(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.TextStyle = fyne.TextStyle{Bold: true}
	return l
}

func figure(title string, value *widget.Label, detail fyne.CanvasObject) fyne.CanvasObject {
	value.TextStyle = fyne.TextStyle{Bold: true}
	value.SizeName = theme.SizeNameSubHeadingText
	box := container.NewVBox(value)
	if detail != nil {
		box.Add(detail)
	}
	return widget.NewCard("", title, box)
}

func (a *App) buildDashboard() fyne.CanvasObject {
	a.state = bold("")
	a.state.SizeName = theme.SizeNameHeadingText
	a.state.Truncation = fyne.TextTruncateEllipsis
	a.problem = widget.NewLabel("")
	a.problem.Wrapping = fyne.TextWrapWord
	a.problem.Importance = widget.DangerImportance
	a.problem.Hide()
	a.startBtn = widget.NewButtonWithIcon("Start", theme.MediaPlayIcon(), func() { a.refused(a.Start()) })
	a.startBtn.Importance = widget.HighImportance
	a.stopBtn = widget.NewButtonWithIcon("Stop", theme.MediaStopIcon(), func() { a.refused(a.Stop()) })
	a.restartBtn = widget.NewButtonWithIcon("Restart", theme.MediaReplayIcon(), func() { a.refused(a.Restart()) })
	a.uptime = widget.NewLabel("")
	head := container.NewBorder(nil, nil, nil,
		container.NewHBox(a.uptime, a.startBtn, a.stopBtn, a.restartBtn), a.state)

	a.addrs = container.NewVBox()

	// "—" until the server has run: nothing is known yet.
	a.hitRatio, a.answers = widget.NewLabel("—"), widget.NewLabel("")
	a.fromCache, a.upstream, a.hosted = widget.NewLabel("—"), widget.NewLabel("—"), widget.NewLabel("—")
	a.storage, a.storageBar = widget.NewLabel("—"), widget.NewProgressBar()
	a.storageBar.Hide()
	a.storageBar.TextFormatter = func() string { return model.Percent(a.storageBar.Value) + " of the budget" }
	a.rateLimit = widget.NewLabel("—")
	a.rateLimit.Wrapping = fyne.TextWrapWord
	upDetail := widget.NewLabel("fetched from upstreams")
	cacheDetail := widget.NewLabel("served from the cache")
	figures := container.NewGridWithColumns(4,
		figure("Hit ratio", a.hitRatio, a.answers),
		figure("Saved", a.fromCache, cacheDetail),
		figure("Fetched", a.upstream, upDetail),
		figure("Hosted", a.hosted, widget.NewLabel("served from pushes")),
	)
	storage := widget.NewCard("", "Cache storage", container.NewVBox(a.storage, a.storageBar))
	limits := widget.NewCard("", "Docker Hub pull limit", a.rateLimit)

	a.noTransfer = widget.NewLabel("No transfers in progress")
	a.transfers = container.NewVBox(a.noTransfer)
	transfers := widget.NewCard("", "Transfers from upstreams", a.transfers)

	a.noPulls = widget.NewLabel("No pulls or pushes yet")
	a.pulls = widget.NewList(
		func() int { return len(a.rows) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("00:00:00  pull  hosted  library/alpine:3.20  (1.0 MiB)")
			l.TextStyle = fyne.TextStyle{Monospace: true}
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i < len(a.rows) {
				o.(*widget.Label).SetText(a.rows[i].Text())
			}
		},
	)
	pulls := widget.NewCard("", "Recent pulls and pushes", container.NewStack(a.noPulls, a.pulls))

	a.chart = newSavedChart()
	a.savedTotal = widget.NewLabel("")
	chart := widget.NewCard("", "Bytes saved since the app started", container.NewBorder(a.savedTotal, nil, nil, nil, a.chart))

	top := container.NewVBox(head, a.problem,
		widget.NewCard("", "Point clients at", a.addrs),
		figures,
		container.NewGridWithColumns(2, storage, limits),
		transfers)
	bottom := container.NewGridWithColumns(2, pulls, chart)
	return container.NewBorder(top, nil, nil, nil, bottom)
}

// refused shows a refused action (a double click) in the problem line.
func (a *App) refused(err error) {
	if err == nil {
		return
	}
	a.problem.SetText(err.Error())
	a.problem.Show()
}

// show copies a snapshot into the widgets. It runs on the UI thread only.
func (a *App) show(s snapshot) {
	life := s.life
	if a.opts.Remote != nil {
		a.state.SetText(model.RemoteTitle(life, a.opts.Remote.URL()))
		if s.report != nil {
			a.banner.SetText(model.RemoteBanner(a.opts.Remote.URL(), a.opts.Remote.User(), s.report.Version))
		}
	} else {
		a.state.SetText(life.Title())
	}
	if life.Phase == model.Failed {
		reason := life.Reason
		switch {
		case a.opts.Remote != nil:
			reason += "\nwharf-desktop asks again every few seconds."
		case !strings.Contains(reason, "press Start"):
			reason += "\nFix the cause, then press Start."
		}
		a.problem.SetText(reason)
		a.problem.Show()
	} else if life.Busy() || life.Phase == model.Running {
		a.problem.Hide()
	}
	setEnabled(a.startBtn, life.CanStart())
	setEnabled(a.stopBtn, life.CanStop())
	setEnabled(a.restartBtn, life.CanStop())
	a.showAddrs(life, s.addrs)

	if s.gen != a.lastGen && s.gen > 0 {
		if a.lastGen > 0 {
			a.series.NewServer()
		}
		a.lastGen = s.gen
	}
	if s.report != nil {
		a.report = s.report
		for _, al := range a.alerts.Next(s.report) {
			a.fa.SendNotification(fyne.NewNotification(al.Title, al.Content))
		}
		f := s.figures
		a.hitRatio.SetText(f.HitRatio)
		a.answers.SetText(f.Answers)
		a.fromCache.SetText(f.FromCache)
		a.upstream.SetText(f.Upstream)
		a.hosted.SetText(f.Hosted)
		a.storage.SetText(f.Storage)
		a.storageBar.SetValue(f.StorageFill)
		if s.report.Budget.MaxBytes > 0 {
			a.storageBar.Show()
		} else {
			a.storageBar.Hide()
		}
		a.rateLimit.SetText(f.RateLimit)
		a.uptime.SetText("up " + f.Uptime)
		a.series.Observe(s.at, s.saved)
		a.chart.set(a.series.Points())
		a.savedTotal.SetText(model.Bytes(a.series.Total()) + " served from the cache instead of the upstreams")
	} else if life.Phase != model.Running {
		a.uptime.SetText("")
	}
	if life.Phase != model.Running {
		a.uptime.SetText("")
	}
	a.showTransfers(s.transfers)
	added := false
	for _, e := range s.events {
		added = a.recent.Add(e) || added
	}
	if added {
		a.rows = a.recent.Rows()
		a.pulls.Refresh()
	}
	if len(a.rows) > 0 {
		a.noPulls.Hide()
	} else {
		a.noPulls.Show()
	}
	a.showTray(life)
	a.followServer(s)
	if s.report != nil || life != a.shownLife {
		// What is on screen, for `make screenshots` and bug reports.
		a.opts.Logger.Debug("dashboard refreshed", "state", life.Phase, "pulls", len(a.rows),
			"saved", a.series.Total(), "fetched", a.upstream.Text, "transfers", len(s.transfers))
	}
	a.shownLife = life
	if s.quit && !a.loopDone.Load() {
		a.fa.Quit()
	}
}

func setEnabled(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

func (a *App) showAddrs(life model.Lifecycle, addrs []string) {
	if life.Phase != model.Running {
		addrs = nil
	}
	if slicesEqual(addrs, a.addrList) && len(a.addrs.Objects) > 0 {
		return
	}
	a.addrList = addrs
	a.addrs.RemoveAll()
	if len(addrs) == 0 {
		msg := "Start the server to see the address clients should use."
		if life.Phase == model.Running {
			msg = "This machine has no network address other than loopback; clients on it use " + life.Addr
		}
		a.addrs.Add(widget.NewLabel(msg))
		return
	}
	for _, addr := range addrs {
		addr := addr
		l := widget.NewLabel(addr)
		l.TextStyle = fyne.TextStyle{Monospace: true}
		copyBtn := widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { a.fa.Clipboard().SetContent(addr) })
		a.addrs.Add(container.NewHBox(l, copyBtn))
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// showTransfers draws one row with a progress bar per fetch, reusing rows.
func (a *App) showTransfers(rows []model.TransferRow) {
	if len(rows) == 0 {
		if len(a.transfers.Objects) != 1 || a.transfers.Objects[0] != a.noTransfer {
			a.transfers.Objects = []fyne.CanvasObject{a.noTransfer}
			a.transfers.Refresh()
		}
		return
	}
	if len(a.transfers.Objects) != len(rows) || a.transfers.Objects[0] == a.noTransfer {
		objs := make([]fyne.CanvasObject, len(rows))
		for i := range rows {
			bar := widget.NewProgressBar()
			label := widget.NewLabel("")
			label.Truncation = fyne.TextTruncateEllipsis
			objs[i] = container.NewGridWithColumns(2, label, bar)
		}
		a.transfers.Objects = objs
		a.transfers.Refresh()
	}
	for i, r := range rows {
		row := a.transfers.Objects[i].(*fyne.Container)
		label, bar := row.Objects[0].(*widget.Label), row.Objects[1].(*widget.ProgressBar)
		label.SetText(r.Label + "  " + r.Detail)
		if r.Fraction >= 0 {
			bar.SetValue(r.Fraction)
		} else {
			bar.SetValue(0)
		}
	}
}
