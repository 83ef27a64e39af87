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
// This is an internal test file so that "evict-proposed" can prototype a
// faster eviction (a cursor over the LRU keys and a multi-blob delete)
// next to what cache.Lifecycle does today, on the same data.

import (
	"bufio"
	"context"
	"encoding/binary"
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
	b.Run("evict-as-lifecycle", func(b *testing.B) { benchEvict(b, fx, k, evictAsLifecycle) })
	b.Run("evict-batched", func(b *testing.B) { benchEvict(b, fx, k, evictBatched) })
	b.Run("evict-proposed", func(b *testing.B) { benchEvict(b, fx, k, evictProposed) })
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
		err := x.Update(context.Background(), func(tx *Txn) error {
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

func benchLookupOne(b *testing.B, x *Index, d oci.Digest) {
	err := x.View(func(tx *Txn) error {
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

type evictMode int

const (
	// evictAsLifecycle does what cache.Lifecycle.evict and evictOne do
	// today: a read window of 256 candidates from the front of the LRU
	// order, then per blob a read transaction (record, pins) and a write
	// transaction (re-read, manifests, DeleteBlob), each synced to disk.
	evictAsLifecycle evictMode = iota
	// evictBatched is the obvious batching with today's API: a window of
	// 128 from the front of the LRU order, deleted with DeleteBlob in one
	// write transaction.
	evictBatched
	// evictProposed resumes the LRU scan after the last key it saw rather
	// than from the front (where the keys just deleted lie as tombstones),
	// and deletes a window of 1,000 in one transaction whose reads all
	// come before its writes (benchDeleteBlobs).
	evictProposed
)

// benchEvict evicts k least-recently-used records from a fresh copy of
// the index; the index's share of an eviction (unlinking files is not
// measured).
func benchEvict(b *testing.B, fx *benchFixture, k int, mode evictMode) {
	var total time.Duration
	runs := 0
	for b.Loop() {
		b.StopTimer()
		dir := filepath.Join(b.TempDir(), "index")
		if err := benchCopyDir(fx.dir, dir); err != nil {
			b.Fatal(err)
		}
		x, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		before := benchUsage(b, x)
		oldest := benchOldest(b, x, k)
		b.StartTimer()
		start := time.Now()
		var evicted int
		switch mode {
		case evictAsLifecycle:
			evicted = evictLRUAsLifecycle(b, x, k)
		case evictBatched:
			evicted = evictLRUBatched(b, x, k, 128)
		case evictProposed:
			evicted = evictLRUProposed(b, x, k, 1000)
		}
		total += time.Since(start)
		runs++
		b.StopTimer()
		after := benchUsage(b, x)
		if evicted != k || before.Count-after.Count != int64(k) || before.Bytes-after.Bytes != oldest.Bytes {
			b.Fatalf("evicted %d (usage %d blobs/%d bytes → %d/%d), want the %d oldest (%d bytes)",
				evicted, before.Count, before.Bytes, after.Count, after.Bytes, k, oldest.Bytes)
		}
		if err := x.Close(); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(k), "entries")
	b.ReportMetric(total.Seconds()/float64(runs), "s/evict")
	b.ReportMetric(float64(total.Microseconds())/float64(runs)/float64(k), "µs/entry")
}

func benchUsage(b *testing.B, x *Index) Usage {
	var u Usage
	if err := x.View(func(tx *Txn) error {
		var err error
		u, err = tx.Usage("hub")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return u
}

// benchOldest sums the k least recently used records, to check that each
// mode evicts exactly those.
func benchOldest(b *testing.B, x *Index, k int) Usage {
	var u Usage
	if err := x.View(func(tx *Txn) error {
		return tx.EachLeastRecent(time.Time{}, func(d oci.Digest, _ time.Time) (bool, error) {
			r, err := tx.Blob(d)
			u.Bytes += r.Size
			u.Count++
			return u.Count < int64(k), err
		})
	}); err != nil {
		b.Fatal(err)
	}
	return u
}

func evictLRUAsLifecycle(b *testing.B, x *Index, k int) int {
	ctx := context.Background()
	done := 0
	for done < k {
		var cands []oci.Digest
		if err := x.View(func(tx *Txn) error {
			return tx.EachLeastRecent(time.Time{}, func(d oci.Digest, _ time.Time) (bool, error) {
				cands = append(cands, d)
				return len(cands) < 256, nil
			})
		}); err != nil {
			b.Fatal(err)
		}
		if len(cands) == 0 {
			break
		}
		for _, d := range cands {
			if done >= k {
				break
			}
			var rec BlobRecord
			if err := x.View(func(tx *Txn) error {
				var err error
				if rec, err = tx.Blob(d); err != nil {
					return err
				}
				_, err = tx.Pinned(d)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			if err := x.Update(ctx, func(tx *Txn) error {
				cur, err := tx.Blob(d)
				if err != nil {
					return err
				}
				if !cur.LastAccess.Equal(rec.LastAccess) {
					return nil
				}
				repos, err := tx.ManifestRepos(d)
				if err != nil {
					return err
				}
				for _, r := range repos {
					if err := tx.DeleteManifest(r, d); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
				}
				return tx.DeleteBlob(d)
			}); err != nil {
				b.Fatal(err)
			}
			done++
		}
	}
	return done
}

func evictLRUBatched(b *testing.B, x *Index, k, window int) int {
	done := 0
	for done < k {
		var cands []oci.Digest
		if err := x.View(func(tx *Txn) error {
			return tx.EachLeastRecent(time.Time{}, func(d oci.Digest, _ time.Time) (bool, error) {
				cands = append(cands, d)
				return len(cands) < min(window, k-done), nil
			})
		}); err != nil {
			b.Fatal(err)
		}
		if len(cands) == 0 {
			break
		}
		if err := x.Update(context.Background(), func(tx *Txn) error {
			for _, d := range cands {
				if err := tx.DeleteBlob(d); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		done += len(cands)
	}
	return done
}

// evictLRUProposed is the prototype: a cursor over a/ and one write
// transaction per window.
func evictLRUProposed(b *testing.B, x *Index, k, window int) int {
	done := 0
	var cursor []byte
	for done < k {
		var cands []oci.Digest
		var times []time.Time
		if err := x.View(func(tx *Txn) error {
			return benchEachLeastRecentAfter(tx, cursor, func(key []byte, d oci.Digest, at time.Time) bool {
				cands = append(cands, d)
				times = append(times, at)
				cursor = append(cursor[:0], key...)
				return len(cands) < min(window, k-done)
			})
		}); err != nil {
			b.Fatal(err)
		}
		if len(cands) == 0 {
			break
		}
		n := 0
		if err := x.Update(context.Background(), func(tx *Txn) error {
			var err error
			n, err = tx.benchDeleteBlobs(cands, times)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		done += n
	}
	return done
}

// benchEachLeastRecentAfter is EachLeastRecent with a cursor: it seeks
// past `after` (a full a/ key), so a caller that deletes as it goes never
// walks over its own tombstones again.
func benchEachLeastRecentAfter(tx *Txn, after []byte, fn func(key []byte, d oci.Digest, at time.Time) bool) error {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = []byte(pAccess)
	it := tx.t.NewIterator(o)
	defer it.Close()
	if after == nil {
		it.Rewind()
	} else {
		it.Seek(append(slices.Clip(after), 0))
	}
	for ; it.ValidForPrefix([]byte(pAccess)); it.Next() {
		k := it.Item().Key()
		if len(k) < len(pAccess)+8 {
			continue
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(k[len(pAccess):len(pAccess)+8])))
		if !fn(k, oci.Digest(k[len(pAccess)+8:]), at) {
			return nil
		}
	}
	return nil
}

// benchDeleteBlobs deletes blob records and their links in one
// transaction, doing every read (records, reverse links) before the first
// write: Badger builds an iterator in a read-write transaction by sorting
// all its pending writes, so DeleteBlob's link scan, called after earlier
// deletes, costs O(pending) each time and a batch of DeleteBlob calls is
// quadratic. A record read again since it was chosen (its LRU key moved)
// is kept, as evictOne does. Usage counters are written once per origin.
func (tx *Txn) benchDeleteBlobs(ds []oci.Digest, chosenAt []time.Time) (int, error) {
	type victim struct {
		rec   BlobRecord
		repos []string
	}
	victims := make([]victim, 0, len(ds))
	for i, d := range ds {
		rec, err := tx.Blob(d)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if !rec.LastAccess.Equal(chosenAt[i]) {
			continue
		}
		repos, err := tx.BlobRepos(d)
		if err != nil {
			return 0, err
		}
		victims = append(victims, victim{rec, repos})
	}
	delta := map[string]Usage{}
	for _, v := range victims {
		d := v.rec.Digest
		for _, r := range v.repos {
			if err := tx.del(pLink + r + "\x00" + string(d)); err != nil {
				return 0, err
			}
			if err := tx.del(pLinkRev + string(d) + "\x00" + r); err != nil {
				return 0, err
			}
		}
		if err := tx.t.Delete(accessKey(v.rec.LastAccess, d)); err != nil {
			return 0, err
		}
		if err := tx.del(pBlob + string(d)); err != nil {
			return 0, err
		}
		u := delta[v.rec.Origin]
		u.Bytes -= v.rec.Size
		u.Count--
		delta[v.rec.Origin] = u
	}
	for origin, u := range delta {
		if err := tx.addUsage(origin, u.Bytes, u.Count); err != nil {
			return 0, err
		}
	}
	return len(victims), nil
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
	if err := x.View(func(tx *Txn) error { _, err := tx.Blob(benchDigest(n / 2)); return err }); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rss: open %.1f\n", procStatusMiB(t, "VmRSS"))
	rng := rand.New(rand.NewPCG(3, 3))
	for range 100_000 {
		d := benchDigest(rng.IntN(n))
		if err := x.View(func(tx *Txn) error { _, err := tx.Blob(d); return err }); err != nil {
			t.Fatal(err)
		}
	}
	// What an eviction pass reads: the front of the LRU order.
	seen := 0
	if err := x.View(func(tx *Txn) error {
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
