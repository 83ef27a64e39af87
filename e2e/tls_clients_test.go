//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// httpsClients is how the TLS tests reach wharf with skopeo and ctr, which
// stay on HTTP/1.1 (Go clients negotiate HTTP/2: harness.PullImageHTTPS).
type httpsClients struct {
	caPEM []byte   // the only CA trusted
	names []string // names that resolve to 127.0.0.1 for the clients (an ACME host)
	creds string   // "user:password", or "" for anonymous pulls
}

// caFile writes the CA to DIR/ca.crt (where skopeo's --src-cert-dir looks)
// and returns DIR and the file.
func (c httpsClients) caFile(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(f, c.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, f
}

// skopeoPull copies ref (HOST:PORT/REPO:TAG) over HTTPS, verifying
// certificates, to a dir: directory (which stores the manifest and blobs
// as served, converting nothing), then checks the manifest digest and
// every blob against want.
func (c httpsClients) skopeoPull(t *testing.T, ref string, want v1.Image) {
	t.Helper()
	certDir, _ := c.caFile(t)
	out := filepath.Join(t.TempDir(), "image")
	args := []string{"copy", "--src-cert-dir", certDir}
	if c.creds != "" {
		args = append(args, "--src-creds", c.creds)
	}
	args = append(args, "docker://"+ref, "dir:"+out)
	if o, err := (harness.SkopeoRun{LoopbackNames: c.names}).Run(t, args...); err != nil {
		t.Fatalf("skopeo copy %s over HTTPS: %v\n%s", ref, err, o)
	}
	if got, want := fileDigest(t, filepath.Join(out, "manifest.json")), digest(t, want).String(); got != want {
		t.Errorf("skopeo copy %s: manifest %s, want %s", ref, got, want)
	}
	for _, b := range blobsOf(t, want) {
		if got := fileDigest(t, filepath.Join(out, b.Digest.Hex)); got != b.Digest.String() {
			t.Errorf("skopeo copy %s: blob %s holds %s", ref, b.Digest, got)
		}
	}
}

// ctrPull pulls image (as containerd names it, e.g. docker.io/library/x:1)
// with a hosts.toml sending host to mirrorURL (https) with `ca` set, then
// checks the digest containerd recorded. ctr fetches and unpacks every
// layer, checking each digest.
func (c httpsClients) ctrPull(t *testing.T, ctrd *harness.Containerd, image, host, mirrorURL string, want v1.Image) {
	t.Helper()
	_, ca := c.caFile(t)
	hosts := ctrd.HostsDirCA(t, map[string][]string{host: {mirrorURL}}, ca)
	args := []string{"images", "pull", "--hosts-dir", hosts}
	if c.creds != "" {
		args = append(args, "--user", c.creds)
	}
	if out, err := ctrd.CtrResolving(t, c.names, append(args, image)...); err != nil {
		t.Fatalf("ctr pull %s over HTTPS: %v\n%s", image, err, out)
	}
	out, err := ctrd.Ctr("images", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == image {
			if w := digest(t, want).String(); f[2] != w {
				t.Errorf("ctr pull %s: containerd has %s, want %s", image, f[2], w)
			}
			return
		}
	}
	t.Errorf("ctr pull %s: not in `ctr images ls`:\n%s", image, out)
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
