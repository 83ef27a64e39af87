//go:build linux

package s3_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/storage/s3"
)

// testMemoryFlat puts 256 MiB from a generator, with its size unknown
// and known, and checks that the Put allocated no more than a few parts
// in all: the memory of a Put does not grow with the blob.
func testMemoryFlat(t *testing.T, e *server) {
	if testing.Short() {
		t.Skip("writes 512 MiB")
	}
	s := e.open(t, e.config())
	const n = 256 << 20
	d := digestOf(t, 5, n)
	// Two part buffers, which the first Put takes from the pool, and a
	// margin for requests, responses and the listing of parts.
	const limit = 2*partSize + 8<<20
	for _, size := range []int64{-1, n} {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		written, err := s.Put(context.Background(), d, size, newGen(5, n))
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if err != nil || written != n {
			t.Fatalf("Put (size %d) = %d, %v; want %d bytes", size, written, err, n)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("Put of %d MiB (size %d): %.1f MiB allocated, heap in use %.1f → %.1f MiB, %.0f MB/s",
			n>>20, size, float64(alloc)/(1<<20), float64(before.HeapInuse)/(1<<20), float64(after.HeapInuse)/(1<<20),
			float64(n)/1e6/elapsed.Seconds())
		if alloc > limit {
			t.Errorf("Put of %d MiB (size %d) allocated %d bytes, more than %d (two %d-byte parts and a margin)",
				n>>20, size, alloc, limit, partSize)
		}
	}
	f, size, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := oci.NewHash("sha256")
	if got, err := io.Copy(h, f); err != nil || got != n || size != n {
		t.Fatalf("read back %d of %d bytes (Open said %d): %v", got, n, size, err)
	}
	if got := oci.FromHash("sha256", h); got != d {
		t.Fatalf("read back %s, want %s", got, d)
	}
}

// killEnv carries the store's config to the child of testKilled.
const killEnv = "WHARF_S3_TEST_KILL"

type killJob struct {
	Config s3.Config
	Digest oci.Digest
	Size   int64
}

// TestKillHelper is the child of testKilled: it puts a blob whose stream
// stalls after two and a half parts, and waits there to be killed.
func TestKillHelper(t *testing.T) {
	spec := os.Getenv(killEnv)
	if spec == "" {
		t.Skip("run by TestS3/KilledBetweenParts")
	}
	var job killJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	s, err := s3.New(context.Background(), job.Config)
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(6, job.Size)
	g.at, g.atN = func() { select {} }, 2*partSize+partSize/2
	_, err = s.Put(context.Background(), job.Digest, job.Size, g)
	t.Fatalf("Put returned (%v) instead of stalling", err)
}

// testKilled kills a process between the parts of its Put: nothing is
// visible, one unfinished upload is left, young, so CleanTemp keeps it
// with the default grace, and a sweep of older uploads removes it.
func testKilled(t *testing.T, e *server) {
	cfg := e.config()
	const n = 4 * partSize
	d := digestOf(t, 6, n)
	child := cfg
	child.Transport = nil // the child's own
	job, err := json.Marshal(killJob{Config: child, Digest: d, Size: n})
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), killEnv+"="+string(job))
	p := harness.StartProcess(t, "putter", t.TempDir(), env, os.Args[0], "-test.run=^TestKillHelper$", "-test.v")

	// Wait until two parts are on the server: the child is between parts.
	c := e.core(t)
	deadline := time.Now().Add(time.Minute)
	for {
		if !p.Running() {
			t.Fatalf("the putter exited: %s", p.LogTail(20))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upload with two parts after a minute; putter log:\n%s", p.LogTail(20))
		}
		res, err := c.ListMultipartUploads(context.Background(), cfg.Bucket, cfg.Prefix, "", "", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Uploads) == 1 {
			u := res.Uploads[0]
			parts, err := c.ListObjectParts(context.Background(), cfg.Bucket, u.Key, u.UploadID, 0, 10)
			if err == nil && len(parts.ObjectParts) >= 2 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond) // polling a state, not waiting for one
	}
	if err := p.Kill(); err == nil {
		t.Fatal("the putter exited cleanly instead of being killed")
	}

	s := e.open(t, cfg)
	mustBeAbsent(t, s, d)
	if u := unfinished(t, s); u.Count != 1 || u.Stale != 0 {
		t.Fatalf("Unfinished = %+v, want the one young upload", u)
	}
	if n, err := s.CleanTemp(); err != nil || n != 0 {
		t.Fatalf("CleanTemp = %d, %v; want the young upload kept", n, err)
	}
	if n, err := s.SweepUploads(context.Background(), -time.Hour); err != nil || n != 1 {
		t.Fatalf("SweepUploads = %d, %v; want 1", n, err)
	}
	if u := unfinished(t, s); u.Count != 0 {
		t.Fatalf("after the sweep: %+v", u)
	}
	mustBeAbsent(t, s, d)
}

// Benchmarks: 64 MiB blobs through versitygw's posix backend on this
// machine (loopback, the test's temp dir), default part size.
const benchSize = 64 << 20

func benchStore(b *testing.B) (*s3.Store, oci.Digest) {
	g := harness.StartVersityGW(b)
	g.MakeBucket("bench")
	s, err := s3.New(context.Background(), s3.Config{Endpoint: g.Endpoint, Region: g.Region, Bucket: "bench",
		Prefix: "bench/", AccessKey: g.AccessKey, SecretKey: g.SecretKey})
	if err != nil {
		b.Fatal(err)
	}
	return s, digestOf(b, 7, benchSize)
}

func BenchmarkPut(b *testing.B) {
	s, d := benchStore(b)
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := s.Put(context.Background(), d, benchSize, newGen(7, benchSize)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenRead(b *testing.B) {
	s, d := benchStore(b)
	if _, err := s.Put(context.Background(), d, benchSize, newGen(7, benchSize)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		f, _, err := s.Open(d)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, f); err != nil || n != benchSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		f.Close()
	}
}

// TestS3DiskFull puts blobs into a server whose disk fills up: the Put
// fails with storage.ErrNoSpace (so a cache fill evicts), and leaves
// nothing behind. Its own server: the backend's root is a small
// filesystem.
func TestS3DiskFull(t *testing.T) {
	fs := harness.MountSmallFS(t, 32<<20)
	e := &server{g: harness.StartVersityGWOn(t, fs.Dir), tr: http.DefaultTransport.(*http.Transport).Clone()}
	defer e.tr.CloseIdleConnections()
	e.g.MakeBucket("wharf")
	s := e.open(t, e.config())
	full := func(what string, d oci.Digest, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrNoSpace) {
			t.Fatalf("%s on %s of 32 MiB = %v, want ErrNoSpace", what, fs.Kind, err)
		}
		t.Log(err)
		mustBeAbsent(t, s, d)
		if u := unfinished(t, s); u.Count != 0 {
			t.Errorf("after a full disk: %+v, want no unfinished upload", u)
		}
	}
	const big = 64 << 20 // a multipart upload that cannot fit
	d := digestOf(t, 8, big)
	_, err := s.Put(context.Background(), d, big, newGen(8, big))
	full("Put of 64 MiB", d, err)
	// Single-part blobs until one does not fit.
	const small = partSize - 1
	err = nil
	for seed := byte(10); err == nil; seed++ {
		if seed == 20 {
			t.Fatalf("ten blobs of %d bytes fit on 32 MiB: %v", small, err)
		}
		d = digestOf(t, seed, small)
		_, err = s.Put(context.Background(), d, small, newGen(seed, small))
	}
	full("Put of one part", d, err)
}
