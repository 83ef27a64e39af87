//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestClientsSkopeo copies from wharf to an OCI layout and back into another
// repository. The content is OCI-typed, so skopeo converts nothing and every
// digest must survive the round trip.
func TestClientsSkopeo(t *testing.T) {
	w := startWharf(t)
	harness.Require(t, "skopeo")
	img := harness.PushRandomImage(t, w.Addr+"/team/src:v1", harness.ImageSpec{Layers: 3, OCI: true})
	idx := harness.PushRandomIndex(t, w.Addr+"/team/src:multi", harness.ImageSpec{Layers: 1, OCI: true}, nil)
	layoutDir := filepath.Join(t.TempDir(), "layout")

	skopeo := func(args ...string) string {
		t.Helper()
		out, err := harness.Skopeo(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("image", func(t *testing.T) {
		skopeo("copy", "--src-tls-verify=false", "docker://"+w.Addr+"/team/src:v1", "oci:"+layoutDir+":v1")
		skopeo("copy", "--dest-tls-verify=false", "oci:"+layoutDir+":v1", "docker://"+w.Addr+"/team/copy:v1")

		var info struct {
			Digest string
			Layers []string
		}
		out := skopeo("inspect", "--tls-verify=false", "docker://"+w.Addr+"/team/copy:v1")
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
		if want := digest(t, img).String(); info.Digest != want {
			t.Errorf("team/copy:v1 digest %s, want %s", info.Digest, want)
		}
		var want []string
		for _, l := range layerDigests(t, img) {
			want = append(want, l.String())
		}
		if !slices.Equal(info.Layers, want) {
			t.Errorf("team/copy:v1 layers %v, want %v", info.Layers, want)
		}
		raw := skopeo("inspect", "--tls-verify=false", "--raw", "docker://"+w.Addr+"/team/copy:v1")
		sameRawManifest(t, img, rawManifest(raw))
	})

	t.Run("index --all", func(t *testing.T) {
		skopeo("copy", "--all", "--src-tls-verify=false", "docker://"+w.Addr+"/team/src:multi", "oci:"+layoutDir+":multi")
		skopeo("copy", "--all", "--dest-tls-verify=false", "oci:"+layoutDir+":multi", "docker://"+w.Addr+"/team/copy:multi")
		// skopeo 1.9 re-encodes an index it copies (it drops the artifactType
		// go-containerregistry writes), so the index digest changes on the way
		// into the layout: wharf must serve exactly what skopeo pushed, and the
		// children must be the originals.
		raw := skopeo("inspect", "--tls-verify=false", "--raw", "docker://"+w.Addr+"/team/copy:multi")
		sum := sha256.Sum256([]byte(raw))
		if got, want := "sha256:"+hex.EncodeToString(sum[:]), layoutDigest(t, layoutDir, "multi"); got != want {
			t.Errorf("team/copy:multi is %s, the layout's index is %s", got, want)
		}
		var gotIdx v1.IndexManifest
		if err := json.Unmarshal([]byte(raw), &gotIdx); err != nil {
			t.Fatal(err)
		}
		wantIdx, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var gotChildren, wantChildren []string
		for _, m := range gotIdx.Manifests {
			gotChildren = append(gotChildren, m.Digest.String())
		}
		for _, m := range wantIdx.Manifests {
			wantChildren = append(wantChildren, m.Digest.String())
		}
		if !slices.Equal(gotChildren, wantChildren) {
			t.Errorf("team/copy:multi children %v, want %v", gotChildren, wantChildren)
		}
		// Each platform's image, fetched by skopeo, must be whole.
		for _, p := range harness.DefaultPlatforms {
			skopeo("--override-arch", p.Architecture, "--override-variant", p.Variant,
				"inspect", "--tls-verify=false", "docker://"+w.Addr+"/team/copy:multi")
		}
	})
}

// layoutDigest returns the digest an OCI layout's index.json gives for a tag.
func layoutDigest(t *testing.T, dir, tag string) string {
	t.Helper()
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			return m.Digest.String()
		}
	}
	t.Fatalf("no %q in %s/index.json", tag, dir)
	return ""
}

type rawManifest string

func (r rawManifest) RawManifest() ([]byte, error) { return []byte(r), nil }
