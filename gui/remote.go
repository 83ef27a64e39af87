package gui

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/server"
)

// A remote window manages a wharf on another machine (the small office
// box without a screen) through its admin API, logged in as an admin:
// the dashboard, the cache and the htpasswd users. It never starts or
// stops that server, and its title, a banner and the state line all name
// the address, so it is never mistaken for the server on this machine.

// remoteUsers is the Users tab of a remote window.
type remoteUsers struct {
	list    *fyne.Container
	name    *widget.Entry
	pass    *widget.Entry
	add     *widget.Button
	reset   *widget.Button
	result  *widget.Label
	names   []string // what the list shows
	loading bool
}

func (a *App) buildRemote() fyne.CanvasObject {
	rc := a.opts.Remote
	a.banner = widget.NewLabel(model.RemoteBanner(rc.URL(), rc.User(), ""))
	a.banner.TextStyle = fyne.TextStyle{Bold: true}
	a.banner.Wrapping = fyne.TextWrapWord
	band := canvas.NewRectangle(withAlpha(theme.Color(theme.ColorNameWarning), 0x60))

	dash := a.buildDashboard()
	for _, b := range []*widget.Button{a.startBtn, a.stopBtn, a.restartBtn} {
		b.Hide() // that server is started and stopped on its own machine
	}
	a.tabs = container.NewAppTabs(
		container.NewTabItemWithIcon("Dashboard", theme.HomeIcon(), dash),
		container.NewTabItemWithIcon("Cache", theme.FolderIcon(), a.buildCache()),
		container.NewTabItemWithIcon("Users", theme.AccountIcon(), a.buildRemoteUsers()),
	)
	a.tabs.OnSelected = a.tabSelected
	a.cache.summary.SetText("Connecting…")
	return container.NewBorder(container.NewStack(band, a.banner), nil, nil, nil, a.tabs)
}

func withAlpha(c color.Color, alpha uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: alpha}
}

func (a *App) buildRemoteUsers() fyne.CanvasObject {
	u := &a.users
	u.list = container.NewVBox(widget.NewLabel("Reading the users…"))
	u.name = entry("user name")
	u.pass = widget.NewPasswordEntry()
	u.pass.SetPlaceHolder("password")
	u.result = note("")
	u.add = widget.NewButtonWithIcon("Add user", theme.ContentAddIcon(), func() { a.setRemotePassword(true) })
	u.reset = widget.NewButtonWithIcon("Reset password", theme.ViewRefreshIcon(), func() { a.setRemotePassword(false) })
	return container.NewVScroll(container.NewVBox(
		widget.NewCard("", "Users of the remote wharf's htpasswd file", u.list),
		widget.NewCard("", "Add a user or reset a password", container.NewVBox(
			container.NewGridWithColumns(2, u.name, u.pass),
			container.NewGridWithColumns(2, u.add, u.reset),
			u.result)),
		note("The remote wharf writes its htpasswd file (bcrypt, mode 0600) and a change applies with the next request. "+
			"LDAP users are managed in the directory."),
	))
}

// refreshRemoteUsers lists the users off the UI thread.
func (a *App) refreshRemoteUsers() {
	u := &a.users
	if u.loading {
		return
	}
	u.loading = true
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := a.opts.Remote.Users(ctx)
		return func() {
			u.loading = false
			u.list.RemoveAll()
			if err != nil {
				u.list.Add(note(err.Error()))
				return
			}
			u.names = rep.Users
			for _, n := range rep.Users {
				n := n
				remove := widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), func() { a.removeRemoteUser(n) })
				u.list.Add(container.NewBorder(nil, nil, nil, remove, widget.NewLabel(n)))
			}
			if len(rep.Users) == 0 {
				u.list.Add(widget.NewLabel("No users in " + rep.File + " yet: add the first one below."))
			}
		}
	})
}

// setRemotePassword adds the user in the form (add) or gives an existing
// one a new password.
func (a *App) setRemotePassword(add bool) {
	u := &a.users
	name, pw := strings.TrimSpace(u.name.Text), u.pass.Text
	var err error
	switch {
	case name == "":
		err = errors.New("name the user first")
	case pw == "":
		err = errors.New("type a password for " + name)
	case add && slices.Contains(u.names, name):
		err = fmt.Errorf("user %s already exists; reset their password instead", name)
	case !add && !slices.Contains(u.names, name):
		err = fmt.Errorf("there is no user %s; add them instead", name)
	}
	if err != nil {
		a.userResult(err, "")
		return
	}
	a.userCall(func(ctx context.Context) (string, error) {
		ch, err := a.opts.Remote.SetPassword(ctx, name, pw)
		if ch.Added {
			return "Added " + name + ": they can log in now.", err
		}
		return "New password for " + name + " set.", err
	})
}

func (a *App) removeRemoteUser(name string) {
	a.userCall(func(ctx context.Context) (string, error) {
		return "Removed " + name + ".", a.opts.Remote.RemoveUser(ctx, name)
	})
}

// userCall runs one change off the UI thread, then says how it went and
// lists the users again.
func (a *App) userCall(call func(context.Context) (string, error)) {
	u := &a.users
	u.add.Disable()
	u.reset.Disable()
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done, err := call(ctx)
		return func() {
			u.add.Enable()
			u.reset.Enable()
			if err == nil {
				u.pass.SetText("")
			}
			a.userResult(err, done)
			a.refreshRemoteUsers()
		}
	})
}

func (a *App) userResult(err error, done string) {
	u := &a.users
	if err != nil {
		u.result.Importance = widget.DangerImportance
		u.result.SetText(err.Error())
	} else {
		u.result.Importance = widget.SuccessImportance
		u.result.SetText(done)
	}
	u.result.Refresh()
}

// remotePump is the pump of a remote window: every ReportEvery it reads
// the remote wharf's report, transfers and new events (three small GETs
// on one HTTP/2 connection) and hands one snapshot to the UI thread
// through the one Do call. A wharf that does not answer shows as such,
// with the reason, and is asked again at the next tick.
func (a *App) remotePump(ctx context.Context) {
	defer close(a.pumped)
	rc := a.opts.Remote
	tick := time.NewTicker(a.opts.ReportEvery)
	defer tick.Stop()
	var (
		after uint64
		gen   = 1
		up    bool
	)
	for {
		now := time.Now()
		s := snapshot{at: now, gen: gen}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		report, err := rc.Report(rctx)
		var transfers []server.Transfer
		var events server.EventsReport
		if err == nil {
			transfers, err = rc.Transfers(rctx)
		}
		if err == nil {
			events, err = rc.Events(rctx, after)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if up {
				a.opts.Logger.Warn("the remote wharf stopped answering", "url", rc.URL(), "err", err)
			}
			up = false
			s.life = model.Lifecycle{Phase: model.Failed, Reason: err.Error()}
		} else {
			if !up {
				a.opts.Logger.Info("connected to the remote wharf", "url", rc.URL(), "version", report.Version)
			}
			up = true
			if events.Last < after { // a new server: its events count from 1 again
				gen++
				s.gen = gen
				after = 0
			} else {
				after = events.Last
				for _, e := range events.Events {
					s.events = append(s.events, e.Event())
				}
			}
			s.life = model.Lifecycle{Phase: model.Running, Addr: model.ClientAddress(rc.URL())}
			s.report = &report
			s.figures = model.FiguresOf(report)
			s.saved = model.SavedBytes(report)
			s.transfers = model.Transfers(transfers)
			s.addrs = []string{s.life.Addr}
		}
		a.toUI(func() { a.show(s) })
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.c.kick:
		}
	}
}
