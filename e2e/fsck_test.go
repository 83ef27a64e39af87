//go:build linux

package e2e

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestFsckAfterPushes pushes with go-containerregistry, stops wharf with
// SIGTERM (a graceful stop exits 0), and expects `wharf fsck` to find every
// blob intact; a restart on the same data dir must then serve the content.
func TestFsckAfterPushes(t *testing.T) {
	w := startWharf(t)
	p := pushGGCRContent(t, w)
	harness.PushLargeImage(t, w.Addr+"/team/large:v1", 8<<20)

	if err := w.Stop(); err != nil {
		t.Errorf("wharf did not exit cleanly on SIGTERM: %v", err)
	}
	out, err := w.Run("fsck", "--data-dir", w.DataDir)
	t.Logf("wharf fsck:\n%s", out)
	if err != nil {
		t.Fatalf("fsck after pushes: %v", err)
	}

	w2 := w.Restart(t)
	got, err := remote.Image(harness.Ref(t, w2.Addr+"/team/app:v1"), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if digest(t, got) != digest(t, p.img) {
		t.Errorf("after restart team/app:v1 is %s, pushed %s", digest(t, got), digest(t, p.img))
	}
}
