package gui

import (
	"context"
	"time"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/server"
)

// snapshot is everything the window shows that changed since the last
// one, gathered off the UI thread.
type snapshot struct {
	at        time.Time
	life      model.Lifecycle
	gen       int
	quit      bool // the server is down and the app should quit
	report    *server.Report
	figures   model.Figures
	saved     int64
	transfers []model.TransferRow
	events    []server.Event
	addrs     []string
}

// pump is the one goroutine that feeds the window: it wakes on a
// lifecycle change, a server event or a tick, and hands a snapshot to
// the UI thread at most once per RefreshEvery. Reading the Report and the
// transfers happens here, never on the UI thread.
func (a *App) pump(ctx context.Context) {
	defer close(a.pumped)
	tick := time.NewTicker(a.opts.RefreshEvery)
	defer tick.Stop()
	var (
		pending    []server.Event
		dirty      = true
		lastReport time.Time
		lastSent   time.Time
		lastGen    = -1
		busy       bool // transfers were under way at the last look
		sentLife   model.Lifecycle
		quitSent   bool
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.c.kick:
			dirty = true
		case e := <-a.c.events:
			pending = append(pending, e)
			dirty = true
		case <-tick.C:
		}
		now := time.Now()
		srv, gen, life, quitting := a.c.server()
		report := srv != nil && (dirty || gen != lastGen || now.Sub(lastReport) >= a.opts.ReportEvery)
		quit := quitting && !life.Busy() && life.Phase != model.Running && !quitSent
		if !report && !busy && !quit && life == sentLife {
			continue
		}
		if now.Sub(lastSent) < a.opts.RefreshEvery && gen == lastGen && life == sentLife && !quit {
			// Too soon: the next tick sends what gathered meanwhile.
			continue
		}
		s := snapshot{at: now, life: life, gen: gen, events: pending}
		pending = nil
		if srv != nil {
			if report {
				r := srv.Report()
				s.report = &r
				s.figures = model.FiguresOf(r)
				s.saved = model.SavedBytes(r)
				lastReport = now
			}
			s.transfers = model.Transfers(srv.Transfers())
			busy = len(s.transfers) > 0
		}
		if life.Phase == model.Running {
			ifaces, err := a.opts.Interfaces()
			if err != nil {
				a.opts.Logger.Warn("listing this machine's addresses failed", "err", err)
			}
			s.addrs = model.ClientAddresses(life.Addr, ifaces)
		}
		s.quit, quitSent = quit, quitSent || quit
		dirty, lastSent, lastGen, sentLife = false, now, gen, life
		// The one place that touches widgets from outside the UI thread.
		a.toUI(func() { a.show(s) })
	}
}
