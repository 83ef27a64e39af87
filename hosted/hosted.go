// Package hosted implements repositories that take pushes: upload
// sessions, blob links, manifests with their reference checks, tags,
// referrers and deletes. It returns oci errors (wrapped); the HTTP layer
// turns them into responses.
package hosted

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// Store is the blob store pushes land in: any storage.BlobStore, plus
// the filesystem's resumable upload sessions, which become a capability
// of BlobStore with a second blob backend (issue #13).
type Store interface {
	storage.BlobStore
	CreateUpload(id string) (*storage.Upload, error)
	ResumeUpload(id string) (*storage.Upload, error)
	RemoveUpload(id string) error
	UploadIDs() ([]string, error)
}

var _ Store = (*storage.Store)(nil)

// Service is the hosted-repository logic over a blob store and the index.
type Service struct {
	store Store
	idx   index.Index
	log   *slog.Logger
	now   func() time.Time

	// owner names this replica in upload records (cluster mode; empty
	// on a single box).
	owner string

	mu      sync.Mutex
	uploads map[string]*storage.Upload // live sessions; the index has them too

	gcMu sync.Mutex // one garbage collection at a time
}

// New makes a Service.
func New(store Store, idx index.Index, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, idx: idx, log: log, now: time.Now, uploads: map[string]*storage.Upload{}}
}

// SetOwner names this replica in the upload sessions it starts, in
// cluster mode, where a session's bytes stay in the scratch area of the
// replica that started it. Call it before serving.
func (s *Service) SetOwner(replica string) { s.owner = replica }

// ElsewhereError says an upload session's bytes are on another replica:
// its requests are to be forwarded there.
type ElsewhereError struct {
	ID, Repo string
	Owner    string // the replica holding it
}

func (e *ElsewhereError) Error() string {
	return fmt.Sprintf("upload %s of %s is held by replica %s", e.ID, e.Repo, e.Owner)
}

// BlobInfo is what the HTTP layer needs to answer a blob HEAD or GET.
type BlobInfo struct {
	Digest    oci.Digest
	Size      int64
	MediaType string
}

// StatBlob reports a blob visible in repo.
func (s *Service) StatBlob(ctx context.Context, repo string, d oci.Digest) (BlobInfo, error) {
	var rec index.BlobRecord
	err := s.idx.View(func(tx index.Txn) error {
		ok, err := tx.BlobLinked(repo, d)
		if err != nil {
			return err
		}
		if !ok {
			return oci.Errorf(oci.CodeBlobUnknown, "blob %s is not in repository %s", d, repo)
		}
		rec, err = tx.Blob(d)
		if errors.Is(err, index.ErrNotFound) {
			return oci.Errorf(oci.CodeBlobUnknown, "blob %s is not in repository %s", d, repo)
		}
		return err
	})
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: d, Size: rec.Size, MediaType: rec.MediaType}, nil
}

// OpenBlob opens a blob visible in repo for streaming.
func (s *Service) OpenBlob(ctx context.Context, repo string, d oci.Digest) (storage.Blob, BlobInfo, error) {
	info, err := s.StatBlob(ctx, repo, d)
	if err != nil {
		return nil, BlobInfo{}, err
	}
	f, size, err := s.store.Open(d)
	if err != nil {
		if errors.Is(err, oci.ErrBlobUnknown) {
			s.log.Warn("blob indexed but its file is missing; run wharf fsck", "digest", d)
		}
		return nil, BlobInfo{}, err
	}
	info.Size = size
	return f, info, nil
}

// DeleteBlob hides a blob from repo. The file is reclaimed by garbage
// collection once nothing links or references it.
func (s *Service) DeleteBlob(ctx context.Context, repo string, d oci.Digest) error {
	return s.idx.Update(ctx, func(tx index.Txn) error {
		ok, err := tx.BlobLinked(repo, d)
		if err != nil {
			return err
		}
		if !ok {
			return oci.Errorf(oci.CodeBlobUnknown, "blob %s is not in repository %s", d, repo)
		}
		return tx.UnlinkBlob(repo, d)
	})
}

// MountBlob links a blob from another repository into repo. It reports
// false (and no error) when from does not have it, so the caller falls
// back to a regular upload as the spec requires.
func (s *Service) MountBlob(ctx context.Context, repo, from string, d oci.Digest) (bool, error) {
	mounted := false
	err := s.idx.Update(ctx, func(tx index.Txn) error {
		mounted = false
		ok, err := tx.BlobLinked(from, d)
		if err != nil || !ok {
			return err
		}
		rec, err := tx.Blob(d)
		if err != nil {
			if errors.Is(err, index.ErrNotFound) {
				return nil
			}
			return err
		}
		mounted = true
		if err := s.touchBlob(tx, rec); err != nil {
			return err
		}
		return tx.LinkBlob(repo, d)
	})
	return mounted, err
}

// --- uploads ---

func newUploadID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StartUpload opens an upload session in repo.
func (s *Service) StartUpload(ctx context.Context, repo string) (string, error) {
	id := newUploadID()
	u, err := s.store.CreateUpload(id)
	if err != nil {
		return "", err
	}
	err = s.idx.Update(ctx, func(tx index.Txn) error {
		return tx.PutUpload(index.UploadRecord{ID: id, Repo: repo, Started: s.now(), Owner: s.owner})
	})
	if err != nil {
		s.store.RemoveUpload(id)
		return "", err
	}
	s.mu.Lock()
	s.uploads[id] = u
	s.mu.Unlock()
	return id, nil
}

// upload finds a session of repo: from memory, or after a restart from the
// index and the data file. A session another replica holds is an
// *ElsewhereError, returned before anything is read from the request.
func (s *Service) upload(repo, id string) (*storage.Upload, error) {
	unknown := oci.Errorf(oci.CodeBlobUploadUnknown, "upload %q is unknown in repository %s (finished, cancelled or never started)", id, repo)
	if !storage.ValidUploadID(id) {
		return nil, unknown
	}
	var rec index.UploadRecord
	err := s.idx.View(func(tx index.Txn) error {
		var err error
		rec, err = tx.Upload(id)
		return err
	})
	if errors.Is(err, index.ErrNotFound) || (err == nil && rec.Repo != repo) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	if rec.Owner != s.owner {
		return nil, &ElsewhereError{ID: id, Repo: repo, Owner: rec.Owner}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.uploads[id]; ok {
		return u, nil
	}
	u, err := s.store.ResumeUpload(id)
	if errors.Is(err, oci.ErrBlobUploadUnknown) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	s.uploads[id] = u
	return u, nil
}

// UploadSize reports how many bytes an upload session has received.
func (s *Service) UploadSize(ctx context.Context, repo, id string) (int64, error) {
	u, err := s.upload(repo, id)
	if err != nil {
		return 0, err
	}
	return u.Size(), nil
}

// AppendUpload adds a chunk. offset is the chunk's declared start, or -1
// when the client sent no Content-Range (streamed upload).
func (s *Service) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (int64, error) {
	u, err := s.upload(repo, id)
	if err != nil {
		return 0, err
	}
	if _, err := u.Append(offset, r); err != nil {
		return u.Size(), err
	}
	return u.Size(), nil
}

// FinishUpload appends a last chunk (r may be nil), verifies the whole
// upload against d and makes the blob visible in repo.
func (s *Service) FinishUpload(ctx context.Context, repo, id string, offset int64, r io.Reader, d oci.Digest) error {
	u, err := s.upload(repo, id)
	if err != nil {
		return err
	}
	rollback := u.Checkpoint()
	if r != nil {
		if _, err := u.Append(offset, r); err != nil {
			return err
		}
	}
	release := s.store.HoldBlob(d)
	defer release()
	if err := u.Commit(d, -1); err != nil {
		rollback()
		return err
	}
	size := u.Size()
	s.forget(id)
	// The file is in place: record it even if the client hangs up now,
	// or it would sit on disk unindexed until a crash reconcile.
	return s.idx.Update(context.WithoutCancel(ctx), func(tx index.Txn) error {
		if err := s.recordBlob(tx, d, size, ""); err != nil {
			return err
		}
		if err := tx.LinkBlob(repo, d); err != nil {
			return err
		}
		return tx.DeleteUpload(id)
	})
}

// recordBlob records a blob a hosted repository now holds, or touches its
// existing record (see touchBlob).
func (s *Service) recordBlob(tx index.Txn, d oci.Digest, size int64, mediaType string) error {
	if rec, err := tx.Blob(d); err == nil {
		return s.touchBlob(tx, rec)
	} else if !errors.Is(err, index.ErrNotFound) {
		return err
	}
	now := s.now()
	return tx.PutBlob(index.BlobRecord{Digest: d, Size: size, MediaType: mediaType, Created: now, LastAccess: now, Origin: "hosted"})
}

func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.uploads, id)
	s.mu.Unlock()
}

// CancelUpload ends a session and discards its data.
func (s *Service) CancelUpload(ctx context.Context, repo, id string) error {
	if _, err := s.upload(repo, id); err != nil {
		return err
	}
	s.forget(id)
	if err := s.store.RemoveUpload(id); err != nil {
		return err
	}
	return s.idx.Update(ctx, func(tx index.Txn) error { return tx.DeleteUpload(id) })
}

// PutBlob stores a whole blob in one step (monolithic POST with ?digest=).
func (s *Service) PutBlob(ctx context.Context, repo string, d oci.Digest, size int64, r io.Reader) error {
	release := s.store.HoldBlob(d)
	defer release()
	n, err := s.store.Put(ctx, d, size, r)
	if err != nil {
		return err
	}
	return s.idx.Update(context.WithoutCancel(ctx), func(tx index.Txn) error {
		if err := s.recordBlob(tx, d, n, ""); err != nil {
			return err
		}
		return tx.LinkBlob(repo, d)
	})
}

// ExpireUploads drops sessions older than maxAge so abandoned pushes do
// not fill the disk. With orphans set (only at start, before serving) it
// also removes data files that have no session. In cluster mode a
// session another replica holds is left to that replica, which removes
// its data file with it, until twice maxAge: by then its replica is gone
// for good, and only the record is left to drop.
func (s *Service) ExpireUploads(ctx context.Context, maxAge time.Duration, orphans bool) (int, error) {
	now := s.now()
	var old []string
	known := map[string]bool{}
	err := s.idx.View(func(tx index.Txn) error {
		return tx.EachUpload(func(r index.UploadRecord) error {
			known[r.ID] = true
			age := maxAge
			if r.Owner != s.owner {
				age = 2 * maxAge
			}
			if r.Started.Before(now.Add(-age)) {
				old = append(old, r.ID)
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	if orphans {
		files, err := s.store.UploadIDs()
		if err != nil {
			return 0, err
		}
		for _, f := range files {
			if !known[f] {
				old = append(old, f)
			}
		}
	}
	for _, id := range old {
		s.forget(id)
		s.store.RemoveUpload(id)
		if err := s.idx.Update(ctx, func(tx index.Txn) error { return tx.DeleteUpload(id) }); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}
