package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wharf-registry/wharf/internal/sdnotify"
)

// TestMain lets a test run this binary as `wharf` (WHARF_TEST_MAIN=1):
// serve as a real process, with its own signals and environment.
func TestMain(m *testing.M) {
	if os.Getenv("WHARF_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// notifySocket listens where systemd would for sd_notify datagrams and
// delivers each one on the channel, which closes with the socket.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 64)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

// wharf serve under a pretend systemd: READY=1 once the listener takes
// connections, watchdog pings while healthy, RELOADING=1 then READY=1
// around SIGHUP, STOPPING=1 on SIGTERM.
func TestServeNotifiesSystemd(t *testing.T) {
	sock, msgs := notifySocket(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wharf.yml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\nlog:\n  access_log: false\n"), 0o644)
	cmd := exec.Command(os.Args[0], "serve", "--config", cfg)
	// Not the test runner's own systemd settings (go test under a
	// service) nor its WHARF_* ones: only these.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WHARF_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "WHARF_TEST_MAIN=1", "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	pings := 0
	// next returns the next datagram that is not a watchdog ping (they
	// are counted), failing if wharf exits first.
	next := func(what string) string {
		t.Helper()
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed waiting for %s", what)
				}
				if m == "WATCHDOG=1" {
					pings++
					continue
				}
				return m
			case err := <-exited:
				exited <- err
				t.Fatalf("wharf exited (%v) before %s:\n%s", err, what, stderr.String())
			}
		}
	}

	ready := next("READY=1")
	addr, ok := strings.CutPrefix(ready, "READY=1\nSTATUS=listening on ")
	if !ok {
		t.Fatalf("first notification %q, want READY=1 with the address", ready)
	}
	// READY=1 came after the listener took connections: ask it at once.
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("wharf said ready but %s does not answer: %v", addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz right after READY=1: %s", resp.Status)
	}

	// Pings every WATCHDOG_USEC/2 while healthy: wait for two more.
	for seen := pings; pings < seen+2; {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("unexpected notification %q while waiting for watchdog pings", m)
			}
			pings++
		case err := <-exited:
			exited <- err
			t.Fatalf("wharf exited (%v):\n%s", err, stderr.String())
		}
	}

	cmd.Process.Signal(syscall.SIGHUP)
	if m := next("RELOADING=1"); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("after SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := next("READY=1 after the reload"); m != ready {
		t.Errorf("after the reload: %q, want %q", m, ready)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if m := next("STOPPING=1"); m != "STOPPING=1" {
		t.Errorf("after SIGTERM: %q, want STOPPING=1", m)
	}
	if err := <-exited; err != nil {
		t.Errorf("wharf serve exited with %v:\n%s", err, stderr.String())
	}
	exited <- nil
	t.Logf("%d watchdog pings", pings)
}

// Unhealthy checks starve the watchdog, and say why in systemctl status.
func TestWatchdogFeeder(t *testing.T) {
	sock, msgs := notifySocket(t)
	n, err := sdnotify.New(func(k string) string {
		if k == "NOTIFY_SOCKET" {
			return sock
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	feed := watchdogFeeder(n, slog.New(slog.NewTextHandler(&logs, nil)))
	sick := errors.New("index: closed")
	for _, step := range []struct {
		report error
		want   string // "" : nothing sent
	}{
		{nil, "WATCHDOG=1"},
		{nil, "WATCHDOG=1"},
		{sick, "STATUS=unhealthy: index: closed"},
		{sick, ""}, // still sick: no ping, no repeat
		{nil, "STATUS=healthy again"},
	} {
		feed(step.report)
		if step.want == "" {
			continue
		}
		if got := <-msgs; got != step.want {
			t.Errorf("after %v: %q, want %q", step.report, got, step.want)
		}
	}
	// The recovery's status is followed by its ping; nothing was sent
	// for the repeated failure, or this would be a STATUS.
	if got := <-msgs; got != "WATCHDOG=1" {
		t.Errorf("after recovering: %q, want WATCHDOG=1", got)
	}
	if c := strings.Count(logs.String(), "unhealthy"); c != 1 {
		t.Errorf("logged unhealthy %d times, want once:\n%s", c, logs.String())
	}
}
