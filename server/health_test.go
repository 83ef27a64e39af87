package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/server"
)

// The health loop reports what /readyz would answer, as it changes: the
// watchdog of `wharf serve` is fed only while it reports nil.
func TestHealthLoop(t *testing.T) {
	cfg := testConfig(t, "")
	reports := make(chan error, 1)
	s, err := server.New(cfg, server.WithHealthLoop(time.Millisecond, func(err error) {
		select {
		case reports <- err:
		default: // the test reads only the latest state it waits for
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); err == nil || !strings.Contains(err.Error(), "server is new") {
		t.Errorf("Healthy before Start = %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	waitReport := func(what string, ok func(error) bool) {
		t.Helper()
		for err := range reports {
			if ok(err) {
				return
			}
		}
		t.Fatalf("no %s report", what)
	}
	waitReport("healthy", func(err error) bool { return err == nil })
	tmp := filepath.Join(cfg.DataDir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	waitReport("data_dir failure", func(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "data_dir: not writable") })
	if err := s.Healthy(); err == nil {
		t.Error("Healthy with no tmp dir = nil")
	}
	if err := os.Mkdir(tmp, 0o750); err != nil {
		t.Fatal(err)
	}
	waitReport("healthy again", func(err error) bool { return err == nil })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Healthy after Shutdown = %v", err)
	}
}
