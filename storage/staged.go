package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wharf-registry/wharf/oci"
)

// Staged is a BlobStore whose committed blobs live in another store (S3,
// in cluster mode) while streaming writes land first in a local scratch
// Store: a cache fill writes its temp file and its readers follow it as
// they do on the filesystem, and an upload session appends to a local
// file. Commit then hands the verified file to the remote store, whose
// Put hashes it again as it takes it, so a blob becomes visible in the
// remote only complete and verified, and the scratch copy is removed.
//
// Everything else (Stat, Open, Put, Delete, Walk, Verify, the claims)
// is the remote's. The scratch directory belongs to one process and is
// never shared: each replica needs its own.
type Staged struct {
	BlobStore
	scratch *Store
}

// NewStaged opens a scratch Store in dir whose commits go to remote.
func NewStaged(dir string, remote BlobStore) (*Staged, error) {
	s, err := Open(dir)
	if err != nil {
		return nil, err
	}
	s.publishTo = remote
	return &Staged{BlobStore: remote, scratch: s}, nil
}

// Scratch is the local store fills and uploads are staged in.
func (s *Staged) Scratch() *Store { return s.scratch }

// NewWriter starts a blob in the scratch area; its Commit hands it over.
func (s *Staged) NewWriter(alg string) (*Writer, error) { return s.scratch.NewWriter(alg) }

// CreateUpload, ResumeUpload, RemoveUpload and UploadIDs keep upload
// sessions in the scratch area; Upload.Commit hands the blob over.
func (s *Staged) CreateUpload(id string) (*Upload, error) { return s.scratch.CreateUpload(id) }
func (s *Staged) ResumeUpload(id string) (*Upload, error) { return s.scratch.ResumeUpload(id) }
func (s *Staged) RemoveUpload(id string) error            { return s.scratch.RemoveUpload(id) }
func (s *Staged) UploadIDs() ([]string, error)            { return s.scratch.UploadIDs() }

// SpaceLeft is the scratch disk's: that is what a fill or upload fills.
func (s *Staged) SpaceLeft() (free, reserve int64, err error) { return s.scratch.SpaceLeft() }

// CleanTemp cleans both: the scratch area's temp files and whatever the
// remote's unfinished writes left.
func (s *Staged) CleanTemp() (int, error) {
	n, err := s.scratch.CleanTemp()
	if err != nil {
		return n, err
	}
	m, err := s.BlobStore.CleanTemp()
	return n + m, err
}

// handOff puts a verified local file into the remote store as d. A temp
// file of a writer is removed either way; an upload session's file stays
// when the hand-off failed, so the client can retry its PUT.
func (s *Store) handOff(name string, d oci.Digest) error {
	f, err := os.Open(name)
	if err != nil {
		return classify(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	// Not the writer's context: a fill's commit completes even while its
	// clients go away (what the filesystem's rename does too).
	if _, err = s.publishTo.Put(context.Background(), d, fi.Size(), f); err != nil {
		if filepath.Dir(name) == s.tmp {
			os.Remove(name)
		}
		return &HandOffError{Digest: d, Err: err}
	}
	os.Remove(name)
	return nil
}

var _ BlobStore = (*Staged)(nil)

// HandOffError is a verified local file the remote store did not take.
type HandOffError struct {
	Digest oci.Digest
	Err    error
}

func (e *HandOffError) Error() string {
	return fmt.Sprintf("handing %s over to the blob store: %v", e.Digest, e.Err)
}

func (e *HandOffError) Unwrap() error { return e.Err }

// EvictionFrees reports whether err, from a write to store, is a lack of
// space that evicting blobs of store relieves: on a filesystem store, or
// a remote store that is full; not a Staged store's scratch disk, which
// holds no committed blob.
func EvictionFrees(store BlobStore, err error) bool {
	if !errors.Is(err, ErrNoSpace) {
		return false
	}
	if _, staged := store.(*Staged); !staged {
		return true
	}
	var h *HandOffError
	return errors.As(err, &h)
}
