//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestProxySkopeo copies from wharf's proxy namespace with skopeo, by path
// (WHARF/hub/library/busybox) and as a registries.conf mirror of docker.io
// in both forms podman users write ("WHARF" and "WHARF/hub"), and picks one
// platform out of a multi-arch index, with skopeo and by platform digest.
func TestProxySkopeo(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", "skopeo", harness.BusyboxPath)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	busybox := harness.BusyboxImage(t)
	harness.Push(t, origin.Addr+"/library/busybox:latest", busybox)
	idx := harness.PushRandomIndex(t, origin.Addr+"/library/multi:1", harness.ImageSpec{Layers: 2, OCI: true}, nil)
	arm64 := platformChild(t, idx, "arm64")

	w := startProxyWharf(t, fmt.Sprintf(contractConfig, origin.URL, unreachableUpstream))

	// busybox is Docker-typed; an OCI layout destination makes skopeo
	// convert its manifest, so the layers are what must survive.
	wantLayers := func(t *testing.T, dir string, img v1.Image) {
		t.Helper()
		for _, d := range layerDigests(t, img) {
			if _, err := os.Stat(filepath.Join(dir, "blobs", d.Algorithm, d.Hex)); err != nil {
				t.Errorf("layer %s missing from the copied layout: %v", d, err)
			}
		}
	}
	skopeo := func(t *testing.T, registriesConf string, args ...string) {
		t.Helper()
		// skopeo 1.9.3 ignores CONTAINERS_REGISTRIES_CONF, which is all
		// SkopeoWithRegistries sets, and reads /etc/containers instead;
		// its hidden global --registries-conf flag is honoured.
		conf := filepath.Join(t.TempDir(), "registries.conf")
		if err := os.WriteFile(conf, []byte(registriesConf), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--registries-conf", conf}, args...)
		if _, err := harness.SkopeoWithRegistries(t, registriesConf, args...); err != nil {
			t.Fatal(err)
		}
	}
	// requested counts 200 answers for manifests under a path prefix, so a
	// test can tell which form of name reached wharf.
	requested := func(prefix string) int {
		n := 0
		for _, l := range accessLog(w, prefix) {
			if l.Status == 200 {
				n++
			}
		}
		return n
	}
	noMirrors := "unqualified-search-registries = []\n"

	t.Run("path", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		skopeo(t, noMirrors, "copy", "--src-tls-verify=false", "docker://"+w.Addr+"/hub/library/busybox:latest", "oci:"+dir+":latest")
		wantLayers(t, dir, busybox)
	})

	for _, m := range []struct{ name, location string }{
		{"mirror host", w.Addr},
		{"mirror host+hub", w.Addr + "/hub"},
	} {
		location := m.location
		t.Run(m.name, func(t *testing.T) {
			conf := fmt.Sprintf(`unqualified-search-registries = []

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = %q
insecure = true
`, location)
			prefix := "/v2/library/busybox/manifests/"
			if location != w.Addr {
				prefix = "/v2/hub/library/busybox/manifests/"
			}
			before := requested(prefix)
			dir := filepath.Join(t.TempDir(), "layout")
			skopeo(t, conf, "copy", "docker://docker.io/library/busybox:latest", "oci:"+dir+":latest")
			wantLayers(t, dir, busybox)
			if requested(prefix) == before {
				t.Errorf("skopeo's copy did not reach wharf as %s...:\n%s", prefix, w.LogTail(20))
			}

			// One platform of a multi-arch index, chosen by skopeo.
			armDir := filepath.Join(t.TempDir(), "arm64")
			skopeo(t, conf, "--override-arch", "arm64", "copy", "docker://docker.io/library/multi:1", "oci:"+armDir+":arm64")
			if got := layoutDigest(t, armDir, "arm64"); got != arm64.Digest.String() {
				t.Errorf("skopeo --override-arch arm64 copied %s, the index's arm64 image is %s", got, arm64.Digest)
			}
		})
	}

	t.Run("platform digest", func(t *testing.T) {
		ref := harness.Ref(t, w.Addr+"/hub/library/multi@"+arm64.Digest.String())
		img, err := remote.Image(ref, remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatal(err)
		}
		if d := digest(t, img); d != arm64.Digest {
			t.Errorf("pulled %s, want %s", d, arm64.Digest)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != "arm64" {
			t.Errorf("image by arm64 digest has architecture %q", cf.Architecture)
		}
		// And by tag with a platform, as a client that reads the index does.
		byTag, err := remote.Image(harness.Ref(t, w.Addr+"/hub/library/multi:1"), remote.WithContext(t.Context()),
			remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}))
		if err != nil {
			t.Fatal(err)
		}
		if d := digest(t, byTag); d != arm64.Digest {
			t.Errorf("by tag for linux/arm64/v8: %s, want %s", d, arm64.Digest)
		}
	})
}

// platformChild returns the index entry for an architecture.
func platformChild(t *testing.T, idx v1.ImageIndex, arch string) v1.Descriptor {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Platform != nil && d.Platform.Architecture == arch })
	if i < 0 {
		t.Fatalf("index has no %s entry", arch)
	}
	return im.Manifests[i]
}
