package gui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/internal/adminclient"
)

// Login is how to reach a remote wharf: its address, an admin's login
// (auth.admins of that wharf) and, for tls.mode self-signed, its CA.
type Login struct {
	URL, User, Password string
	// CAFile is the remote wharf's CA certificate (PEM), for a wharf
	// whose certificate the system does not trust: `wharf tls ca` on that
	// machine says where it is.
	CAFile string
}

// loginForm asks for a Login, checks it off the UI thread (the address
// answers, the login is an admin's) and hands the client on.
type loginForm struct {
	do                  func(func())
	url, user, pass, ca *widget.Entry
	connect             *widget.Button
	result              *widget.Label
	box                 fyne.CanvasObject
	connected           func(*adminclient.Client)
}

func newLoginForm(do func(func()), l Login, connected func(*adminclient.Client)) *loginForm {
	f := &loginForm{do: do, connected: connected}
	f.url = entry("https://box.example.org:5000")
	f.url.SetText(l.URL)
	f.user = entry("an admin of that wharf (auth.admins)")
	f.user.SetText(l.User)
	f.pass = widget.NewPasswordEntry()
	f.pass.SetPlaceHolder("password (kept in memory only)")
	f.pass.SetText(l.Password)
	f.ca = entry("its CA file, for tls.mode self-signed (`wharf tls ca` there says where); empty: the system's")
	f.ca.SetText(l.CAFile)
	f.result = note("")
	f.connect = widget.NewButtonWithIcon("Connect", theme.LoginIcon(), f.try)
	f.connect.Importance = widget.HighImportance
	f.pass.OnSubmitted = func(string) { f.try() }
	f.box = container.NewVBox(
		widget.NewForm(
			widget.NewFormItem("Address", f.url),
			widget.NewFormItem("Admin user", f.user),
			widget.NewFormItem("Password", f.pass),
			widget.NewFormItem("CA certificate", f.ca),
		),
		container.NewHBox(f.connect),
		f.result,
	)
	return f
}

// try dials and checks the login; on success it calls connected on the
// UI thread.
func (f *loginForm) try() {
	l := Login{URL: strings.TrimSpace(f.url.Text), User: strings.TrimSpace(f.user.Text), Password: f.pass.Text, CAFile: strings.TrimSpace(f.ca.Text)}
	rc, err := adminclient.Dial(l.URL, adminclient.Options{User: l.User, Password: l.Password, CAFile: l.CAFile})
	if err != nil {
		f.say(err, "")
		return
	}
	f.connect.Disable()
	f.say(nil, "Connecting to "+rc.URL()+"…")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		who, err := rc.WhoAmI(ctx)
		f.do(func() {
			f.connect.Enable()
			if err != nil {
				f.say(err, "")
				return
			}
			f.pass.SetText("")
			f.say(nil, fmt.Sprintf("Connected to wharf %s at %s as %s.", who.Version, rc.URL(), who.User))
			f.connected(rc)
		})
	}()
}

func (f *loginForm) say(err error, text string) {
	if err != nil {
		f.result.Importance = widget.DangerImportance
		text = err.Error()
	} else {
		f.result.Importance = widget.MediumImportance
	}
	f.result.SetText(text)
	f.result.Refresh()
}

// Connect opens a login window for a remote wharf (filled with l; with a
// password it connects at once) and, once the login is checked, the
// remote window in its place. opts are the remote window's Options.
// Closing the login window before that quits the app when
// opts.QuitOnClose is set. It returns the remote window's App through
// opened (on the UI thread).
func Connect(fa fyne.App, opts Options, l Login, opened func(*App)) fyne.Window {
	_, w := connect(fa, opts, l, opened)
	return w
}

func connect(fa fyne.App, opts Options, l Login, opened func(*App)) (*loginForm, fyne.Window) {
	opts.defaults()
	w := fa.NewWindow("wharf — connect to a remote wharf")
	done := false
	form := newLoginForm(opts.Do, l, func(rc *adminclient.Client) {
		done = true
		o := opts
		o.Remote = rc
		app := New(fa, o)
		app.Win.Show()
		w.Close()
		if opened != nil {
			opened(app)
		}
	})
	w.SetContent(container.NewPadded(container.NewVBox(
		bold("Manage a wharf on another machine"),
		note("Its dashboard, cache and users, through its admin API over HTTPS as one of its admins."),
		form.box)))
	w.Resize(fyne.NewSize(640, 360))
	w.SetCloseIntercept(func() {
		w.Close()
		if !done && opts.QuitOnClose {
			fa.Quit()
		}
	})
	w.Show()
	switch {
	case l.URL != "" && l.User != "" && l.Password != "":
		form.try()
	case l.URL != "" && l.User != "":
		w.Canvas().Focus(form.pass) // all that is left to type
	}
	return form, w
}
