//go:build linux

package pgindex_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/oci"
)

var benchRecords = flag.Int("pgindex.records", 1_000_000, "blob records and tags BenchmarkPGLookup builds")

// BenchmarkPGLookup looks up a blob record and a tag, each in a View of
// its own as the registry does, among -pgindex.records of each (built
// with COPY), and reports the median and 99th percentile of one lookup.
func BenchmarkPGLookup(b *testing.B) {
	url := newDB(b)
	x, err := pgindex.Open(context.Background(), url, pgindex.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	n := *benchRecords
	start := time.Now()
	ds := buildRecords(b, url, n)
	build := time.Since(start)
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		i := rng.IntN(n)
		t0 := time.Now()
		err := x.View(func(tx index.Txn) error {
			if _, err := tx.Blob(ds[i]); err != nil {
				return err
			}
			return nil
		})
		if err == nil {
			err = x.View(func(tx index.Txn) error {
				_, err := tx.Tag(benchRepo(i), benchTag(i))
				return err
			})
		}
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(build.Seconds(), "build-s") // after ResetTimer, which drops metrics
}

func benchRepo(i int) string { return fmt.Sprintf("lib/app%d", i%1000) }
func benchTag(i int) string  { return fmt.Sprintf("v%d", i) }

// buildRecords writes n blob records, each tagged once, straight into the
// tables with COPY (PutBlob one by one would take an hour), then sets the
// usage counter as PutBlob would have.
func buildRecords(b *testing.B, url string, n int) []oci.Digest {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	ds := make([]oci.Digest, n)
	for i := range ds {
		ds[i] = oci.FromBytes(fmt.Appendf(nil, "blob %d", i))
	}
	now := time.Now().UnixNano()
	_, err = c.CopyFrom(ctx, pgx.Identifier{"blobs"}, []string{"digest", "size", "media_type", "origin", "created", "last_access", "hits"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return []any{string(ds[i]), int64(1000 + i), "application/vnd.oci.image.layer.v1.tar+gzip", "hub", now, now + int64(i), int64(0)}, nil
		}))
	if err != nil {
		b.Fatal(err)
	}
	_, err = c.CopyFrom(ctx, pgx.Identifier{"tags"}, []string{"repo", "tag", "digest"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{benchRepo(i), benchTag(i), string(ds[i])}, nil }))
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO usage (origin, bytes, blobs) SELECT origin, sum(size), count(*) FROM blobs GROUP BY origin",
		"VACUUM ANALYZE blobs", "VACUUM ANALYZE tags",
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	return ds
}
