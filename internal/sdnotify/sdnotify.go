// Package sdnotify tells systemd about a service's state through the
// datagram socket systemd names in $NOTIFY_SOCKET (sd_notify(3)), without
// cgo or libsystemd: READY=1 when the service can take work, RELOADING=1
// and STOPPING=1 around those phases, WATCHDOG=1 pings for WatchdogSec=.
// Outside systemd (no NOTIFY_SOCKET) every method does nothing.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to systemd. The zero value and a nil
// *Notifier do nothing, so callers need not ask whether systemd runs them.
type Notifier struct {
	addr *net.UnixAddr // nil: not run by systemd with a notify socket
}

// New reads NOTIFY_SOCKET through getenv (os.Getenv, or a test's map):
// a path, or an abstract socket written with a leading '@'. Unset or
// empty gives a Notifier that does nothing.
func New(getenv func(string) string) (*Notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	switch {
	case name == "":
		return &Notifier{}, nil
	case name[0] != '/' && name[0] != '@':
		// systemd also knows vsock: addresses, for VMs; wharf runs on the host.
		return &Notifier{}, fmt.Errorf("sdnotify: NOTIFY_SOCKET=%q is neither a path nor an abstract socket (@name)", name)
	}
	// Go's net package maps a leading '@' to the abstract namespace.
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
}

// Enabled reports whether a notify socket was given.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send writes state, newline-separated VAR=value assignments, as one
// datagram. systemd reads only datagrams that arrive whole, so a state is
// never split across writes.
func (n *Notifier) Send(state ...string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(state, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready says start-up (or a reload) is done; status, when not empty,
// is shown by systemctl status.
func (n *Notifier) Ready(status string) error {
	if status == "" {
		return n.Send("READY=1")
	}
	return n.Send("READY=1", "STATUS="+oneLine(status))
}

// Reloading says the service is reloading its configuration; Ready ends
// the reload. MONOTONIC_USEC is what Type=notify-reload (systemd 253)
// checks to tell this reload from an earlier one.
func (n *Notifier) Reloading() error {
	if !n.Enabled() {
		return nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: reading CLOCK_MONOTONIC: %w", err)
	}
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(ts.Nano()/1000, 10))
}

// Stopping says the service is shutting down.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status sets the free-form status line of systemctl status.
func (n *Notifier) Status(text string) error { return n.Send("STATUS=" + oneLine(text)) }

// Watchdog is one keep-alive ping for WatchdogSec=.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// oneLine keeps a status to its line: a newline would start a new
// assignment in the datagram.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// WatchdogInterval reads WATCHDOG_USEC through getenv: how often systemd
// wants a ping, zero when it wants none. WATCHDOG_PID, when set, names
// the process meant; another pid (a child that inherited the
// environment) gets zero. Ping at half the interval, as sd_watchdog_enabled(3)
// advises.
func WatchdogInterval(getenv func(string) string, pid int) (time.Duration, error) {
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	if p := getenv("WATCHDOG_PID"); p != "" {
		wp, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("sdnotify: WATCHDOG_PID=%q is not a pid", p)
		}
		if wp != pid {
			return 0, nil
		}
	}
	if n > int64(time.Duration(1<<63-1)/time.Microsecond) {
		return 0, errors.New("sdnotify: WATCHDOG_USEC is out of range")
	}
	return time.Duration(n) * time.Microsecond, nil
}
