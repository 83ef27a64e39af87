//go:build linux

package harness

import (
	"syscall"
	"testing"
)

// WaitStopped and WaitContinued follow a real process through SIGSTOP and
// SIGCONT; a process that exits makes them fail rather than hang.
func TestWaitStoppedAndContinued(t *testing.T) {
	p := StartProcess(t, "sleep", t.TempDir(), nil, Tool(t, "sleep"), "60")
	for range 3 {
		if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if err := WaitStopped(p.Pid(), StateTimeout); err != nil {
			t.Fatal(err)
		}
		if st, err := ProcState(p.Pid()); err != nil || st != 'T' {
			t.Fatalf("after WaitStopped: state %c, %v", st, err)
		}
		if err := syscall.Kill(p.Pid(), syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := WaitContinued(p.Pid(), StateTimeout); err != nil {
			t.Fatal(err)
		}
		if st, err := ProcState(p.Pid()); err != nil || st == 'T' {
			t.Fatalf("after WaitContinued: state %c, %v", st, err)
		}
	}
	if err := p.Kill(); err == nil {
		t.Fatal("sleep killed: no exit error")
	}
	if err := WaitStopped(p.Pid(), StateTimeout); err == nil {
		t.Fatal("WaitStopped on an exited process: no error")
	}
}
