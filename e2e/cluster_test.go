//go:build linux

package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// Cluster mode (issue #13): replicas on one PostgreSQL and one bucket of
// a real S3 server (versitygw), each with a scratch data dir of its own.

const clusterHosted = "hosted:\n  - name: team\n  - name: other\n"

// sameImage checks that got (pulled through a replica, every layer read)
// is want: manifest digest and every layer digest.
func sameImage(t *testing.T, ref string, want, got v1.Image) {
	t.Helper()
	wd, gd := digest(t, want), digest(t, got)
	if wd != gd {
		t.Errorf("%s: manifest %s, want %s", ref, gd, wd)
	}
	wl, gl := layerDigests(t, want), layerDigests(t, got)
	if fmt.Sprint(wl) != fmt.Sprint(gl) {
		t.Errorf("%s: layers %v, want %v", ref, gl, wl)
	}
}

// TestClusterConformanceWhilePushingThroughAnother runs the OCI
// conformance suite against one replica while another takes pushes the
// whole time, then pulls every pushed image, every layer, through the
// third and the first.
func TestClusterConformanceWhilePushingThroughAnother(t *testing.T) {
	skipShortE2E(t)
	cbin := harness.ConformanceBin(t)
	bin := harness.BuildWharf(t)
	c := harness.StartClusterEngines(t)
	r1 := c.StartReplica(t, bin, clusterHosted)
	r2 := c.StartReplica(t, bin, clusterHosted)
	r3 := c.StartReplica(t, bin, clusterHosted)

	type pushed struct {
		repoTag string
		img     v1.Image
	}
	var (
		mu     sync.Mutex
		pushes []pushed
		perr   error
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 40; i++ {
			select {
			case <-stop:
				return
			default:
			}
			img, err := random.Image(512<<10, 3)
			if err == nil {
				repoTag := fmt.Sprintf("other/app%d:v%d", i%3, i)
				var ref name.Reference
				if ref, err = name.ParseReference(r2.Addr+"/"+repoTag, name.Insecure); err == nil {
					err = remote.Write(ref, img)
				}
				if err == nil {
					mu.Lock()
					pushes = append(pushes, pushed{repoTag, img})
					mu.Unlock()
					continue
				}
			}
			mu.Lock()
			perr = err
			mu.Unlock()
			return
		}
	}()
	res := harness.RunConformance(t, cbin, harness.ConformanceOptions{Registry: r1.Addr, Repo1: "team/repo1", Repo2: "team/repo2"})
	close(stop)
	<-done
	t.Logf("conformance on replica 1: %d tests, %d failures, %d errors, %d skipped; %d images pushed through replica 2 meanwhile",
		res.Tests, res.Failures, res.Errors, res.Skipped, len(pushes))
	if !res.Passed() {
		t.Error(res.Summary())
	}
	if perr != nil {
		t.Fatalf("push through replica 2: %v", perr)
	}
	if len(pushes) == 0 {
		t.Fatal("no push landed through replica 2")
	}
	for _, p := range pushes {
		for _, r := range []*harness.Wharf{r3, r1} {
			ref := r.Addr + "/" + p.repoTag
			sameImage(t, ref, p.img, harness.PullImage(t, ref))
		}
	}
}

// TestClusterProxyThroughEveryReplica pulls an image through one
// replica (a miss), then through the others: they find its blobs in the
// shared bucket and index, so the origin serves each blob once. Then the
// docker daemon pulls through two replicas behind a round-robin TCP
// front, as behind HAProxy or a Kubernetes Service.
func TestClusterProxyThroughEveryReplica(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	bin := harness.BuildWharf(t)
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	img := pushLargeImage(t, origin.Addr+"/library/app:1", 2<<20)
	relay := harness.StartRelay(t, origin.URL)
	c := harness.StartClusterEngines(t)
	rest := fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\n%s", relay.URL, clusterHosted)
	var rs []*harness.Wharf
	for range 3 {
		rs = append(rs, c.StartReplica(t, bin, rest))
	}
	for i, r := range rs {
		ref := r.Addr + "/library/app:1"
		sameImage(t, ref, img, harness.PullImage(t, ref))
		if i == 0 {
			// A client may hold a whole verified body a moment before the
			// fill has handed it to the bucket and the index: wait for that
			// state, which the next replicas read.
			for _, b := range blobsOf(t, img) {
				waitLogged(t, r, `msg="cached blob"`, "digest="+b.Digest.String())
				relay.WaitCount(t, "GET", "/v2/library/app/blobs/"+b.Digest.String(), 1)
			}
			continue
		}
		for _, b := range blobsOf(t, img) {
			if n, _ := relay.Count("GET", "/v2/library/app/blobs/"+b.Digest.String()); n != 1 {
				t.Errorf("after pulls through %d replicas the origin served %s %d times, want once", i+1, b.Digest, n)
			}
		}
	}

	harness.Require(t, "dockerd", "docker", "containerd", harness.BusyboxPath)
	busybox := harness.BusyboxImage(t)
	app := withRandomLayer(t, busybox, 256<<10)
	appDigest := harness.Push(t, origin.Addr+"/someuser/app:1.0", app)
	front := harness.StartRoundRobin(t, rs[0].Addr, rs[1].Addr)
	d := harness.StartDockerd(t, []string{"http://" + front.Addr}, []string{front.Addr})
	out, err := d.Docker("pull", "someuser/app:1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Digest: "+appDigest.String()) {
		t.Errorf("docker pull through the front does not name %s:\n%s", appDigest, out)
	}
	if out, err := d.Docker("run", "--rm", "--network", "none", "someuser/app:1.0", "sh", "-c", "echo $((6*7))"); err != nil || strings.TrimSpace(out) != "42" {
		t.Errorf("docker run someuser/app:1.0 = %q, %v", out, err)
	}
	conns := front.Connections()
	t.Logf("connections through the front: %v", conns)
	if len(conns) < 2 {
		t.Errorf("the daemon's connections all went to one replica (%v): the test did not spread them", conns)
	}
}

// waitLogged waits up to a minute for a line of w's log that has every
// one of substrs.
func waitLogged(t *testing.T, w *harness.Wharf, substrs ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		for _, line := range strings.Split(w.Logs(), "\n") {
			all := true
			for _, s := range substrs {
				all = all && strings.Contains(line, s)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in the log of %s:\n%s", substrs, w.Addr, w.LogTail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterStartErrors: wharf serve refuses to start, saying what to
// fix, when the bucket or the database cannot be used.
func TestClusterStartErrors(t *testing.T) {
	skipShortE2E(t)
	bin := harness.BuildWharf(t)
	c := harness.StartClusterEngines(t)
	keys := c.Keys()
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"wrong secret", "secret_key: " + c.S3.SecretKey, "secret_key: not-the-secret", []string{"storage.s3", "secret"}},
		{"no bucket", "bucket: " + c.Bucket, "bucket: no-such-bucket", []string{"storage.s3", "no-such-bucket"}},
		{"wrong database password", c.PG.URL, strings.Replace(c.PG.URL, harness.PostgresPassword, "wrong", 1), []string{"index.postgres", "password"}},
		{"database unreachable", c.PG.URL, strings.Replace(c.PG.URL, c.PG.Addr, harness.PickAddr(t), 1), []string{"index.postgres"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "wharf.yaml")
			y := "listen: 127.0.0.1:0\ndata_dir: " + filepath.Join(dir, "data") + "\n" + strings.Replace(keys, tc.from, tc.to, 1) + clusterHosted
			if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
				t.Fatal(err)
			}
			p := harness.StartProcess(t, "wharf", dir, []string{"PATH=/usr/bin:/bin"}, bin, "serve", "--config", cfg)
			select {
			case <-p.Exited():
			case <-time.After(2 * time.Minute):
				t.Fatalf("wharf serve still running with %s:\n%s", tc.name, p.LogTail(20))
			}
			if p.ExitErr() == nil {
				t.Errorf("wharf serve exited 0 with %s", tc.name)
			}
			log := p.Logs()
			t.Logf("%s:\n%s", tc.name, p.LogTail(3))
			for _, w := range tc.want {
				if !strings.Contains(log, w) {
					t.Errorf("with %s the log does not say %q:\n%s", tc.name, w, p.LogTail(20))
				}
			}
			if strings.Contains(log, c.S3.SecretKey) || strings.Contains(log, harness.PostgresPassword) {
				t.Errorf("the log shows a secret:\n%s", log)
			}
			// wharf config check reaches the engines too, and says the same.
			out, err := runWharf(bin, dir, "config", "check", cfg)
			if err == nil {
				t.Errorf("wharf config check passed with %s:\n%s", tc.name, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("with %s wharf config check does not say %q:\n%s", tc.name, w, out)
				}
			}
		})
	}
	// The right config: wharf config check reaches both and says so,
	// without printing a secret.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wharf.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\n"+keys+clusterHosted), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runWharf(bin, dir, "config", "check", cfg)
	t.Logf("wharf config check:\n%s", out)
	if err != nil {
		t.Fatalf("wharf config check of a working cluster config: %v", err)
	}
	for _, w := range []string{"storage.s3: bucket " + c.Bucket + " at " + c.S3.Endpoint + " answers", "index.postgres: database reachable", "is valid"} {
		if !strings.Contains(out, w) {
			t.Errorf("wharf config check does not say %q", w)
		}
	}
	if strings.Contains(out, c.S3.SecretKey) || strings.Contains(out, harness.PostgresPassword) {
		t.Errorf("wharf config check shows a secret:\n%s", out)
	}
}

// runWharf runs a short wharf command in dir and returns its output.
func runWharf(bin, dir string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestClusterRedirect: with storage.s3.redirect, blob GETs answer 307 to
// a presigned URL of the bucket and the client reads the bytes from the
// store itself; manifests still come from wharf.
func TestClusterRedirect(t *testing.T) {
	skipShortE2E(t)
	bin := harness.BuildWharf(t)
	c := harness.StartClusterEngines(t)
	c.Redirect = true
	r := c.StartReplica(t, bin, clusterHosted)
	img, err := random.Image(300<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := r.Addr + "/team/app:1"
	harness.Push(t, ref, img)
	sameImage(t, ref, img, harness.PullImage(t, ref))
	redirects := 0
	for _, l := range accessLog(r, "/v2/team/app/blobs/sha256:") {
		if l.Method == http.MethodGet {
			if l.Status != http.StatusTemporaryRedirect {
				t.Errorf("GET %s answered %d, want 307 to the store", l.Path, l.Status)
			}
			redirects++
		}
	}
	if want := len(layerDigests(t, img)) + 1; redirects < want {
		t.Errorf("%d blob GETs redirected, want at least %d (config and layers)", redirects, want)
	}
}

// clusterGet GETs url and returns the status, the OCI error code and the
// body's digest.
func clusterGet(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", url, err)
	}
	return resp.StatusCode, ociCode(b), fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// TestClusterOutages: the S3 server stopped, then PostgreSQL restarted
// under traffic. While an engine is down, clients get 503 UNAVAILABLE
// with the OCI error body (never a 500, never wrong bytes) and /readyz
// says which; once it is back, the same replica serves again without a
// restart, and nothing stored was lost.
func TestClusterOutages(t *testing.T) {
	skipShortE2E(t)
	bin := harness.BuildWharf(t)
	c := harness.StartClusterEngines(t)
	r := c.StartReplica(t, bin, clusterHosted)
	img, err := random.Image(300<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := r.Addr + "/team/app:1"
	harness.Push(t, ref, img)
	layer := layerDigests(t, img)[0]
	blob := r.URL + "/v2/team/app/blobs/" + layer.String()
	manifest := r.URL + "/v2/team/app/manifests/1"
	ready := func() int {
		resp, err := http.Get(r.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// The bucket's server stops.
	if err := c.S3.Stop(); err != nil {
		t.Fatal(err)
	}
	if st, code, _ := clusterGet(t, blob); st != http.StatusServiceUnavailable || code != "UNAVAILABLE" {
		t.Errorf("blob GET with S3 down = %d %s, want 503 UNAVAILABLE", st, code)
	}
	if err := pushErr(r.Addr+"/team/other:1", 64<<10); err == nil {
		t.Error("a push with S3 down succeeded")
	}
	if st := ready(); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz with S3 down = %d, want 503", st)
	}
	c.S3.Restart()
	if st, _, got := clusterGet(t, blob); st != http.StatusOK || got != layer.String() {
		t.Errorf("blob GET after S3 came back = %d %s", st, got)
	}
	if err := pushErr(r.Addr+"/team/other:1", 64<<10); err != nil {
		t.Errorf("push after S3 came back: %v", err)
	}

	// PostgreSQL restarts while clients pull.
	stop := make(chan struct{})
	type answer struct {
		status       int
		code, digest string
	}
	answers := make(chan answer, 1<<16)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, u := range []string{blob, manifest} {
					resp, err := http.Get(u)
					if err != nil {
						answers <- answer{status: -1, code: err.Error()}
						continue
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					a := answer{status: resp.StatusCode, code: ociCode(b)}
					if u == blob {
						a.digest = fmt.Sprintf("sha256:%x", sha256.Sum256(b))
					}
					answers <- a
				}
			}
		}()
	}
	if err := c.PG.Stop(); err != nil {
		t.Fatal(err)
	}
	if st, code, _ := clusterGet(t, manifest); st != http.StatusServiceUnavailable || code != "UNAVAILABLE" {
		t.Errorf("manifest GET with PostgreSQL down = %d %s, want 503 UNAVAILABLE", st, code)
	}
	if st := ready(); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz with PostgreSQL down = %d, want 503", st)
	}
	c.PG.Restart()
	// Back without a restart of wharf: wait for the first good answer.
	deadline := time.Now().Add(time.Minute)
	for {
		st, _, got := clusterGet(t, blob)
		if st == http.StatusOK && got == layer.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("blob GET a minute after PostgreSQL came back = %d", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(answers)
	counts := map[string]int{}
	for a := range answers {
		switch {
		case a.status == http.StatusOK && (a.digest == "" || a.digest == layer.String()):
			counts["200"]++
		case a.status == http.StatusServiceUnavailable && a.code == "UNAVAILABLE":
			counts["503"]++
		default:
			t.Errorf("during the restart a client got %d %q (digest %s)", a.status, a.code, a.digest)
		}
	}
	t.Logf("answers during the PostgreSQL restart: %v", counts)
	if ready() != http.StatusOK {
		t.Error("/readyz not 200 after both engines came back")
	}
	// Nothing stored was lost: both images pull whole.
	sameImage(t, ref, img, harness.PullImage(t, ref))
	harness.PullImage(t, r.Addr+"/team/other:1")
}

// pushErr pushes a random image of size bytes to ref and returns the error.
func pushErr(ref string, size int64) error {
	img, err := random.Image(size, 1)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img)
}

// TestClusterTagTTLOncePerCluster: a tag is revalidated upstream once
// per tag_ttl across the cluster, not once per replica: the time of the
// last check is in the shared index, so a replica that finds a fresh
// check from another one trusts it.
func TestClusterTagTTLOncePerCluster(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	const ttl = 8 * time.Second
	bin := harness.BuildWharf(t)
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	pushLargeImage(t, origin.Addr+"/library/app:1", 64<<10)
	relay := harness.StartRelay(t, origin.URL)
	c := harness.StartClusterEngines(t)
	rest := fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\n    tag_ttl: %s\n", relay.URL, ttl)
	var rs []*harness.Wharf
	for range 3 {
		rs = append(rs, c.StartReplica(t, bin, rest))
	}
	const path = "/v2/library/app/manifests/1"
	upstreamAsks := func() int {
		h, _ := relay.Count(http.MethodHead, path)
		g, _ := relay.Count(http.MethodGet, path)
		return h + g
	}
	get := func(r *harness.Wharf) {
		t.Helper()
		if st, code, _ := clusterGet(t, r.URL+path); st != http.StatusOK {
			t.Fatalf("GET %s through %s = %d %s", path, r.Addr, st, code)
		}
	}
	get(rs[0]) // a miss: the first check
	checked := time.Now()
	relay.WaitCount(t, http.MethodGet, path, 1) // recorded a moment after wharf got the answer
	first := upstreamAsks()
	get(rs[1])
	get(rs[2])
	if n := upstreamAsks(); n != first {
		t.Errorf("within the TTL of replica 1's check, replicas 2 and 3 asked the upstream %d more times, want 0", n-first)
	}
	// Past the TTL: one replica revalidates, the others trust its check.
	time.Sleep(time.Until(checked.Add(ttl + 500*time.Millisecond)))
	get(rs[1])
	relay.WaitCount(t, http.MethodHead, path, 1)
	second := upstreamAsks()
	if second != first+1 {
		t.Errorf("after the TTL the first request asked the upstream %d times, want once", second-first)
	}
	get(rs[2])
	get(rs[0])
	if n := upstreamAsks(); n != second {
		t.Errorf("after replica 2 revalidated, replicas 3 and 1 asked the upstream %d more times, want 0", n-second)
	}
}
