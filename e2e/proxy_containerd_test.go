//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestProxyContainerd pulls with containerd through wharf as its hosts.toml
// mirror for two registries: docker.io (containerd asks with ?ns=docker.io,
// which must reach the default proxy) and registry.example.com (?ns= that
// host, which must reach the proxy that names it among its aliases). Both
// origins hold both repositories with different content, so content from
// the wrong upstream shows as the wrong digest.
func TestProxyContainerd(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", "containerd", "ctr", harness.BusyboxPath)

	origin1 := harness.StartDistribution(t, harness.DistributionOptions{})
	origin2 := harness.StartDistribution(t, harness.DistributionOptions{})
	busybox := harness.BusyboxImage(t)
	busyboxDigest := harness.Push(t, origin1.Addr+"/library/busybox:latest", busybox)
	decoyBusybox := harness.Push(t, origin2.Addr+"/library/busybox:latest", withRandomLayer(t, busybox, 32<<10))
	img := withRandomLayer(t, busybox, 128<<10)
	imgDigest := harness.Push(t, origin2.Addr+"/team2/img:1", img)
	decoyImg := harness.Push(t, origin1.Addr+"/team2/img:1", withRandomLayer(t, busybox, 128<<10))

	w := startProxyWharf(t, fmt.Sprintf(`listen: {{.Listen}}
data_dir: ./data
proxies:
  - name: hub
    upstream: %s
    default: true
  - name: other
    upstream: %s
    aliases: ["registry.example.com"]
hosted:
  - name: team
`, origin1.URL, origin2.URL))

	c := harness.StartContainerd(t)
	hosts := c.HostsDir(t, map[string][]string{
		"docker.io":            {w.URL},
		"registry.example.com": {w.URL},
	})
	ctr := func(args ...string) string {
		t.Helper()
		out, err := c.Ctr(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	ctr("images", "pull", "--hosts-dir", hosts, "docker.io/library/busybox:latest")
	ctr("images", "pull", "--hosts-dir", hosts, "registry.example.com/team2/img:1")

	got := map[string]string{} // ref → digest, from `ctr images ls`
	for _, line := range strings.Split(ctr("images", "ls"), "\n")[1:] {
		if f := strings.Fields(line); len(f) >= 3 {
			got[f[0]] = f[2]
		}
	}
	for ref, want := range map[string]v1.Hash{
		"docker.io/library/busybox:latest": busyboxDigest,
		"registry.example.com/team2/img:1": imgDigest,
	} {
		if got[ref] != want.String() {
			t.Errorf("containerd has %s as %q, want %s (from the right origin; the decoys are %s and %s)",
				ref, got[ref], want, decoyBusybox, decoyImg)
		}
	}

	// containerd named the registry in ?ns= and wharf served it from there.
	for _, p := range []struct{ repo, ns string }{
		{"library/busybox", "docker.io"},
		{"team2/img", "registry.example.com"},
	} {
		found := false
		for _, l := range accessLog(w, "/v2/"+p.repo+"/manifests/") {
			if strings.Contains(l.Path, "ns="+p.ns) && l.Status == http.StatusOK {
				found = true
			}
		}
		if !found {
			t.Errorf("wharf's access log has no 200 for /v2/%s/manifests/...?ns=%s:\n%s", p.repo, p.ns, w.LogTail(30))
		}
	}
	for _, d := range blobsOf(t, img) {
		if !waitCached(w, d.Digest) {
			t.Errorf("team2/img blob %s is not in wharf's data dir", d.Digest)
		}
	}

	// The same routing seen with plain HTTP: ns picks the upstream, the
	// answer names it in OCI-Namespace, and an unknown ns gets NAME_UNKNOWN
	// rather than anybody's content.
	ctx := t.Context()
	for _, tc := range []struct {
		path, ns   string
		status     int
		digest     v1.Hash // expected Docker-Content-Digest, if 200
		code       string  // expected OCI error code, if not 200
		namespaced bool    // OCI-Namespace expected
	}{
		{"team2/img/manifests/1", "registry.example.com", http.StatusOK, imgDigest, "", true},
		{"team2/img/manifests/1", "REGISTRY.EXAMPLE.COM", http.StatusOK, imgDigest, "", true},
		{"team2/img/manifests/1", origin2.Addr, http.StatusOK, imgDigest, "", true},
		{"team2/img/manifests/1", "", http.StatusOK, decoyImg, "", false}, // no ns: the default proxy
		{"other/team2/img/manifests/1", "", http.StatusOK, imgDigest, "", false},
		{"busybox/manifests/latest", "docker.io", http.StatusOK, busyboxDigest, "", true},
		{"library/busybox/manifests/latest", "index.docker.io", http.StatusOK, busyboxDigest, "", true},
		{"library/busybox/manifests/latest", "registry.example.com", http.StatusOK, decoyBusybox, "", true},
		{"library/busybox/manifests/latest", "nowhere.example", http.StatusNotFound, v1.Hash{}, "NAME_UNKNOWN", false},
		{"team2/img/blobs/" + layerDigest(t, img).String(), "nowhere.example", http.StatusNotFound, v1.Hash{}, "NAME_UNKNOWN", false},
	} {
		url := w.URL + "/v2/" + tc.path
		if tc.ns != "" {
			url += "?ns=" + tc.ns
		}
		res := fetch(ctx, url, 30*time.Second, "Accept", manifestAccept)
		if res.Err != nil {
			t.Errorf("GET %s: %v", url, res.Err)
			continue
		}
		if res.Status != tc.status {
			t.Errorf("GET %s: %d, want %d: %s", url, res.Status, tc.status, res.Body)
			continue
		}
		if tc.status == http.StatusOK {
			if d := res.Header.Get("Docker-Content-Digest"); d != tc.digest.String() {
				t.Errorf("GET %s: digest %s, want %s", url, d, tc.digest)
			}
		} else {
			if code := ociCode(res.Body); code != tc.code {
				t.Errorf("GET %s: error code %q, want %s: %s", url, code, tc.code, res.Body)
			}
			if strings.Contains(string(res.Body), "layers") {
				t.Errorf("GET %s: an error answer carries content: %s", url, res.Body)
			}
		}
		if got := res.Header.Get("OCI-Namespace"); tc.namespaced && got != tc.ns {
			t.Errorf("GET %s: OCI-Namespace %q, want %q", url, got, tc.ns)
		}
	}
}

// layerDigest is the digest of an image's last layer (its own, for images
// made with withRandomLayer).
func layerDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[len(m.Layers)-1].Digest
}
