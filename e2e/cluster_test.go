//go:build linux

package e2e

import (
	"fmt"
	"os"
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
		})
	}
}
