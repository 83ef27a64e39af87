//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// clusterAuth is a hosted namespace that only alice may push to and pull
// from, with a users file every replica reads.
const clusterAuth = `hosted:
  - name: team
auth:
  htpasswd: %s
  rules:
    - repository: team/*
      push: [alice]
      pull: [alice]
`

// TestClusterPushWithoutAffinity: two replicas with auth behind an HTTP
// front that sends each request to the next replica, as nginx or
// HAProxy without affinity do. A token one replica issued is good on the
// other; an upload session's PATCH, GET and PUT reach the replica holding
// its bytes wherever they land; go-containerregistry and the docker
// daemon push and pull. A session whose replica has stopped is a clear
// BLOB_UPLOAD_UNKNOWN, and the forwarding header is no way around auth.
func TestClusterPushWithoutAffinity(t *testing.T) {
	skipShortE2E(t)
	pushWithoutAffinity(t, false)
}

// TestClusterPushWithoutAffinityOverTLS: the same with replicas serving
// TLS, so forwarded uploads go between replicas over HTTPS, and every
// image is read back from each replica over HTTP/2 (the docker daemon
// part runs in the plain test only).
func TestClusterPushWithoutAffinityOverTLS(t *testing.T) {
	skipShortE2E(t)
	pushWithoutAffinity(t, true)
}

func pushWithoutAffinity(t *testing.T, tlsOn bool) {
	bin := harness.BuildWharf(t)
	htp := filepath.Join(t.TempDir(), "htpasswd")
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(htp, []byte("alice:"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := harness.StartClusterEngines(t)
	rest := fmt.Sprintf(clusterAuth, htp)
	if tlsOn {
		rest += "tls:\n  mode: self-signed\n"
	}
	r1 := c.StartReplica(t, bin, rest)
	r2 := c.StartReplica(t, bin, rest)
	front := harness.StartHTTPRoundRobin(t, r1.URL, r2.URL)
	alice := remote.WithAuth(&authn.Basic{Username: "alice", Password: "alice-secret"})
	// direct reaches a replica itself, whatever its certificate.
	direct := http.DefaultClient
	if tlsOn {
		direct = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // each replica's own CA
	}
	// pullFrom reads the whole image back from replica r: over HTTP/2
	// when it serves TLS, trusting its CA.
	pullFrom := func(r *harness.Wharf, repoTag string) v1.Image {
		t.Helper()
		if !tlsOn {
			return harness.PullImage(t, r.Addr+"/"+repoTag, alice)
		}
		ca, err := os.ReadFile(filepath.Join(r.DataDir, "tls", "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		return harness.PullImageHTTPS(t, r.Addr+"/"+repoTag, ca, "", "HTTP/2.0", alice)
	}

	// go-containerregistry: the POST, PATCH and PUT of each blob land on
	// either replica.
	img := harness.RandomImage(t, harness.ImageSpec{Layers: 3, LayerSize: 1 << 20})
	ref := front.Addr + "/team/app:1"
	if err := remote.Write(harness.Ref(t, ref), img, alice); err != nil {
		t.Fatalf("push through the front: %v", err)
	}
	sameImage(t, ref, img, harness.PullImage(t, ref, alice))
	for _, r := range []*harness.Wharf{r1, r2} {
		sameImage(t, r.Addr+"/team/app:1", img, pullFrom(r, "team/app:1"))
	}
	// go-containerregistry uploads blobs concurrently, so which replica
	// each request reaches is up to the interleaving; the chunked upload
	// below alternates for sure.
	t.Logf("requests through the front: %v", front.Requests())
	// Each replica's next heartbeat counts both.
	for deadline := time.Now().Add(time.Minute); clusterMetric(t, r1, "wharf_cluster_replicas") != 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("wharf_cluster_replicas never reached 2 on replica 1")
		}
	}

	// A chunked upload by hand: every step on the other replica from the
	// one before.
	tok := bearer(t, http.DefaultClient, front.URL, "team/chunked")
	do := func(method, url string, body []byte, hdr ...string) *http.Response {
		t.Helper()
		return send(t, http.DefaultClient, tok, method, url, body, hdr...)
	}
	blob := make([]byte, 3<<20+12345)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	dg := "sha256:" + hex.EncodeToString(sum[:])
	resp := do("POST", front.URL+"/v2/team/chunked/blobs/uploads/", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %s", resp.Status)
	}
	loc := front.URL + resp.Header.Get("Location")
	chunk := 1 << 20
	for off := 0; off < 2*chunk; off += chunk {
		resp = do("PATCH", loc, blob[off:off+chunk], "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", off, off+chunk-1))
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != fmt.Sprintf("0-%d", off+chunk-1) {
			t.Fatalf("PATCH at %d: %s, Range %q", off, resp.Status, resp.Header.Get("Range"))
		}
		loc = front.URL + resp.Header.Get("Location")
	}
	resp = do("GET", loc, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != fmt.Sprintf("0-%d", 2*chunk-1) {
		t.Fatalf("upload status: %s, Range %q", resp.Status, resp.Header.Get("Range"))
	}
	// Out of order: the 416 and where to resume come back from the
	// replica holding the session.
	resp = do("PATCH", loc, blob[:10], "Content-Type", "application/octet-stream", "Content-Range", "0-9")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Range") != fmt.Sprintf("0-%d", 2*chunk-1) {
		t.Fatalf("out-of-order PATCH: %s, Range %q", resp.Status, resp.Header.Get("Range"))
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp = do("PUT", loc+sep+"digest="+dg, blob[2*chunk:], "Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("%d-%d", 2*chunk, len(blob)-1))
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT: %s %s", resp.Status, b)
	}
	for range 2 { // once from each replica, through the front
		resp = do("GET", front.URL+"/v2/team/chunked/blobs/"+dg, nil)
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
			t.Fatalf("GET of the chunked blob: %s, %d bytes, %v", resp.Status, len(got), err)
		}
	}
	// Of POST, PATCH, PATCH, GET, PATCH and PUT, sent one after the
	// other, every second one reached the replica not holding the
	// session: three were forwarded.
	// A replica counts a forward once its answer is on the way: wait for
	// the count.
	forwarded := func() float64 {
		return clusterMetric(t, r1, `wharf_cluster_upload_forwards_total{result="forwarded"}`) +
			clusterMetric(t, r2, `wharf_cluster_upload_forwards_total{result="forwarded"}`)
	}
	for deadline := time.Now().Add(time.Minute); forwarded() < 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("wharf_cluster_upload_forwards_total counts %v forwarded requests, want at least 3", forwarded())
		}
	}
	// A cancel is forwarded too.
	resp = do("POST", front.URL+"/v2/team/chunked/blobs/uploads/", nil)
	loc = front.URL + resp.Header.Get("Location")
	if resp = do("DELETE", loc, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE upload: %s", resp.Status)
	}
	if resp = do("GET", loc, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status of a cancelled upload: %s", resp.Status)
	}

	// The cluster token header without the right token is no way in: a
	// request with a wrong one is asked to log in.
	req, _ := http.NewRequest("GET", r1.URL+"/v2/team/chunked/blobs/uploads/0123456789abcdef0123456789abcdef", nil)
	req.Header.Set("Wharf-Cluster-Token", "guess")
	if resp, err := direct.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an upload request with a wrong cluster token: %s, want 401", resp.Status)
	}

	// The docker daemon: login, push and pull, every request to the next
	// replica.
	if !tlsOn {
		dockerPushWithoutAffinity(t, front, alice)
	}

	// A replica restarted on its data dir keeps the sessions it holds:
	// the rest of the push completes, whichever replica it reaches.
	tok = bearer(t, direct, r1.URL, "team/restarted")
	resp = send(t, direct, tok, "POST", r1.URL+"/v2/team/restarted/blobs/uploads/", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload on replica 1: %s", resp.Status)
	}
	path := resp.Header.Get("Location")
	resp = send(t, direct, tok, "PATCH", r1.URL+path, blob[:chunk], "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("0-%d", chunk-1))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH on replica 1: %s", resp.Status)
	}
	if err := r1.Stop(); err != nil {
		t.Fatalf("stopping replica 1: %v", err)
	}
	r1 = r1.Restart(t)
	resp = send(t, direct, tok, "PATCH", r2.URL+path, blob[chunk:2*chunk], "Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", chunk, 2*chunk-1))
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != fmt.Sprintf("0-%d", 2*chunk-1) {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PATCH through replica 2 after replica 1 restarted: %s, Range %q %s", resp.Status, resp.Header.Get("Range"), b)
	}
	resp = send(t, direct, tok, "PUT", r1.URL+path+"?digest="+dg, blob[2*chunk:], "Content-Type", "application/octet-stream",
		"Content-Range", fmt.Sprintf("%d-%d", 2*chunk, len(blob)-1))
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT on the restarted replica: %s %s", resp.Status, b)
	}

	// A session held by a replica that stopped: the client is told to
	// start again, not left with a 500 or a hang.
	tok = bearer(t, direct, r2.URL, "team/gone")
	req, _ = http.NewRequest("POST", r2.URL+"/v2/team/gone/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = direct.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload on replica 2: %s", resp.Status)
	}
	loc = resp.Header.Get("Location")
	if err := r2.Stop(); err != nil {
		t.Fatalf("stopping replica 2: %v", err)
	}
	req, _ = http.NewRequest("PATCH", r1.URL+loc, bytes.NewReader(blob[:100]))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = direct.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "BLOB_UPLOAD_UNKNOWN") || !strings.Contains(string(body), "start the push again") {
		t.Errorf("PATCH of a session whose replica stopped: %s %s", resp.Status, body)
	}
}

// dockerPushWithoutAffinity has the docker daemon log in, push, pull and
// run an image through front.
func dockerPushWithoutAffinity(t *testing.T, front *harness.HTTPRoundRobin, alice remote.Option) {
	t.Helper()
	harness.Require(t, "dockerd", "docker", "containerd", harness.BusyboxPath)
	d := harness.StartDockerd(t, nil, []string{front.Addr})
	app := withRandomLayer(t, harness.BusyboxImage(t), 2<<20)
	local := harness.StartDistribution(t, harness.DistributionOptions{})
	harness.Push(t, local.Addr+"/app:1", app)
	must := func(args ...string) string {
		t.Helper()
		out, err := d.Docker(args...)
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must("pull", local.Addr+"/app:1")
	image := front.Addr + "/team/busybox:1"
	must("tag", local.Addr+"/app:1", image)
	must("login", front.Addr, "-u", "alice", "-p", "alice-secret")
	pushOut := must("push", image)
	must("rmi", image, local.Addr+"/app:1")
	must("pull", image)
	if out := must("run", "--rm", "--network", "none", image, "sh", "-c", "echo $((6*7))"); strings.TrimSpace(out) != "42" {
		t.Errorf("docker run %s = %q", image, out)
	}
	// What docker pushed (it compresses the layers anew) reads back
	// whole through the front, every layer checked against its digest.
	pushed := harness.PullImage(t, image, alice)
	if d := digest(t, pushed).String(); !strings.Contains(pushOut, "digest: "+d) {
		t.Errorf("docker push printed another digest than the %s read back:\n%s", d, pushOut)
	}
}

// send sends one request with a bearer token and headers (name, value…);
// the body is closed when the test ends.
func send(t *testing.T, client *http.Client, tok, method, url string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// bearer logs alice in at base and returns a push and pull token for repo.
func bearer(t *testing.T, client *http.Client, base, repo string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/auth/token?service=wharf&scope=repository:"+repo+":push,pull", nil)
	req.SetBasicAuth("alice", "alice-secret")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK || tr.Token == "" {
		t.Fatalf("token from %s: %s %v", base, resp.Status, err)
	}
	return tr.Token
}
