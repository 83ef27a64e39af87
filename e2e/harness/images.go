//go:build linux

package harness

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
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
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Ref parses an image reference on a plain-HTTP registry ("127.0.0.1:PORT/team/app:1").
func Ref(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("reference %q: %v", s, err)
	}
	return ref
}

// PullImage pulls ref (a plain-HTTP reference, as for Ref) the way a
// client does: manifest, config, then every layer read to the end, which
// is where ggcr checks each layer's digest. It returns the image pulled.
func PullImage(t testing.TB, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := remote.Image(Ref(t, ref), opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Fatalf("pull %s: config: %v", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull %s: layer: %v", ref, err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("pull %s: layer: %v", ref, err)
		}
	}
	return img
}

// ImageSpec describes a random image. Zero fields take defaults.
type ImageSpec struct {
	Layers    int   // default 3
	LayerSize int64 // bytes of random file content per layer; default 4 KiB
	// OCI selects OCI media types (manifest, config, layers, index);
	// otherwise Docker schema 2 types, as `docker push` writes them.
	OCI bool
	// Platform is written into the config (os, architecture, variant).
	Platform *v1.Platform
}

// RandomImage builds an image of random layers; each call gives new content.
func RandomImage(t testing.TB, spec ImageSpec) v1.Image {
	t.Helper()
	if spec.Layers == 0 {
		spec.Layers = 3
	}
	if spec.LayerSize == 0 {
		spec.LayerSize = 4 << 10
	}
	layerType := types.DockerLayer
	if spec.OCI {
		layerType = types.OCILayer
	}
	var img v1.Image = empty.Image
	if spec.OCI {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	adds := make([]mutate.Addendum, 0, spec.Layers)
	for i := range spec.Layers {
		l, err := random.Layer(spec.LayerSize, layerType)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{
			CreatedBy: fmt.Sprintf("wharf e2e random layer %d of %d", i+1, spec.Layers),
		}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Platform != nil {
		img = withPlatform(t, img, *spec.Platform)
	}
	return img
}

func withPlatform(t testing.TB, img v1.Image, p v1.Platform) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// DefaultPlatforms are the children of RandomIndex when none are named.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
}

// RandomIndex builds a multi-platform index with one random image per
// platform (DefaultPlatforms when none are given), each following spec.
func RandomIndex(t testing.TB, spec ImageSpec, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	if len(platforms) == 0 {
		platforms = DefaultPlatforms
	}
	var idx v1.ImageIndex = empty.Index
	if !spec.OCI {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	for _, p := range platforms {
		s := spec
		s.Platform = &p
		img := RandomImage(t, s)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx
}

// Push writes an image or index (and all it refers to) to ref and returns
// its manifest digest. opts may carry remote.WithAuth and the like; the
// test's context comes first so a caller's remote.WithContext wins.
func Push(t testing.TB, ref string, content remote.Taggable, opts ...remote.Option) v1.Hash {
	t.Helper()
	r := Ref(t, ref)
	all := append([]remote.Option{remote.WithContext(t.Context())}, opts...)
	var err error
	switch c := content.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, c, all...)
	case v1.Image:
		err = remote.Write(r, c, all...)
	default:
		err = remote.Put(r, c, all...)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return digestOf(t, content)
}

func digestOf(t testing.TB, content remote.Taggable) v1.Hash {
	t.Helper()
	if d, ok := content.(interface{ Digest() (v1.Hash, error) }); ok {
		h, err := d.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	raw, err := content.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// PushRandomImage pushes RandomImage(spec) to ref and returns it.
func PushRandomImage(t testing.TB, ref string, spec ImageSpec, opts ...remote.Option) v1.Image {
	t.Helper()
	img := RandomImage(t, spec)
	Push(t, ref, img, opts...)
	return img
}

// PushRandomIndex pushes RandomIndex(spec, platforms...) to ref and returns it.
func PushRandomIndex(t testing.TB, ref string, spec ImageSpec, platforms []v1.Platform, opts ...remote.Option) v1.ImageIndex {
	t.Helper()
	idx := RandomIndex(t, spec, platforms...)
	Push(t, ref, idx, opts...)
	return idx
}

// PushLargeImage pushes a one-layer image whose layer holds size random
// (incompressible) bytes, for streaming and partial-read tests.
func PushLargeImage(t testing.TB, ref string, size int64, opts ...remote.Option) v1.Image {
	t.Helper()
	return PushRandomImage(t, ref, ImageSpec{Layers: 1, LayerSize: size}, opts...)
}

// BusyboxPath is where Debian's busybox-static puts its binary.
const BusyboxPath = "/bin/busybox"

var (
	busyboxOnce sync.Once
	busyboxImg  v1.Image
	busyboxErr  error
)

// BusyboxImage returns a runnable single-layer image made from the host's
// static busybox: bin/busybox, a symlink per applet where `busybox
// --list-full` puts it, an empty etc/ and tmp/, Cmd ["sh"], and the host's
// linux architecture. Timestamps are fixed, so its digest is stable for a
// given busybox and Go version. `docker run IMAGE echo hello` works with it.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	Require(t, BusyboxPath)
	busyboxOnce.Do(func() { busyboxImg, busyboxErr = buildBusybox() })
	if busyboxErr != nil {
		t.Fatalf("busybox image: %v", busyboxErr)
	}
	return busyboxImg
}

// PushBusybox pushes BusyboxImage to ref and returns its digest.
func PushBusybox(t testing.TB, ref string, opts ...remote.Option) v1.Hash {
	t.Helper()
	return Push(t, ref, BusyboxImage(t), opts...)
}

func buildBusybox() (v1.Image, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, err
	}
	if err := checkStatic(BusyboxPath); err != nil {
		return nil, err
	}
	out, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %v", err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	epoch := time.Unix(946684800, 0).UTC() // 2000-01-01, for a stable digest
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	addDir := func(d string, mode int64) error {
		if dirs[d] {
			return nil
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, d := range []string{"bin", "etc", "root", "sbin", "usr", "usr/bin", "usr/sbin"} {
		if err := addDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := addDir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, a := range applets {
		a = strings.TrimPrefix(path.Clean(a), "/")
		if a == "bin/busybox" || strings.HasPrefix(a, "..") {
			continue
		}
		if err := addDir(path.Dir(a), 0o755); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{
		CreatedBy: "wharf e2e: busybox-static " + BusyboxPath,
		Created:   v1.Time{Time: epoch},
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	return mutate.ConfigFile(img, cf)
}

// checkStatic rejects a dynamically linked busybox (Debian's plain `busybox`
// package), which would not run in an image without its libc.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; install busybox-static", p)
		}
	}
	return nil
}

// WriteDockerTarball writes img as a `docker save`-style tarball tagged tag
// and returns its path, for `docker load -i`.
func WriteDockerTarball(t testing.TB, img v1.Image, tag string) string {
	t.Helper()
	ref, err := name.NewTag(tag, name.Insecure)
	if err != nil {
		t.Fatalf("tag %q: %v", tag, err)
	}
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(p, ref, img); err != nil {
		t.Fatalf("writing %s: %v", p, err)
	}
	return p
}
