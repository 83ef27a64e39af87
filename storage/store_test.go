package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// content makes n deterministic, non-repeating-looking bytes.
func content(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// files lists the regular files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func checkEmpty(t *testing.T, dir string) {
	t.Helper()
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("%s holds %v, want nothing", dir, f)
	}
}

func checkCode(t *testing.T, what string, err error, code oci.Code) {
	t.Helper()
	e, ok := oci.AsError(err)
	if !ok || e.Code != code {
		t.Errorf("%s: error = %v, want %s", what, err, code.Name)
	}
}

func checkBlob(t *testing.T, s *Store, d oci.Digest, want []byte) {
	t.Helper()
	f, size, err := s.Open(d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || size != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("blob %s: size %d, %d bytes read (err %v), want %d", d, size, len(got), err, len(want))
	}
	if n, err := s.Stat(d); err != nil || n != int64(len(want)) {
		t.Fatalf("Stat(%s) = %d, %v", d, n, err)
	}
	if ok, err := s.Verify(d); !ok || err != nil {
		t.Fatalf("Verify(%s) = %v, %v", d, ok, err)
	}
}

func checkAbsent(t *testing.T, s *Store, d oci.Digest) {
	t.Helper()
	if _, err := s.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Stat(%s) = %v, want BLOB_UNKNOWN", d, err)
	}
	if _, _, err := s.Open(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Open(%s) = %v, want BLOB_UNKNOWN", d, err)
	}
}

func TestOpenLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "nested", "data")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root() != root {
		t.Errorf("Root = %q", s.Root())
	}
	for _, d := range []string{"blobs", "tmp", "uploads"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if _, err := Open(root); err != nil {
		t.Errorf("reopening: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(file); err == nil {
		t.Error("Open on a regular file succeeded")
	}
}

func TestPut(t *testing.T) {
	big := content("big", 3*bufSize+17) // several copy buffers
	small := []byte("hello, wharf")
	tests := []struct {
		name string
		data []byte
		d    oci.Digest
		size int64
		code oci.Code // zero: success
	}{
		{"known size", small, oci.FromBytes(small), int64(len(small)), oci.Code{}},
		{"unknown size", small, oci.FromBytes(small), -1, oci.Code{}},
		{"empty", nil, oci.FromBytes(nil), 0, oci.Code{}},
		{"big", big, oci.FromBytes(big), int64(len(big)), oci.Code{}},
		{"sha512", small, oci.FromBytesAlg("sha512", small), int64(len(small)), oci.Code{}},
		{"sha512 big", big, oci.FromBytesAlg("sha512", big), -1, oci.Code{}},
		{"digest mismatch", small, oci.FromBytes([]byte("other")), int64(len(small)), oci.CodeDigestInvalid},
		{"digest mismatch, unknown size", big, oci.FromBytes(small), -1, oci.CodeDigestInvalid},
		{"sha512 mismatch", small, oci.FromBytesAlg("sha512", big), -1, oci.CodeDigestInvalid},
		{"too short", small, oci.FromBytes(small), int64(len(small)) + 1, oci.CodeSizeInvalid},
		{"too long", small, oci.FromBytes(small), int64(len(small)) - 1, oci.CodeSizeInvalid},
		{"zero size given", small, oci.FromBytes(small), 0, oci.CodeSizeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			n, err := s.Put(context.Background(), tt.d, tt.size, bytes.NewReader(tt.data))
			if n != int64(len(tt.data)) {
				t.Errorf("Put wrote %d bytes, want %d", n, len(tt.data))
			}
			if tt.code.Name != "" {
				checkCode(t, "Put", err, tt.code)
				checkAbsent(t, s, tt.d)
				checkEmpty(t, s.blobs)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				checkBlob(t, s, tt.d, tt.data)
				if want := filepath.Join(s.blobs, tt.d.Algorithm(), tt.d.Hex()[:2], tt.d.Hex()); s.BlobPath(tt.d) != want {
					t.Errorf("BlobPath = %s, want %s", s.BlobPath(tt.d), want)
				}
			}
			checkEmpty(t, s.tmp)
		})
	}
}

func TestPutTwiceKeepsOne(t *testing.T) {
	s := newStore(t)
	data := []byte("same bytes")
	d := oci.FromBytes(data)
	for i := 0; i < 2; i++ {
		if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	checkBlob(t, s, d, data)
	if f := files(t, s.blobs); len(f) != 1 {
		t.Errorf("blobs = %v", f)
	}
	checkEmpty(t, s.tmp)
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestPutFailures(t *testing.T) {
	data := content("x", 1000)
	d := oci.FromBytes(data)
	boom := errors.New("connection reset")

	s := newStore(t)
	_, err := s.Put(context.Background(), d, -1, &failingReader{data: data[:500], err: boom})
	if !errors.Is(err, boom) {
		t.Errorf("reader failure: %v", err)
	}
	checkAbsent(t, s, d)
	checkEmpty(t, s.tmp)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Put(ctx, d, -1, bytes.NewReader(data))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	checkAbsent(t, s, d)
	checkEmpty(t, s.tmp)
}

func TestPutConcurrentSameDigest(t *testing.T) {
	s := newStore(t)
	data := content("concurrent", 2*bufSize+5)
	d := oci.FromBytes(data)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Put(context.Background(), d, int64(len(data)), bytes.NewReader(data))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	checkBlob(t, s, d, data)
	if f := files(t, s.blobs); len(f) != 1 {
		t.Errorf("blobs = %v, want one file", f)
	}
	checkEmpty(t, s.tmp)
}

func TestWriter(t *testing.T) {
	s := newStore(t)
	data := []byte("written in pieces")
	d := oci.FromBytes(data)

	// Abort leaves nothing, and Commit after it fails.
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if w.Size() != int64(len(data)) || w.Digest() != d {
		t.Errorf("Size %d Digest %s", w.Size(), w.Digest())
	}
	w.Abort()
	w.Abort() // twice is harmless
	checkEmpty(t, s.tmp)
	if err := w.Commit(d, -1); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	checkAbsent(t, s, d)

	// A failed Commit leaves the writer abortable.
	w, _ = s.NewWriter("sha256")
	w.Write(data)
	checkCode(t, "Commit with another algorithm", w.Commit(oci.FromBytesAlg("sha512", data), -1), oci.CodeDigestInvalid)
	checkCode(t, "Commit wrong size", w.Commit(d, 3), oci.CodeSizeInvalid)
	w.Abort()
	checkEmpty(t, s.tmp)
	checkAbsent(t, s, d)

	// Commit publishes; a second Commit errors; Abort after Commit is a no-op.
	w, _ = s.NewWriter("sha256")
	for _, part := range bytes.SplitAfter(data, []byte(" ")) {
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(d, int64(len(data))); err == nil {
		t.Error("second Commit succeeded")
	}
	w.Abort()
	checkBlob(t, s, d, data)
	checkEmpty(t, s.tmp)
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
}

func TestDelete(t *testing.T) {
	s := newStore(t)
	data := []byte("short-lived")
	d := oci.FromBytes(data)
	if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	checkAbsent(t, s, d)
	if err := s.Delete(d); err != nil {
		t.Errorf("deleting a missing blob: %v", err)
	}
	if ok, err := s.Verify(d); ok || !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Verify(missing) = %v, %v", ok, err)
	}
}

func TestVerifyAndQuarantine(t *testing.T) {
	s := newStore(t)
	data := content("precious", 4096)
	d := oci.FromBytes(data)
	if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[2000] ^= 1 // one flipped bit, same size
	if err := os.WriteFile(s.BlobPath(d), bad, 0o640); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Verify(d); ok || err != nil {
		t.Errorf("Verify(corrupt) = %v, %v; want false, nil", ok, err)
	}
	if err := s.Quarantine(s.BlobPath(d)); err != nil {
		t.Fatal(err)
	}
	checkAbsent(t, s, d)
	got, err := os.ReadFile(filepath.Join(s.Root(), "quarantine", d.Hex()))
	if err != nil || !bytes.Equal(got, bad) {
		t.Errorf("quarantined copy: %v", err)
	}
	if err := s.Quarantine(s.BlobPath(d)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("quarantining a missing file: %v", err)
	}
}

func TestCleanTemp(t *testing.T) {
	s := newStore(t)
	data := []byte("kept")
	d := oci.FromBytes(data)
	if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	w, _ := s.NewWriter("sha256") // an interrupted write: the process "died"
	w.Write([]byte("partial"))
	w.f.Close()
	os.WriteFile(filepath.Join(s.tmp, "stray"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(s.tmp, "dir", "sub"), 0o750)
	os.WriteFile(filepath.Join(s.tmp, "dir", "sub", "f"), []byte("x"), 0o600)
	n, err := s.CleanTemp()
	if err != nil || n != 3 {
		t.Errorf("CleanTemp = %d, %v; want 3", n, err)
	}
	if ents, _ := os.ReadDir(s.tmp); len(ents) != 0 {
		t.Errorf("tmp still holds %d entries", len(ents))
	}
	checkBlob(t, s, d, data)
	if n, err := s.CleanTemp(); n != 0 || err != nil {
		t.Errorf("second CleanTemp = %d, %v", n, err)
	}
}

func TestWalk(t *testing.T) {
	s := newStore(t)
	want := map[oci.Digest]int64{}
	for i, alg := range []string{"sha256", "sha256", "sha512"} {
		data := content(fmt.Sprint(i), 100*(i+1))
		d := oci.FromBytesAlg(alg, data)
		if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		want[d] = int64(len(data))
	}
	hex := strings.Repeat("ab", 32)
	strays := []string{
		"README",
		"sha256/junk",
		"sha256/ab/not-a-digest",
		"sha256/cd/" + hex,  // in the wrong fan-out directory
		"sha256/a/" + hex,   // a fan-out directory too short
		"sha256/abc/" + hex, // a fan-out directory too long
		"sha256/ab/" + strings.ToUpper(hex),
		"sha256/ab/" + hex[:63],
		"md5/ab/" + hex,
		"sha512/ab/" + hex,    // sha256 length under sha512
		"sha256/ab/cd/" + hex, // too deep
	}
	for _, p := range strays {
		full := filepath.Join(s.blobs, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o750)
		if err := os.WriteFile(full, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := map[oci.Digest]int64{}
	var bad []string
	err := s.Walk(func(d oci.Digest, size int64) error {
		got[d] = size
		return nil
	}, func(p string) {
		rel, _ := filepath.Rel(s.blobs, p)
		bad = append(bad, filepath.ToSlash(rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Walk found %v, want %v", got, want)
	}
	sort.Strings(bad)
	sort.Strings(strays)
	if fmt.Sprint(bad) != fmt.Sprint(strays) {
		t.Errorf("bad files:\n got %v\nwant %v", bad, strays)
	}
	// Every digest Walk reports must be openable where the store looks.
	for d := range got {
		if _, err := s.Verify(d); err != nil {
			t.Errorf("Verify(%s) of a walked blob: %v", d, err)
		}
	}

	stop := errors.New("stop")
	calls := 0
	err = s.Walk(func(oci.Digest, int64) error { calls++; return stop }, func(string) {})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with a failing callback = %v after %d calls", err, calls)
	}
}

func TestClassify(t *testing.T) {
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
	plain := errors.New("plain")
	if classify(plain) != plain {
		t.Error("classify changed an unrelated error")
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := classify(&fs.PathError{Op: "write", Path: "/x", Err: errno})
		if !errors.Is(err, ErrNoSpace) {
			t.Errorf("classify(%v) = %v, want ErrNoSpace", errno, err)
		}
	}
}

// TestWriterDiskFull writes to /dev/full, which fails every write with
// ENOSPC: the one disk-full condition a unit test can make without a tiny
// filesystem.
func TestWriterDiskFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer f.Close()
	// done: Abort must never remove the device node.
	w := &Writer{s: newStore(t), f: f, alg: "sha256", h: sha256.New(), done: true}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Write to a full disk = %v, want ErrNoSpace", err)
	}
	w.Abort()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("/dev/full: %v", err)
	}
}

// TestWriterPreallocate: reserving blocks changes neither the size a reader
// sees while the blob is written nor what is committed; reserving more than
// arrives leaves no trailing bytes either.
func TestWriterPreallocate(t *testing.T) {
	s := newStore(t)
	data := content("prealloc", 3<<20+17)
	d := oci.FromBytes(data)
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Preallocate(int64(len(data)) * 2)
	r, err := w.OpenReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	if fi, err := r.Stat(); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("temp file after 1 MiB: %v, %v", fi.Size(), err)
	}
	if _, err := w.Write(data[1<<20:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if size, err := s.Stat(d); err != nil || size != int64(len(data)) {
		t.Fatalf("committed size %d, %v; want %d", size, err, len(data))
	}
	if ok, err := s.Verify(d); !ok || err != nil {
		t.Fatalf("committed blob does not verify: %v %v", ok, err)
	}
}
