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

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

var benchRecords = flag.Int("pgindex.records", 1_000_000, "blob records (and tags, or links) the benchmarks build")

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

// BenchmarkPGEvict evicts the least recently used tenth of
// -pgindex.records cached blobs (each linked in one of 5,000
// repositories, last read at distinct times spread over 90 days) with
// cache.Lifecycle.EvictUnusedFor, as the server does, and reports how
// long it took. The blob files do not exist: removing them is the store's
// cost, not the index's.
func BenchmarkPGEvict(b *testing.B) {
	url := newDB(b)
	x, err := pgindex.Open(context.Background(), url, pgindex.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	n := *benchRecords
	k := n / 10
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	step := int64(90*24*time.Hour) / int64(n)
	order := rng.Perm(n) // record i was last read at base + order[i]*step
	ds := make([]string, n)
	for i := range ds {
		ds[i] = string(oci.FromBytes(fmt.Appendf(nil, "blob %d", i)))
	}
	_, err = c.CopyFrom(ctx, pgx.Identifier{"blobs"}, []string{"digest", "size", "media_type", "origin", "created", "last_access", "hits"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return []any{ds[i], int64(1000 + i), "application/vnd.oci.image.layer.v1.tar+gzip", "hub", base, base + int64(order[i])*step, int64(1)}, nil
		}))
	if err == nil {
		_, err = c.CopyFrom(ctx, pgx.Identifier{"links"}, []string{"repo", "digest"},
			pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{fmt.Sprintf("hub/library/img%d", i%5000), ds[i]}, nil }))
	}
	for _, q := range []string{
		"INSERT INTO usage (origin, bytes, blobs) SELECT origin, sum(size), count(*) FROM blobs GROUP BY origin",
		"VACUUM ANALYZE blobs", "VACUUM ANALYZE links",
	} {
		if err == nil {
			_, err = c.Exec(ctx, q)
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	st, err := storage.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cutoff := time.Unix(0, base+int64(k)*step) // the k oldest were read before it
	l := cache.NewLifecycle(cache.LifecycleOptions{Index: x, Store: st, Now: func() time.Time { return cutoff }})
	var took time.Duration
	evicted := 0
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		rep, err := l.EvictUnusedFor(ctx, 0)
		if rep.Blobs > 0 { // the first run: later ones (b.Loop ramping up) find nothing left
			took += time.Since(start)
		}
		if err != nil {
			b.Fatal(err)
		}
		evicted += rep.Blobs
	}
	b.StopTimer()
	if evicted != k {
		b.Fatalf("evicted %d, want %d", evicted, k)
	}
	var u index.Usage
	if err := x.View(func(tx index.Txn) error { u, err = tx.Usage("hub"); return err }); err != nil || u.Count != int64(n-k) {
		b.Fatalf("usage after eviction: %+v, %v; want %d blobs", u, err, n-k)
	}
	b.ReportMetric(float64(k), "entries")
	b.ReportMetric(took.Seconds(), "s/evict")
}
