package index

// Benchmarks of the index at cache scale (issue 4, item 8): open and ready,
// lookup latency, evicting in LRU order, resident memory.
//
//	go test -run '^$' -bench Index100k -benchtime 1x ./cache/index/      # quick, by default
//	go test -run '^$' -bench Index1M -benchtime 1x -timeout 30m ./cache/index/
//
// The 1M variant runs only when asked for by name (-bench with "1M" in it)
// or with WHARF_BENCH_1M=1, so `go test -bench .` stays quick. Each
// top-level benchmark builds its index once, in a temp dir, and its
// sub-benchmarks share it (eviction works on a copy). Use -benchtime 1x:
// each iteration already takes a fixed sample (5 opens, 200,000 lookups,
// one eviction of a tenth of the records).
//
// WHARF_BENCH_DIR=dir keeps the built index there and reuses it: to
// compare two versions on the same data, or to measure this one on an
// index an older version wrote (JSON records, LRU keys without values).
//
// This is an internal test file (the fixture writes through unexported
// helpers); "evict" runs cache.Lifecycle's eviction through a hook that
// evict_bench_test.go, in package index_test, sets.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wharf-registry/wharf/oci"
)

// bench1MEnv runs the 1M benchmarks without naming them in -bench.
const bench1MEnv = "WHARF_BENCH_1M"

// benchDirEnv keeps the built indexes in that directory and reuses them
// in later runs (profiling, comparing changes) instead of a temp dir.
const benchDirEnv = "WHARF_BENCH_DIR"

// rssChildEnv tells TestIndexRSSChild which index to open.
const rssChildEnv = "WHARF_INDEX_RSS_DIR"

func BenchmarkIndex100k(b *testing.B) { benchIndex(b, 100_000) }

func BenchmarkIndex1M(b *testing.B) {
	if os.Getenv(bench1MEnv) != "1" && !strings.Contains(benchFlag(), "1M") {
		b.Skipf("builds a 1,000,000-record index (about a minute); run with -bench Index1M or %s=1", bench1MEnv)
	}
	benchIndex(b, 1_000_000)
}

func benchFlag() string {
	if f := flag.Lookup("test.bench"); f != nil {
		return f.Value.String()
	}
	return ""
}

// benchFixture is a built index on disk and the digests it holds.
type benchFixture struct {
	dir     string
	digests []oci.Digest
}

func benchIndex(b *testing.B, n int) {
	fx := buildBenchFixture(b, n)
	k := n / 10
	b.Run("open", func(b *testing.B) { benchOpen(b, fx) })
	b.Run("lookup", func(b *testing.B) { benchLookup(b, fx) })
	b.Run("evict", func(b *testing.B) { benchEvict(b, fx, k) })
	b.Run("memory", func(b *testing.B) { benchMemory(b, fx) })
}

// benchDigest is the i-th record's digest: distinct, and cheap to recompute.
func benchDigest(i int) oci.Digest {
	return oci.FromBytes([]byte("wharf bench blob " + strconv.Itoa(i)))
}

// buildBenchFixture writes n evictable blob records of origin "hub", each
// linked in one of 5,000 repositories, with sizes from 1 KiB to 64 MiB and
// last-access times spread over 90 days, through the same PutBlob and
// LinkBlob calls the server uses, in large transactions.
func buildBenchFixture(b *testing.B, n int) *benchFixture {
	b.Helper()
	fx := &benchFixture{dir: filepath.Join(b.TempDir(), "index"), digests: make([]oci.Digest, n)}
	for i := range n {
		fx.digests[i] = benchDigest(i)
	}
	if keep := os.Getenv(benchDirEnv); keep != "" {
		fx.dir = filepath.Join(keep, fmt.Sprintf("index-%d", n))
		if _, err := os.Stat(filepath.Join(fx.dir, "BENCH-COMPLETE")); err == nil {
			b.Logf("reusing the %d-record index in %s", n, fx.dir)
			return fx
		}
		os.RemoveAll(fx.dir)
	}
	x, err := Open(fx.dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	spread := int64(90 * 24 * time.Hour)
	recs := make([]BlobRecord, n)
	for i := range n {
		recs[i] = BlobRecord{
			Digest:     fx.digests[i],
			Size:       1<<10 + rng.Int64N(64<<20),
			MediaType:  "application/vnd.oci.image.layer.v1.tar+gzip",
			Created:    base,
			LastAccess: base.Add(time.Duration(rng.Int64N(spread))),
			Origin:     "hub",
			Hits:       rng.Int64N(100),
		}
	}
	start := time.Now()
	batch := 2000
	for i := 0; i < n; {
		j := min(i+batch, n)
		err := x.Update(context.Background(), func(tx Txn) error {
			for k := i; k < j; k++ {
				if err := tx.PutBlob(recs[k]); err != nil {
					return err
				}
				if err := tx.LinkBlob(fmt.Sprintf("hub/library/img%d", k%5000), recs[k].Digest); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, badger.ErrTxnTooBig) && batch > 100 {
			batch /= 2
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		i = j
	}
	if err := x.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built a %d-record index in %s (%d records per transaction), %s on disk",
		n, time.Since(start).Round(time.Millisecond), batch, benchMiB(benchDiskUsage(fx.dir)))
	if os.Getenv(benchDirEnv) != "" {
		if err := os.WriteFile(filepath.Join(fx.dir, "BENCH-COMPLETE"), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return fx
}

// benchOpen measures Open plus the first read, the time until a restarted
// server could answer (page cache warm), five times per iteration.
func benchOpen(b *testing.B, fx *benchFixture) {
	var times []time.Duration
	for b.Loop() {
		for range 5 {
			start := time.Now()
			x, err := Open(fx.dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			benchLookupOne(b, x, fx.digests[len(fx.digests)/2])
			times = append(times, time.Since(start))
			b.StopTimer()
			if err := x.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	slices.Sort(times)
	var sum time.Duration
	for _, t := range times {
		sum += t
	}
	b.ReportMetric(float64(sum.Microseconds())/1000/float64(len(times)), "ms/open-mean")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "ms/open-max")
}

// benchLookup measures Blob(d) for random known digests, one read
// transaction each, as the serving path does: 200,000 per iteration.
func benchLookup(b *testing.B, fx *benchFixture) {
	x, err := Open(fx.dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	rng := rand.New(rand.NewPCG(2, 2))
	// The first lookups load table indexes and blocks; they are not what
	// a running server sees.
	for range 1000 {
		benchLookupOne(b, x, fx.digests[rng.IntN(len(fx.digests))])
	}
	const sample = 200_000
	var lat []time.Duration
	for b.Loop() {
		lat = lat[:0]
		for range sample {
			d := fx.digests[rng.IntN(len(fx.digests))]
			start := time.Now()
			benchLookupOne(b, x, d)
			lat = append(lat, time.Since(start))
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1000 }
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	b.ReportMetric(float64(sum.Nanoseconds())/1000/float64(len(lat)), "µs-mean")
	b.ReportMetric(pct(0.50), "µs-p50")
	b.ReportMetric(pct(0.99), "µs-p99")
	b.ReportMetric(pct(0.999), "µs-p99.9")
}

func benchLookupOne(b *testing.B, x *Badger, d oci.Digest) {
	err := x.View(func(tx Txn) error {
		r, err := tx.Blob(d)
		if err == nil && r.Digest != d {
			err = fmt.Errorf("lookup of %s returned %s", d, r.Digest)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// EvictAsServer evicts every blob last read before `before` from x the
// way a server does: through cache.Lifecycle, with a blob store in
// storeDir. It is set by evict_bench_test.go, in package index_test,
// which may import package cache (this file, inside package index,
// cannot).
var EvictAsServer func(ctx context.Context, x Index, storeDir string, before time.Time) (int, error)

// benchEvict evicts the k least recently used records from a fresh copy
// of the index, as cache.Lifecycle does ("wharf cache evict
// --unused-for"): windows of candidates from the LRU order, claimed, the
// records dropped a batch per transaction, then the files. The store
// holds no files, so what is measured is the index's share and the
// (failing) unlink calls.
func benchEvict(b *testing.B, fx *benchFixture, k int) {
	if EvictAsServer == nil {
		b.Skip("evict_bench_test.go did not set EvictAsServer")
	}
	var total time.Duration
	runs := 0
	for b.Loop() {
		b.StopTimer()
		tmp := b.TempDir()
		dir := filepath.Join(tmp, "index")
		if err := benchCopyDir(fx.dir, dir); err != nil {
			b.Fatal(err)
		}
		x, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		before := benchUsage(b, x)
		oldest, cutoff := benchOldest(b, x, k)
		b.StartTimer()
		start := time.Now()
		evicted, err := EvictAsServer(context.Background(), x, filepath.Join(tmp, "store"), cutoff)
		total += time.Since(start)
		runs++
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		after := benchUsage(b, x)
		if evicted != k || before.Count-after.Count != int64(k) || before.Bytes-after.Bytes != oldest.Bytes {
			b.Fatalf("evicted %d (usage %d blobs/%d bytes → %d/%d), want the %d oldest (%d bytes)",
				evicted, before.Count, before.Bytes, after.Count, after.Bytes, k, oldest.Bytes)
		}
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(tmp)
		b.StartTimer()
	}
	b.ReportMetric(float64(k), "entries")
	b.ReportMetric(total.Seconds()/float64(runs), "s/evict")
	b.ReportMetric(float64(total.Microseconds())/float64(runs)/float64(k), "µs/entry")
}

func benchUsage(b *testing.B, x *Badger) Usage {
	var u Usage
	if err := x.View(func(tx Txn) error {
		var err error
		u, err = tx.Usage("hub")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return u
}

// benchOldest sums the k least recently used records, to check that
// eviction removes exactly those, and returns the last access of the one
// after them: evicting what was read before it evicts those k.
func benchOldest(b *testing.B, x *Badger, k int) (Usage, time.Time) {
	var u Usage
	var cutoff time.Time
	if err := x.View(func(tx Txn) error {
		return tx.EachLeastRecent(time.Time{}, func(d oci.Digest, at time.Time) (bool, error) {
			if u.Count == int64(k) {
				cutoff = at
				return false, nil
			}
			r, err := tx.Blob(d)
			u.Bytes += r.Size
			u.Count++
			return true, err
		})
	}); err != nil {
		b.Fatal(err)
	}
	return u, cutoff
}

// benchMemory opens the index in a child process (this one still holds
// what building the index cost) and reports the child's resident memory
// after opening and after lookups.
func benchMemory(b *testing.B, fx *benchFixture) {
	var res map[string]float64
	for b.Loop() {
		b.StopTimer()
		cmd := exec.Command(os.Args[0], "-test.run=^TestIndexRSSChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), rssChildEnv+"="+fx.dir, "WHARF_INDEX_RSS_N="+strconv.Itoa(len(fx.digests)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		res = map[string]float64{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 3 && f[0] == "rss:" {
				v, _ := strconv.ParseFloat(f[2], 64)
				res[f[1]] = v
			}
		}
		if len(res) == 0 {
			b.Fatalf("child printed no figures:\n%s", out)
		}
		b.StartTimer()
	}
	for _, k := range []string{"open", "lookups", "hwm", "anon", "file"} {
		b.ReportMetric(res[k], "MiB-"+k)
	}
	b.Logf("child: RSS %.0f MiB before opening, %.0f MiB open and ready, %.0f MiB after 100k lookups and an LRU scan (%.0f MiB anonymous, of which Go heap in use %.0f; %.0f MiB mapped files); peak %.0f MiB",
		res["baseline"], res["open"], res["lookups"], res["anon"], res["goheap"], res["file"], res["hwm"])
}

// TestIndexRSSChild is benchMemory's child; it does nothing in a normal
// test run.
func TestIndexRSSChild(t *testing.T) {
	dir := os.Getenv(rssChildEnv)
	if dir == "" {
		t.Skip("run by the memory benchmark")
	}
	n, _ := strconv.Atoi(os.Getenv("WHARF_INDEX_RSS_N"))
	fmt.Printf("rss: baseline %.1f\n", procStatusMiB(t, "VmRSS"))
	x, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.View(func(tx Txn) error { _, err := tx.Blob(benchDigest(n / 2)); return err }); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rss: open %.1f\n", procStatusMiB(t, "VmRSS"))
	rng := rand.New(rand.NewPCG(3, 3))
	for range 100_000 {
		d := benchDigest(rng.IntN(n))
		if err := x.View(func(tx Txn) error { _, err := tx.Blob(d); return err }); err != nil {
			t.Fatal(err)
		}
	}
	// What an eviction pass reads: the front of the LRU order.
	seen := 0
	if err := x.View(func(tx Txn) error {
		return tx.EachLeastRecent(time.Time{}, func(oci.Digest, time.Time) (bool, error) {
			seen++
			return seen < 100_000, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rss: lookups %.1f\n", procStatusMiB(t, "VmRSS"))
	fmt.Printf("rss: hwm %.1f\n", procStatusMiB(t, "VmHWM"))
	// Resident memory mixes the Go heap and caches with pages of Badger's
	// memory-mapped tables and logs, which the kernel can drop.
	fmt.Printf("rss: anon %.1f\n", procStatusMiB(t, "RssAnon"))
	fmt.Printf("rss: file %.1f\n", procStatusMiB(t, "RssFile")+procStatusMiB(t, "RssShmem"))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("rss: goheap %.1f\n", float64(ms.HeapInuse)/(1<<20))
}

// procStatusMiB reads a "kB" field of /proc/self/status in MiB.
func procStatusMiB(t testing.TB, field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func benchMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// benchDiskUsage is the space dir's files take (Badger's logs are sparse
// files: their apparent size says little).
func benchDiskUsage(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && ok && fi.Mode().IsRegular() {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// copyDir copies a closed Badger directory (flat: no subdirectories).
func benchCopyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" || e.Name() == "BENCH-COMPLETE" {
			continue
		}
		if err := benchCopyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func benchCopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
