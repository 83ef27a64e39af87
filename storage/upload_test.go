package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

const uploadID = "0123456789abcdef0123456789abcdef"

func newUpload(t *testing.T, s *Store, id string) *Upload {
	t.Helper()
	u, err := s.CreateUpload(id)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID() != id || u.Size() != 0 {
		t.Fatalf("new upload: id %q size %d", u.ID(), u.Size())
	}
	return u
}

func appendOK(t *testing.T, u *Upload, offset int64, data []byte) {
	t.Helper()
	n, err := u.Append(offset, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Append(%d, %d bytes) = %d, %v", offset, len(data), n, err)
	}
}

func uploadFileSize(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	fi, err := os.Stat(s.uploadPath(id))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestValidUploadID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{uploadID, true},
		{"0123456789abcdef", true},
		{strings.Repeat("a", 64), true},
		{"01234567-89ab-cdef-0123-456789abcdef", true},

		{"", false},
		{"0123456789abcde", false},
		{strings.Repeat("a", 65), false},
		{"..", false},
		{"../../../../etc/passwd", false},
		{"0123456789abcdef/..", false},
		{"0123456789abcdef/0123456789abcdef", false},
		{"..0123456789abcdef", false},
		{"0123456789ABCDEF", false},
		{"0123456789abcdeg", false},
		{"0123456789abcdef\x00", false},
		{"0123456789abcdef ", false},
		{`0123456789abcdef\x`, false},
	}
	for _, tt := range tests {
		if got := ValidUploadID(tt.id); got != tt.ok {
			t.Errorf("ValidUploadID(%q) = %v, want %v", tt.id, got, tt.ok)
		}
	}
	s := newStore(t)
	if _, err := s.CreateUpload("../../escape-attempt-0000"); err == nil {
		t.Error("CreateUpload accepted a path")
	}
	if _, err := s.ResumeUpload(".."); !errors.Is(err, oci.ErrBlobUploadUnknown) {
		t.Errorf("ResumeUpload(..) = %v", err)
	}
	if err := s.RemoveUpload("../tmp"); err != nil {
		t.Errorf("RemoveUpload(../tmp) = %v", err)
	}
	checkEmpty(t, s.uploads)
}

func TestUploadChunks(t *testing.T) {
	s := newStore(t)
	data := content("chunked", 2*bufSize+1234)
	d := oci.FromBytes(data)
	u := newUpload(t, s, uploadID)
	if _, err := s.CreateUpload(uploadID); err == nil {
		t.Error("second CreateUpload with the same id succeeded")
	}
	appendOK(t, u, 0, data[:1000])
	appendOK(t, u, 1000, data[1000:bufSize+7])
	appendOK(t, u, -1, data[bufSize+7:]) // no Content-Range: append at the end
	if u.Size() != int64(len(data)) || uploadFileSize(t, s, uploadID) != int64(len(data)) {
		t.Fatalf("size %d, file %d", u.Size(), uploadFileSize(t, s, uploadID))
	}
	if ids, _ := s.UploadIDs(); len(ids) != 1 || ids[0] != uploadID {
		t.Errorf("UploadIDs = %v", ids)
	}
	checkCode(t, "Commit wrong size", u.Commit(d, int64(len(data))-1), oci.CodeSizeInvalid)
	if err := u.Commit(d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, d, data)
	checkEmpty(t, s.uploads)
	checkEmpty(t, s.tmp)
	if _, err := u.Append(-1, strings.NewReader("late")); !errors.Is(err, oci.ErrBlobUploadUnknown) {
		t.Errorf("Append after Commit = %v, want BLOB_UPLOAD_UNKNOWN", err)
	}
}

func TestUploadEmptyAndMonolithic(t *testing.T) {
	s := newStore(t)
	u := newUpload(t, s, uploadID)
	if err := u.Commit(oci.FromBytes(nil), 0); err != nil {
		t.Fatalf("empty upload: %v", err)
	}
	checkBlob(t, s, oci.FromBytes(nil), nil)

	data := []byte("one piece")
	u = newUpload(t, s, "fedcba9876543210")
	appendOK(t, u, 0, data)
	if err := u.Commit(oci.FromBytes(data), -1); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, oci.FromBytes(data), data)
}

func TestUploadOffsetMismatch(t *testing.T) {
	s := newStore(t)
	data := content("ordered", 300)
	u := newUpload(t, s, uploadID)
	appendOK(t, u, 0, data[:100])
	for _, off := range []int64{0, 50, 99, 101, 1 << 40} {
		n, err := u.Append(off, bytes.NewReader(data[100:]))
		if n != 0 {
			t.Errorf("Append at %d wrote %d bytes", off, n)
		}
		checkCode(t, fmt.Sprintf("Append at %d", off), err, oci.CodeRangeInvalid)
		if e, _ := oci.AsError(err); e != nil && e.HTTPStatus() != 416 {
			t.Errorf("status %d, want 416", e.HTTPStatus())
		}
	}
	if u.Size() != 100 || uploadFileSize(t, s, uploadID) != 100 {
		t.Fatalf("after refused chunks: size %d, file %d", u.Size(), uploadFileSize(t, s, uploadID))
	}
	// The session is still usable.
	appendOK(t, u, 100, data[100:])
	if err := u.Commit(oci.FromBytes(data), 300); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, oci.FromBytes(data), data)
}

func TestUploadFailedChunkRollsBack(t *testing.T) {
	for _, resumed := range []bool{false, true} {
		t.Run(fmt.Sprintf("resumed=%v", resumed), func(t *testing.T) {
			s := newStore(t)
			data := content("rollback", 3000)
			u := newUpload(t, s, uploadID)
			appendOK(t, u, 0, data[:1000])
			if resumed {
				var err error
				if u, err = s.ResumeUpload(uploadID); err != nil {
					t.Fatal(err)
				}
			}
			boom := errors.New("client went away")
			// 700 good bytes reach the file and the hash, then the body fails.
			n, err := u.Append(1000, &failingReader{data: data[1000:1700], err: boom})
			if !errors.Is(err, boom) || n != 0 {
				t.Fatalf("failing chunk: %d, %v", n, err)
			}
			if u.Size() != 1000 || uploadFileSize(t, s, uploadID) != 1000 {
				t.Fatalf("after failure: size %d, file %d; want 1000", u.Size(), uploadFileSize(t, s, uploadID))
			}
			// The client retries the chunk; the digest only matches if the hash
			// state was rolled back with the file.
			appendOK(t, u, 1000, data[1000:])
			if err := u.Commit(oci.FromBytes(data), 3000); err != nil {
				t.Fatal(err)
			}
			checkBlob(t, s, oci.FromBytes(data), data)
		})
	}
}

func TestUploadResumeRehashes(t *testing.T) {
	s := newStore(t)
	data := content("resume", bufSize+999)
	d := oci.FromBytes(data)
	u := newUpload(t, s, uploadID)
	appendOK(t, u, 0, data[:5000])
	// The process restarts: only the file is left, u is forgotten.

	r, err := s.ResumeUpload(uploadID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != 5000 || r.ID() != uploadID {
		t.Fatalf("resumed: size %d id %q", r.Size(), r.ID())
	}
	checkCode(t, "Append at the old offset", func() error { _, err := r.Append(0, bytes.NewReader(data)); return err }(), oci.CodeRangeInvalid)
	appendOK(t, r, 5000, data[5000:])
	checkCode(t, "Commit wrong digest", r.Commit(oci.FromBytes([]byte("nope")), -1), oci.CodeDigestInvalid)
	checkAbsent(t, s, d)
	if r.Size() != int64(len(data)) || uploadFileSize(t, s, uploadID) != int64(len(data)) {
		t.Fatal("a failed Commit changed the upload")
	}
	if err := r.Commit(d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, d, data)
	checkEmpty(t, s.uploads)

	if _, err := s.ResumeUpload("fedcba9876543210"); !errors.Is(err, oci.ErrBlobUploadUnknown) {
		t.Errorf("ResumeUpload(unknown) = %v", err)
	}
}

func TestUploadSHA512(t *testing.T) {
	s := newStore(t)
	data := content("sha512", 2*bufSize+3)
	d := oci.FromBytesAlg("sha512", data)
	u := newUpload(t, s, uploadID)
	appendOK(t, u, 0, data[:bufSize])
	appendOK(t, u, bufSize, data[bufSize:])
	checkCode(t, "sha512 mismatch", u.Commit(oci.FromBytesAlg("sha512", data[1:]), -1), oci.CodeDigestInvalid)
	if err := u.Commit(d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, s, d, data)
	if want := s.blobs + "/sha512/" + d.Hex()[:2] + "/" + d.Hex(); s.BlobPath(d) != want {
		t.Errorf("sha512 path = %s", s.BlobPath(d))
	}
}

func TestUploadDigestMismatchKeepsSession(t *testing.T) {
	s := newStore(t)
	data := []byte("the real content")
	u := newUpload(t, s, uploadID)
	appendOK(t, u, 0, data)
	wrong := oci.FromBytes([]byte("something else"))
	checkCode(t, "Commit", u.Commit(wrong, int64(len(data))), oci.CodeDigestInvalid)
	checkAbsent(t, s, wrong)
	checkEmpty(t, s.blobs)
	if ids, _ := s.UploadIDs(); len(ids) != 1 {
		t.Fatalf("upload gone after a failed Commit: %v", ids)
	}
	// The client cancels it.
	if err := s.RemoveUpload(uploadID); err != nil {
		t.Fatal(err)
	}
	checkEmpty(t, s.uploads)
	if err := s.RemoveUpload(uploadID); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if _, err := u.Append(-1, strings.NewReader("x")); !errors.Is(err, oci.ErrBlobUploadUnknown) {
		t.Errorf("Append after RemoveUpload = %v", err)
	}
}

func TestUploadCommitExistingBlob(t *testing.T) {
	s := newStore(t)
	data := []byte("already here")
	d := oci.FromBytes(data)
	for _, id := range []string{uploadID, "fedcba9876543210"} {
		u := newUpload(t, s, id)
		appendOK(t, u, 0, data)
		if err := u.Commit(d, -1); err != nil {
			t.Fatal(err)
		}
	}
	checkBlob(t, s, d, data)
	checkEmpty(t, s.uploads)
	if f := files(t, s.blobs); len(f) != 1 {
		t.Errorf("blobs = %v", f)
	}
}

// TestUploadConcurrentAppends checks that the running hash always matches
// the file when chunks without offsets race.
func TestUploadConcurrentAppends(t *testing.T) {
	s := newStore(t)
	u := newUpload(t, s, uploadID)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := u.Append(-1, bytes.NewReader(content(fmt.Sprint(i), 10000+i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(s.uploadPath(uploadID))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, f)
	f.Close()
	d := oci.FromHash("sha256", h)
	if n != u.Size() {
		t.Fatalf("file %d bytes, upload says %d", n, u.Size())
	}
	if err := u.Commit(d, n); err != nil {
		t.Fatal(err)
	}
}
