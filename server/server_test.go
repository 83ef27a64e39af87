package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

func testConfig(t testing.TB, dir string) *config.Config {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\nhosted:\n  - name: team\nlog:\n  access_log: false\n", dir)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t testing.TB, cfg *config.Config, opts ...server.Option) *server.Server {
	t.Helper()
	return startWith(t, cfg, opts...)
}

// waitFor polls cond until it holds, failing the test after a minute: for
// states the server reaches on its own goroutines, however busy the
// machine.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute", what)
		}
	}
}

func ref(t testing.TB, s *server.Server, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s.Addr()+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestImageAndIndexRoundTrip(t *testing.T) {
	s := start(t, testConfig(t, ""))
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	tag := ref(t, s, "team/app:v1")
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wantD, _ := img.Digest()
	gotD, _ := got.Digest()
	if wantD != gotD {
		t.Fatalf("pulled %s, pushed %s", gotD, wantD)
	}
	// Every layer's bytes come back intact.
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, rc) // ggcr verifies the digest while reading
		if err := rc.Close(); err != nil {
			t.Fatalf("layer verify: %v", err)
		}
	}
	byDigest, _ := name.NewDigest(s.Addr()+"/team/app@"+wantD.String(), name.Insecure)
	if _, err := remote.Image(byDigest); err != nil {
		t.Fatalf("pull by digest: %v", err)
	}

	idx, err := random.Index(32<<10, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	idxRef := ref(t, s, "team/multi:latest")
	if err := remote.WriteIndex(idxRef, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gotIdx, err := remote.Index(idxRef)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := idx.Digest()
	b, _ := gotIdx.Digest()
	if a != b {
		t.Fatalf("index digest %s != %s", b, a)
	}
	tags, err := remote.List(tag.Context())
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags = %v, %v", tags, err)
	}
}

func TestDockerMediaTypes(t *testing.T) {
	s := start(t, testConfig(t, ""))
	img, _ := random.Image(1024, 2)
	img = mutate.MediaType(img, types.DockerManifestSchema2)
	img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
	r := ref(t, s, "team/docker:1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != types.DockerManifestSchema2 {
		t.Fatalf("media type %s", desc.MediaType)
	}
	list := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}}), types.DockerManifestList)
	if err := remote.WriteIndex(ref(t, s, "team/docker:list"), list); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentPushesOfSameContent(t *testing.T) {
	s := start(t, testConfig(t, ""))
	img, _ := random.Image(256<<10, 4)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Same blobs, same repo, a shared tag and an own tag.
			for _, tag := range []string{"shared", fmt.Sprintf("t%d", i)} {
				if err := remote.Write(ref(t, s, "team/race:"+tag), img); err != nil {
					errs <- err
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want, _ := img.Digest()
	for _, tag := range []string{"shared", "t0", "t7"} {
		got, err := remote.Image(ref(t, s, "team/race:"+tag))
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := got.Digest(); d != want {
			t.Fatalf("%s: %s != %s", tag, d, want)
		}
	}
	tags, _ := remote.List(ref(t, s, "team/race").Context())
	if len(tags) != 9 {
		t.Fatalf("tags = %v", tags)
	}
}

func TestTwoServersInOneProcess(t *testing.T) {
	a := start(t, testConfig(t, ""))
	b := start(t, testConfig(t, ""))
	img, _ := random.Image(1024, 1)
	if err := remote.Write(ref(t, a, "team/only-a:1"), img); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref(t, b, "team/only-a:1")); err == nil {
		t.Fatal("second server sees the first server's content")
	}
	if a.Status().State != server.StateRunning || b.Status().State != server.StateRunning {
		t.Fatal("not running")
	}
}

func TestStartErrorsAreSynchronous(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, "")
	busy, _ := cfg.WithOverrides(ln.Addr().String(), "")
	s, _ := server.New(busy)
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "listening") {
		t.Fatalf("Start on a busy port = %v", err)
	}
	if s.Status().State != server.StateFailed {
		t.Fatalf("state %s", s.Status().State)
	}
	// The failed start released the data dir: another server can take it.
	first := start(t, cfg)
	_ = first
	second, _ := server.New(cfg)
	err = second.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in use by another wharf") {
		t.Fatalf("second Start on the same data dir = %v", err)
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	s := start(t, testConfig(t, ""))
	resp, err := http.Post("http://"+s.Addr()+"/v2/team/slow/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPatch, "http://"+s.Addr()+loc, pr)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		done <- resp
	}()
	pw.Write([]byte("first part "))
	// The request is in the server's hands once its upload file holds
	// those bytes; Shutdown before that would find no request to drain.
	uploads := filepath.Join(s.Config().DataDir, "uploads")
	waitFor(t, "the first part in the upload file", func() bool {
		ents, _ := os.ReadDir(uploads)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && fi.Size() == int64(len("first part ")) {
				return true
			}
		}
		return false
	})
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	waitFor(t, "state stopping", func() bool { return s.Status().State == server.StateStopping })
	// A Shutdown that did not wait for the request would return about
	// now; give it the chance to (no correct one returns).
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	default:
	}
	pw.Write([]byte("second part"))
	pw.Close()
	if r := <-done; r == nil || r.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight PATCH answered %v", r)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if st := s.Status().State; st != server.StateStopped {
		t.Fatalf("state after shutdown: %s", st)
	}
}

func TestEventsAndRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s, _ := server.New(cfg)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	events, cancel := s.Subscribe(16)
	img, _ := random.Image(2048, 2)
	r := ref(t, s, "team/ev:1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(r); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for !(seen["push"] && seen["pull"]) {
		select {
		case e := <-events:
			if e.Repo == "team/ev" {
				seen[e.Type] = true
			}
		case <-timeout:
			t.Fatalf("events seen: %v", seen)
		}
	}
	cancel()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// An interrupted write leaves a temp file; a restart removes it and
	// keeps everything committed.
	stray := filepath.Join(dir, "tmp", "blob-stray")
	if err := os.WriteFile(stray, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2, _ := cfg.WithOverrides("127.0.0.1:0", "")
	s2 := start(t, cfg2)
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp file survived restart: %v", err)
	}
	got, err := remote.Image(ref(t, s2, "team/ev:1"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := got.Digest()
	b, _ := img.Digest()
	if a != b {
		t.Fatal("digest changed across restart")
	}
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	s := start(t, testConfig(t, ""))
	for _, c := range []struct {
		path string
		want int
	}{{"/v2/", 200}, {"/healthz", 200}, {"/readyz", 200}, {"/metrics", 200}, {"/", 404}} {
		path, want := c.path, c.want
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s = %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/metrics" && !strings.Contains(string(body), "wharf_http_requests_total") {
			t.Errorf("/metrics lacks wharf_http_requests_total")
		}
	}
}
