package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// newTestFill makes a fill whose "download" the test drives by hand.
func newTestFill(t *testing.T, size int64) (*fill, *os.File) {
	t.Helper()
	w, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(w.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); r.Close() })
	f := newFill(oci.Digest("sha256:x"), "p/r")
	f.size, f.file = size, r
	close(f.ready)
	return f, w
}

func write(t *testing.T, f *fill, w *os.File, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	f.progress(int64(len(b)))
}

type result struct {
	n   int64
	err error
}

func TestFillHoldsBackLastByteUntilVerified(t *testing.T) {
	f, w := newTestFill(t, 10)
	var out bytes.Buffer
	done := make(chan result, 1)
	go func() {
		n, err := f.copyTo(context.Background(), &syncBuf{b: &out}, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	write(t, f, w, []byte("0123456789"))
	select {
	case r := <-done:
		t.Fatalf("copy finished before verification: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	f.verify()
	r := <-done
	if r.err != nil || r.n != 10 {
		t.Fatalf("after verify: %+v", r)
	}
}

func TestFillFailureNeverDeliversLastByte(t *testing.T) {
	f, w := newTestFill(t, 10)
	buf := &syncBuf{b: &bytes.Buffer{}}
	done := make(chan result, 1)
	go func() {
		n, err := f.copyTo(context.Background(), buf, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	write(t, f, w, []byte("0123456789"))
	bad := errors.New("digest mismatch")
	f.finish(bad)
	r := <-done
	if !errors.Is(r.err, bad) || r.n != 9 {
		t.Fatalf("got %+v, want 9 bytes and the failure", r)
	}
}

func TestFillRangeAndLateJoiner(t *testing.T) {
	f, w := newTestFill(t, 10)
	write(t, f, w, []byte("01234"))
	done := make(chan result, 1)
	out := &syncBuf{b: &bytes.Buffer{}}
	go func() {
		n, err := f.copyTo(context.Background(), out, 2, 6, make([]byte, 64))
		done <- result{n, err}
	}()
	write(t, f, w, []byte("56789"))
	f.finish(nil)
	r := <-done
	if r.err != nil || out.String() != "23456" {
		t.Fatalf("range: %+v %q", r, out.String())
	}
}

func TestFillReaderCancel(t *testing.T) {
	f, _ := newTestFill(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		n, err := f.copyTo(ctx, &syncBuf{b: &bytes.Buffer{}}, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %+v", r)
	}
}

// TestFillVerifiesBigBlob runs whole fills of a blob large enough that
// its hash runs behind the writes (storage hashes on a goroutine of its
// own, some MiB behind): a client still never gets a complete body unless
// every byte matched the digest, and only a verified blob is cached.
func TestFillVerifiesBigBlob(t *testing.T) {
	data := make([]byte, 9<<20+123)
	rand.NewChaCha8([32]byte{7}).Read(data)
	d := oci.FromBytes(data)
	flip := func(at int) []byte {
		b := bytes.Clone(data)
		b[at] ^= 1
		return b
	}
	for _, tc := range []struct {
		name   string
		served []byte
		ok     bool
	}{
		{"intact", data, true},
		{"first byte wrong", flip(0), false},
		{"middle byte wrong", flip(5 << 20), false},
		{"last byte wrong", flip(len(data) - 1), false},
		{"one byte short", data[:len(data)-1], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v2/r/blobs/"+string(d) {
					http.NotFound(w, r)
					return
				}
				http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(tc.served))
			}))
			defer origin.Close()
			p, store, done := newTestProxy(t, t.TempDir(), origin.URL)
			ctx := context.Background()
			b, err := p.OpenBlob(ctx, "r", d)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			n, err := b.StreamTo(ctx, &out, 0, -1)
			b.Close()
			done() // waits for the fill: commit and index are finished
			_, statErr := store.Stat(d)
			if tc.ok {
				if err != nil || !bytes.Equal(out.Bytes(), data) {
					t.Fatalf("streamed %d bytes, err %v; want the blob", n, err)
				}
				if statErr != nil {
					t.Fatalf("verified blob not cached: %v", statErr)
				}
				return
			}
			if err == nil || n >= int64(len(tc.served)) {
				t.Fatalf("streamed %d of %d bytes, err %v: a bad body went out whole", n, len(tc.served), err)
			}
			if statErr == nil {
				t.Fatal("bad content was cached")
			}
		})
	}
}

func TestBodyCacheBudget(t *testing.T) {
	c := newBodyCache(80)
	for i := 0; i < 20; i++ {
		c.put(oci.Digest(string(rune('a'+i))), make([]byte, 10))
	}
	if c.used > 80 {
		t.Fatalf("used %d over budget", c.used)
	}
	c.put("big", make([]byte, 11)) // over budget/8: not kept
	if _, ok := c.get("big"); ok {
		t.Fatal("oversized body cached")
	}
}

type syncBuf struct{ b *bytes.Buffer }

func (s *syncBuf) Write(p []byte) (int, error) { return s.b.Write(p) }
func (s *syncBuf) String() string              { return s.b.String() }

// BenchmarkColdFill pulls a blob the cache does not have through a Proxy
// (upstream client, fill, storage, HTTP response as the registry writes
// it) and, alternately, straight from the same in-process origin. It
// reports the median times of both and of their ratio (issue 3's target:
// cold ≤ 1.10 × direct). Each iteration starts a new store and index, so
// every pull through the cache is a miss. The origin serves a file with
// sendfile, as Distribution does.
//
// client=sha256 hashes the body as docker does, as the shared benchmark's
// client does: on two cores, that hash and the cache's own use them both.
// client=count only counts the bytes, leaving the cache a core of its own:
// the fill's throughput, which hashing in line with the writes limits.
// WHARF_BENCH_FILL_MIB sets the blob size (default 256).
//
//	go test -run '^$' -bench ColdFill -benchtime 5x ./cache/
func BenchmarkColdFill(b *testing.B) {
	size := int64(256) << 20
	if s := os.Getenv("WHARF_BENCH_FILL_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("WHARF_BENCH_FILL_MIB=%q", s)
		}
		size = int64(n) << 20
	}
	blob, d := benchBlob(b, size)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/bench/blobs/"+string(d) {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(blob)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	}))
	b.Cleanup(origin.Close)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	direct := origin.URL + "/v2/bench/blobs/" + string(d)
	for _, hash := range []bool{true, false} {
		name := "client=count"
		if hash {
			name = "client=sha256"
		}
		b.Run(name, func(b *testing.B) {
			pull := func(url string) time.Duration {
				start := time.Now()
				if err := pullVerified(client, url, d, size, hash); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			pull(direct) // page cache and connections warm for both sides
			var tDirect, tCache, ratio []time.Duration
			b.SetBytes(size)
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				srv, done := benchProxyServer(b, origin.URL)
				b.StartTimer()
				var td, tc time.Duration
				if i%2 == 0 {
					td = pull(direct)
					tc = pull(srv + "/v2/bench/blobs/" + string(d))
				} else {
					tc = pull(srv + "/v2/bench/blobs/" + string(d))
					td = pull(direct)
				}
				b.StopTimer()
				done() // the commit's fsync is not timed
				b.StartTimer()
				tDirect, tCache = append(tDirect, td), append(tCache, tc)
				ratio = append(ratio, time.Duration(1000*float64(tc)/float64(td)))
			}
			b.StopTimer()
			b.ReportMetric(median(tDirect).Seconds(), "s-direct")
			b.ReportMetric(median(tCache).Seconds(), "s-cold")
			b.ReportMetric(float64(median(ratio))/1000, "x-direct")
		})
	}
}

// benchBlob writes size random bytes to a temp file and returns its path
// and digest.
func benchBlob(b *testing.B, size int64) (string, oci.Digest) {
	f, err := os.Create(filepath.Join(b.TempDir(), "blob"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		rng.Read(buf)
		f.Write(buf)
		h.Write(buf)
	}
	return f.Name(), oci.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
}

// newTestProxy is a Proxy of upstreamURL over a fresh store (in dir) and
// an in-memory index; done stops it and closes the index.
func newTestProxy(tb testing.TB, dir, upstreamURL string) (*Proxy, *storage.Store, func()) {
	tb.Helper()
	store, err := storage.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	idx, err := index.Open("", index.Options{InMemory: true})
	if err != nil {
		tb.Fatal(err)
	}
	up, err := upstream.New(upstream.Config{Name: "origin", URL: upstreamURL, Retries: -1})
	if err != nil {
		tb.Fatal(err)
	}
	p := New(Options{Name: "origin", Upstream: up, Store: store, Index: idx})
	return p, store, func() { p.Close(); idx.Close() }
}

// benchProxyServer serves a fresh, empty cache of upstream over HTTP the
// way the registry streams a miss; done stops it and deletes its data.
func benchProxyServer(b *testing.B, upstreamURL string) (url string, done func()) {
	dir, err := os.MkdirTemp("", "wharf-bench-")
	if err != nil {
		b.Fatal(err)
	}
	p, _, closeProxy := newTestProxy(b, dir, upstreamURL)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := oci.Digest(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
		blob, err := p.OpenBlob(r.Context(), "bench", d)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer blob.Close()
		w.Header().Set("Content-Length", strconv.FormatInt(blob.Size, 10))
		w.WriteHeader(http.StatusOK)
		if blob.File != nil {
			io.Copy(w, blob.File)
			return
		}
		if _, err := blob.StreamTo(r.Context(), w, 0, -1); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	return srv.URL, func() {
		srv.Close()
		closeProxy()
		os.RemoveAll(dir)
	}
}

// pullVerified GETs url and checks the body's length and, when hash is
// set, its digest, reading as a registry client does.
func pullVerified(c *http.Client, url string, d oci.Digest, size int64, hash bool) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	var sink io.Writer = h
	if !hash {
		sink = struct{ io.Writer }{io.Discard} // no ReadFrom: read 1 MiB at a time
	}
	n, err := io.CopyBuffer(sink, onlyReader{resp.Body}, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("GET %s after %d bytes: %w", url, n, err)
	}
	got := d
	if hash {
		got = oci.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	}
	if n != size || got != d {
		return fmt.Errorf("GET %s: got %d bytes %s, want %d bytes %s", url, n, got, size, d)
	}
	return nil
}

// onlyReader hides WriterTo so io.CopyBuffer reads with the given buffer.
type onlyReader struct{ io.Reader }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
