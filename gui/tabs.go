package gui

import (
	"fyne.io/fyne/v2/container"

	"github.com/wharf-registry/wharf/gui/model"
)

// tabSelected rereads what a tab shows: the file may have been edited by
// hand, the cache changed by pulls.
func (a *App) tabSelected(t *container.TabItem) {
	switch t.Text {
	case "Registries":
		a.refreshRegistries()
	case "Access":
		a.refreshAccess()
	case "Cache":
		a.refreshCache()
	case "Users":
		a.refreshRemoteUsers()
	}
}

// followServer updates the tab in front with what the server changed:
// the cache listing after pulls or a new server, the CA to trust once a
// server in mode self-signed wrote it. It runs in show, on the UI thread.
func (a *App) followServer(s snapshot) {
	tab := a.tabs.Selected()
	if tab == nil || s.life.Phase != model.Running {
		return
	}
	switch tab.Text {
	case "Cache":
		a.showWarm()
		if len(s.events) > 0 || s.gen != a.cache.loadedGen {
			a.refreshCache()
		}
	case "Access":
		if s.gen != a.acc.trustGen {
			if d, err := a.loadDoc(); err == nil {
				a.showTrust(d)
			}
		}
	}
}
