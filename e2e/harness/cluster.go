//go:build linux

package harness

import (
	"fmt"
	"strings"
	"testing"
)

// Cluster is wharf in cluster mode: replicas sharing one PostgreSQL
// database and one bucket of an S3 server, each with its own scratch
// data dir, all on loopback ports.
type Cluster struct {
	PG     *Postgres
	S3     *VersityGW
	Bucket string
	Prefix string
	// Redirect sets storage.s3.redirect in the replicas started next.
	Redirect bool
	Replicas []*Wharf
}

// StartClusterEngines starts PostgreSQL and versitygw with a bucket, for
// replicas the test starts with StartReplica.
func StartClusterEngines(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{PG: StartPostgres(t), S3: StartVersityGW(t), Bucket: "wharf", Prefix: "prod/"}
	c.S3.MakeBucket(c.Bucket)
	return c
}

// Keys is the storage.s3 and index.postgres part of a replica's config,
// written the way issue #13's contract writes it.
func (c *Cluster) Keys() string {
	redirect := ""
	if c.Redirect {
		redirect = "    redirect: true\n"
	}
	return fmt.Sprintf(`storage:
  s3:
    endpoint: %s
    region: %s
    bucket: %s
    prefix: %s
    access_key: %s
    secret_key: %s
%sindex:
  postgres: %s
`, c.S3.Endpoint, c.S3.Region, c.Bucket, c.Prefix, c.S3.AccessKey, c.S3.SecretKey, redirect, c.PG.URL)
}

// StartReplica starts one more replica with rest (a config template
// without listen, data_dir and the cluster keys: proxies, hosted, ...).
func (c *Cluster) StartReplica(t testing.TB, bin, rest string) *Wharf {
	t.Helper()
	tmpl := "listen: {{.Listen}}\ndata_dir: {{.DataDir}}\n" + strings.ReplaceAll(c.Keys(), "{{", "{{`{{`}}") + rest
	w := StartWharf(t, bin, tmpl)
	c.Replicas = append(c.Replicas, w)
	return w
}
