//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/minio/minio-go/v7"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestClusterMigrate fills a single-box data dir through a real wharf
// serve (pushes to a hosted repository, a proxied image pulled from a
// Distribution origin), stops it, copies it into fresh cluster engines
// with wharf migrate, and pulls everything, every layer, through two
// replicas; a second migrate copies nothing.
func TestClusterMigrate(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	bin := harness.BuildWharf(t)
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	proxied := pushLargeImage(t, origin.Addr+"/library/app:1", 3<<20)
	relay := harness.StartRelay(t, origin.URL)
	rest := fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\n%s", relay.URL, clusterHosted)

	box := harness.StartWharf(t, bin, "listen: {{.Listen}}\ndata_dir: {{.DataDir}}\n"+rest)
	hosted := map[string]v1.Image{}
	for i, repoTag := range []string{"team/app:v1", "team/app:v2", "team/tools:latest", "other/svc:1.0"} {
		img, err := random.Image(int64(256<<10*(i+1)), 3)
		if err != nil {
			t.Fatal(err)
		}
		harness.Push(t, box.Addr+"/"+repoTag, img)
		hosted[repoTag] = img
	}
	sameImage(t, "library/app:1", proxied, harness.PullImage(t, box.Addr+"/library/app:1"))
	for _, b := range blobsOf(t, proxied) {
		waitLogged(t, box, `msg="cached blob"`, "digest="+b.Digest.String())
	}

	if out, err := box.Run("cache", "pin", "library/app:1", "--data-dir", box.DataDir); err != nil {
		t.Fatalf("wharf cache pin: %v\n%s", err, out)
	}

	c := harness.StartClusterEngines(t)
	cfg := filepath.Join(t.TempDir(), "cluster.yml")
	if err := os.WriteFile(cfg, []byte(c.Keys()+rest), 0o600); err != nil {
		t.Fatal(err)
	}
	// The data dir lock: no migration while the server runs.
	if out, err := box.Run("migrate", "--to-config", cfg, "--data-dir", box.DataDir); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("migrate while wharf serves the data dir: %v\n%s", err, out)
	}
	if err := box.Stop(); err != nil {
		t.Fatalf("stopping the single box: %v", err)
	}
	// As an interrupted run would leave it: one blob already in the bucket.
	layer := blobsOf(t, proxied)[1].Digest.Hex
	if _, err := bucketClient(t, c).FPutObject(t.Context(), c.Bucket, blobKey(c, layer),
		filepath.Join(box.DataDir, "blobs", "sha256", layer[:2], layer), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := box.Run("migrate", "--to-config", cfg, "--data-dir", box.DataDir)
	t.Logf("wharf migrate:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "done:") || strings.Contains(out, " 0 copied") || !strings.Contains(out, ", 1 already in bucket") ||
		!strings.Contains(out, "pins 3 written") {
		t.Errorf("first migrate did not copy all but the blob already there:\n%s", out)
	}

	r1 := c.StartReplica(t, bin, rest)
	r2 := c.StartReplica(t, bin, rest)
	for _, r := range []*harness.Wharf{r1, r2} {
		for repoTag, img := range hosted {
			ref := r.Addr + "/" + repoTag
			sameImage(t, ref, img, harness.PullImage(t, ref))
		}
		ref := r.Addr + "/library/app:1"
		sameImage(t, ref, proxied, harness.PullImage(t, ref))
		repo, err := name.NewRepository(r.Addr+"/team/app", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		tags, err := remote.List(repo, remote.WithContext(t.Context()))
		if err != nil || !slices.Equal(tags, []string{"v1", "v2"}) {
			t.Errorf("tags of team/app through %s: %v, %v; want [v1 v2]", r.Addr, tags, err)
		}
		if out, err := r.Run("cache", "stats", "--data-dir", r.DataDir); err != nil || !strings.Contains(out, "pinned digests:  3") {
			t.Errorf("wharf cache stats on %s: %v\n%s", r.Addr, err, out)
		}
	}
	// The proxied blobs came from the bucket, not the origin again.
	for _, b := range blobsOf(t, proxied) {
		if n, _ := relay.Count("GET", "/v2/library/app/blobs/"+b.Digest.String()); n != 1 {
			t.Errorf("the origin served %s %d times, want once (before the migration)", b.Digest, n)
		}
	}

	out, err = box.Run("migrate", "--to-config", cfg, "--data-dir", box.DataDir)
	t.Logf("wharf migrate, again:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "nothing to copy") {
		t.Errorf("second migrate copied something:\n%s", out)
	}
}
