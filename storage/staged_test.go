package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// failingPut is a remote store whose Put fails, as S3 does when it is down.
type failingPut struct{ BlobStore }

var errStoreDown = errors.New("store down")

func (failingPut) Put(ctx context.Context, d oci.Digest, size int64, r io.Reader) (int64, error) {
	return 0, errStoreDown
}

func newStaged(t *testing.T) (*Staged, *Store) {
	t.Helper()
	remote, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStaged(t.TempDir(), remote)
	if err != nil {
		t.Fatal(err)
	}
	return s, remote
}

// scratchFiles lists what is left in the scratch area, uploads aside.
func scratchFiles(t *testing.T, s *Staged, under string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(s.Scratch().Root(), under), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestStagedWriterHandsOver(t *testing.T) {
	s, remote := newStaged(t)
	b := bytes.Repeat([]byte("staged "), 1<<20)
	d := oci.FromBytes(b)
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	r, err := w.OpenReader() // a fill's reader, following the temp file
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Fatalf("visible in the remote before Commit: %v", err)
	}
	if err := w.Commit(d, int64(len(b))); err != nil {
		t.Fatal(err)
	}
	if n, err := remote.Stat(d); err != nil || n != int64(len(b)) {
		t.Fatalf("remote Stat after Commit = %d, %v", n, err)
	}
	if n, err := s.Stat(d); err != nil || n != int64(len(b)) {
		t.Fatalf("Staged Stat after Commit = %d, %v", n, err)
	}
	if left := scratchFiles(t, s, ""); len(left) != 0 {
		t.Errorf("scratch keeps %v after the hand-over", left)
	}
	// The reader that followed the fill still reads every byte.
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, b) {
		t.Errorf("fill reader after the hand-over: %d bytes, %v", len(got), err)
	}
}

func TestStagedWrongDigestStaysInvisible(t *testing.T) {
	s, remote := newStaged(t)
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Write([]byte("one thing"))
	d := oci.FromBytes([]byte("another"))
	if err := w.Commit(d, -1); err == nil {
		t.Fatal("Commit of the wrong digest succeeded")
	}
	w.Abort()
	if _, err := remote.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("wrong bytes visible: %v", err)
	}
	if left := scratchFiles(t, s, ""); len(left) != 0 {
		t.Errorf("scratch keeps %v", left)
	}
}

func TestStagedUploadHandsOver(t *testing.T) {
	s, remote := newStaged(t)
	u, err := s.CreateUpload(uploadID)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("pushed through the scratch area")
	appendOK(t, u, 0, b)
	d := oci.FromBytes(b)
	if err := u.Commit(d, int64(len(b))); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Stat(d); err != nil {
		t.Fatalf("upload not in the remote: %v", err)
	}
	if left := scratchFiles(t, s, "uploads"); len(left) != 0 {
		t.Errorf("scratch keeps %v", left)
	}
}

// A remote that fails the hand-over: the fill's temp file goes (the fill
// fails and is tried again from the upstream), the upload stays for the
// client's retry, and nothing is visible.
func TestStagedHandOverFails(t *testing.T) {
	remote, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStaged(t.TempDir(), failingPut{remote})
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("never lands")
	d := oci.FromBytes(b)
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Commit(d, -1); !errors.Is(err, errStoreDown) {
		t.Errorf("writer Commit = %v, want the store's error", err)
	}
	w.Abort()
	if left := scratchFiles(t, s, "tmp"); len(left) != 0 {
		t.Errorf("writer temp files left: %v", left)
	}
	u, err := s.CreateUpload(uploadID)
	if err != nil {
		t.Fatal(err)
	}
	appendOK(t, u, 0, b)
	if err := u.Commit(d, -1); !errors.Is(err, errStoreDown) {
		t.Errorf("upload Commit = %v, want the store's error", err)
	}
	if u2, err := s.ResumeUpload(uploadID); err != nil || u2.Size() != int64(len(b)) {
		t.Errorf("upload after a failed hand-over: %v", err)
	}
	if _, err := remote.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("visible after a failed hand-over: %v", err)
	}
}

// fullRemote is a bucket over its quota.
type fullRemote struct{ BlobStore }

func (fullRemote) Put(context.Context, oci.Digest, int64, io.Reader) (int64, error) {
	return 0, fmt.Errorf("%w: quota exceeded", ErrNoSpace)
}

// TestEvictionFrees: a full filesystem or a full bucket is relieved by
// evicting; a full scratch disk in front of a bucket is not.
func TestEvictionFrees(t *testing.T) {
	fs, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStaged(t.TempDir(), fullRemote{fs})
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("over quota")
	w, err := s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	bucketFull := w.Commit(oci.FromBytes(b), -1)
	w.Abort()
	diskFull := fmt.Errorf("writing: %w", ErrNoSpace)
	for _, c := range []struct {
		name  string
		store BlobStore
		err   error
		want  bool
	}{
		{"filesystem full", fs, diskFull, true},
		{"bucket full", s, bucketFull, true},
		{"scratch full", s, diskFull, false},
		{"another error", fs, errStoreDown, false},
		{"a hand-off failing otherwise", s, &HandOffError{Err: errStoreDown}, false},
	} {
		if got := EvictionFrees(c.store, c.err); got != c.want {
			t.Errorf("%s (%v): EvictionFrees = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
