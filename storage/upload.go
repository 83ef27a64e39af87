package storage

import (
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/wharf-registry/wharf/oci"
)

// Upload is a resumable upload session's data file under uploads/. Chunks
// are appended in order; sha256 is computed as they arrive so the final
// PUT does not re-read the file (unless the process restarted in between,
// or the client asks for another algorithm).
type Upload struct {
	mu   sync.Mutex
	s    *Store
	id   string
	size int64
	h    hash.Hash // nil when the state was lost (restart): re-hash at commit
}

// ValidUploadID reports whether id can name an upload file. IDs are made by
// wharf (hex), so anything else is refused before it touches the disk.
func ValidUploadID(id string) bool {
	if len(id) < 16 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && c != '-' {
			return false
		}
	}
	return true
}

func (s *Store) uploadPath(id string) string { return filepath.Join(s.uploads, id) }

// CreateUpload starts an empty upload file.
func (s *Store) CreateUpload(id string) (*Upload, error) {
	if !ValidUploadID(id) {
		return nil, fmt.Errorf("storage: invalid upload id")
	}
	if err := s.checkSpace(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(s.uploadPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, classify(err)
	}
	f.Close()
	return &Upload{s: s, id: id, h: sha256.New()}, nil
}

// ResumeUpload reopens an upload whose in-memory state was lost.
func (s *Store) ResumeUpload(id string) (*Upload, error) {
	if !ValidUploadID(id) {
		return nil, oci.ErrBlobUploadUnknown
	}
	fi, err := os.Stat(s.uploadPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, oci.ErrBlobUploadUnknown
		}
		return nil, err
	}
	return &Upload{s: s, id: id, size: fi.Size()}, nil
}

// RemoveUpload deletes an upload's data file.
func (s *Store) RemoveUpload(id string) error {
	if !ValidUploadID(id) {
		return nil
	}
	err := os.Remove(s.uploadPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// UploadIDs lists upload files on disk (for reconciliation).
func (s *Store) UploadIDs() ([]string, error) {
	ents, err := os.ReadDir(s.uploads)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// ID is the upload's id.
func (u *Upload) ID() string { return u.id }

// Size is the number of bytes received.
func (u *Upload) Size() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.size
}

// Append writes r at the end of the upload. If offset >= 0 it must equal
// the current size (chunks must arrive in order); otherwise RANGE_INVALID.
// On a failed write the file is truncated back so the session stays usable.
func (u *Upload) Append(offset int64, r io.Reader) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if offset >= 0 && offset != u.size {
		return 0, oci.Errorf(oci.CodeRangeInvalid, "chunk starts at %d but %d bytes were received so far", offset, u.size)
	}
	f, err := os.OpenFile(u.s.uploadPath(u.id), os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, oci.ErrBlobUploadUnknown
		}
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(u.size, io.SeekStart); err != nil {
		return 0, err
	}
	// Hash a copy of the state so a failed chunk can be rolled back.
	var h hash.Hash
	var saved []byte
	if u.h != nil {
		saved, _ = u.h.(encoding.BinaryMarshaler).MarshalBinary()
		h = u.h
	}
	if err := u.s.checkSpace(); err != nil {
		return 0, err
	}
	var dst io.Writer = &spaceChecked{w: f, s: u.s}
	if h != nil {
		dst = io.MultiWriter(dst, h)
	}
	buf := getBuf()
	n, err := io.CopyBuffer(dst, onlyReader{r}, *buf)
	putBuf(buf)
	if err != nil {
		f.Truncate(u.size)
		if saved != nil {
			u.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(saved)
		}
		return 0, classify(err)
	}
	u.size += n
	return n, nil
}

// Commit verifies the upload against d (and size when >= 0) and publishes
// it. On a digest mismatch the upload is left in place so the client can
// still cancel it, and nothing becomes visible.
func (u *Upload) Commit(d oci.Digest, size int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if size >= 0 && size != u.size {
		return oci.Errorf(oci.CodeSizeInvalid, "upload has %d bytes, expected %d", u.size, size)
	}
	p := u.s.uploadPath(u.id)
	var got oci.Digest
	if d.Algorithm() == "sha256" && u.h != nil {
		got = oci.FromHash("sha256", u.h)
	} else {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := d.NewHash()
		buf := getBuf()
		_, err = io.CopyBuffer(h, onlyReader{f}, *buf)
		putBuf(buf)
		f.Close()
		if err != nil {
			return err
		}
		got = oci.FromHash(d.Algorithm(), h)
	}
	if got != d {
		return oci.Errorf(oci.CodeDigestInvalid, "uploaded content hashes to %s, not %s", got, d)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return classify(err)
	}
	f.Close()
	return u.s.link(p, d)
}

// onlyReader hides WriterTo/ReaderFrom so io.CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// Checkpoint remembers the upload's current length and hash state; the
// returned function rolls the upload back to it. A final PUT whose chunk
// fails verification uses it, so the session stays exactly as it was and
// the client can retry or cancel.
func (u *Upload) Checkpoint() (rollback func()) {
	u.mu.Lock()
	size := u.size
	var state []byte
	if u.h != nil {
		state, _ = u.h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	u.mu.Unlock()
	return func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.size == size {
			return
		}
		if err := os.Truncate(u.s.uploadPath(u.id), size); err != nil {
			return
		}
		u.size = size
		if state != nil {
			u.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state)
		}
	}
}

// spaceChecked checks the free-space reserve every few MiB of a write.
type spaceChecked struct {
	w     io.Writer
	s     *Store
	since int64
}

func (c *spaceChecked) Write(p []byte) (int, error) {
	if c.since += int64(len(p)); c.since >= checkEvery {
		c.since = 0
		if err := c.s.checkSpace(); err != nil {
			return 0, err
		}
	}
	return c.w.Write(p)
}
