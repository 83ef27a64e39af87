package server_test

import (
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A pull event says where the manifest came from, so the desktop app can
// list pulls as hit, miss or stale; a hosted pull says nothing (hosted).
func TestPullEventsCarrySource(t *testing.T) {
	o := newOrigin(t)
	img, _ := random.Image(1024, 1)
	o.push(t, "library/src:1", img)
	s := start(t, proxyConfig(t, o.URL, ""))
	events, cancel := s.Subscribe(64)
	defer cancel()

	next := func(repo string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e := <-events:
				if e.Type == "pull" && e.Repo == repo {
					return e.Source
				}
			case <-timeout:
				t.Fatalf("no pull event for %s", repo)
			}
		}
	}
	for _, want := range []string{"miss", "hit"} {
		if _, err := remote.Get(ref(t, s, "library/src:1")); err != nil {
			t.Fatal(err)
		}
		if got := next("library/src"); got != want {
			t.Errorf("pull source = %q, want %q", got, want)
		}
	}
	if err := remote.Write(ref(t, s, "team/own:1"), img); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(ref(t, s, "team/own:1")); err != nil {
		t.Fatal(err)
	}
	if got := next("team/own"); got != "" {
		t.Errorf("hosted pull source = %q, want empty", got)
	}
}
