package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens a notify socket as systemd does: a unixgram socket that
// receives one datagram per state.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, _, err := c.ReadFromUnix(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSendPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@wharf-sdnotify-test-" + strconv.Itoa(os.Getpid())
	for _, name := range []string{path, abstract} {
		c := listen(t, name)
		n, err := New(env(map[string]string{"NOTIFY_SOCKET": name}))
		if err != nil || !n.Enabled() {
			t.Fatalf("%s: %v, enabled %v", name, err, n.Enabled())
		}
		steps := []struct {
			send func() error
			want string
		}{
			{func() error { return n.Ready("listening on 127.0.0.1:5000") }, "READY=1\nSTATUS=listening on 127.0.0.1:5000"},
			{func() error { return n.Ready("") }, "READY=1"},
			{n.Watchdog, "WATCHDOG=1"},
			{func() error { return n.Status("two\nlines") }, "STATUS=two lines"},
			{n.Stopping, "STOPPING=1"},
		}
		for _, s := range steps {
			if err := s.send(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := recv(t, c); got != s.want {
				t.Errorf("%s: got %q, want %q", name, got, s.want)
			}
		}
		if err := n.Reloading(); err != nil {
			t.Fatal(err)
		}
		got := recv(t, c)
		lines := strings.Split(got, "\n")
		if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
			t.Fatalf("%s: reloading sent %q", name, got)
		}
		usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if err != nil || usec <= 0 {
			t.Errorf("%s: MONOTONIC_USEC in %q", name, got)
		}
	}
}

func TestDisabled(t *testing.T) {
	for _, n := range []*Notifier{nil, {}} {
		if n.Enabled() || n.Ready("x") != nil || n.Reloading() != nil || n.Stopping() != nil || n.Watchdog() != nil || n.Status("x") != nil {
			t.Errorf("%v: a notifier without a socket must do nothing", n)
		}
	}
	n, err := New(env(nil))
	if err != nil || n.Enabled() {
		t.Errorf("no NOTIFY_SOCKET: %v, enabled %v", err, n.Enabled())
	}
	if _, err := New(env(map[string]string{"NOTIFY_SOCKET": "vsock:2:1234"})); err == nil {
		t.Error("vsock address accepted")
	}
	// A socket nobody listens on is an error to report, not a hang.
	n, _ = New(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "absent")}))
	if err := n.Ready(""); err == nil {
		t.Error("sending to an absent socket succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	const pid = 4242
	for _, tc := range []struct {
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{nil, 0, false},
		{map[string]string{"WATCHDOG_USEC": "30000000"}, 30 * time.Second, false},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30 * time.Second, false},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 0, false}, // meant for another process
		{map[string]string{"WATCHDOG_USEC": "0"}, 0, true},
		{map[string]string{"WATCHDOG_USEC": "soon"}, 0, true},
		{map[string]string{"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, 0, true},
		{map[string]string{"WATCHDOG_USEC": "99999999999999999"}, 0, true},
	} {
		got, err := WatchdogInterval(env(tc.env), pid)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%v: %s, %v; want %s, error %v", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}
