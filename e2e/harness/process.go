//go:build linux

package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LogTailLines is how much of a child's log a failing test prints.
const LogTailLines = 40

// stopGrace is how long a child gets between SIGTERM and SIGKILL.
const stopGrace = 15 * time.Second

// Process is a child process in its own process group, its stdout and stderr
// going to one log file. Stop and Kill act on the whole group, so daemons'
// helpers (dockerd's, containerd's) go too.
type Process struct {
	Name    string // short label used in messages, e.g. "wharf"
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // set before done closes

	stopOnce sync.Once
	stopErr  error
}

// StartProcess runs argv with its output in dir/NAME.log. env nil means the
// test's environment. The process is stopped at cleanup and, if the test
// failed, the last LogTailLines lines of its log are printed.
func StartProcess(t testing.TB, name, dir string, env []string, argv ...string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	// A file rather than a pipe: no copying goroutine for Wait to hang on when a
	// grandchild keeps the descriptor open.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	defer logFile.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(logFile, "+ %s\n", strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start %s: %v", name, argv[0], err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		// Only a hang is worth a word here: a daemon killed by the SIGTERM
		// it does not handle is normal, and tests that care about the exit
		// status call Stop themselves.
		if err := p.Stop(); errors.Is(err, ErrStopTimeout) {
			t.Logf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s log (last %d lines of %s):\n%s", name, LogTailLines, logPath, p.LogTail(LogTailLines))
		}
	})
	return p
}

// Pid is the child's process id, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitErr is the result of Wait once the process has exited (nil for exit
// status 0), and nil while it runs.
func (p *Process) ExitErr() error {
	if p.Running() {
		return nil
	}
	return p.waitErr
}

// Stop sends SIGTERM to the process group, waits up to 15 s, then SIGKILLs
// the group. It returns the exit error of the leader: nil when it exited 0
// after SIGTERM. Stopping twice returns the first result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		p.stopErr = p.terminate(syscall.SIGTERM, stopGrace)
	})
	return p.stopErr
}

// Kill SIGKILLs the process group at once, as a crash would, and waits for
// the leader. Later Stop calls return Kill's result.
func (p *Process) Kill() error {
	p.stopOnce.Do(func() {
		p.stopErr = p.terminate(syscall.SIGKILL, stopGrace)
	})
	return p.stopErr
}

func (p *Process) terminate(sig syscall.Signal, grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	if p.Running() {
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
			// Reap helpers the leader left behind; the group id is not reused
			// while any member lives.
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return fmt.Errorf("%s: %w of %s; killed", p.Name, ErrStopTimeout, sig)
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return p.waitErr
}

// Logs returns everything the process wrote so far.
func (p *Process) Logs() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// LogTail returns the last n lines of the log.
func (p *Process) LogTail(n int) string {
	return tailLines(p.Logs(), n)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitReady polls check until it returns nil, the process exits, or timeout
// passes; the last two fail the test with the check's last error and the log.
func (p *Process) WaitReady(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	p.waitReady(t, timeout, check, nil)
}

// waitReady is WaitReady, except that when the process exits first and
// retry(its log) is true, it returns false instead of failing the test.
func (p *Process) waitReady(t testing.TB, timeout time.Duration, check func() error, retry func(log string) bool) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 20 * time.Millisecond
	var err error
	for {
		if err = check(); err == nil {
			return true
		}
		if !p.Running() {
			if retry != nil && retry(p.Logs()) {
				return false
			}
			t.Fatalf("%s exited before it was ready (%v); last check: %v\n%s log (last %d lines):\n%s",
				p.Name, p.waitErr, err, p.Name, LogTailLines, p.LogTail(LogTailLines))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v\n%s log (last %d lines):\n%s",
				p.Name, timeout, err, p.Name, LogTailLines, p.LogTail(LogTailLines))
		}
		select {
		case <-p.done:
		case <-time.After(interval):
		}
		interval = min(interval*2, 250*time.Millisecond)
	}
}

// cleanEnv returns the test's environment without the variables whose names
// start with any of the prefixes, plus extra ("K=V").
func cleanEnv(dropPrefixes []string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		drop := false
		for _, p := range dropPrefixes {
			if strings.HasPrefix(kv, p) {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runTool runs a short-lived command and returns its combined output; a
// non-zero exit becomes an error that quotes the output.
func runTool(timeout time.Duration, env []string, dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the group, not just the leader, so a hung child cannot keep the
	// output pipe open.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	s := out.String()
	if ctx.Err() != nil {
		return s, fmt.Errorf("%s: timed out after %s: %s", strings.Join(argv, " "), timeout, trimOutput(s))
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, trimOutput(s))
	}
	return s, nil
}

// unmountUnder lazily unmounts every mount point inside dir, deepest first, so
// a daemon that died without cleaning up cannot make RemoveAll fail.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	prefix := filepath.Clean(dir) + "/"
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, prefix) {
			points = append(points, mp)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, mp := range points {
		_ = syscall.Unmount(mp, syscall.MNT_DETACH)
	}
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) in mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ErrStopTimeout is returned by Stop when the process ignored SIGTERM for
// 15 s and had to be killed.
var ErrStopTimeout = fmt.Errorf("did not exit within %s", stopGrace)

// StopWith is Stop with another signal than SIGTERM: SIGINT is
// PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
func (p *Process) StopWith(sig syscall.Signal) error {
	p.stopOnce.Do(func() {
		p.stopErr = p.terminate(sig, stopGrace)
	})
	return p.stopErr
}
