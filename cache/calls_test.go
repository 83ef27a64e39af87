package cache

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// callJoined returns a channel closed once a call whose key starts with
// kind has n waiters.
func callJoined(p *Proxy, kind string, n int) <-chan struct{} {
	return joinedBy(&p.calls.mu, &p.calls.joinHook, kind, n)
}

// layerOf is the first layer of the image manifest raw.
func layerOf(t *testing.T, raw []byte) oci.Descriptor {
	t.Helper()
	var m struct{ Layers []oci.Descriptor }
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest %s: %v", raw, err)
	}
	return m.Layers[0]
}

// TestBlobHeadShared: concurrent HEADs of one uncached blob cost the
// upstream one HEAD, shared by every client; one that hangs up leaves
// without failing the others.
func TestBlobHeadShared(t *testing.T) {
	o := newManifestOrigin(t)
	_, raw := o.push(t, "library/app:1")
	layer := layerOf(t, raw)
	p, _, _ := newFlightProxy(t, o)
	release := o.hold(t)

	gone, leave := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, _, err := p.StatBlob(gone, "library/app", layer.Digest)
		left <- err
	}()
	joined := callJoined(p, "head", waiters+1)
	type answer struct {
		size int64
		src  Source
		err  error
	}
	res := make([]answer, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Go(func() {
			size, src, err := p.StatBlob(context.Background(), "library/app", layer.Digest)
			res[i] = answer{size, src, err}
		})
	}
	within(t, joined, "every HEAD to join one call")
	leave()
	if err := within(t, left, "the client that hung up"); !errors.Is(err, context.Canceled) {
		t.Errorf("the client that hung up got %v", err)
	}
	release()
	wg.Wait()
	for i, a := range res {
		if a.err != nil || a.size != layer.Size || a.src != SourceMiss {
			t.Errorf("client %d: size %d, %s, %v; want %d, miss", i, a.size, a.src, a.err, layer.Size)
		}
	}
	if n := o.blobHeads.Load(); n != 1 {
		t.Errorf("the origin got %d blob HEADs for %d clients, want 1", n, waiters+1)
	}
}

// TestTagListShared: concurrent requests for an uncached tag list cost the
// upstream one GET; an upstream failure reaches every waiter as the same
// error, or the cached list stale once there is one.
func TestTagListShared(t *testing.T) {
	o := newManifestOrigin(t)
	o.push(t, "library/app:1")
	o.push(t, "library/app:2")
	p, clk, _ := newFlightProxy(t, o)

	ask := func(repo string) ([][]string, []Source, []error) {
		t.Helper()
		release := o.hold(t)
		joined := callJoined(p, "tags", waiters)
		tags := make([][]string, waiters)
		srcs := make([]Source, waiters)
		errs := make([]error, waiters)
		var wg sync.WaitGroup
		for i := range waiters {
			wg.Go(func() { tags[i], _, srcs[i], errs[i] = p.Tags(context.Background(), repo, -1, "") })
		}
		within(t, joined, "every tag list request to join one call")
		release()
		wg.Wait()
		if n := o.tagLists.Load(); n != 1 {
			t.Errorf("%s: the origin got %d tag list GETs for %d clients, want 1", repo, n, waiters)
		}
		return tags, srcs, errs
	}

	tags, srcs, errs := ask("library/app")
	for i := range waiters {
		if errs[i] != nil || !slices.Equal(tags[i], []string{"1", "2"}) || srcs[i] != SourceMiss {
			t.Errorf("client %d: %v, %s, %v", i, tags[i], srcs[i], errs[i])
		}
	}

	o.setFail(http.StatusServiceUnavailable)
	clk.Advance(testTTL + 1)
	tags, srcs, errs = ask("library/app")
	for i := range waiters {
		if errs[i] != nil || !slices.Equal(tags[i], []string{"1", "2"}) || srcs[i] != SourceStale {
			t.Errorf("client %d with the origin failing: %v, %s, %v; want the cached list, stale", i, tags[i], srcs[i], errs[i])
		}
	}
	_, _, errs = ask("library/other")
	for i := range waiters {
		if e, ok := oci.AsError(errs[i]); !ok || e.Code != oci.CodeUnavailable {
			t.Errorf("client %d with nothing cached and the origin failing: %v, want UNAVAILABLE", i, errs[i])
		}
	}
}
