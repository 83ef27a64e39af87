// Command image builds wharf's container image without a Docker daemon or
// a base image: one layer holding the static binary, the build machine's CA
// certificates, a default config and an empty /data, on top of nothing
// (FROM scratch), written as a `docker save` tarball that `docker load`
// reads. scripts/dist.sh runs it; e2e/dist_test.go runs what it makes.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	var o options
	flag.StringVar(&o.Binary, "binary", "", "the static wharf `binary`")
	flag.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA certificate bundle (`file`) copied into the image")
	flag.StringVar(&o.Config, "config", "", "the image's default /etc/wharf/wharf.yml (`file`)")
	flag.StringVar(&o.Version, "version", "dev", "the version, for the tag and the labels")
	flag.StringVar(&o.Revision, "revision", "", "the git commit, for the org.opencontainers.image.revision label")
	flag.StringVar(&o.Repo, "repo", "wharf-registry/wharf", "the image `name` the tarball tags")
	out := flag.String("o", "", "write the docker-save tarball to this `file`")
	epoch := flag.Int64("source-date-epoch", envEpoch(), "timestamp (Unix seconds) of the image and its files (env SOURCE_DATE_EPOCH)")
	flag.Parse()
	o.Created = time.Unix(*epoch, 0).UTC()
	if err := run(o, *out); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func envEpoch() int64 {
	var n int64
	fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), &n)
	return n
}

func run(o options, out string) error {
	if o.Binary == "" || o.Config == "" || out == "" {
		return fmt.Errorf("-binary, -config and -o are required")
	}
	img, err := Build(o)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, tag := range []string{TagFor(o.Version), "latest"} {
		ref, err := name.NewTag(o.Repo + ":" + tag)
		if err != nil {
			return err
		}
		refs[ref] = img
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := tarball.MultiRefWrite(refs, f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return f.Close()
}

// TagFor turns a version from `git describe` into a valid image tag
// ([A-Za-z0-9_.-], at most 128 characters, not starting with . or -).
func TagFor(version string) string {
	t := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			return r
		}
		return '-'
	}, version)
	t = strings.TrimLeft(t, ".-")
	if len(t) > 128 {
		t = t[:128]
	}
	if t == "" {
		t = "dev"
	}
	return t
}
