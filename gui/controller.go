// Package gui is wharf-desktop's window and tray: Fyne widgets over the
// view model of package gui/model, with the wharf server running in this
// process through package server's API (never over HTTP).
//
// Threads: buttons and menus run on Fyne's UI thread and only ask the
// controller for something; the controller starts and stops servers on
// goroutines of its own; one pump goroutine gathers what changed (the
// lifecycle, server events, the Report, transfers) and hands it to the UI
// thread through exactly one call of Options.Do (fyne.Do), at most once
// per Options.RefreshEvery, so a big pull never floods the window.
package gui

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"fyne.io/fyne/v2"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/internal/adminclient"
	"github.com/wharf-registry/wharf/server"
)

// Options configure New.
type Options struct {
	// ConfigPath is the YAML file the server runs with, read again at
	// every Start, so an edit applies at the next Start or Restart.
	ConfigPath string
	Logger     *slog.Logger
	Version    string
	// Do runs f on the UI thread; default fyne.Do. Tests pass their own
	// and act as the UI thread themselves.
	Do func(f func())
	// Interfaces lists this machine's addresses; default net.InterfaceAddrs.
	Interfaces func() ([]net.Addr, error)
	// RefreshEvery bounds how often the window is updated (default 250ms);
	// ReportEvery how often the server's Report is read while nothing
	// happens (default 1s).
	RefreshEvery, ReportEvery time.Duration
	// Tray puts an icon with a menu in the system tray (the command sets
	// it when the desktop has one). Without it, closing the window quits.
	Tray bool
	// DrainTimeout bounds how long Stop waits for requests in flight
	// (default 30s, as `wharf serve`).
	DrainTimeout time.Duration
	// WharfBin is the wharf command the "Use with" tab runs `wharf setup`
	// with (default: the one beside wharf-desktop, else on PATH).
	WharfBin string
	// Remote makes the window manage the wharf this client reaches (a
	// box elsewhere, through its admin API) instead of running one in this
	// process: Dashboard, Cache and Users tabs, marked as remote.
	Remote *adminclient.Client
	// QuitOnClose quits the app when a remote window closes (the app was
	// started for it alone: wharf-desktop --remote).
	QuitOnClose bool
	// SetupTargets overrides the file or directory `wharf setup CLIENT`
	// writes, by client name (tests point them at temporary files).
	SetupTargets map[string]string
}

// Preference keys (Fyne preferences: the app's own settings, not the
// server's config file).
const (
	PrefStartOnLaunch      = "start_on_launch"
	PrefKeepRunningOnClose = "keep_running_on_close"
)

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Remote != nil {
		o.Tray = false // the tray belongs to the server on this machine
	}
	if o.Do == nil {
		o.Do = fyne.Do
	}
	if o.WharfBin == "" {
		o.WharfBin = wharfBinary()
	}
	if o.Interfaces == nil {
		o.Interfaces = net.InterfaceAddrs
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = 250 * time.Millisecond
	}
	if o.ReportEvery <= 0 {
		o.ReportEvery = time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// controller owns the embedded server and its lifecycle. Its fields are
// guarded by mu; it never touches a widget.
type controller struct {
	opts Options

	mu       sync.Mutex
	life     model.Lifecycle
	srv      *server.Server
	gen      int // bumped by every server started: the series restarts its count
	unsub    func()
	quitting bool          // Quit was asked for: quit once the server is down
	next     func()        // run once the server has stopped (Restart)
	stopErr  error         // what the last Shutdown returned
	stopped  chan struct{} // closed when no start or stop is under way

	kick   chan struct{}     // the lifecycle changed: refresh now
	events chan server.Event // every server's events, forwarded
}

func newController(opts Options) *controller {
	c := &controller{opts: opts, kick: make(chan struct{}, 1), events: make(chan server.Event, 1024), stopped: make(chan struct{})}
	close(c.stopped)
	return c
}

func (c *controller) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// apply moves the lifecycle; c.mu must be held.
func (c *controller) apply(a model.Action, detail string) error {
	next, err := c.life.Apply(a, detail)
	if err != nil {
		return err
	}
	c.life = next
	if next.Busy() {
		select {
		case <-c.stopped:
			c.stopped = make(chan struct{})
		default:
		}
	} else {
		select {
		case <-c.stopped:
		default:
			close(c.stopped)
		}
	}
	c.poke()
	return nil
}

// Lifecycle is the server's state now.
func (c *controller) Lifecycle() model.Lifecycle {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.life
}

// Start reads the config file and starts a server on a goroutine. The
// outcome arrives as Running or Failed (with the reason) on the
// dashboard; the error is only for a Start that makes no sense now.
func (c *controller) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.apply(model.ActStart, ""); err != nil {
		return err
	}
	go c.start()
	return nil
}

func (c *controller) start() {
	srv, err := c.newServer()
	if err == nil {
		err = srv.Start(context.Background())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.opts.Logger.Error("wharf did not start", "err", err)
		c.apply(model.ActStartFailed, err.Error())
		c.afterStop()
		return
	}
	ch, unsub := srv.Subscribe(256)
	go func() {
		for e := range ch {
			select {
			case c.events <- e:
			default: // the window is behind; the Report still counts it
			}
		}
	}()
	c.srv, c.unsub = srv, unsub
	c.gen++
	c.apply(model.ActStarted, srv.Addr())
	if c.quitting {
		c.stopLocked()
	}
}

func (c *controller) newServer() (*server.Server, error) {
	cfg, err := config.Load(c.opts.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("%w (fix the file, then press Start; `wharf config check %s` says the same)", err, c.opts.ConfigPath)
	}
	return server.New(cfg, server.WithLogger(c.opts.Logger), server.WithVersion(c.opts.Version))
}

// Stop drains and stops the server on a goroutine.
func (c *controller) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.life.CanStop() {
		return c.apply(model.ActStop, "") // says why not
	}
	c.stopLocked()
	return nil
}

func (c *controller) stopLocked() {
	if err := c.apply(model.ActStop, ""); err != nil {
		return
	}
	srv, unsub := c.srv, c.unsub
	go func() {
		unsub()
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.DrainTimeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stopErr = err
		if err != nil {
			c.opts.Logger.Error("wharf stopped with an error", "err", err)
			c.apply(model.ActStopFailed, err.Error())
		} else {
			c.apply(model.ActStopped, "")
		}
		c.afterStop()
	}()
}

// afterStop runs what waited for the server to be down; c.mu held.
func (c *controller) afterStop() {
	if next := c.next; next != nil && !c.quitting {
		c.next = nil
		next()
	}
}

// Restart stops the server and starts it again with the config file as
// it is now.
func (c *controller) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.life.CanStop() {
		return c.apply(model.ActStop, "")
	}
	c.next = func() {
		if err := c.apply(model.ActStart, ""); err == nil {
			go c.start()
		}
	}
	c.stopLocked()
	return nil
}

// StopAndWait stops the server, if it runs or is starting, and waits until
// it is down or ctx ends: Quit, SIGINT and SIGTERM. It returns the error
// the server stopped with.
func (c *controller) StopAndWait(ctx context.Context) error {
	c.mu.Lock()
	c.quitting = true // a start under way stops as soon as it is done
	for {
		if c.life.CanStop() {
			c.stopLocked()
		}
		if !c.life.Busy() {
			err := c.stopErr
			c.mu.Unlock()
			return err
		}
		wait := c.stopped
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return fmt.Errorf("the server did not stop within the drain timeout: %w", ctx.Err())
		}
		c.mu.Lock()
	}
}

// server returns the current (or last) server and its generation.
func (c *controller) server() (*server.Server, int, model.Lifecycle, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srv, c.gen, c.life, c.quitting
}
