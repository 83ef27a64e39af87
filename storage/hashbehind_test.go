package storage

import (
	"crypto/sha256"
	"runtime"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// TestHashBehind checks that a Writer's digest equals a plain one whatever
// the write sizes: all inline, crossing into the hasher mid-write, far past
// it, in one huge write, and with Digest taken midway (the hasher ends,
// and a later write starts another where it stopped).
func TestHashBehind(t *testing.T) {
	data := content("behind", hashBehindAfter+3*bufSize+12345)
	for _, tc := range []struct {
		name  string
		n     int // bytes written
		chunk int
		mid   int // take Digest after this many bytes; 0: never
	}{
		{"small", 1000, 7, 0},
		{"exactly the inline part", hashBehindAfter, 4096, 0},
		{"one byte past it", hashBehindAfter + 1, 65536, 0},
		{"odd chunks", len(data), 65537, 0},
		{"one huge write", len(data), len(data), 0},
		{"digest midway", len(data), 300 << 10, hashBehindAfter + bufSize + 17},
		{"digest twice", len(data), 1 << 20, hashBehindAfter + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			w, err := s.NewWriter("sha256")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			in := data[:tc.n]
			for off := 0; off < len(in); off += tc.chunk {
				end := min(off+tc.chunk, len(in))
				if tc.mid > 0 && off <= tc.mid && tc.mid < end {
					w.Write(in[off:tc.mid])
					if got, want := w.Digest(), oci.FromBytes(in[:tc.mid]); got != want {
						t.Fatalf("midway Digest %s, want %s", got, want)
					}
					if got, want := w.Digest(), oci.FromBytes(in[:tc.mid]); got != want {
						t.Fatalf("second Digest %s, want %s", got, want)
					}
					w.Write(in[tc.mid:end])
					continue
				}
				w.Write(in[off:end])
			}
			if tc.n > hashBehindAfter+tc.chunk && tc.mid == 0 && w.behind == nil {
				t.Error("no hasher running for a big blob")
			}
			d := oci.FromBytes(in)
			if err := w.Verify(oci.FromBytes(in[:len(in)-1]), -1); err == nil {
				t.Fatal("verified against the wrong digest")
			}
			if err := w.Commit(d, int64(len(in))); err != nil {
				t.Fatal(err)
			}
			checkBlob(t, s, d, in)
		})
	}
}

// TestHashBehindAbortEndsHasher: Abort while the hasher is behind must not
// leave its goroutine (or its file handle) behind.
func TestHashBehindAbortEndsHasher(t *testing.T) {
	s := newStore(t)
	before := runtime.NumGoroutine()
	for range 5 {
		w, err := s.NewWriter("sha256")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, hashBehindAfter))
		w.Write(make([]byte, 8*bufSize))
		if w.behind == nil {
			t.Fatal("hasher not running past the inline part")
		}
		w.Abort()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Abort, %d before", n, before)
	}
}

// TestHashBehindHashesTheFile: the digest covers the bytes on disk, so a
// file changed under the writer (a bad disk, another process) fails the
// check instead of passing on what was handed to Write.
func TestHashBehindHashesTheFile(t *testing.T) {
	s := newStore(t)
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	in := content("disk", hashBehindAfter+2*bufSize)
	w.Write(in[:hashBehindAfter+1])
	if w.behind == nil {
		t.Fatal("hasher not running past the inline part")
	}
	// Put the rest in the file without announcing it, so the hasher cannot
	// have read it yet, change one byte of it on disk, then announce it.
	rest := in[hashBehindAfter+1:]
	if _, err := w.f.WriteAt(rest, int64(hashBehindAfter+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.f.WriteAt([]byte{rest[bufSize] ^ 1}, int64(hashBehindAfter+1+bufSize)); err != nil {
		t.Fatal(err)
	}
	w.n += int64(len(rest))
	w.behind.advance(w.n)
	if err := w.Verify(oci.FromBytes(in), int64(len(in))); err == nil {
		t.Fatal("verified although a byte on disk differs from what was written")
	} else if e, ok := oci.AsError(err); !ok || e.Code != oci.CodeDigestInvalid {
		t.Fatalf("got %v, want DIGEST_INVALID", err)
	}
}

// BenchmarkWriter writes 64 MiB in 1 MiB writes and verifies it, as a
// cache fill does; past the inline part the hash overlaps with the writes.
func BenchmarkWriter(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	buf := content("bench", bufSize)
	const n = 64
	h := sha256.New()
	for range n {
		h.Write(buf)
	}
	d := oci.FromHash("sha256", h)
	b.SetBytes(n * bufSize)
	for b.Loop() {
		w, err := s.NewWriter("sha256")
		if err != nil {
			b.Fatal(err)
		}
		for range n {
			w.Write(buf)
		}
		if err := w.Verify(d, n*bufSize); err != nil {
			b.Fatal(err)
		}
		w.Abort()
	}
}
