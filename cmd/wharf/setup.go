package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/setup"
)

const setupUsage = `Usage: wharf setup docker|containerd|podman [FLAGS]

Points a container client at wharf. Without --apply it prints the change
and the file it goes to; with --apply it writes it (a backup next to the
file first), then proves the client pulls through wharf. Run
'wharf setup CLIENT --help' for each client's flags.
`

// defaultTestImage is tiny (a few KiB) and on Docker Hub.
const defaultTestImage = "library/hello-world:latest"

func cmdSetup(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, setupUsage)
		return usageError{errors.New("setup needs a client: docker, containerd or podman")}
	}
	switch args[0] {
	case "docker":
		return cmdSetupDocker(args[1:], stdout, stderr)
	case "containerd":
		return cmdSetupContainerd(args[1:], stdout, stderr)
	case "podman":
		return cmdSetupPodman(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, setupUsage)
		return nil
	}
	return usageError{fmt.Errorf("setup: unknown client %q; want docker, containerd or podman", args[0])}
}

// mirrorFlags are the flags every client shares.
type mirrorFlags struct {
	mirror, cfgPath, testImage *string
	apply                      *bool
	timeout                    *time.Duration
}

func addMirrorFlags(fs interface {
	String(string, string, string) *string
	Bool(string, bool, string) *bool
	Duration(string, time.Duration, string) *time.Duration
}) mirrorFlags {
	return mirrorFlags{
		mirror:    fs.String("mirror", "", "wharf's `URL` as the client should reach it (default: from --config's listen address, with this machine's address when wharf listens on all interfaces)"),
		cfgPath:   fs.String("config", os.Getenv("WHARF_CONFIG"), "wharf's config `file`, for the mirror URL and the proxies (env WHARF_CONFIG; default: the embedded config, :5000 caching Docker Hub)"),
		apply:     fs.Bool("apply", false, "write the change, reload the client and prove it pulls through wharf (default: only print the change)"),
		testImage: fs.String("test-image", defaultTestImage, "Docker Hub `image` the proof pulls through wharf"),
		timeout:   fs.Duration("timeout", 3*time.Minute, "give up proving after this `long`"),
	}
}

// resolve finds the mirror URL, wharf's proxies and a client for wharf's
// own endpoints.
func (f mirrorFlags) resolve() (mirror string, cfg *config.Config, hc *http.Client, err error) {
	cfg = config.Embedded()
	if *f.cfgPath != "" {
		if cfg, err = config.Load(*f.cfgPath); err != nil {
			return "", nil, nil, err
		}
	}
	_, hc, err = serverClient("", *f.cfgPath)
	if err != nil {
		return "", nil, nil, err
	}
	mirror = *f.mirror
	if mirror == "" {
		if mirror, err = setup.MirrorURL(cfg, setup.HostIP); err != nil {
			return "", nil, nil, err
		}
	}
	u, err := setup.ParseMirror(mirror)
	if err != nil {
		return "", nil, nil, usageError{err}
	}
	return u.String(), cfg, hc, nil
}

func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w%s", path, err, rootHint(err))
	}
	return b, nil
}

func rootHint(err error) string {
	if errors.Is(err, fs.ErrPermission) {
		return " (run as root: sudo, or pkexec wharf setup ... --apply)"
	}
	return ""
}

// applyChange writes c and returns how to undo it ("" when nothing was
// written).
func applyChange(c setup.Change, stdout io.Writer) (undo string, err error) {
	if !c.Changed() {
		fmt.Fprintf(stdout, "%s already points at wharf; left as it is\n", c.Path)
		return "", nil
	}
	backup, err := setup.Apply(c, time.Now())
	if err != nil {
		return "", fmt.Errorf("writing %s: %w%s", c.Path, err, rootHint(err))
	}
	if backup != "" {
		fmt.Fprintf(stdout, "wrote %s (the previous file is in %s)\n", c.Path, backup)
		return fmt.Sprintf("cp %s %s", backup, c.Path), nil
	}
	fmt.Fprintf(stdout, "wrote %s (a new file)\n", c.Path)
	return "rm " + c.Path, nil
}

func printChange(w io.Writer, c setup.Change) {
	switch {
	case !c.Changed():
		fmt.Fprintf(w, "%s already points at wharf; nothing to change.\n", c.Path)
		return
	case c.Before == nil:
		fmt.Fprintf(w, "%s does not exist; it would be created with:\n", c.Path)
	default:
		fmt.Fprintf(w, "%s would then read (a backup of it is written next to it first):\n", c.Path)
	}
	for line := range strings.Lines(string(c.After)) {
		fmt.Fprintf(w, "    %s", line)
	}
	if !strings.HasSuffix(string(c.After), "\n") {
		fmt.Fprintln(w)
	}
}

// applyCommand is the command line that applies what was printed.
func applyCommand(args []string) string {
	q := make([]string, 0, len(args)+3)
	q = append(q, "sudo", "wharf", "setup")
	for _, a := range args {
		if strings.ContainsAny(a, " '\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q = append(q, a)
	}
	return strings.Join(append(q, "--apply"), " ")
}

const setupDockerSynopsis = `wharf setup docker [--mirror URL] [--daemon-config FILE] [--apply] [--reload-pid PID] [--docker-host URL] [--test-image IMAGE]

Makes the Docker daemon pull Docker Hub images through wharf: wharf's URL
goes first into daemon.json's registry-mirrors (and, for a plain-HTTP
mirror that is not loopback, into insecure-registries), every other key
kept. The file is found automatically: /etc/docker/daemon.json, or
$XDG_CONFIG_HOME/docker/daemon.json for a rootless daemon.

Without --apply it prints the change and where it goes. With --apply it
writes a backup next to the file, writes the merged file (a file that
does not parse is refused and left untouched), reloads the daemon
(SIGHUP to --reload-pid, else systemctl reload docker), waits until
'docker info' lists the mirror, pulls --test-image through the daemon and
succeeds only when wharf itself saw that pull. Exit status 0 only then.

Examples:
  wharf setup docker                                  show what would change
  sudo wharf setup docker --apply                     apply it and prove it
  sudo wharf setup docker --apply --mirror http://10.0.0.5:5000
  wharf setup docker --apply --daemon-config /tmp/d/daemon.json \
      --reload-pid $(cat /tmp/d/docker.pid) --docker-host unix:///tmp/d/docker.sock`

func cmdSetupDocker(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("setup docker", setupDockerSynopsis, stderr)
	mf := addMirrorFlags(fs)
	daemonCfg := fs.String("daemon-config", "", "the daemon's config `file` (default: /etc/docker/daemon.json, or the rootless daemon's)")
	reloadPid := fs.Int("reload-pid", 0, "reload the daemon with SIGHUP to this `pid` instead of 'systemctl reload docker'")
	dockerHost := fs.String("docker-host", "", "the daemon's API `URL`, unix:///PATH or tcp://HOST:PORT, for the proof (default: $DOCKER_HOST, else the rootful or rootless socket)")
	img, mirror, _, hc, err := parseSetup(fs, mf, args)
	if err != nil {
		return err
	}
	daemon := setup.FindDocker(os.Geteuid(), os.Getenv, func(p string) bool { _, err := os.Stat(p); return err == nil })
	path := *daemonCfg
	if path == "" {
		path = daemon.ConfigPath
	}
	host := *dockerHost
	if host == "" {
		host = daemon.Host
	}
	cur, err := readIfExists(path)
	if err != nil {
		return err
	}
	plan, err := setup.PlanDocker(path, cur, mirror)
	if err != nil {
		return err
	}
	if *daemonCfg == "" {
		kind := "rootful"
		if daemon.Rootless {
			kind = "rootless"
		}
		fmt.Fprintf(stdout, "Docker daemon (%s) config: %s\n", kind, path)
	}
	fmt.Fprintf(stdout, "mirror: %s\n", plan.Mirror)
	if !plan.AlreadyMirror {
		fmt.Fprintf(stdout, "change: add %q to registry-mirrors, first\n", plan.Mirror)
	}
	if plan.Insecure != "" && !plan.AlreadyInsecure {
		fmt.Fprintf(stdout, "change: add %q to insecure-registries (a plain-HTTP mirror that is not loopback)\n", plan.Insecure)
	}
	printChange(stdout, plan.Change)

	pid := *reloadPid
	if pid == 0 {
		pid = daemon.Pid()
	}
	for _, c := range setup.FlagConflicts(pid) {
		fmt.Fprintf(stderr, "warning: dockerd (pid %d) runs with %s; with registry-mirrors in daemon.json too it refuses to start or reload: remove the flag (systemctl edit docker)\n", pid, c)
	}
	if !*mf.apply {
		fmt.Fprintf(stdout, "\nNothing written. To apply and prove it:\n  %s\n", applyCommand(append([]string{"docker"}, args...)))
		return nil
	}

	api, err := setup.NewDockerAPI(host)
	if err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *mf.timeout)
	defer cancel()
	written, err := setup.ApplyDocker(ctx, setup.DockerApply{
		Plan: plan, API: api, Wharf: setup.WharfPulls{HC: hc, Base: plan.Mirror}, Image: img,
		ReloadPid: *reloadPid, Rootless: daemon.Rootless,
		Progress: func(s string) { fmt.Fprintln(stdout, s) },
	}, time.Now())
	if err != nil {
		// The file stays as written: the daemon may only need wharf
		// started. Say how to go back.
		switch {
		case !written.Wrote:
			err = fmt.Errorf("%w%s", err, rootHint(err))
		case written.Backup != "":
			fmt.Fprintf(stderr, "to undo the change: cp %s %s, then reload the daemon\n", written.Backup, path)
		default:
			fmt.Fprintf(stderr, "to undo the change: rm %s, then reload the daemon\n", path)
		}
		if strings.Contains(err.Error(), "registry mirrors") {
			err = fmt.Errorf("%w (daemon at %s; pass --docker-host for another daemon, --reload-pid for its pid)", err, host)
		}
		return err
	}
	return nil
}

const setupContainerdSynopsis = `wharf setup containerd [--hosts-dir DIR] [--apply] [--mirror URL] [--test-image IMAGE]

Makes containerd (and nerdctl, ctr --hosts-dir, Kubernetes' CRI) pull
through wharf: writes DIR/HOST/hosts.toml for every upstream host wharf's
proxies serve (docker.io for the default proxy, each other proxy's
upstream host and aliases), with wharf as a [host] for pull and resolve
and the registry itself as the fallback server. containerd adds ?ns=HOST
to its requests, which wharf routes to the right proxy. A hosts.toml of
someone else keeps every line, with wharf inserted first.

Without --apply it prints the files. With --apply it writes them (each
with a backup next to it) and proves wharf serves --test-image for
docker.io, by resolving it as containerd would. containerd reads
hosts.toml on every pull: nothing needs a restart, but the CRI plugin
must have config_path set to DIR.

Examples:
  wharf setup containerd
  sudo wharf setup containerd --apply
  wharf setup containerd --apply --hosts-dir /tmp/hosts.d && \
      ctr images pull --hosts-dir /tmp/hosts.d docker.io/library/hello-world:latest`

func cmdSetupContainerd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("setup containerd", setupContainerdSynopsis, stderr)
	mf := addMirrorFlags(fs)
	dir := fs.String("hosts-dir", setup.DefaultHostsDir, "containerd's hosts `directory` (its config_path)")
	img, mirror, cfg, hc, err := parseSetup(fs, mf, args)
	if err != nil {
		return err
	}
	changes, err := setup.PlanContainerd(*dir, mirror, setup.Upstreams(cfg), readIfExists)
	if err != nil {
		return err
	}
	return applyAndProve("containerd", args, mf, mirror, hc, img, changes, stdout, stderr)
}

// parseSetup parses a setup command's flags (it takes no arguments) and
// resolves the test image, wharf's mirror URL and config, and a client.
func parseSetup(fs *flag.FlagSet, mf mirrorFlags, args []string) (setup.Image, string, *config.Config, *http.Client, error) {
	if err := parse(fs, args); err != nil {
		return setup.Image{}, "", nil, nil, err
	}
	if fs.NArg() > 0 {
		return setup.Image{}, "", nil, nil, usageError{fmt.Errorf("%s takes no arguments (got %q)", fs.Name(), fs.Arg(0))}
	}
	img, err := setup.ParseHubImage(*mf.testImage)
	if err != nil {
		return setup.Image{}, "", nil, nil, usageError{err}
	}
	mirror, cfg, hc, err := mf.resolve()
	return img, mirror, cfg, hc, err
}

// applyAndProve prints the changes; with --apply it writes them and proves
// wharf resolves img for docker.io, printing how to undo them when not.
func applyAndProve(client string, args []string, mf mirrorFlags, mirror string, hc *http.Client, img setup.Image, changes []setup.Change, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "mirror: %s\n", mirror)
	for _, c := range changes {
		printChange(stdout, c)
	}
	if !*mf.apply {
		fmt.Fprintf(stdout, "\nNothing written. To apply and prove it:\n  %s\n", applyCommand(append([]string{client}, args...)))
		return nil
	}
	var undo []string
	for _, c := range changes {
		u, err := applyChange(c, stdout)
		if err != nil {
			return err
		}
		if u != "" {
			undo = append(undo, u)
		}
	}
	return proveResolve(hc, mirror, img, *mf.timeout, undo, stdout, stderr)
}

// proveResolve proves wharf answers for docker.io; undo lists the
// commands that take back what was written, printed when it does not.
func proveResolve(hc *http.Client, mirror string, img setup.Image, timeout time.Duration, undo []string, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := setup.ProveResolve(ctx, hc, mirror, "docker.io", img); err != nil {
		if len(undo) > 0 {
			fmt.Fprintf(stderr, "to undo the change: %s\n", strings.Join(undo, " && "))
		}
		return err
	}
	fmt.Fprintf(stdout, "proved: wharf at %s resolves %s for docker.io\n", mirror, img)
	return nil
}

const setupPodmanSynopsis = `wharf setup podman [--registries-conf FILE] [--apply] [--mirror URL] [--test-image IMAGE]

Makes podman, skopeo and buildah pull through wharf: writes a
registries.conf.d drop-in with a [[registry]] for every upstream host
wharf's proxies serve and wharf as its [[registry.mirror]] (insecure =
true for a plain-HTTP wharf). A file setup did not write keeps every
line, with the blocks appended; one that already configures such a host
is refused with what to add by hand.

Without --apply it prints the file. With --apply it writes it (a backup
next to it first) and proves wharf serves --test-image for docker.io.
podman reads the file on every command: nothing needs a restart.

Examples:
  wharf setup podman
  sudo wharf setup podman --apply
  wharf setup podman --apply --registries-conf ~/.config/containers/registries.conf.d/50-wharf.conf`

func cmdSetupPodman(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("setup podman", setupPodmanSynopsis, stderr)
	mf := addMirrorFlags(fs)
	path := fs.String("registries-conf", setup.DefaultRegistriesDropIn, "the registries.conf `file` to write (a drop-in under registries.conf.d)")
	img, mirror, cfg, hc, err := parseSetup(fs, mf, args)
	if err != nil {
		return err
	}
	cur, err := readIfExists(*path)
	if err != nil {
		return err
	}
	c, err := setup.PlanPodman(*path, mirror, setup.Upstreams(cfg), cur)
	if err != nil {
		return err
	}
	return applyAndProve("podman", args, mf, mirror, hc, img, []setup.Change{c}, stdout, stderr)
}
