package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID is the user the image runs wharf as: not root, and the owner of
// /data so a fresh named volume (which copies the image's ownership) is
// writable. 65532 is the "nonroot" user of distroless images, so host
// directories prepared for those fit.
const UID = 65532

// In-image paths.
const (
	BinaryPath = "/usr/bin/wharf"
	ConfigPath = "/etc/wharf/wharf.yml"
	CACertPath = "/etc/ssl/certs/ca-certificates.crt"
	DataDir    = "/data"
)

type options struct {
	Binary, CACerts, Config string
	Version, Revision, Repo string
	Created                 time.Time
}

// Build assembles the image: one layer and a config that runs `wharf
// serve` as UID with /data as a volume.
func Build(o options) (v1.Image, error) {
	layerTar, err := rootfs(o)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "packaging/image: wharf " + o.Version, Comment: "static wharf, CA certificates, default config, /data"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = Config(o)
	return mutate.ConfigFile(img, cf)
}

// Config is the runtime config: what `docker run` and `docker inspect` see.
func Config(o options) v1.Config {
	return v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, UID),
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"serve"},
		WorkingDir: DataDir,
		Env: []string{
			"PATH=/usr/bin",
			"WHARF_CONFIG=" + ConfigPath,
			"SSL_CERT_FILE=" + CACertPath,
		},
		ExposedPorts: map[string]struct{}{"5000/tcp": {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		StopSignal:   "SIGTERM",
		// `wharf healthcheck` finds the server from WHARF_CONFIG's listen
		// address, so a config mounted over the default moves it too.
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", BinaryPath, "healthcheck"},
			Interval:    30 * time.Second,
			Timeout:     5 * time.Second,
			StartPeriod: 10 * time.Second,
			Retries:     3,
		},
		Labels: map[string]string{
			"org.opencontainers.image.title":         "wharf",
			"org.opencontainers.image.description":   "A private container registry and Docker Hub cache in one binary",
			"org.opencontainers.image.version":       o.Version,
			"org.opencontainers.image.revision":      o.Revision,
			"org.opencontainers.image.created":       o.Created.Format(time.RFC3339),
			"org.opencontainers.image.source":        "https://github.com/wharf-registry/wharf",
			"org.opencontainers.image.url":           "https://github.com/wharf-registry/wharf",
			"org.opencontainers.image.documentation": "https://github.com/wharf-registry/wharf/blob/main/docs/install.md",
			"org.opencontainers.image.vendor":        "wharf",
		},
	}
}

// rootfs is the layer: directories first, each file with a fixed owner,
// mode and time, so the same inputs give the same digest.
func rootfs(o options) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(path string, uid int, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: o.Created, Format: tar.FormatPAX})
	}
	file := func(path string, body []byte, mode int64) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(body)), ModTime: o.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	read := func(path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		return b, nil
	}
	bin, err := read(o.Binary)
	if err != nil {
		return nil, err
	}
	ca, err := read(o.CACerts)
	if err != nil {
		return nil, err
	}
	cfg, err := read(o.Config)
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/:/sbin/nologin\nwharf:x:%d:%d:wharf:%s:/sbin/nologin\n", UID, UID, DataDir)
	group := fmt.Sprintf("root:x:0:\nwharf:x:%d:\n", UID)
	steps := []func() error{
		func() error { return dir("etc", 0, 0o755) },
		func() error { return file("etc/passwd", []byte(passwd), 0o644) },
		func() error { return file("etc/group", []byte(group), 0o644) },
		func() error { return dir("etc/ssl", 0, 0o755) },
		func() error { return dir("etc/ssl/certs", 0, 0o755) },
		func() error { return file(CACertPath[1:], ca, 0o644) },
		func() error { return dir("etc/wharf", 0, 0o755) },
		func() error { return file(ConfigPath[1:], cfg, 0o644) },
		func() error { return dir("usr", 0, 0o755) },
		func() error { return dir("usr/bin", 0, 0o755) },
		func() error { return file(BinaryPath[1:], bin, 0o755) },
		func() error { return dir(DataDir[1:], UID, 0o750) },
		// A writable /tmp is not needed: wharf stages uploads under its
		// data dir, which is what lets the image run --read-only.
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
