//go:build linux

package e2e

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/jackc/pgx/v5"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// bucketBytes is the size of the committed blobs in the bucket, read
// from versitygw's posix directory.
func bucketBytes(t *testing.T, c *harness.Cluster) int64 {
	t.Helper()
	var n int64
	root := filepath.Join(c.S3.Dir, c.Bucket, c.Prefix, "blobs")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterEvictionByOneReplica: three replicas share a 300 MiB cache
// budget; images well over it pulled through all three leave the bucket
// under the budget, evicted by the one replica that leads. Then hosted GC
// runs on one replica while another takes pushes: every pushed image
// stays complete.
func TestClusterEvictionByOneReplica(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	bin := harness.BuildWharf(t)
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	const images, layer = 6, 80 << 20
	var imgs []v1.Image
	for i := range images {
		imgs = append(imgs, pushLargeImage(t, fmt.Sprintf("%s/library/big%d:1", origin.Addr, i), layer))
	}
	c := harness.StartClusterEngines(t)
	const budget = 300 << 20
	rest := fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\ncache:\n  max_size: 300MiB\n%s", origin.URL, clusterHosted)
	var rs []*harness.Wharf
	for range 3 {
		rs = append(rs, c.StartReplica(t, bin, rest))
	}
	for i, img := range imgs {
		r := rs[i%3]
		ref := fmt.Sprintf("%s/library/big%d:1", r.Addr, i)
		sameImage(t, ref, img, harness.PullImage(t, ref))
		for _, b := range blobsOf(t, img) {
			waitLogged(t, r, `msg="cached blob"`, "digest="+b.Digest.String())
		}
	}
	total := int64(images * layer)
	deadline := time.Now().Add(2 * time.Minute)
	for n := bucketBytes(t, c); n >= budget; n = bucketBytes(t, c) {
		if time.Now().After(deadline) {
			t.Fatalf("after pulling %d MiB the bucket still holds %d MiB, over the 300 MiB budget", total>>20, n>>20)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("pulled %d MiB through 3 replicas; the bucket holds %d MiB (budget 300 MiB)", total>>20, bucketBytes(t, c)>>20)
	var evictors, leaders []string
	for _, r := range rs {
		if strings.Contains(r.Logs(), `msg="evicted cached content"`) {
			evictors = append(evictors, r.Addr)
		}
		if strings.Contains(r.Logs(), "is now the leader") {
			leaders = append(leaders, r.Addr)
		}
	}
	if len(evictors) != 1 || len(leaders) != 1 || evictors[0] != leaders[0] {
		t.Errorf("replicas that evicted: %v, that led: %v; want the same one, once", evictors, leaders)
	}

	// Hosted GC on replica 1 while replica 2 takes pushes.
	type pushed struct {
		repoTag string
		img     v1.Image
	}
	var (
		mu     sync.Mutex
		pushes []pushed
	)
	done := make(chan error, 1)
	go func() {
		for i := range 12 {
			img, err := random.Image(256<<10, 3)
			if err != nil {
				done <- err
				return
			}
			repoTag := fmt.Sprintf("team/gc%d:v%d", i%3, i)
			ref, err := name.ParseReference(rs[1].Addr+"/"+repoTag, name.Insecure)
			if err == nil {
				err = remote.Write(ref, img)
			}
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			pushes = append(pushes, pushed{repoTag, img})
			mu.Unlock()
		}
		done <- nil
	}()
	gcs := 0
	for pushing := true; pushing || gcs < 3; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("push through replica 2: %v", err)
			}
			pushing = false
		default:
		}
		if out, err := rs[0].Run("gc", "--data-dir", rs[0].DataDir); err != nil {
			t.Fatalf("wharf gc on replica 1: %v\n%s", err, out)
		}
		gcs++
	}
	t.Logf("%d collections on replica 1 while %d images were pushed through replica 2", gcs, len(pushes))
	for _, p := range pushes {
		ref := rs[2].Addr + "/" + p.repoTag
		sameImage(t, ref, p.img, harness.PullImage(t, ref))
	}

	// Collections run one at a time across the cluster: while another
	// session holds the GC lock, as a collecting replica would, wharf gc
	// on any replica says one is running.
	conn, err := pgx.Connect(t.Context(), c.PG.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", pgindex.LockGC); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if out, err := r.Run("gc", "--data-dir", r.DataDir); err == nil || !strings.Contains(out, "already running") {
			t.Errorf("wharf gc on %s while another replica collects: %v\n%s", r.Addr, err, out)
		}
	}
	if _, err := conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", pgindex.LockGC); err != nil {
		t.Fatal(err)
	}
	if out, err := rs[2].Run("gc", "--data-dir", rs[2].DataDir); err != nil {
		t.Errorf("wharf gc once the lock is free: %v\n%s", err, out)
	}
}
