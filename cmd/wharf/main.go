// Command wharf is a container registry and pull-through cache in one
// binary. This file only parses flags, loads config and handles signals;
// everything else lives in package server.
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/internal/sdnotify"
	"github.com/wharf-registry/wharf/server"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one line of the command table: dispatch, the usage text and
// the shell completion scripts are all made from it.
type command struct {
	name     string
	synopsis string // after "wharf ", in the usage text
	summary  string
	// subs are the words completed after name; each sub has flags of its
	// own (read from `wharf NAME SUB --help`).
	subs    []string
	aliases []string
	// noFlags: --help is not asked for flags (it has none, or would act).
	noFlags bool
	// fileArgs: positional arguments are files (completed as such).
	fileArgs bool
	run      func(args []string, stdout, stderr io.Writer) error
}

// commands is a function, not a variable: completion reads the table and
// is in it.
func commands() []command {
	return []command{
		{name: "serve", synopsis: "serve [--config FILE] [--listen ADDR] [--data-dir DIR]", summary: "run the registry",
			run: func(args []string, _, stderr io.Writer) error { return cmdServe(args, stderr) }},
		{name: "config", synopsis: "config check FILE", summary: "validate a config and print it (secrets masked)", subs: []string{"check"}, fileArgs: true, run: cmdConfig},
		{name: "fsck", synopsis: "fsck [--data-dir DIR | --config FILE] [--repair]", summary: "verify every stored blob against its digest and the index", run: cmdFsck},
		{name: "migrate", synopsis: "migrate --to-config FILE [--data-dir DIR]", summary: "copy a stopped single-box data dir into a cluster's bucket and database", run: cmdMigrate},
		{name: "status", synopsis: "status [--url URL] [--json]", summary: "summarise a running server: cache, upstreams, storage", run: cmdStatus},
		{name: "healthcheck", synopsis: "healthcheck [--url URL] [--config FILE]", summary: "exit 0 if a running server is ready, else 1 and why (HEALTHCHECK)", run: cmdHealthcheck},
		{name: "cache", synopsis: "cache stats|ls|evict|pin|unpin", summary: "inspect and manage the cache of a running server", subs: []string{"stats", "ls", "evict", "pin", "unpin"}, run: cmdCache},
		{name: "gc", synopsis: "gc [--dry-run] [--grace 1h]", summary: "free hosted blobs no manifest references (server keeps running)", run: cmdGC},
		{name: "warm", synopsis: "warm IMAGE... [--platform linux/amd64]", summary: "fetch images into the cache ahead of need", run: cmdWarm},
		{name: "user", synopsis: "user add|rm|ls NAME [--htpasswd FILE]", summary: "manage the users of the htpasswd file", subs: []string{"add", "rm", "ls"}, run: cmdUser},
		{name: "tls", synopsis: "tls ca [--host HOST:PORT]", summary: "where clients want the self-signed CA, and the commands to put it there", subs: []string{"ca"}, run: cmdTLS},
		{name: "setup", synopsis: "setup docker|containerd|podman [--apply]", summary: "point a client at wharf, and prove it pulls through it", subs: []string{"docker", "containerd", "podman"}, run: cmdSetup},
		{name: "completion", synopsis: "completion bash|zsh", summary: "print a shell completion script", subs: []string{"bash", "zsh"}, noFlags: true, run: cmdCompletion},
		{name: "version", synopsis: "version", summary: "print the version", aliases: []string{"--version", "-v"}, noFlags: true,
			run: func(_ []string, stdout, _ io.Writer) error {
				_, err := fmt.Fprintf(stdout, "wharf %s\n", version)
				return err
			}},
		{name: "help", synopsis: "help", summary: "print this text", aliases: []string{"-h", "--help"}, noFlags: true,
			run: func(_ []string, stdout, _ io.Writer) error { _, err := fmt.Fprint(stdout, usage()); return err }},
	}
}

// usage is `wharf help`; packages install it as /usr/share/doc/wharf.
func usage() string {
	var b strings.Builder
	b.WriteString("wharf — a private container registry and Docker Hub cache in one binary.\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-62s %s\n", "wharf "+c.synopsis, c.summary)
	}
	b.WriteString(`
Run 'wharf COMMAND --help' for the flags of a command.

With no config file, 'wharf serve' listens on :5000, keeps its data in
$WHARF_DATA_DIR (or ./data), caches Docker Hub for every name (use it as
Docker's registry-mirrors entry) and accepts pushes under local/:
  docker tag alpine localhost:5000/local/alpine && docker push localhost:5000/local/alpine
`)
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	var found *command
	for _, c := range commands() {
		if c.name == args[0] || slices.Contains(c.aliases, args[0]) {
			found = &c
			break
		}
	}
	if found == nil {
		fmt.Fprintf(stderr, "wharf: unknown command %q\n\n%s", args[0], usage())
		return 2
	}
	err := found.run(args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "wharf: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "wharf: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse accepts flags before and after arguments (`wharf cache pin
// alpine --data-dir d` as well as `--data-dir d alpine`); a lone "--"
// ends flags.
func parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

func defaultDataDir() string {
	if d := os.Getenv("WHARF_DATA_DIR"); d != "" {
		return d
	}
	return ""
}

func cmdServe(args []string, stderr io.Writer) error {
	fs := newFlags("serve", "wharf serve [--config FILE] [--listen ADDR] [--data-dir DIR]\n\nRuns the registry until SIGINT or SIGTERM, then drains in-flight requests.\nSIGHUP (systemctl reload wharf) reads --config again and applies the auth\nsection at once (users file, LDAP, rules, admins); other changes are named\nin the log and apply at the next start.\n\nUnder systemd (Type=notify, packaging/systemd/wharf.service) it sends READY=1\nonce the index is reconciled and the listeners accept connections, and with\nWatchdogSec= a watchdog ping at half that interval while the /readyz checks\npass.", stderr)
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "YAML config `file` (env WHARF_CONFIG); none: the embedded default (listen :5000, a Docker Hub cache for every name, pushes under local/)")
	listen := fs.String("listen", "", "listen `address`, overriding the config (e.g. :5000, 127.0.0.1:5000)")
	dataDir := fs.String("data-dir", defaultDataDir(), "data `directory` for blobs and the index, overriding the config (env WHARF_DATA_DIR; default ./data)")
	logFormat := fs.String("log-format", "", "log format: text or json, overriding the config")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn or error, overriding the config")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("serve takes no arguments (got %q); did you mean --config %s?", fs.Arg(0), fs.Arg(0))}
	}
	cfg := config.Embedded()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	cfg, err := cfg.WithOverrides(*listen, *dataDir)
	if err != nil {
		return err
	}
	if *logFormat != "" {
		cfg.Log.Format = *logFormat
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	if *cfgPath == "" {
		log.Info("no config file given; using the embedded default", "listen", cfg.Listen, "data_dir", cfg.DataDir)
	}
	// Under systemd (Type=notify), say when wharf is ready, reloading and
	// stopping, and feed WatchdogSec= from the server's health loop.
	notify, err := sdnotify.New(os.Getenv)
	if err != nil {
		log.Warn("systemd notification disabled", "err", err)
	}
	opts := []server.Option{server.WithLogger(log), server.WithVersion(version)}
	if every, err := sdnotify.WatchdogInterval(os.Getenv, os.Getpid()); err != nil {
		log.Warn("systemd watchdog disabled", "err", err)
	} else if every > 0 && notify.Enabled() {
		opts = append(opts, server.WithHealthLoop(every/2, watchdogFeeder(notify, log)))
	}
	srv, err := server.New(cfg, opts...)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		return err
	}
	// Start returns once the index is reconciled and the listeners
	// accept connections: only then may systemd start what depends on us.
	readyStatus := "listening on " + srv.Addr()
	if err := notify.Ready(readyStatus); err != nil {
		log.Warn("telling systemd wharf is ready", "err", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := func() {
		if *cfgPath == "" {
			log.Warn("SIGHUP: nothing to reload; wharf was started without --config")
			return
		}
		next, err := config.Load(*cfgPath)
		if err == nil {
			next, err = next.WithOverrides(*listen, *dataDir)
		}
		if err == nil {
			if *logFormat != "" {
				next.Log.Format = *logFormat
			}
			if *logLevel != "" {
				next.Log.Level = *logLevel
			}
			_, _, err = srv.Reload(next)
		}
		if err != nil {
			log.Error("config not reloaded; still running with the previous one", "file", *cfgPath, "err", err)
		}
	}
	for done := false; !done; {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading the config", "file", *cfgPath)
			notify.Reloading()
			reload()
			notify.Ready(readyStatus)
		case <-ctx.Done():
			done = true
		}
	}
	stop()
	notify.Stopping()
	log.Info("shutting down; waiting up to 30s for in-flight requests (signal again to force)")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// watchdogFeeder pings systemd's watchdog each time the health loop finds
// the server healthy, and only then: a server whose index or data dir
// fails (or whose check hangs) stops pinging and is restarted after
// WatchdogSec. Changes of health are logged and shown in systemctl status.
func watchdogFeeder(n *sdnotify.Notifier, log *slog.Logger) func(error) {
	var last error
	healthy := true
	return func(err error) {
		switch {
		case err == nil:
			if !healthy {
				log.Info("healthy again; pinging the systemd watchdog")
				n.Status("healthy again")
			}
			healthy, last = true, nil
			if werr := n.Watchdog(); werr != nil {
				log.Warn("pinging the systemd watchdog", "err", werr)
			}
		case healthy || last == nil || err.Error() != last.Error():
			log.Error("unhealthy; not pinging the systemd watchdog, which restarts wharf if this lasts", "err", err)
			n.Status("unhealthy: " + err.Error())
			healthy, last = false, err
		}
	}
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, "Usage: wharf config check FILE\n\nValidates FILE and prints the effective config (defaults filled in, secrets masked).\n")
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			return nil
		}
		return usageError{errors.New("config needs a subcommand: check")}
	}
	fs := newFlags("config check", "wharf config check FILE\n\nValidates FILE and prints the effective config (defaults filled in, secrets masked).\nWith storage.s3 and index.postgres (cluster mode) it also reaches the bucket and the\ndatabase with the configured credentials, as wharf serve does at start.", stderr)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("config check needs exactly one FILE")}
	}
	cfg, err := config.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	if cfg.Clustered() {
		// Cluster mode: the keys are only half of it; reach the bucket and
		// the database as serve will.
		lines, err := server.CheckEngines(context.Background(), cfg)
		for _, l := range lines {
			fmt.Fprintf(stdout, "# %s\n", l)
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "# %s is valid; effective configuration:\n", fs.Arg(0))
	fmt.Fprint(stdout, cfg.Sanitize().YAML())
	return nil
}

func cmdFsck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fsck", `wharf fsck [--data-dir DIR | --config FILE] [--repair] [--upload-grace 24h]

Re-hashes every stored blob and compares it with its digest and the index.
Exit status 1 when problems remain.

Single box (a data dir): the server must be stopped. --repair moves corrupt
blobs to DIR/quarantine and drops index records without files.

Cluster mode (--config FILE with storage.s3 and index.postgres): walks the
bucket and the PostgreSQL index and reports corrupt objects, index records
whose object is missing, objects no record knows and unfinished multipart
uploads. It may run while the replicas serve: without --repair it changes
nothing, and it checks again what a replica may be writing before calling
it a problem. --repair deletes corrupt objects with their records (S3 has no
quarantine directory: their bytes are gone, pull or push them again), drops
records without objects with the manifests stored under them, records
unknown objects again (as "recovered") and aborts the unfinished uploads
older than --upload-grace.`, stderr)
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file`: its data_dir, or in cluster mode its bucket and database")
	dataDir := fs.String("data-dir", defaultDataDir(), "data `directory` to check (default ./data; not with a cluster config)")
	repair := fs.Bool("repair", false, "repair what is found (see above)")
	grace := fs.Duration("upload-grace", server.DefaultUploadGrace, "cluster mode: unfinished multipart uploads older than this are stale (problems, aborted by --repair); younger ones may be under way and are only counted; 0: every one is stale")
	if err := parse(fs, args); err != nil {
		return err
	}
	var cfg *config.Config
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if cfg != nil && cfg.Clustered() {
		if *dataDir != "" && *dataDir != cfg.DataDir {
			fmt.Fprintf(stderr, "wharf: %s is a cluster config: checking its bucket and database, not --data-dir %s\n", *cfgPath, *dataDir)
		}
		return fsckCluster(cfg, *repair, *grace, stdout, stderr)
	}
	dir := *dataDir
	if dir == "" {
		dir = config.DefaultDataDir
		if cfg != nil {
			dir = cfg.DataDir
		}
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	bar := newProgress(stderr, "checking blobs")
	rep, err := server.Fsck(context.Background(), dir, *repair, nil, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checked %d blobs (%s)\n", rep.Checked, humanBytes(rep.Bytes))
	printProblems(stdout, rep.Problems)
	if *repair && rep.Repaired > 0 {
		fmt.Fprintf(stdout, "repaired %d (corrupt files moved to %s/quarantine)\n", rep.Repaired, dir)
	}
	return fsckVerdict(stdout, len(rep.Problems), rep.Repaired, *repair, "run 'wharf fsck --repair' with the server stopped")
}

func printProblems(w io.Writer, ps []index.FsckProblem) {
	for _, p := range ps {
		name := string(p.Digest)
		if name == "" {
			name = p.Path
		}
		if name == "" {
			fmt.Fprintf(w, "  PROBLEM %s\n", p.What)
			continue
		}
		fmt.Fprintf(w, "  PROBLEM %s: %s\n", name, p.What)
	}
}

func fsckVerdict(w io.Writer, problems, repaired int, repair bool, hint string) error {
	if problems > repaired {
		if !repair {
			return errors.New("problems found; " + hint)
		}
		return errors.New("some problems could not be repaired")
	}
	if problems == 0 {
		fmt.Fprintln(w, "no problems found")
	}
	return nil
}

func fsckCluster(cfg *config.Config, repair bool, grace time.Duration, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, "checking objects")
	rep, err := server.FsckCluster(ctx, cfg, repair, grace, nil, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checked %d objects (%s) in bucket %s against the PostgreSQL index\n", rep.Checked, humanBytes(rep.Bytes), cfg.Storage.S3.Bucket)
	if u := rep.Uploads; u.Count > 0 {
		fmt.Fprintf(stdout, "unfinished multipart uploads: %d, of which %d older than %s (the oldest started %s)\n", u.Count, u.Stale, rep.Grace, u.Oldest.Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "unfinished multipart uploads: 0")
	}
	printProblems(stdout, rep.Problems)
	if repair && rep.Repaired > 0 {
		fmt.Fprintf(stdout, "repaired %d (corrupt objects deleted, S3 having no quarantine; %d stale uploads aborted)\n", rep.Repaired, rep.Swept)
	}
	return fsckVerdict(stdout, len(rep.Problems), rep.Repaired, repair, "run 'wharf fsck --config FILE --repair'")
}

// progress draws a one-line bar on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	label string
	tty   bool
	last  time.Time
}

func newProgress(w io.Writer, label string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, label: label, tty: tty}
}

func (p *progress) update(done, total int64) { p.line(done, total, "") }

func (p *progress) line(done, total int64, extra string) {
	if !p.tty || time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	pct := 100.0
	if total > 0 {
		pct = float64(done) * 100 / float64(total)
	}
	n := int(pct / 100 * 30)
	fmt.Fprintf(p.w, "\r%s [%s%s] %5.1f%% %s / %s%s", p.label, strings.Repeat("=", n), strings.Repeat(" ", 30-n), pct, humanBytes(done), humanBytes(total), extra)
}

func (p *progress) done() {
	if p.tty && !p.last.IsZero() {
		fmt.Fprintln(p.w)
	}
}

func humanBytes(n int64) string { return config.FormatBytes(n) }
