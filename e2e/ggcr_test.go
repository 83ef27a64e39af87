//go:build linux

package e2e

import (
	"bytes"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// pushed is what pushGGCRContent put into team/app.
type pushed struct {
	img v1.Image
	idx v1.ImageIndex
}

// pushGGCRContent pushes a random 3-layer image as team/app:v1 and a
// two-platform index as team/app:multi.
func pushGGCRContent(t *testing.T, w *harness.Wharf) pushed {
	t.Helper()
	return pushed{
		img: harness.PushRandomImage(t, w.Addr+"/team/app:v1", harness.ImageSpec{Layers: 3}),
		idx: harness.PushRandomIndex(t, w.Addr+"/team/app:multi", harness.ImageSpec{Layers: 2, OCI: true}, nil),
	}
}

func TestClientsGGCR(t *testing.T) {
	w := startWharf(t)
	p := pushGGCRContent(t, w)
	ctx := remote.WithContext(t.Context())
	imgDigest := digest(t, p.img)
	idxDigest := digest(t, p.idx)

	for by, ref := range map[string]string{"tag": "/team/app:v1", "digest": "/team/app@" + imgDigest.String()} {
		t.Run("image by "+by, func(t *testing.T) {
			got, err := remote.Image(harness.Ref(t, w.Addr+ref), ctx)
			if err != nil {
				t.Fatal(err)
			}
			// validate.Image reads every blob and checks it against its digest.
			if err := validate.Image(got); err != nil {
				t.Fatal(err)
			}
			if d := digest(t, got); d != imgDigest {
				t.Errorf("digest %s, pushed %s", d, imgDigest)
			}
			sameRawManifest(t, p.img, got)
			wantLayers, gotLayers := layerDigests(t, p.img), layerDigests(t, got)
			if !slices.Equal(wantLayers, gotLayers) {
				t.Errorf("layers %v, pushed %v", gotLayers, wantLayers)
			}
		})
	}

	for by, ref := range map[string]string{"tag": "/team/app:multi", "digest": "/team/app@" + idxDigest.String()} {
		t.Run("index by "+by, func(t *testing.T) {
			got, err := remote.Index(harness.Ref(t, w.Addr+ref), ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(got); err != nil {
				t.Fatal(err)
			}
			if d := digest(t, got); d != idxDigest {
				t.Errorf("digest %s, pushed %s", d, idxDigest)
			}
			sameRawManifest(t, p.idx, got)
		})
	}

	t.Run("index child by platform", func(t *testing.T) {
		im, err := p.idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, child := range im.Manifests {
			got, err := remote.Image(harness.Ref(t, w.Addr+"/team/app:multi"), ctx, remote.WithPlatform(*child.Platform))
			if err != nil {
				t.Fatalf("%s: %v", child.Platform, err)
			}
			if d := digest(t, got); d != child.Digest {
				t.Errorf("%s: digest %s, want %s", child.Platform, d, child.Digest)
			}
			if err := validate.Image(got); err != nil {
				t.Errorf("%s: %v", child.Platform, err)
			}
		}
	})

	t.Run("head", func(t *testing.T) {
		desc, err := remote.Head(harness.Ref(t, w.Addr+"/team/app:v1"), ctx)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := p.img.RawManifest()
		mt, _ := p.img.MediaType()
		if desc.Digest != imgDigest || desc.Size != int64(len(raw)) || desc.MediaType != mt {
			t.Errorf("HEAD gave %s %d %s, want %s %d %s", desc.Digest, desc.Size, desc.MediaType, imgDigest, len(raw), mt)
		}
	})

	t.Run("tags list", func(t *testing.T) {
		repo, err := name.NewRepository(w.Addr+"/team/app", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		tags, err := remote.List(repo, ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(tags)
		if !slices.Equal(tags, []string{"multi", "v1"}) {
			t.Errorf("tags %v, want [multi v1]", tags)
		}
	})
}

func digest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sameRawManifest(t *testing.T, want, got interface{ RawManifest() ([]byte, error) }) {
	t.Helper()
	w, err := want.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	g, err := got.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w, g) {
		t.Errorf("manifest bytes differ:\n got %s\nwant %s", g, w)
	}
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var ds []v1.Hash
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}
