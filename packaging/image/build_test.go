package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestBuildWritesLoadableImage(t *testing.T) {
	dir := t.TempDir()
	write := func(n, body string) string {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := options{
		Binary:  write("wharf", "#!binary"),
		CACerts: write("ca.crt", "CERTS"),
		Config:  write("wharf.yml", "listen: :5000\n"),
		Version: "v1.2.3-4-gabcdef0",
		Repo:    "wharf-registry/wharf",
		Created: time.Unix(1700000000, 0).UTC(),
	}
	out := filepath.Join(dir, "image.tar")
	if err := run(o, out); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("wharf-registry/wharf:v1.2.3-4-gabcdef0")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || c.Entrypoint[0] != BinaryPath || c.Cmd[0] != "serve" {
		t.Errorf("user %q entrypoint %q cmd %q", c.User, c.Entrypoint, c.Cmd)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes %v: want /data", c.Volumes)
	}
	if _, ok := c.ExposedPorts["5000/tcp"]; !ok {
		t.Errorf("exposed %v: want 5000/tcp", c.ExposedPorts)
	}
	if c.Healthcheck == nil || c.Healthcheck.Test[0] != "CMD" || c.Healthcheck.Test[2] != "healthcheck" {
		t.Errorf("healthcheck %+v", c.Healthcheck)
	}
	if got := c.Labels["org.opencontainers.image.version"]; got != o.Version {
		t.Errorf("version label %q", got)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	type entry struct {
		mode int64
		uid  int
		body string
	}
	got := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = entry{h.Mode, h.Uid, string(b)}
	}
	for path, want := range map[string]entry{
		"usr/bin/wharf":                     {0o755, 0, "#!binary"},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, "CERTS"},
		"etc/wharf/wharf.yml":               {0o644, 0, "listen: :5000\n"},
		"data/":                             {0o750, UID, ""},
	} {
		if got[path] != want {
			t.Errorf("%s: %+v, want %+v", path, got[path], want)
		}
	}

	// The same inputs make the same image.
	out2 := filepath.Join(dir, "image2.tar")
	if err := run(o, out2); err != nil {
		t.Fatal(err)
	}
	img2, _ := tarball.ImageFromPath(out2, &tag)
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("digests differ between two builds: %s, %s", d1, d2)
	}
}

func TestTagFor(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                "v1.2.3",
		"b85b7f7-dirty":         "b85b7f7-dirty",
		"0.0.0+git.b85b7f7":     "0.0.0-git.b85b7f7",
		"":                      "dev",
		"-x":                    "x",
		"v1.0.0-3-gabc/feature": "v1.0.0-3-gabc-feature",
	} {
		if got := TagFor(in); got != want {
			t.Errorf("TagFor(%q) = %q, want %q", in, got, want)
		}
	}
}
