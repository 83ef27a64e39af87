//go:build linux

package harness

import (
	"fmt"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/internal/procnet"
)

// Servers under test listen on port 0 and the kernel picks a free port, so
// no test hands a process a port that another test (or package) took a
// moment earlier. wharf logs the address it bound; programs that do not
// say (docker-registry, slapd, pebble, prometheus) are asked of the
// kernel (procnet.ListenAddrs).

// WaitListening waits until the process listens on n TCP sockets and
// returns their addresses, ordered by file descriptor. It fails the test,
// with the log, if the process exits first or timeout passes.
func (p *Process) WaitListening(t testing.TB, n int, timeout time.Duration) []string {
	t.Helper()
	var addrs []string
	p.WaitReady(t, timeout, func() error {
		var err error
		if addrs, err = procnet.ListenAddrs(p.Pid()); err != nil {
			return err
		}
		if len(addrs) < n {
			return fmt.Errorf("listening on %v; want %d sockets", addrs, n)
		}
		return nil
	})
	return addrs
}
