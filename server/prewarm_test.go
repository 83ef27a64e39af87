package server_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/server"
)

// TestPrewarm caches an image through the proxy in process: the manifest
// (for an index, this machine's platform), the config and every layer,
// each fetched from the origin once; a pull afterwards is all hits.
func TestPrewarm(t *testing.T) {
	o := newOrigin(t)
	img, _ := random.Image(100<<10, 3)
	other, _ := random.Image(100<<10, 2)
	o.push(t, "library/busybox:latest", img)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
	)
	o.pushIndex(t, "team/multi:1", idx)
	s := start(t, proxyConfig(t, o.URL, ""))
	want, _ := img.Digest()
	size := int64(0)
	if cfg, err := img.RawConfigFile(); err == nil {
		size += int64(len(cfg))
	}
	ls, _ := img.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		size += n
	}

	var p server.PrewarmProgress
	res, err := s.Prewarm(context.Background(), "busybox", &p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Image != "hub/library/busybox:latest" || res.Digest.String() != want.String() || res.Layers != 3 || res.Bytes != size {
		t.Fatalf("result %+v, want 3 layers and %d bytes of %s", res, size, want)
	}
	if p.Done.Load() != size || p.Total.Load() != size {
		t.Fatalf("progress %d of %d, want %d", p.Done.Load(), p.Total.Load(), size)
	}
	if got := o.blobGets.Load(); got != 4 {
		t.Fatalf("origin saw %d blob GETs, want 4 (config and 3 layers)", got)
	}
	pulled, err := remote.Image(ref(t, s, "library/busybox:latest"))
	if err != nil {
		t.Fatal(err)
	}
	pls, _ := pulled.Layers()
	for _, l := range pls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if got := o.blobGets.Load(); got != 4 {
		t.Fatalf("a pull after the pre-warm went to the origin: %d blob GETs", got)
	}

	// An index: the image for this machine's platform.
	res, err = s.Prewarm(context.Background(), "hub/team/multi:1", nil)
	if err != nil || res.Digest.String() != want.String() {
		t.Fatalf("index: %+v, %v; want the linux/%s entry %s", res, err, runtime.GOARCH, want)
	}

	for _, tc := range []struct {
		image string
		code  oci.Code
	}{
		{"", oci.CodeParameterInvalid},
		{"Bad Name", oci.CodeNameInvalid},
		{"busybox:-bad", oci.CodeTagInvalid},
		{"library/nothere:1", oci.CodeManifestUnknown},
	} {
		_, err := s.Prewarm(context.Background(), tc.image, nil)
		if e, ok := oci.AsError(err); !ok || e.Code != tc.code {
			t.Errorf("Prewarm(%q): %v, want %s", tc.image, err, tc.code.Name)
		}
	}
}

func (o *origin) pushIndex(t testing.TB, repo string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(o.URL, "http://")+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}
