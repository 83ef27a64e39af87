package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/server"
)

// pullWhole pulls repo@d and reads its config and every layer; go-
// containerregistry checks each blob against its digest.
func pullWhole(s *server.Server, t *testing.T, repo string, d v1.Hash) error {
	img, err := remote.Image(ref(t, s, repo+"@"+d.String()))
	if err != nil {
		return fmt.Errorf("pull %s@%s: %w", repo, d, err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("config of %s@%s: %w", repo, d, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer of %s@%s: %w", repo, d, err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer of %s@%s: %w", repo, d, err)
		}
	}
	return nil
}

// Clients push images (sharing some layers, deleting some again) while
// GC runs back to back with no grace period. A push may fail with
// MANIFEST_BLOB_UNKNOWN (and is retried, as CI would); a push that
// succeeded must stay whole.
func TestGCWithConcurrentPushes(t *testing.T) {
	s := start(t, testConfig(t, ""))
	ctx := context.Background()
	var shared []v1.Layer
	for range 4 {
		l, err := random.Layer(8<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			t.Fatal(err)
		}
		shared = append(shared, l)
	}
	const pushers, images = 4, 8
	var (
		mu      sync.Mutex
		alive   = map[v1.Hash]string{}
		retries atomic.Int32
		runs    int
		freed   int64
	)
	stop, gcDone := make(chan struct{}), make(chan struct{})
	zero := time.Duration(0)
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := s.GC(ctx, server.GCRequest{Grace: &zero})
			if err != nil {
				t.Errorf("GC: %v", err)
				return
			}
			runs++
			freed += rep.BytesFreed
		}
	}()
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("team/app%d", p%2)
			for i := range images {
				own, err := random.Layer(4<<10, "application/vnd.oci.image.layer.v1.tar+gzip")
				if err != nil {
					t.Error(err)
					return
				}
				img, err := mutate.AppendLayers(empty.Image, shared[(p+i)%len(shared)], own, shared[i%len(shared)])
				if err != nil {
					t.Error(err)
					return
				}
				img = mutate.MediaType(img, "application/vnd.oci.image.manifest.v1+json")
				d, _ := img.Digest()
				tag := ref(t, s, fmt.Sprintf("%s:p%d-%d", repo, p, i))
				for try := 0; ; try++ {
					err = remote.Write(tag, img)
					if err == nil {
						break
					}
					// With grace 0 a GC running back to back can take the
					// blobs of a push before its manifest lands, each time,
					// on a loaded machine: retry generously.
					if !harness.HasCode(err, transport.ManifestBlobUnknownErrorCode) || try > 100 {
						t.Errorf("push %s: %v", tag, err)
						return
					}
					retries.Add(1)
				}
				mu.Lock()
				alive[d] = repo
				mu.Unlock()
				if i%3 == 1 {
					if err := remote.Delete(ref(t, s, repo+"@"+d.String())); err != nil {
						t.Errorf("delete: %v", err)
					}
					mu.Lock()
					delete(alive, d)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-gcDone
	t.Logf("%d GC runs freed %d bytes; %d pushes retried after MANIFEST_BLOB_UNKNOWN; %d images left", runs, freed, retries.Load(), len(alive))
	if runs < 2 {
		t.Errorf("GC ran %d times during the pushes", runs)
	}
	for d, repo := range alive {
		if err := pullWhole(s, t, repo, d); err != nil {
			t.Error(err)
		}
	}
	// Once the pushes are done, what the deleted images alone used goes.
	time.Sleep(2 * time.Millisecond)
	rep, err := s.GC(ctx, server.GCRequest{Grace: &zero})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.CacheStats()
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(rep.Marked); st.HostedBlobs != want {
		t.Errorf("%d hosted blobs left, %d referenced", st.HostedBlobs, want)
	}
	for d, repo := range alive {
		if err := pullWhole(s, t, repo, d); err != nil {
			t.Error(err)
		}
	}
}

func TestScheduledGC(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nhosted:\n  - name: team\nlog:\n  access_log: false\ngc:\n  schedule: 1s\n  grace: 0s\n", dir))
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, cfg)
	events, done := s.Subscribe(16)
	defer done()
	img, err := random.Image(16<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, s, "team/app:v1"), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	if err := remote.Delete(ref(t, s, "team/app@"+d.String())); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Type != "gc" {
				continue
			}
			resp, err := http.Head("http://" + s.Addr() + "/v2/team/app/blobs/" + ld.String())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("layer of a deleted image after GC: HTTP %d", resp.StatusCode)
			}
			if e.Bytes < 16<<10 {
				t.Errorf("gc event: %+v", e)
			}
			mfs, err := s.Metrics().Registry().Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "wharf_gc_freed_bytes_total" && mf.GetMetric()[0].GetCounter().GetValue() < float64(e.Bytes) {
					t.Errorf("metrics: %v", mf)
				}
			}
			return
		case <-timeout:
			t.Fatal("no scheduled garbage collection within 10s")
		}
	}
}

func TestGCNeedsARunningServer(t *testing.T) {
	s, err := server.New(testConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(context.Background(), server.GCRequest{}); err == nil {
		t.Error("GC on a server that never started")
	}
}
