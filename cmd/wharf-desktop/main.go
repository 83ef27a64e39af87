// Command wharf-desktop is wharf's desktop app: a window and a tray icon
// over the wharf server running in this process. This file only parses
// flags, finds the config and handles signals; package gui does the rest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"fyne.io/fyne/v2/app"

	"github.com/wharf-registry/wharf/gui"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `wharf-desktop — wharf's desktop app: runs the registry and Docker Hub cache
on this machine and shows what it saves.

Usage:
  wharf-desktop [--config FILE] [--no-start] [--tab dashboard|registries|access|cache|use|settings] [--log-level LEVEL]
  wharf-desktop --remote URL --user NAME [--ca FILE]     manage a wharf on another machine

With no --config it uses $XDG_CONFIG_HOME/wharf/wharf.yml (~/.config/wharf/wharf.yml),
written on the first start from wharf's default (listen :5000, a Docker Hub
cache for every name, pushes under local/, data in $XDG_DATA_HOME/wharf).
'wharf serve --config' with the same file runs the same setup without a window.

The server starts when the app launches (a setting on the Settings tab).
Closing the window keeps it running in the tray (also a setting); Quit in
the tray, SIGINT or SIGTERM stop it, draining requests for up to 30s.
Logs go to standard error.

With --remote, the app runs no server: it manages the wharf at URL (the
office box without a screen) through its admin API as NAME, one of that
wharf's auth.admins: its dashboard, cache and users, in a window marked
as remote. The password is asked for in the window, or read from
$WHARF_PASSWORD. --ca names that wharf's CA certificate when the system
does not trust it (tls.mode self-signed: 'wharf tls ca' there says where).

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr, os.Getenv))
}

// hasTray says whether a system tray can be reached. On Linux and the
// BSDs the tray is a D-Bus service of the desktop session; without a
// session bus (a bare X server, ssh -X) Fyne's tray fails and its Quit
// then crashes, so the app goes without one.
func hasTray(getenv func(string) string) bool {
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	if getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return true
	}
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "bus")); err == nil {
			return true
		}
	}
	return false
}

func run(args []string, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("wharf-desktop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	cfgFlag := fs.String("config", "", "YAML config `file` (default $XDG_CONFIG_HOME/wharf/wharf.yml, created on first start)")
	noStart := fs.Bool("no-start", false, "do not start the server at launch this time (the setting is kept)")
	tab := fs.String("tab", "dashboard", "the `tab` to open: dashboard, registries, access, cache, use (Use with Docker) or settings")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	remoteURL := fs.String("remote", "", "manage the wharf at this `URL` (https://box:5000) instead of running one here")
	remoteUser := fs.String("user", "", "with --remote: an admin `name` of that wharf")
	remoteCA := fs.String("ca", "", "with --remote: the CA certificate `file` to trust for that wharf")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wharf-desktop: takes no arguments (got %q); did you mean --config %s?\n", fs.Arg(0), fs.Arg(0))
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "wharf-desktop: --log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if *remoteURL != "" {
		return runRemote(log, gui.Login{URL: *remoteURL, User: *remoteUser, Password: getenv("WHARF_PASSWORD"), CAFile: *remoteCA})
	}
	if *remoteUser != "" || *remoteCA != "" {
		fmt.Fprintln(stderr, "wharf-desktop: --user and --ca go with --remote URL")
		return 2
	}

	path, created, err := ensureConfig(*cfgFlag, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "wharf-desktop: %v\n", err)
		return 1
	}
	if created {
		log.Info("first start: wrote the default config; edit it or use the app", "config", path)
	}

	fa := app.NewWithID("io.github.wharf-registry.wharf-desktop")
	tray := hasTray(getenv)
	if !tray {
		log.Info("no desktop session bus ($DBUS_SESSION_BUS_ADDRESS): no tray icon; closing the window quits")
	}
	g := gui.New(fa, gui.Options{ConfigPath: path, Logger: log, Version: version, Tray: tray})
	if err := g.ShowTab(*tab); err != nil {
		fmt.Fprintf(stderr, "wharf-desktop: --tab: %v\n", err)
		return 2
	}
	g.Win.Show()
	if fa.Preferences().BoolWithFallback(gui.PrefStartOnLaunch, true) && !*noStart {
		if err := g.Start(); err != nil {
			log.Error("starting the server", "err", err)
		}
	}

	// Fyne's driver quits its loop on the first SIGINT or SIGTERM; the
	// server is then drained below, as after Quit. A second signal does
	// not wait for the drain.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		log.Info("signal: stopping the server, waiting up to 30s for in-flight requests (signal again to force)", "signal", s)
		<-sigs
		log.Warn("second signal: exiting without waiting")
		os.Exit(1)
	}()

	fa.Run() // until Quit: the tray, the window (unless it hides), a signal

	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		log.Error("the server did not stop cleanly", "err", err)
		return 1
	}
	log.Info("wharf-desktop stopped")
	return 0
}

// runRemote is wharf-desktop --remote: a login window, then the remote
// window; no server runs here. Closing the window quits.
func runRemote(log *slog.Logger, l gui.Login) int {
	fa := app.NewWithID("io.github.wharf-registry.wharf-desktop")
	var remote *gui.App
	gui.Connect(fa, gui.Options{Logger: log, Version: version, QuitOnClose: true}, l, func(a *gui.App) { remote = a })
	fa.Run()
	if remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		remote.Shutdown(ctx)
	}
	log.Info("wharf-desktop stopped")
	return 0
}
