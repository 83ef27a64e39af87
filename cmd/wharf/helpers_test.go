package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

// startServer runs an in-process server on 127.0.0.1:0 with dir as its
// data dir; extra is YAML appended to the config (proxies, hosted, …).
func startServer(t *testing.T, dir, extra string) *server.Server {
	t.Helper()
	cfg, err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nlog:\n  access_log: false\n%s", dir, extra))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// startOrigin runs an in-memory registry (go-containerregistry's) with
// content pushed as repo:tag, and returns it as a proxy's upstream.
func startOrigin(t *testing.T, repoTag string, content remote.Taggable) *httptest.Server {
	t.Helper()
	origin := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(origin.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(origin.URL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	switch c := content.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, c)
	case v1.Image:
		err = remote.Write(ref, c)
	default:
		t.Fatalf("startOrigin: %T is neither an image nor an index", content)
	}
	if err != nil {
		t.Fatal(err)
	}
	return origin
}

// pullImage pulls ref through s's registry API, reads every layer, and
// waits until the fills it started are committed and indexed: a client
// has the last byte of a blob a moment before its fill is indexed, and a
// test that reads the cache's state (or pulls again, expecting hits) must
// not get there first.
func pullImage(t *testing.T, s *server.Server, ref string) {
	t.Helper()
	r, err := name.ParseReference(s.Addr()+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
	}
	waitIdle(t, s)
}

// idleTimeout bounds waitIdle: generous, since only a hung fill should
// ever reach it.
const idleTimeout = time.Minute

// waitIdle waits until no blob is being filled or read.
func waitIdle(t *testing.T, s *server.Server) {
	t.Helper()
	select {
	case <-s.Lifecycle().Idle():
	case <-time.After(idleTimeout):
		t.Fatalf("%d blobs still being filled or read after %s", s.Lifecycle().InFlight(), idleTimeout)
	}
}
