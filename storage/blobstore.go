package storage

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/wharf-registry/wharf/oci"
)

// BlobStore is what hosted, cache, eviction, GC and reconcile need from
// committed, content-addressed blobs, whichever backend holds them (today
// the filesystem Store; issue #13 adds S3). storagetest.Run checks every
// implementation against the contract below.
//
// The contract:
//   - A blob is visible (Stat, Walk, Verify) only after its bytes were
//     hashed to its digest and, when a size was given, counted to that
//     size. A failed, cancelled or wrong write leaves nothing visible.
//   - A crash at any moment (kill -9) leaves each blob either absent or
//     complete and verified, never half-visible. Leftovers of unfinished
//     writes are invisible and removed by CleanTemp.
//   - A missing blob is reported as oci.ErrBlobUnknown (wrapped).
//   - A full backend is reported as ErrNoSpace (wrapped); a reader's or
//     context's error is kept for errors.Is.
//   - HoldBlob and TryCollectBlob keep a write of a digest apart from a
//     collection (GC, eviction) of the same digest within one process.
//
// The streaming writer of cache fills (NewWriter: O_DIRECT, HashAside,
// readers that follow the file while it is written), uploads, fsck's
// Quarantine and BlobPath still go through *Store; they join this
// interface, with those fast paths as optional capabilities, in the next
// step of issue #13.
type BlobStore interface {
	// Stat returns a committed blob's size.
	Stat(d oci.Digest) (int64, error)
	// Open opens a committed blob for reading and returns its size.
	Open(d oci.Digest) (Blob, int64, error)
	// Put streams r in as the blob d; size < 0 means unknown. It returns
	// the number of bytes read from r. Writing an existing blob again is
	// not an error.
	Put(ctx context.Context, d oci.Digest, size int64, r io.Reader) (int64, error)
	// Delete removes a committed blob; a missing blob is not an error.
	Delete(d oci.Digest) error
	// Verify re-reads a committed blob and reports whether it hashes to d.
	Verify(d oci.Digest) (bool, error)
	// Walk calls fn for every committed blob, and bad for every entry
	// that is not a well-placed blob (fsck reports it).
	Walk(fn func(d oci.Digest, size int64) error, bad func(path string)) error

	// HoldBlob marks d as being written until release is called, waiting
	// while a collection of d is under way.
	HoldBlob(d oci.Digest) (release func())
	// TryCollectBlob claims d for deletion unless it is being written.
	TryCollectBlob(d oci.Digest) (release func(), ok bool)

	// SpaceLeft reports bytes free for writers and the reserve kept back.
	SpaceLeft() (free, reserve int64, err error)
	// CleanTemp removes what unfinished writes left behind; called at
	// start, before any writer of this process exists.
	CleanTemp() (removed int, err error)
}

// Blob is an open committed blob: read it in sequence, seek for a range,
// or read at offsets. The filesystem's Blob is an *os.File; callers that
// want sendfile or O_DIRECT find it by a checked type assertion (io.Copy
// to a socket already does) and fall back to plain reads.
type Blob interface {
	io.ReadSeekCloser
	io.ReaderAt
}

// VerifyBlob re-reads the committed blob d through s.Open and reports
// whether it hashes to d: every store's Verify.
func VerifyBlob(s BlobStore, d oci.Digest) (bool, error) {
	f, _, err := s.Open(d)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := d.NewHash()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("storage: verify %s: %w", d, err)
	}
	return oci.FromHash(d.Algorithm(), h) == d, nil
}

// ErrUnavailable is what a store on a server (S3) wraps when the server
// cannot be reached or answers that it cannot serve now: the registry
// answers 503, and nothing stored is affected.
var ErrUnavailable = errors.New("blob store unavailable")

var _ BlobStore = (*Store)(nil)
