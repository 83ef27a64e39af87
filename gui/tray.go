package gui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/theme"

	"github.com/wharf-registry/wharf/gui/model"
)

// trayCapable says whether the app has a system tray icon: asked for,
// and a desktop driver (not the test driver or a phone).
func (a *App) trayCapable() (desktop.App, bool) {
	if !a.opts.Tray {
		return nil, false
	}
	d, ok := a.fa.(desktop.App)
	return d, ok
}

// setupTray puts the status and Open / Start / Stop / Quit in the system
// tray; show keeps them current.
func (a *App) setupTray() {
	a.trayStatus = fyne.NewMenuItem("wharf: stopped", nil)
	a.trayStatus.Disabled = true
	a.trayStart = fyne.NewMenuItem("Start", func() { a.refused(a.Start()) })
	a.trayStop = fyne.NewMenuItem("Stop", func() { a.refused(a.Stop()) })
	open := fyne.NewMenuItem("Open wharf", func() { a.Win.Show(); a.Win.RequestFocus() })
	quit := fyne.NewMenuItem("Quit", a.Quit)
	quit.IsQuit = true // Fyne then calls this instead of adding its own Quit
	a.trayMenu = fyne.NewMenu("wharf", a.trayStatus, fyne.NewMenuItemSeparator(), open, a.trayStart, a.trayStop, fyne.NewMenuItemSeparator(), quit)
	if d, ok := a.trayCapable(); ok {
		d.SetSystemTrayMenu(a.trayMenu)
		d.SetSystemTrayIcon(theme.StorageIcon())
		d.SetSystemTrayWindow(a.Win)
	}
}

// showTray mirrors the lifecycle in the tray menu (UI thread).
func (a *App) showTray(life model.Lifecycle) {
	label := "wharf: " + string(life.Phase)
	if life.Phase == model.Running {
		label = "wharf: running on " + life.Addr
	}
	if a.trayStatus.Label == label && a.trayStart.Disabled == !life.CanStart() && a.trayStop.Disabled == !life.CanStop() {
		return
	}
	a.trayStatus.Label = label
	a.trayStart.Disabled = !life.CanStart()
	a.trayStop.Disabled = !life.CanStop()
	a.trayMenu.Refresh()
}
