package setup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DockerDaemon is where this machine's Docker daemon keeps its config,
// API socket and pid file.
type DockerDaemon struct {
	Rootless   bool
	ConfigPath string // daemon.json
	Host       string // its API, unix:///PATH
	PidFile    string
}

// FindDocker finds the daemon a user means: a rootless one when not root
// and $XDG_RUNTIME_DIR/docker.sock exists, else the system's. $DOCKER_HOST
// names the API when set.
func FindDocker(euid int, getenv func(string) string, exists func(string) bool) DockerDaemon {
	rt := getenv("XDG_RUNTIME_DIR")
	d := DockerDaemon{Rootless: euid != 0 && rt != "" && exists(filepath.Join(rt, "docker.sock"))}
	d.ConfigPath = DaemonJSON(d.Rootless, getenv)
	if d.Rootless {
		d.Host = "unix://" + filepath.Join(rt, "docker.sock")
		d.PidFile = filepath.Join(rt, "docker.pid")
	} else {
		d.Host = "unix:///var/run/docker.sock"
		d.PidFile = "/var/run/docker.pid"
	}
	if h := getenv("DOCKER_HOST"); h != "" {
		d.Host = h
	}
	return d
}

// Pid reads the daemon's pid file; 0 when there is none.
func (d DockerDaemon) Pid() int {
	b, err := os.ReadFile(d.PidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// FlagConflicts is CmdlineConflicts for a running process.
func FlagConflicts(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil
	}
	return CmdlineConflicts(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"))
}

// ReloadDocker makes the daemon read daemon.json again: SIGHUP to pid
// when given, else systemctl (--user for a rootless daemon). It returns
// what it did.
func ReloadDocker(ctx context.Context, pid int, rootless bool) (string, error) {
	if pid > 0 {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return "", fmt.Errorf("reloading dockerd (SIGHUP to pid %d): %w; reload it yourself, then run this command again to prove the mirror", pid, err)
		}
		return fmt.Sprintf("SIGHUP to pid %d", pid), nil
	}
	argv := []string{"systemctl", "reload", "docker"}
	if rootless {
		argv = []string{"systemctl", "--user", "reload", "docker"}
	}
	if out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v: %s; reload the daemon yourself (or pass --reload-pid PID), then run this command again to prove the mirror", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.Join(argv, " "), nil
}

// DockerApply is what ApplyDocker needs beyond the plan.
type DockerApply struct {
	Plan      DockerPlan
	API       *DockerAPI
	Wharf     WharfPulls
	Image     Image
	ReloadPid int // 0: systemctl
	Rootless  bool
	// Progress gets a line per step done, for a person to read.
	Progress func(string)
	// MirrorWait bounds the wait for `docker info` to list the mirror
	// after the reload; PullSeen how long wharf may take to list the
	// proof pull after the daemon is done.
	MirrorWait, PullSeen time.Duration
}

// Written says what ApplyDocker wrote, even when a later step failed, so
// a caller can say how to go back: nothing (Wrote false), a new file
// (Backup ""), or a file whose previous bytes are in Backup.
type Written struct {
	Wrote  bool
	Backup string
}

// ApplyDocker writes the plan (see Apply), reloads the daemon when the
// file changed or the daemon does not list the mirror yet, waits until it
// does, and proves the mirror with ProveDocker.
func ApplyDocker(ctx context.Context, a DockerApply, now time.Time) (w Written, err error) {
	say := a.Progress
	if say == nil {
		say = func(string) {}
	}
	if a.MirrorWait == 0 {
		a.MirrorWait = 30 * time.Second
	}
	if a.PullSeen == 0 {
		a.PullSeen = 10 * time.Second
	}
	p := a.Plan
	if p.Changed() {
		if w.Backup, err = Apply(p.Change, now); err != nil {
			return Written{}, fmt.Errorf("writing %s: %w", p.Path, err)
		}
		w.Wrote = true
		if w.Backup != "" {
			say(fmt.Sprintf("wrote %s (the previous file is in %s)", p.Path, w.Backup))
		} else {
			say(fmt.Sprintf("wrote %s (a new file)", p.Path))
		}
	} else {
		say(fmt.Sprintf("%s already points at wharf; left as it is", p.Path))
	}
	listed, _ := a.API.Mirrors(ctx)
	if p.Changed() || !containsMirror(listed, p.Mirror) {
		how, err := ReloadDocker(ctx, a.ReloadPid, a.Rootless)
		if err != nil {
			return w, err
		}
		say("reloaded the daemon (" + how + ")")
	}
	wctx, cancel := context.WithTimeout(ctx, a.MirrorWait)
	err = a.API.WaitMirror(wctx, p.Mirror)
	cancel()
	if err != nil {
		return w, err
	}
	say(fmt.Sprintf("docker info lists %s as a registry mirror; pulling %s through the daemon to prove it is used", p.Mirror, a.Image))
	if err := ProveDocker(ctx, a.API, a.Wharf, a.Image, a.PullSeen); err != nil {
		return w, err
	}
	say(fmt.Sprintf("proved: the daemon pulled %s and wharf at %s served it", a.Image, p.Mirror))
	return w, nil
}

func containsMirror(list []string, m string) bool {
	m = strings.TrimRight(m, "/")
	for _, l := range list {
		if strings.TrimRight(l, "/") == m {
			return true
		}
	}
	return false
}
