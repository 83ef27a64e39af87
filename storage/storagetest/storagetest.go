// Package storagetest is the conformance suite every storage.BlobStore
// implementation runs: the filesystem Store today, S3 with issue #13.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// Run runs the suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.BlobStore) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s storage.BlobStore)
	}{
		{"PutThenStatVerifyWalk", putThenStat},
		{"OpenReadsAll", openReadsAll},
		{"OpenRanges", openRanges},
		{"PutUnknownSize", putUnknownSize},
		{"PutLarge", putLarge},
		{"PutTwice", putTwice},
		{"WrongDigestInvisible", wrongDigest},
		{"WrongSizeInvisible", wrongSize},
		{"ReaderFailsInvisible", readerFails},
		{"CancelledInvisible", cancelled},
		{"StatUnknown", statUnknown},
		{"Delete", deleteBlob},
		{"Claims", claims},
		{"CleanTempKeepsBlobs", cleanTemp},
		{"SpaceLeft", spaceLeft},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

// content makes n deterministic bytes that do not compress or repeat.
func content(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

func put(t *testing.T, s storage.BlobStore, b []byte) oci.Digest {
	t.Helper()
	d := oci.FromBytes(b)
	n, err := s.Put(context.Background(), d, int64(len(b)), bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Put %s: %v", d, err)
	}
	if n != int64(len(b)) {
		t.Fatalf("Put %s wrote %d bytes, want %d", d, n, len(b))
	}
	return d
}

// listed is every blob Walk reports, with its size.
func listed(t *testing.T, s storage.BlobStore) map[oci.Digest]int64 {
	t.Helper()
	got := map[oci.Digest]int64{}
	err := s.Walk(func(d oci.Digest, size int64) error { got[d] = size; return nil },
		func(p string) { t.Errorf("Walk: unexpected bad entry %s", p) })
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// mustBeAbsent checks d is visible nowhere.
func mustBeAbsent(t *testing.T, s storage.BlobStore, d oci.Digest) {
	t.Helper()
	if _, err := s.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Stat %s = %v, want ErrBlobUnknown", d, err)
	}
	if f, _, err := s.Open(d); !errors.Is(err, oci.ErrBlobUnknown) {
		if err == nil {
			f.Close()
		}
		t.Errorf("Open %s = %v, want ErrBlobUnknown", d, err)
	}
	if _, err := s.Verify(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Verify %s = %v, want ErrBlobUnknown", d, err)
	}
	if _, ok := listed(t, s)[d]; ok {
		t.Errorf("Walk lists %s", d)
	}
}

func putThenStat(t *testing.T, s storage.BlobStore) {
	b := content("a", 1000)
	d := put(t, s, b)
	if size, err := s.Stat(d); err != nil || size != int64(len(b)) {
		t.Fatalf("Stat = %d, %v; want %d", size, err, len(b))
	}
	if ok, err := s.Verify(d); err != nil || !ok {
		t.Fatalf("Verify = %v, %v; want true", ok, err)
	}
	if got := listed(t, s); len(got) != 1 || got[d] != int64(len(b)) {
		t.Fatalf("Walk = %v, want only %s (%d bytes)", got, d, len(b))
	}
}

func openReadsAll(t *testing.T, s storage.BlobStore) {
	b := content("read", 5<<20+7)
	d := put(t, s, b)
	f, size, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if size != int64(len(b)) {
		t.Fatalf("Open size = %d, want %d", size, len(b))
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("read %d bytes that differ from the %d written", len(got), len(b))
	}
}

// openRanges reads parts of a blob the way a ranged GET and a resumed
// fill do: Seek then Read, and ReadAt.
func openRanges(t *testing.T, s storage.BlobStore) {
	b := content("ranges", 100_000)
	d := put(t, s, b)
	f, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range []struct{ off, n int64 }{{0, 1}, {1, 10}, {65535, 2}, {99_990, 10}, {50_000, 50_000}} {
		if _, err := f.Seek(r.off, io.SeekStart); err != nil {
			t.Fatalf("Seek %d: %v", r.off, err)
		}
		got := make([]byte, r.n)
		if _, err := io.ReadFull(f, got); err != nil {
			t.Fatalf("Read %d bytes at %d: %v", r.n, r.off, err)
		}
		if !bytes.Equal(got, b[r.off:r.off+r.n]) {
			t.Fatalf("Seek+Read of %d bytes at %d returned other bytes", r.n, r.off)
		}
		clear(got)
		if _, err := f.ReadAt(got, r.off); err != nil && !(err == io.EOF && r.off+r.n == int64(len(b))) {
			t.Fatalf("ReadAt %d bytes at %d: %v", r.n, r.off, err)
		}
		if !bytes.Equal(got, b[r.off:r.off+r.n]) {
			t.Fatalf("ReadAt of %d bytes at %d returned other bytes", r.n, r.off)
		}
	}
	if n, err := f.ReadAt(make([]byte, 10), int64(len(b))); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
}

func putUnknownSize(t *testing.T, s storage.BlobStore) {
	b := content("unknown", 3000)
	d := oci.FromBytes(b)
	if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if size, err := s.Stat(d); err != nil || size != int64(len(b)) {
		t.Fatalf("Stat = %d, %v; want %d", size, err, len(b))
	}
}

// putLarge goes past any in-memory or single-request threshold an
// implementation may have (the filesystem hashes behind the writer
// beyond 4 MiB; S3 switches to multipart uploads).
func putLarge(t *testing.T, s storage.BlobStore) {
	b := content("large", 9<<20+123)
	d := put(t, s, b)
	if ok, err := s.Verify(d); err != nil || !ok {
		t.Fatalf("Verify = %v, %v; want true", ok, err)
	}
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] ^= 1
	if _, err := s.Put(context.Background(), oci.FromBytes(b[:len(b)-1]), int64(len(bad)), bytes.NewReader(bad)); err == nil {
		t.Fatal("Put of a large blob under the wrong digest succeeded")
	}
}

func putTwice(t *testing.T, s storage.BlobStore) {
	b := content("twice", 500)
	d := put(t, s, b)
	put(t, s, b)
	if got := listed(t, s); len(got) != 1 || got[d] != int64(len(b)) {
		t.Fatalf("Walk = %v, want only %s", got, d)
	}
}

func wrongDigest(t *testing.T, s storage.BlobStore) {
	claimed := oci.FromBytes([]byte("what the client promised"))
	b := []byte("what it sent")
	if _, err := s.Put(context.Background(), claimed, int64(len(b)), bytes.NewReader(b)); err == nil {
		t.Fatal("Put with the wrong digest succeeded")
	}
	mustBeAbsent(t, s, claimed)
	mustBeAbsent(t, s, oci.FromBytes(b))
}

func wrongSize(t *testing.T, s storage.BlobStore) {
	b := content("size", 100)
	d := oci.FromBytes(b)
	for _, size := range []int64{99, 101} {
		if _, err := s.Put(context.Background(), d, size, bytes.NewReader(b)); err == nil {
			t.Fatalf("Put with size %d of %d bytes succeeded", size, len(b))
		}
		mustBeAbsent(t, s, d)
	}
}

// failingReader gives n bytes of its content, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func readerFails(t *testing.T, s storage.BlobStore) {
	b := content("partial", 6<<20)
	d := oci.FromBytes(b)
	cause := errors.New("connection reset by origin")
	r := &failingReader{r: bytes.NewReader(b[:len(b)/2]), err: cause}
	if _, err := s.Put(context.Background(), d, int64(len(b)), r); !errors.Is(err, cause) {
		t.Fatalf("Put = %v, want the reader's error", err)
	}
	mustBeAbsent(t, s, d)
}

func cancelled(t *testing.T, s storage.BlobStore) {
	b := content("cancel", 2<<20)
	d := oci.FromBytes(b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, d, int64(len(b)), bytes.NewReader(b)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	mustBeAbsent(t, s, d)
}

func statUnknown(t *testing.T, s storage.BlobStore) {
	mustBeAbsent(t, s, oci.FromBytes([]byte("never written")))
}

func deleteBlob(t *testing.T, s storage.BlobStore) {
	keep := put(t, s, content("keep", 10))
	gone := put(t, s, content("gone", 10))
	if err := s.Delete(gone); err != nil {
		t.Fatal(err)
	}
	mustBeAbsent(t, s, gone)
	if _, err := s.Stat(keep); err != nil {
		t.Fatalf("Delete of another blob lost %s: %v", keep, err)
	}
	if err := s.Delete(gone); err != nil {
		t.Fatalf("Delete of a missing blob = %v, want nil", err)
	}
}

func claims(t *testing.T, s storage.BlobStore) {
	d := oci.FromBytes([]byte("claimed"))
	release := s.HoldBlob(d)
	if _, ok := s.TryCollectBlob(d); ok {
		t.Fatal("TryCollectBlob succeeded while the blob is held for writing")
	}
	release()
	done, ok := s.TryCollectBlob(d)
	if !ok {
		t.Fatal("TryCollectBlob failed after the hold was released")
	}
	// A writer arriving during the collection waits for it to finish.
	held := make(chan func())
	go func() { held <- s.HoldBlob(d) }()
	select {
	case <-held:
		t.Fatal("HoldBlob returned while a collection of the blob is under way")
	default:
	}
	done()
	(<-held)()
	other, ok := s.TryCollectBlob(oci.FromBytes([]byte("other")))
	if !ok {
		t.Fatal("TryCollectBlob of an unclaimed digest failed")
	}
	other()
}

func cleanTemp(t *testing.T, s storage.BlobStore) {
	d := put(t, s, content("survivor", 100))
	b := content("abandoned", 1<<20)
	r := &failingReader{r: bytes.NewReader(b[:1000]), err: io.ErrUnexpectedEOF}
	if _, err := s.Put(context.Background(), oci.FromBytes(b), int64(len(b)), r); err == nil {
		t.Fatal("Put of a short stream succeeded")
	}
	if _, err := s.CleanTemp(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Verify(d); err != nil || !ok {
		t.Fatalf("after CleanTemp, Verify = %v, %v; want true", ok, err)
	}
}

func spaceLeft(t *testing.T, s storage.BlobStore) {
	free, reserve, err := s.SpaceLeft()
	if err != nil {
		t.Fatal(err)
	}
	if free < 0 || reserve < 0 {
		t.Fatalf("SpaceLeft = %d, %d; want non-negative", free, reserve)
	}
}
