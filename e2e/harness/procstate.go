//go:build linux

package harness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// StateTimeout bounds how long a signalled process may take to reach the
// state the signal asks for. The kernel acts on SIGSTOP and SIGCONT as soon
// as the process is next scheduled, which on a loaded machine can be a
// while, but not seconds.
const StateTimeout = 10 * time.Second

// ProcState is the one-letter state in /proc/PID/stat: R running, S
// sleeping, D disk sleep, T stopped (by a signal), t tracing stop, Z zombie.
func ProcState(pid int) (byte, error) {
	return statState("/proc/" + strconv.Itoa(pid) + "/stat")
}

func statState(path string) (byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// "PID (COMM) STATE ...": comm may hold spaces and parentheses, so the
	// state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("%s: unexpected %q", path, b)
	}
	return b[i+2], nil
}

// taskStates is the state of every thread of pid, from
// /proc/PID/task/TID/stat.
func taskStates(pid int) ([]byte, error) {
	dirs, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*")
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("no process %d", pid)
	}
	var states []byte
	for _, d := range dirs {
		st, err := statState(filepath.Join(d, "stat"))
		if os.IsNotExist(err) {
			continue // a thread that has just exited
		}
		if err != nil {
			return nil, err
		}
		states = append(states, st)
	}
	return states, nil
}

// waitProcState polls the states of pid's threads until done holds for
// every one, for at most timeout. Signals are delivered asynchronously:
// kill(2) returns once SIGSTOP or SIGCONT is queued, not once each thread
// has acted on it, so a test that goes on at once may still find the
// process answering (or still frozen).
func waitProcState(pid int, timeout time.Duration, want string, done func(byte) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		states, err := taskStates(pid)
		if err != nil {
			return fmt.Errorf("pid %d: %w", pid, err)
		}
		all := true
		for _, st := range states {
			all = all && done(st)
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d: thread states %q after %s; want every thread %s", pid, states, timeout, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// WaitStopped waits until every thread of pid is stopped (state T), as
// SIGSTOP leaves it.
func WaitStopped(pid int, timeout time.Duration) error {
	return waitProcState(pid, timeout, "stopped (T)", func(s byte) bool { return s == 'T' })
}

// WaitContinued waits until no thread of pid is stopped any more, as
// SIGCONT leaves it.
func WaitContinued(pid int, timeout time.Duration) error {
	return waitProcState(pid, timeout, "not stopped (not T)", func(s byte) bool { return s != 'T' })
}
