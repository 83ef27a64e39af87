//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestProxyDockerMirror runs wharf on issue 3's config as a test-owned
// dockerd's registry-mirrors entry, with a Distribution playing Docker Hub.
// Docker Hub itself is unreachable here and the daemon does not know the
// origin, so every byte it pulls came through wharf; the test checks that
// anyway: each layer and config is in wharf's data dir and its access log
// shows each one served whole.
func TestProxyDockerMirror(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", "dockerd", "docker", "containerd", harness.BusyboxPath)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	busybox := harness.BusyboxImage(t)
	busyboxDigest := harness.Push(t, origin.Addr+"/library/busybox:latest", busybox)
	// A user image of its own (busybox plus a layer), so its pull moves a
	// blob the daemon does not have yet.
	app := withRandomLayer(t, busybox, 256<<10)
	appDigest := harness.Push(t, origin.Addr+"/someuser/app:1.0", app)

	// "other" names a port nobody listens on: this test only needs hub.
	w := startProxyWharf(t, fmt.Sprintf(contractConfig, origin.URL, unreachableUpstream))
	d := harness.StartDockerd(t, []string{w.URL}, []string{w.Addr})
	docker := func(args ...string) string {
		t.Helper()
		out, err := d.Docker(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	out := docker("pull", "busybox:latest")
	if !strings.Contains(out, "Digest: "+busyboxDigest.String()) {
		t.Errorf("docker pull busybox:latest does not name %s:\n%s", busyboxDigest, out)
	}
	out = docker("pull", "someuser/app:1.0")
	if !strings.Contains(out, "Digest: "+appDigest.String()) {
		t.Errorf("docker pull someuser/app:1.0 does not name %s:\n%s", appDigest, out)
	}
	if got := docker("run", "--rm", "--network", "none", "busybox:latest", "echo", "hello"); got != "hello" {
		t.Errorf("docker run busybox:latest printed %q, want hello", got)
	}
	if got := docker("run", "--rm", "--network", "none", "someuser/app:1.0", "sh", "-c", "echo $((6*7))"); got != "42" {
		t.Errorf("docker run someuser/app:1.0 printed %q, want 42", got)
	}

	// The bytes came through wharf: each tag was resolved by wharf (Docker
	// sends a HEAD) and each manifest GET by digest answered by it; each
	// blob is in wharf's data dir and was served whole under the name the
	// daemon asked for (busybox's layer only once: the daemon had it when
	// it pulled someuser/app).
	for _, m := range []struct {
		repo, tag string
		digest    v1.Hash
	}{
		{"library/busybox", "latest", busyboxDigest},
		{"someuser/app", "1.0", appDigest},
	} {
		tagOK := false
		for _, l := range accessLog(w, "/v2/"+m.repo+"/manifests/"+m.tag) {
			tagOK = tagOK || l.Status == http.StatusOK
		}
		if !tagOK {
			t.Errorf("wharf's access log shows no 200 for %s:%s", m.repo, m.tag)
		}
		if !served200(w, "/v2/"+m.repo+"/manifests/"+m.digest.String()) {
			t.Errorf("wharf's access log shows no 200 GET of %s@%s", m.repo, m.digest)
		}
	}
	seen := map[v1.Hash]bool{}
	for _, c := range []struct {
		repo string
		img  v1.Image
	}{{"library/busybox", busybox}, {"someuser/app", app}} {
		for _, desc := range blobsOf(t, c.img) {
			if seen[desc.Digest] {
				continue
			}
			seen[desc.Digest] = true
			if !waitCached(w, desc.Digest) {
				t.Errorf("%s blob %s is not in wharf's data dir", c.repo, desc.Digest)
			}
			if !servedWhole(w, "/v2/"+c.repo+"/blobs/"+desc.Digest.String(), desc.Size) {
				t.Errorf("wharf's access log shows no whole 200 GET of %s blob %s (%d bytes)", c.repo, desc.Digest, desc.Size)
			}
		}
	}
}
