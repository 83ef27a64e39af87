//go:build linux

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// bucketClient reaches the cluster's S3 server directly.
func bucketClient(t *testing.T, c *harness.Cluster) *minio.Client {
	t.Helper()
	mc, err := minio.New(strings.TrimPrefix(c.S3.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(c.S3.AccessKey, c.S3.SecretKey, ""), Region: c.S3.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// blobKey is where storage/s3 keeps the sha256 blob of hex digest h.
func blobKey(c *harness.Cluster, h string) string {
	return c.Prefix + "blobs/sha256/" + h[:2] + "/" + h
}

// TestClusterFsck runs wharf fsck --config on a cluster while a replica
// serves: a clean cluster has no problems; then a corrupt object, a
// record whose object is gone, an object no record knows and an
// unfinished multipart upload are each reported, and repaired.
func TestClusterFsck(t *testing.T) {
	skipShortE2E(t)
	bin := harness.BuildWharf(t)
	c := harness.StartClusterEngines(t)
	r := c.StartReplica(t, bin, clusterHosted)
	var layers []string // one layer of each image
	for _, repo := range []string{"team/a", "team/b", "team/c"} {
		img, err := random.Image(256<<10, 2)
		if err != nil {
			t.Fatal(err)
		}
		harness.Push(t, r.Addr+"/"+repo+":1", img)
		layers = append(layers, blobsOf(t, img)[1].Digest.Hex)
	}
	cfg := filepath.Join(t.TempDir(), "cluster.yml")
	if err := os.WriteFile(cfg, []byte(c.Keys()+clusterHosted), 0o600); err != nil {
		t.Fatal(err)
	}
	fsck := func(wantOK bool, args ...string) string {
		t.Helper()
		out, err := r.Run(append([]string{"fsck", "--config", cfg}, args...)...)
		t.Logf("wharf fsck %s:\n%s", strings.Join(args, " "), out)
		if (err == nil) != wantOK {
			t.Fatalf("wharf fsck %s: %v, want success %v", strings.Join(args, " "), err, wantOK)
		}
		return out
	}
	mustSay := func(out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("fsck output lacks %q", l)
			}
		}
	}
	out := fsck(true)
	mustSay(out, "no problems found", "unfinished multipart uploads: 0")

	object := func(h string) string {
		return filepath.Join(c.S3.Dir, c.Bucket, c.Prefix, "blobs", "sha256", h[:2], h)
	}
	// Corrupt a's layer in place, same size.
	b, err := os.ReadFile(object(layers[0]))
	if err != nil {
		t.Fatal(err)
	}
	for i := range b[:64] {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(object(layers[0]), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// b's layer vanishes.
	if err := os.Remove(object(layers[1])); err != nil {
		t.Fatal(err)
	}
	// An object no record knows, and an unfinished upload.
	mc := bucketClient(t, c)
	stray := []byte("an object no record knows")
	sum := sha256.Sum256(stray)
	strayHex := hex.EncodeToString(sum[:])
	key := func(h string) string { return blobKey(c, h) }
	ctx := context.Background()
	if _, err := mc.PutObject(ctx, c.Bucket, key(strayHex), strings.NewReader(string(stray)), int64(len(stray)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: mc}
	pending := strings.Repeat("0", 64)
	id, err := core.NewMultipartUpload(ctx, c.Bucket, key(pending), minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.PutObjectPart(ctx, c.Bucket, key(pending), id, 1, strings.NewReader("part"), 4, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}

	out = fsck(false)
	mustSay(out,
		"sha256:"+layers[0]+": content does not match its digest",
		"sha256:"+layers[1]+": index record without object in the bucket",
		"sha256:"+strayHex+": object no index record knows",
		"unfinished multipart uploads: 1, of which 0 older than 24h0m0s")
	if strings.Contains(out, "older than 24h0m0s (replicas") {
		t.Error("a young unfinished upload is reported as a problem")
	}
	out = fsck(false, "--upload-grace", "0s")
	mustSay(out, "PROBLEM 1 unfinished multipart uploads older than")

	out = fsck(true, "--repair", "--upload-grace", "0s")
	mustSay(out, "repaired 4")
	if _, err := os.Stat(object(layers[0])); !os.IsNotExist(err) {
		t.Errorf("the corrupt object is still in the bucket: %v", err)
	}
	out = fsck(true, "--upload-grace", "0s")
	mustSay(out, "no problems found", "unfinished multipart uploads: 0")
	// The replica still serves what was not damaged.
	harness.PullImage(t, r.Addr+"/team/c:1")

	// Replicas of an older wharf left the schema behind this one: fsck
	// and config check look without migrating it under them.
	if _, err := c.PG.SQL("DELETE FROM schema_migrations WHERE version > 3"); err != nil {
		t.Fatal(err)
	}
	out = fsck(false)
	mustSay(out, "the schema is at version 3", "start a replica of this version first")
	out, err = r.Run("config", "check", cfg)
	if err != nil || !strings.Contains(out, "schema at version 3: the first replica of this wharf to start migrates it") {
		t.Errorf("config check of a schema behind: %v\n%s", err, out)
	}
	if v, err := c.PG.SQL("SELECT 'version=' || max(version) FROM schema_migrations"); err != nil || !strings.Contains(v, "version=3\n") {
		t.Errorf("schema version after fsck and config check: %q %v, want 3 (untouched)", v, err)
	}
}
