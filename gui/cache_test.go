package gui

import (
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/gui/model"
)

// TestCacheTab pulls an image through the running server, finds it on the
// Cache tab, pins, unpins and evicts it with the buttons (each checked in
// the listing), pre-warms it back, then previews and runs a garbage
// collection.
func TestCacheTab(t *testing.T) {
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	harness.PushRandomImage(t, origin.Addr+"/library/demo:1", harness.ImageSpec{Layers: 2, LayerSize: 128 << 10})
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", origin.URL))
	a, c := f.app, &f.app.cache
	if err := a.ShowTab("cache"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.summary.Text, "Start the server") {
		t.Errorf("stopped: summary %q", c.summary.Text)
	}
	test.Tap(c.pin)
	if !strings.Contains(c.result.Text, "Start the server first") {
		t.Errorf("pin while stopped: %q", c.result.Text)
	}
	test.Tap(a.startBtn)
	f.waitState("Running on ")
	harness.PullImage(t, a.Lifecycle().Addr+"/library/demo:1")

	demo := func() (model.CachedRepo, bool) {
		for _, r := range c.listed {
			if strings.HasSuffix(r.Repo, "library/demo") {
				return r, true
			}
		}
		return model.CachedRepo{}, false
	}
	// The cache commits a blob to its index just after its last byte went
	// out: until the listing has caught up, list again as Refresh does.
	caughtUp := func() bool {
		if r, ok := demo(); ok && r.Blobs >= 4 && r.Proxy == "hub" && slices.Equal(r.Tags, []string{"1"}) {
			return true
		}
		a.refreshCache()
		return false
	}
	f.ui.waitFor(t, "the pulled image listed", caughtUp)
	if !strings.Contains(c.summary.Text, "cached blobs") {
		t.Errorf("summary %q", c.summary.Text)
	}
	r, _ := demo()
	tapRowButton(t, c.rows, r.Repo, ":1")
	if c.image.Text != r.Repo+":1" {
		t.Errorf("the tag's button put %q in the image field, want %q", c.image.Text, r.Repo+":1")
	}
	test.Tap(c.pin)
	f.ui.waitFor(t, "the image pinned", func() bool { r, _ := demo(); return r.Pinned >= 3 && c.result.Text != "" })
	if !strings.HasPrefix(c.result.Text, "Pinned ") || c.result.Importance != widget.SuccessImportance {
		t.Errorf("pin: %q", c.result.Text)
	}
	test.Tap(c.unpin)
	f.ui.waitFor(t, "the image unpinned", func() bool { r, _ := demo(); return r.Pinned == 0 && strings.HasPrefix(c.result.Text, "Unpinned ") })

	test.Tap(c.evict)
	f.ui.waitFor(t, "the image evicted", func() bool {
		_, listed := demo()
		return !listed && strings.HasPrefix(c.result.Text, "Evicted ")
	})
	c.image.SetText("library/demo:1")
	test.Tap(c.warmBtn)
	if !c.warmBar.Visible() || !c.warmBtn.Disabled() {
		t.Error("no progress bar, or the button still enabled, while pre-warming")
	}
	f.ui.waitFor(t, "the evicted image pre-warmed back into the cache", func() bool {
		return strings.HasPrefix(c.result.Text, "Pre-warmed hub/library/demo:1: 2 layers") && caughtUp()
	})
	if c.warmBar.Visible() || c.warmBtn.Disabled() || c.warm != nil {
		t.Error("the progress bar or the disabled button outlived the pre-warm")
	}
	c.image.SetText("library/nothing:1")
	test.Tap(c.warmBtn)
	f.ui.waitFor(t, "pre-warming what the upstream lacks refused inline", func() bool {
		return c.result.Importance == widget.DangerImportance && strings.HasPrefix(c.result.Text, "Pre-warming library/nothing:1: ")
	})

	test.Tap(c.evict)
	f.ui.waitFor(t, "evicting what is not cached refused inline", func() bool { return c.result.Importance == widget.DangerImportance })

	test.Tap(c.gcPreview)
	f.ui.waitFor(t, "the GC preview", func() bool { return strings.HasPrefix(c.gcResult.Text, "Would free ") })
	test.Tap(c.gcRun)
	f.ui.waitFor(t, "the GC", func() bool { return strings.HasPrefix(c.gcResult.Text, "Freed ") })
}
