package settings

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/server"
)

// TestApplyToARunningServer saves edits and hands them to a real server:
// what Save predicted is what Reload did.
func TestApplyToARunningServer(t *testing.T) {
	dir := t.TempDir()
	d := load(t, fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\nhosted: [{name: team}]\nauth: {htpasswd: %s}\n", filepath.Join(dir, "data"), filepath.Join(dir, "a")))
	srv, err := server.New(d.Config(), server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv.Shutdown(ctx)
	})

	if err := d.SetHtpasswd(filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(srv); err == nil {
		t.Error("Apply took unsaved edits")
	}
	saved, err := d.Save()
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Apply(srv)
	if err != nil {
		t.Fatal(err)
	}
	if saved.NeedsRestart() || got.NeedsRestart() || !slices.Equal(got.Live, []string{"auth.htpasswd"}) {
		t.Errorf("Save said %s; the server applied %v and wants a restart for %v", saved, got.Live, got.Restart)
	}

	if err := d.AddHosted("ci"); err != nil {
		t.Fatal(err)
	}
	if saved, err = d.Save(); err != nil {
		t.Fatal(err)
	}
	if got, err = d.Apply(srv); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(saved.Restart, []string{"hosted"}) || !slices.Equal(got.Restart, saved.Restart) {
		t.Errorf("Save said %s; the server wants a restart for %v", saved, got.Restart)
	}
}
