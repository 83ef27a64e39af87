package gui

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/gui/settings"
)

// access is the Access tab: htpasswd users, anonymous pulls, LDAP, TLS.
type access struct {
	out *outcome

	htpasswd    *widget.Entry
	htpasswdBtn *widget.Button
	users       *fyne.Container // one row per user
	userName    *widget.Entry
	userPass    *widget.Entry
	addUser     *widget.Button
	resetPass   *widget.Button

	anonymous *fyne.Container // one switch per namespace

	ldapURL, ldapBindDN, ldapBindPW, ldapBaseDN, ldapFilter, ldapGroups *widget.Entry
	ldapStartTLS                                                        *widget.Check
	saveLDAP, removeLDAP, testLDAP                                      *widget.Button
	ldapUser                                                            *widget.Entry
	ldapResult                                                          *widget.Label

	tlsMode                   *widget.Select
	tlsCert, tlsKey, tlsHosts *widget.Entry
	tlsEmail                  *widget.Entry
	saveTLS                   *widget.Button
	trust                     *fyne.Container // the self-signed CA and how to trust it
	trustText                 string          // what the copy button copies
	trustGen                  int             // the server generation the trust was shown for
}

func (a *App) buildAccess() fyne.CanvasObject {
	x := &a.acc
	x.out = a.newOutcome()

	x.htpasswd = entry("htpasswd (a file beside the config; created when the first user is added)")
	x.htpasswdBtn = widget.NewButton("Use this file", func() {
		path := strings.TrimSpace(x.htpasswd.Text)
		a.saveAccess(func(d *settings.Doc) error { return d.SetHtpasswd(path) })
	})
	x.users = container.NewVBox()
	x.userName, x.userPass = entry("user name"), widget.NewPasswordEntry()
	x.userPass.SetPlaceHolder("password")
	x.addUser = widget.NewButtonWithIcon("Add user", theme.ContentAddIcon(), func() {
		a.setPassword(settings.Users.Add, "Added %s: they can log in now.")
	})
	x.resetPass = widget.NewButtonWithIcon("Reset password", theme.ViewRefreshIcon(), func() {
		a.setPassword(settings.Users.ResetPassword, "New password for %s set.")
	})
	users := container.NewVBox(
		container.NewBorder(nil, nil, widget.NewLabel("File"), x.htpasswdBtn, x.htpasswd),
		x.users,
		container.NewGridWithColumns(2, x.userName, x.userPass),
		container.NewGridWithColumns(2, x.addUser, x.resetPass),
	)

	x.anonymous = container.NewVBox()

	x.ldapURL, x.ldapBaseDN = entry("ldap://ldap.example.org:389 or ldaps://…:636"), entry("ou=people,dc=example,dc=org")
	x.ldapBindDN, x.ldapBindPW = entry("cn=wharf,dc=example,dc=org (empty: search anonymously)"), widget.NewPasswordEntry()
	x.ldapBindPW.SetPlaceHolder("empty keeps the saved one; saved in a 0600 file")
	x.ldapFilter, x.ldapGroups = entry("(uid={username})"), entry("optional: search groups here instead of memberOf")
	x.ldapStartTLS = widget.NewCheck("StartTLS", nil)
	x.ldapUser = entry("a user to look up")
	x.ldapResult = widget.NewLabel("")
	x.ldapResult.Wrapping = fyne.TextWrapWord
	x.saveLDAP = widget.NewButtonWithIcon("Save LDAP", theme.DocumentSaveIcon(), func() {
		l := a.formLDAP()
		a.saveAccess(func(d *settings.Doc) error { return d.SetLDAP(l) })
	})
	x.removeLDAP = widget.NewButtonWithIcon("Turn LDAP off", theme.DeleteIcon(), func() {
		a.saveAccess(func(d *settings.Doc) error { return d.RemoveLDAP() })
	})
	x.testLDAP = widget.NewButtonWithIcon("Test connection", theme.SearchIcon(), a.testLDAPForm)
	ldapForm := widget.NewForm(
		widget.NewFormItem("Directory", container.NewBorder(nil, nil, nil, x.ldapStartTLS, x.ldapURL)),
		widget.NewFormItem("Bind DN", x.ldapBindDN),
		widget.NewFormItem("Bind password", x.ldapBindPW),
		widget.NewFormItem("Users under", x.ldapBaseDN),
		widget.NewFormItem("User filter", x.ldapFilter),
		widget.NewFormItem("Groups under", x.ldapGroups),
	)
	ldap := container.NewVBox(ldapForm,
		container.NewHBox(x.saveLDAP, x.removeLDAP),
		container.NewBorder(nil, nil, widget.NewLabel("Bind and look up"), x.testLDAP, x.ldapUser),
		x.ldapResult)

	x.tlsCert, x.tlsKey = entry("certificate file (mode files)"), entry("key file (mode files)")
	x.tlsHosts, x.tlsEmail = entry("names in the certificate, comma separated"), entry("e-mail for ACME")
	x.tlsMode = widget.NewSelect(settings.TLSModes(), nil)
	x.saveTLS = widget.NewButtonWithIcon("Save TLS", theme.DocumentSaveIcon(), func() {
		t := settings.TLS{Mode: x.tlsMode.Selected, CertFile: strings.TrimSpace(x.tlsCert.Text), KeyFile: strings.TrimSpace(x.tlsKey.Text),
			Hosts: splitList(x.tlsHosts.Text), Email: strings.TrimSpace(x.tlsEmail.Text)}
		a.saveAccess(func(d *settings.Doc) error { return d.SetTLS(t) })
	})
	x.trust = container.NewVBox()
	tlsForm := widget.NewForm(
		widget.NewFormItem("Mode", container.NewBorder(nil, nil, nil, x.saveTLS, x.tlsMode)),
		widget.NewFormItem("Certificate", container.NewGridWithColumns(2, x.tlsCert, x.tlsKey)),
		widget.NewFormItem("Host names", x.tlsHosts),
		widget.NewFormItem("ACME e-mail", x.tlsEmail),
	)

	a.refreshAccess()
	// Two columns: logins on the left, HTTPS on the right, so most of the
	// tab fits a laptop screen.
	return container.NewVScroll(container.NewVBox(
		x.out.box,
		container.NewGridWithColumns(2,
			container.NewVBox(
				widget.NewCard("Users", "htpasswd logins; changes apply at once", users),
				widget.NewCard("Anonymous pulls", "with logins on, who may pull without one", x.anonymous),
				widget.NewCard("LDAP", "log in with directory accounts", ldap)),
			container.NewVBox(
				widget.NewCard("TLS", "HTTPS on the registry's address", container.NewVBox(tlsForm, x.trust)))),
	))
}

// saveAccess makes one edit from the tab. A refused edit keeps what the
// user typed, to correct it; a saved one shows the file as it is now.
func (a *App) saveAccess(edit func(*settings.Doc) error) {
	ch, err := a.editConfig(edit)
	if err == nil {
		a.refreshAccess()
	}
	a.acc.out.saved(ch, err)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// setPassword adds a user or resets one's password with what the form
// holds; an empty password is refused.
func (a *App) setPassword(set func(u settings.Users, name, password string) error, done string) {
	x := &a.acc
	name, password := strings.TrimSpace(x.userName.Text), x.userPass.Text
	a.editUsers(func(u settings.Users) error {
		if password == "" {
			return errors.New("type a password for " + name)
		}
		return set(u, name, password)
	}, fmt.Sprintf(done, name))
}

// editUsers changes the htpasswd file (written at once, bcrypt, 0600;
// the running server rereads it) and redraws the list.
func (a *App) editUsers(change func(settings.Users) error, done string) {
	x := &a.acc
	err := func() error {
		d, err := a.loadDoc()
		if err != nil {
			return err
		}
		u, err := d.Users()
		if err != nil {
			return err
		}
		if strings.TrimSpace(x.userName.Text) == "" {
			return fmt.Errorf("name the user first")
		}
		return change(u)
	}()
	a.refreshAccess()
	if err != nil {
		x.out.fail(err)
		return
	}
	x.userPass.SetText("")
	x.out.say(true, done)
}

func (a *App) formLDAP() settings.LDAP {
	x := &a.acc
	return settings.LDAP{
		URL: strings.TrimSpace(x.ldapURL.Text), StartTLS: x.ldapStartTLS.Checked,
		BindDN: strings.TrimSpace(x.ldapBindDN.Text), BindPassword: x.ldapBindPW.Text,
		BaseDN: strings.TrimSpace(x.ldapBaseDN.Text), UserFilter: strings.TrimSpace(x.ldapFilter.Text),
		GroupBaseDN: strings.TrimSpace(x.ldapGroups.Text),
	}
}

// testLDAPForm binds with the form's settings (the saved bind password
// when none is typed) and looks the named user up, off the UI thread.
func (a *App) testLDAPForm() {
	x := &a.acc
	f := a.formLDAP()
	l := config.LDAP{}
	if d, err := a.loadDoc(); err == nil && d.Config().Auth.LDAP != nil {
		l = *d.Config().Auth.LDAP
	}
	l.URL, l.StartTLS, l.BaseDN, l.UserFilter, l.GroupBaseDN = f.URL, f.StartTLS, f.BaseDN, f.UserFilter, f.GroupBaseDN
	if l.BindDN != f.BindDN || f.BindPassword != "" {
		l.BindDN, l.BindPassword, l.BindPasswordFile, l.BindPasswordEnv = f.BindDN, f.BindPassword, "", ""
	}
	user := strings.TrimSpace(x.ldapUser.Text)
	a.runTest(x.testLDAP, x.ldapResult, "Asking "+l.URL+"…", func(ctx context.Context) settings.Result {
		return settings.TestLDAP(ctx, l, user)
	})
}

// refreshAccess fills the tab from the file as it is now.
func (a *App) refreshAccess() {
	x := &a.acc
	x.users.RemoveAll()
	x.anonymous.RemoveAll()
	d, err := a.loadDoc()
	if err != nil {
		x.out.fail(err)
		return
	}
	cfg := d.Config()

	x.htpasswd.SetText(cfg.Auth.Htpasswd)
	if u, err := d.Users(); err != nil {
		x.users.Add(note("Logins are off: name an htpasswd file and press “Use this file”, then add users."))
	} else if names, err := u.List(); err != nil {
		x.users.Add(note(err.Error()))
	} else {
		for _, n := range names {
			n := n
			remove := widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), func() {
				x.userName.SetText(n)
				a.editUsers(func(u settings.Users) error { return u.Remove(n) }, "Removed "+n+".")
			})
			x.users.Add(container.NewBorder(nil, nil, nil, remove, widget.NewLabel(n)))
		}
		if len(names) == 0 {
			x.users.Add(widget.NewLabel("No users yet: add the first one below."))
		}
	}

	type ns struct {
		name, kind string
		allow      bool
	}
	var spaces []ns
	for _, p := range cfg.Proxies {
		spaces = append(spaces, ns{p.Name, "proxy", p.AllowsAnonymousPull()})
	}
	for _, h := range cfg.Hosted {
		spaces = append(spaces, ns{h.Name, "hosted", h.AnonymousPull})
	}
	for _, s := range spaces {
		s := s
		c := widget.NewCheck(s.name+" ("+s.kind+"): anyone may pull without logging in", nil)
		c.SetChecked(s.allow)
		var onChanged func(bool)
		onChanged = func(on bool) {
			a.saveAccess(func(d *settings.Doc) error { return d.SetAnonymousPull(s.name, on) })
			if x.out.msg.Importance == widget.DangerImportance { // refused: show what the file says
				c.OnChanged = nil
				c.SetChecked(!on)
				c.OnChanged = onChanged
			}
		}
		c.OnChanged = onChanged
		x.anonymous.Add(c)
	}
	if !cfg.Auth.Enabled() {
		x.anonymous.Add(note("Logins are off, so everyone may pull and push; these apply once users or LDAP are on."))
	}

	l := config.LDAP{}
	if cfg.Auth.LDAP != nil {
		l = *cfg.Auth.LDAP
	}
	x.ldapURL.SetText(l.URL)
	x.ldapStartTLS.SetChecked(l.StartTLS)
	x.ldapBindDN.SetText(l.BindDN)
	x.ldapBindPW.SetText("")
	x.ldapBaseDN.SetText(l.BaseDN)
	x.ldapFilter.SetText(l.UserFilter)
	x.ldapGroups.SetText(l.GroupBaseDN)
	setEnabled(x.removeLDAP, cfg.Auth.LDAP != nil)

	x.tlsMode.SetSelected(cfg.TLS.Mode)
	x.tlsCert.SetText(cfg.TLS.CertFile)
	x.tlsKey.SetText(cfg.TLS.KeyFile)
	x.tlsHosts.SetText(strings.Join(cfg.TLS.Hosts, ", "))
	x.tlsEmail.SetText(cfg.TLS.Email)
	a.showTrust(d)
}

// trustHostPort is the name clients use: this machine's name and the
// port the server listens on now ("" before it runs: the config's).
func (a *App) trustHostPort() string {
	life := a.Lifecycle()
	if life.Phase != model.Running {
		return ""
	}
	_, port, err := net.SplitHostPort(life.Addr)
	name, _ := os.Hostname()
	if err != nil || name == "" {
		return ""
	}
	return net.JoinHostPort(name, port)
}

// showTrust lists where the self-signed CA is and the commands that
// make each system trust it, with one button to copy them all.
func (a *App) showTrust(d *settings.Doc) {
	x := &a.acc
	x.trust.RemoveAll()
	x.trustGen = a.lastGen
	if d.Config().TLS.Mode != config.TLSSelfSigned {
		return
	}
	t := d.CATrust(a.trustHostPort())
	state := "wharf writes it at its first start in this mode"
	if t.Exists {
		state = "exists"
	}
	a.opts.Logger.Debug("trust commands shown", "host", t.HostPort, "ca_exists", t.Exists)
	ca := widget.NewLabel("CA certificate: " + t.File + " (" + state + ")")
	ca.Wrapping = fyne.TextWrapBreak
	var all []string
	cmds := container.NewVBox()
	for _, s := range t.Steps {
		all = append(all, "# "+s.System)
		all = append(all, s.Commands...)
		l := widget.NewLabel(s.System + ":\n  " + strings.Join(s.Commands, "\n  "))
		l.TextStyle = fyne.TextStyle{Monospace: true}
		l.Wrapping = fyne.TextWrapBreak
		cmds.Add(l)
	}
	x.trustText = strings.Join(all, "\n") + "\n"
	copyBtn := widget.NewButtonWithIcon("Copy the commands", theme.ContentCopyIcon(), func() { a.fa.Clipboard().SetContent(x.trustText) })
	x.trust.Add(container.NewBorder(nil, nil, nil, copyBtn, ca))
	x.trust.Add(note("Clients reaching " + t.HostPort + " must trust this CA:"))
	x.trust.Add(cmds)
}
