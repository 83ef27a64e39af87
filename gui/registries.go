package gui

import (
	"context"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/gui/settings"
)

// customUpstream is the preset choice that leaves the URL to the user.
const customUpstream = "Custom URL"

// registries is the Registries tab: proxies and hosted namespaces.
type registries struct {
	proxies    *fyne.Container // one row per proxy
	hosted     *fyne.Container // one row per hosted namespace
	preset     *widget.Select
	name       *widget.Entry
	upstream   *widget.Entry
	username   *widget.Entry
	password   *widget.Entry
	isDefault  *widget.Check
	addBtn     *widget.Button
	testBtn    *widget.Button
	testResult *widget.Label // what the last "test upstream" found
	hostedName *widget.Entry
	addHosted  *widget.Button
	out        *outcome // the last edit, or why it was refused
}

func (a *App) buildRegistries() fyne.CanvasObject {
	r := &a.reg
	r.out = a.newOutcome()
	r.proxies, r.hosted = container.NewVBox(), container.NewVBox()
	r.name, r.upstream = entry("hub, ghcr, team-mirror…"), entry("https://registry.example.com")
	r.username, r.password = entry("optional"), widget.NewPasswordEntry()
	r.password.SetPlaceHolder("optional; saved in a 0600 file beside the config, never in the YAML")
	r.isDefault = widget.NewCheck("Default: serves every image name outside the other namespaces (what Docker's registry-mirrors needs)", nil)
	labels := []string{}
	for _, p := range settings.Presets() {
		labels = append(labels, p.Label)
	}
	r.preset = widget.NewSelect(append(labels, customUpstream), func(label string) {
		for _, p := range settings.Presets() {
			if p.Label == label {
				r.name.SetText(p.Name)
				r.upstream.SetText(p.Upstream)
				return
			}
		}
		r.name.SetText("")
		r.upstream.SetText("")
	})
	r.preset.PlaceHolder = "Pick a registry or a custom URL"
	r.testResult = widget.NewLabel("")
	r.testResult.Wrapping = fyne.TextWrapWord
	r.addBtn = widget.NewButtonWithIcon("Add proxy", theme.ContentAddIcon(), a.addProxy)
	r.addBtn.Importance = widget.HighImportance
	r.testBtn = widget.NewButtonWithIcon("Test upstream", theme.SearchIcon(), func() { a.testUpstream(a.formProxy()) })
	form := widget.NewForm(
		widget.NewFormItem("Registry", r.preset),
		widget.NewFormItem("Name", r.name),
		widget.NewFormItem("Upstream URL", r.upstream),
		widget.NewFormItem("User name", r.username),
		widget.NewFormItem("Password or token", r.password),
	)
	add := container.NewVBox(form, r.isDefault, container.NewHBox(r.addBtn, r.testBtn), r.testResult)

	r.hostedName = entry("team, ci, local…")
	r.addHosted = widget.NewButtonWithIcon("Add namespace", theme.ContentAddIcon(), func() {
		name := strings.TrimSpace(r.hostedName.Text)
		if a.saveRegistries(func(d *settings.Doc) error { return d.AddHosted(name) }) {
			r.hostedName.SetText("")
		}
	})
	hosted := container.NewVBox(r.hosted, container.NewBorder(nil, nil, nil, r.addHosted, r.hostedName))

	a.refreshRegistries()
	return container.NewVScroll(container.NewVBox(
		r.out.box,
		widget.NewCard("Proxies", "pull-through caches of other registries: clients pull NAME/image", r.proxies),
		widget.NewCard("Add a proxy", "", add),
		widget.NewCard("Hosted namespaces", "where you push your own images", hosted),
	))
}

// formProxy is the proxy the form describes.
func (a *App) formProxy() settings.Proxy {
	r := &a.reg
	return settings.Proxy{
		Name: strings.TrimSpace(r.name.Text), Upstream: strings.TrimSpace(r.upstream.Text), Default: r.isDefault.Checked,
		Username: strings.TrimSpace(r.username.Text), Password: r.password.Text,
	}
}

func (a *App) addProxy() {
	r := &a.reg
	p := a.formProxy()
	if a.saveRegistries(func(d *settings.Doc) error { return d.AddProxy(p) }) {
		r.name.SetText("")
		r.upstream.SetText("")
		r.username.SetText("")
		r.password.SetText("")
		r.isDefault.SetChecked(false)
		r.preset.ClearSelected()
		r.testResult.SetText("")
	}
}

// saveRegistries makes one edit from the tab and redraws the lists; it
// reports whether the edit was saved (the form may be cleared).
func (a *App) saveRegistries(edit func(*settings.Doc) error) bool {
	ch, err := a.editConfig(edit)
	a.refreshRegistries()
	a.reg.out.saved(ch, err)
	return err == nil
}

// testUpstream pings the proxy's /v2/ off the UI thread and says what
// answered under the form.
func (a *App) testUpstream(p settings.Proxy) {
	r := &a.reg
	cp := config.Proxy{Name: p.Name, Upstream: p.Upstream, Username: p.Username, Password: p.Password}
	if d, err := a.loadDoc(); err == nil && p.Password == "" {
		for _, q := range d.Proxies() {
			if q.Name == p.Name && q.Upstream == p.Upstream {
				cp = q // the saved credentials
			}
		}
	}
	a.runTest(r.testBtn, r.testResult, "Testing "+p.Upstream+"…", func(ctx context.Context) settings.Result {
		return settings.TestUpstream(ctx, cp)
	})
}

// refreshRegistries redraws the lists from the file as it is now.
func (a *App) refreshRegistries() {
	r := &a.reg
	r.proxies.RemoveAll()
	r.hosted.RemoveAll()
	d, err := a.loadDoc()
	if err != nil {
		r.out.fail(err)
		return
	}
	for _, p := range d.Proxies() {
		p := p
		text := p.Name + "  →  " + p.Upstream
		if p.Default {
			text += "  (default)"
		}
		if p.Username != "" {
			text += "  as " + p.Username
		}
		l := widget.NewLabel(text)
		l.Truncation = fyne.TextTruncateEllipsis
		test := widget.NewButtonWithIcon("Test", theme.SearchIcon(), func() {
			a.testUpstream(settings.Proxy{Name: p.Name, Upstream: p.Upstream})
		})
		remove := widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), func() {
			a.saveRegistries(func(d *settings.Doc) error { return d.RemoveProxy(p.Name) })
		})
		r.proxies.Add(container.NewBorder(nil, nil, nil, container.NewHBox(test, remove), l))
	}
	if len(d.Proxies()) == 0 {
		r.proxies.Add(widget.NewLabel("No proxies: add one below."))
	}
	for _, h := range d.Hosted() {
		h := h
		remove := widget.NewButtonWithIcon("Remove", theme.DeleteIcon(), func() {
			a.saveRegistries(func(d *settings.Doc) error { return d.RemoveHosted(h.Name) })
		})
		r.hosted.Add(container.NewBorder(nil, nil, nil, remove, widget.NewLabel(h.Name+"  (pushes go to "+h.Name+"/…; kept on disk if removed)")))
	}
	if len(d.Hosted()) == 0 {
		r.hosted.Add(widget.NewLabel("No hosted namespaces: pushes are refused."))
	}
}
