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
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// testFill is a fill whose upstream body the test writes (in) and whose
// file write it can hold (gate), driven by the fill's own receive and
// persist loops.
type testFill struct {
	f        *fill
	in       *io.PipeWriter
	gate     chan struct{} // file writes wait until it is closed
	received chan error
	persist  chan error
	hashed   chan error
}

func newTestFill(t *testing.T, size int64, gated bool) *testFill {
	t.Helper()
	w, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(w.Name())
	if err != nil {
		t.Fatal(err)
	}
	f := newFill(oci.Digest("sha256:x"), "p/r", &chunkBudget{})
	f.size, f.file = size, r
	close(f.ready)
	tf := &testFill{f: f, gate: make(chan struct{}), received: make(chan error, 1), persist: make(chan error, 1), hashed: make(chan error, 1)}
	if !gated {
		close(tf.gate)
	}
	pr, pw := io.Pipe()
	tf.in = pw
	ctx := context.Background()
	go func() { tf.persist <- f.persist(ctx, gatedWriter{w, tf.gate}, 1) }()
	go func() { tf.hashed <- f.hash(ctx, sha256.New()) }()
	go func() {
		err := f.receive(ctx, pr)
		f.endReceive(err)
		tf.received <- err
	}()
	t.Cleanup(func() {
		pw.CloseWithError(errors.New("test over"))
		select {
		case <-tf.gate:
		default:
			close(tf.gate)
		}
		<-tf.received
		<-tf.persist
		<-tf.hashed
		f.finish(errors.New("test over"))
		w.Close()
		r.Close()
	})
	return tf
}

type gatedWriter struct {
	w    io.Writer
	gate chan struct{}
}

func (g gatedWriter) Write(p []byte) (int, error) {
	<-g.gate
	return g.w.Write(p)
}

func (tf *testFill) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := tf.in.Write(b); err != nil {
		t.Fatal(err)
	}
}

// end closes the upstream body and waits until every byte is on disk and
// hashed.
func (tf *testFill) end(t *testing.T) {
	t.Helper()
	tf.in.Close()
	if err := <-tf.received; err != nil {
		t.Fatalf("receive: %v", err)
	}
	if err := <-tf.persist; err != nil {
		t.Fatalf("persist: %v", err)
	}
	if err := <-tf.hashed; err != nil {
		t.Fatalf("hash: %v", err)
	}
	tf.received <- nil
	tf.persist <- nil
	tf.hashed <- nil
}

// waitFill waits until cond holds for f (checked under its lock at every change).
func waitFill(t *testing.T, f *fill, what string, cond func(f *fill) bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		f.mu.Lock()
		ok, ch := cond(f), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fill never reached: %s", what)
		}
	}
}

// counting is a client that reports how many bytes it has on a channel.
type counting struct {
	mu  sync.Mutex
	buf bytes.Buffer
	got chan int64
}

func newCounting() *counting { return &counting{got: make(chan int64, 1<<16)} }

func (c *counting) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, _ := c.buf.Write(p)
	c.got <- int64(c.buf.Len())
	return n, nil
}

func (c *counting) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// waitBytes waits until the client has n bytes.
func (c *counting) waitBytes(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-c.got:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("client never got %d bytes (has %d)", n, len(c.bytes()))
		}
	}
}

type result struct {
	n   int64
	err error
}

func TestFillHoldsBackLastByteUntilVerified(t *testing.T) {
	tf := newTestFill(t, 10, false)
	out := newCounting()
	done := make(chan result, 1)
	go func() {
		n, err := tf.f.copyTo(context.Background(), out, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	tf.write(t, []byte("0123456789"))
	tf.end(t)
	out.waitBytes(t, 9)
	select {
	case r := <-done:
		t.Fatalf("copy finished before verification: %+v", r)
	default:
	}
	if got := string(out.bytes()); got != "012345678" {
		t.Fatalf("before verification the client has %q", got)
	}
	tf.f.verify()
	r := <-done
	if r.err != nil || r.n != 10 || string(out.bytes()) != "0123456789" {
		t.Fatalf("after verify: %+v %q", r, out.bytes())
	}
}

func TestFillFailureNeverDeliversLastByte(t *testing.T) {
	tf := newTestFill(t, 10, false)
	out := newCounting()
	done := make(chan result, 1)
	go func() {
		n, err := tf.f.copyTo(context.Background(), out, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	tf.write(t, []byte("0123456789"))
	tf.end(t)
	bad := errors.New("digest mismatch")
	tf.f.finish(bad)
	r := <-done
	if !errors.Is(r.err, bad) || r.n != 9 {
		t.Fatalf("got %+v, want 9 bytes and the failure", r)
	}
}

func TestFillRangeAndLateJoiner(t *testing.T) {
	tf := newTestFill(t, 10, false)
	tf.write(t, []byte("01234"))
	done := make(chan result, 1)
	out := newCounting()
	go func() {
		n, err := tf.f.copyTo(context.Background(), out, 2, 6, make([]byte, 64))
		done <- result{n, err}
	}()
	tf.write(t, []byte("56789"))
	tf.end(t)
	tf.f.finish(nil)
	r := <-done
	if r.err != nil || string(out.bytes()) != "23456" {
		t.Fatalf("range: %+v %q", r, out.bytes())
	}
}

func TestFillReaderCancel(t *testing.T) {
	tf := newTestFill(t, 10, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		n, err := tf.f.copyTo(ctx, newCounting(), 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %+v", r)
	}
}

// TestFillServesClientsBeforeTheFileWrite: the file write is held, yet a
// client gets every byte received so far (but the held-back last one):
// the disk is not between the upstream and the clients.
func TestFillServesClientsBeforeTheFileWrite(t *testing.T) {
	const size = 3<<20 + 5
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(data)
	tf := newTestFill(t, size, true)
	out := newCounting()
	done := make(chan result, 1)
	go func() {
		n, err := tf.f.copyTo(context.Background(), out, 0, -1, make([]byte, 64<<10))
		done <- result{n, err}
	}()
	tf.write(t, data)
	out.waitBytes(t, size-1)
	tf.f.mu.Lock()
	persisted := tf.f.persisted
	tf.f.mu.Unlock()
	if persisted != 0 {
		t.Fatalf("%d bytes reached the file while its write was held", persisted)
	}
	close(tf.gate)
	tf.end(t)
	tf.f.verify()
	if r := <-done; r.err != nil || !bytes.Equal(out.bytes(), data) {
		t.Fatalf("got %+v, %d bytes", r, len(out.bytes()))
	}
}

// TestFillWindowIsBounded: with the file write held, the download stops
// once the window is full, whatever the blob size; once the write goes on,
// a client that joins late starts from the file and gets every byte right,
// read through the page cache or past it (a file written with O_DIRECT).
func TestFillWindowIsBounded(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) { testFillWindowIsBounded(t, direct) })
	}
}

func testFillWindowIsBounded(t *testing.T, direct bool) {
	const size = (windowChunks+4)<<20 + 7
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{4}).Read(data)
	tf := newTestFill(t, size, true)
	tf.f.direct = direct
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		tf.in.Write(data)
	}()
	full := int64(windowChunks * chunkSize)
	waitFill(t, tf.f, "a full window", func(f *fill) bool { return f.received == full })
	// Nothing can free a chunk while the write is held: the next chunk would
	// have to come from the oldest one, and that is not on disk.
	tf.f.mu.Lock()
	received, window := tf.f.received, len(tf.f.window)
	tf.f.mu.Unlock()
	if received != full || window != windowChunks {
		t.Fatalf("received %d in %d chunks with the file write held; want %d in %d", received, window, full, windowChunks)
	}
	close(tf.gate)
	<-fed
	tf.end(t)
	tf.f.mu.Lock()
	start := tf.f.window[0].off
	tf.f.mu.Unlock()
	if start == 0 {
		t.Fatal("the window never moved")
	}
	tf.f.verify()
	late := newCounting()
	n, err := tf.f.copyTo(context.Background(), late, 0, -1, make([]byte, 64<<10))
	if err != nil || n != size || !bytes.Equal(late.bytes(), data) {
		t.Fatalf("late client: %d bytes, %v", n, err)
	}
	// A Range from the middle, starting and ending off the block size.
	mid := newCounting()
	n, err = tf.f.copyTo(context.Background(), mid, 4097, 3<<20+11, make([]byte, 64<<10))
	if err != nil || !bytes.Equal(mid.bytes(), data[4097:3<<20+12]) {
		t.Fatalf("late Range: %d bytes, %v", n, err)
	}
	if tf.f.budget.used.Load() > windowChunks {
		t.Fatalf("budget holds %d chunks", tf.f.budget.used.Load())
	}
}

// TestFillVerifiesBigBlob runs whole fills of a blob large enough to span
// many chunks, hashed from the window beside the (direct) file write: a
// client still never gets a complete body unless every byte matched the
// digest, and only a verified blob is cached.
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

// gatedClient is a client whose writes wait until gate is closed.
type gatedClient struct {
	c    *counting
	gate chan struct{}
}

func (g gatedClient) Write(p []byte) (int, error) {
	<-g.gate
	return g.c.Write(p)
}

// TestFillWindowWaitsForALaggard: a client that stalls in the window's
// oldest chunk (a busy machine) keeps the window growing out of the shared
// budget, up to laggardChunks, so it catches up from memory rather than
// the disk; the download goes on meanwhile, and past that bound the
// window moves on without it.
func TestFillWindowWaitsForALaggard(t *testing.T) {
	const size = (laggardChunks-8)<<20 + 9 // fits in a grown window
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{9}).Read(data)
	tf := newTestFill(t, size, false)
	// The client's reads cannot come from the file: its handle is closed.
	tf.f.mu.Lock()
	tf.f.file.Close()
	tf.f.mu.Unlock()
	cl := gatedClient{newCounting(), make(chan struct{})}
	done := make(chan result, 1)
	go func() {
		n, err := tf.f.copyTo(context.Background(), cl, 0, -1, make([]byte, 64<<10))
		done <- result{n, err}
	}()
	go tf.in.Write(data)
	// Every byte arrives and is written and hashed while the client is stuck
	// in the first chunk: the download does not wait for it.
	waitFill(t, tf.f, "every byte written and hashed", func(f *fill) bool {
		return f.persisted == size && f.hashed == size
	})
	tf.f.mu.Lock()
	first, chunks := tf.f.window[0].off, len(tf.f.window)
	tf.f.mu.Unlock()
	if first != 0 || chunks <= windowChunks {
		t.Fatalf("window starts at %d with %d chunks; want it kept from 0 past %d chunks", first, chunks, windowChunks)
	}
	close(cl.gate)
	tf.in.Close()
	tf.f.verify()
	if r := <-done; r.err != nil || !bytes.Equal(cl.c.bytes(), data) {
		t.Fatalf("laggard got %d bytes, %v", r.n, r.err)
	}
}

// TestFillWindowLeavesAStuckClient: a client stuck for good does not hold
// the download: past laggardChunks the window moves on, and the client
// reads the rest from the file when it wakes.
func TestFillWindowLeavesAStuckClient(t *testing.T) {
	const size = (laggardChunks+8)<<20 + 3
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{10}).Read(data)
	tf := newTestFill(t, size, false)
	cl := gatedClient{newCounting(), make(chan struct{})}
	done := make(chan result, 1)
	go func() {
		n, err := tf.f.copyTo(context.Background(), cl, 0, -1, make([]byte, 64<<10))
		done <- result{n, err}
	}()
	go tf.in.Write(data)
	waitFill(t, tf.f, "every byte received", func(f *fill) bool { return f.received == size })
	tf.f.mu.Lock()
	chunks := len(tf.f.window)
	tf.f.mu.Unlock()
	if chunks > laggardChunks {
		t.Fatalf("window grew to %d chunks for a stuck client; bound %d", chunks, laggardChunks)
	}
	close(cl.gate)
	tf.in.Close()
	tf.f.verify()
	if r := <-done; r.err != nil || !bytes.Equal(cl.c.bytes(), data) {
		t.Fatalf("stuck client got %d bytes, %v", r.n, r.err)
	}
}

// TestFillLoopsEndWithTheFill: a fill that finishes while its file write
// is behind (its window gone) ends the write loop instead of following a
// window that no longer holds the bytes.
func TestFillLoopsEndWithTheFill(t *testing.T) {
	const size = 3<<20 + 1
	tf := newTestFill(t, size, true)
	go tf.in.Write(make([]byte, size))
	waitFill(t, tf.f, "every byte received", func(f *fill) bool { return f.received == size })
	tf.f.finish(nil)
	close(tf.gate)
	if err := <-tf.persist; err != nil {
		t.Fatalf("persist: %v", err)
	}
	tf.persist <- nil
}

// TestFailedFillIsNotJoined: a fill that failed (the upstream sent bad
// bytes) stays in the proxy's map until its cleanup is done, after its
// clients got the error. A client arriving meanwhile gets a fill of its
// own with the right bytes, and the failed fill's cleanup leaves that one
// in place. (Under load the window was wide enough for a refetch to join
// the failed fill and get a truncated body.)
func TestFailedFillIsNotJoined(t *testing.T) {
	body := bytes.Repeat([]byte("right bytes "), 100_000)
	d := oci.FromBytes(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer srv.Close()
	p, _, done := newTestProxy(t, t.TempDir(), srv.URL)
	defer done()

	failed := newFill(d, "lib/app", &p.chunks)
	failed.fail(errors.New("upstream sent bad content"))
	p.mu.Lock()
	p.fills[d] = failed
	p.mu.Unlock()

	f, started := p.joinOrStart("lib/app", "lib/app", d)
	if !started || f == failed {
		t.Fatal("a new client joined the failed fill")
	}
	p.mu.Lock()
	if p.fills[d] != f {
		t.Error("the new fill did not replace the failed one in the map")
	}
	p.mu.Unlock()
	f.release()
	// The failed fill's cleanup (what run does after download) must not
	// remove the new one; the new one's own cleanup then does.
	p.mu.Lock()
	if p.fills[d] == failed {
		delete(p.fills, d)
	}
	p.mu.Unlock()

	b, err := p.OpenBlob(context.Background(), "lib/app", d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out bytes.Buffer
	if b.File != nil {
		_, err = io.Copy(&out, b.File)
	} else {
		_, err = b.StreamTo(context.Background(), &out, 0, -1)
	}
	if err != nil || !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("after a failed fill: %d bytes, %v", out.Len(), err)
	}
}
