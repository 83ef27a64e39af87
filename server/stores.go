package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// blobStore is what the server hands hosted and the proxies: the
// filesystem Store, or in cluster mode a Staged store over S3.
type blobStore interface {
	hosted.Store
	cache.Store
}

var (
	_ blobStore = (*storage.Store)(nil)
	_ blobStore = (*storage.Staged)(nil)
)

// openLocal opens the embedded default: blobs under dir and the Badger
// index in dir/index, reconciled after a crash.
func (s *Server) openLocal(ctx context.Context, dir string) error {
	st, err := storage.Open(dir)
	if err != nil {
		return err
	}
	s.store = st
	// Through a local: a failed Open's nil *Badger in the interface
	// field would not compare equal to nil, and closeStores would close it.
	idx, err := index.Open(filepath.Join(dir, "index"), index.Options{Logger: s.log})
	if err != nil {
		return err
	}
	s.idx = idx
	// After a clean stop the index and the files agree: skip the walk of
	// every blob, which is what makes a large cache slow to start. After a
	// crash (no marker), reconcile fully.
	clean := filepath.Join(dir, cleanMarker)
	if _, statErr := os.Stat(clean); statErr == nil {
		os.Remove(clean)
		if n, err := s.store.CleanTemp(); err != nil {
			return err
		} else if n > 0 {
			s.log.Warn("removed temp files left by the last run", "count", n)
		}
		return nil
	}
	s.log.Info("last stop was not clean (or this is the first start): checking the index against the blob files")
	rep, err := index.Reconcile(ctx, s.idx, s.store)
	if err != nil {
		return fmt.Errorf("reconciling index with %s: %w", dir, err)
	}
	s.logReconcile(rep)
	return nil
}

// checkStore asks the blob store for an absent blob: an unreachable or
// refusing store fails, as it would for a client.
func checkStore(st storage.BlobStore) error {
	if st == nil {
		return errors.New("not open")
	}
	_, err := st.Stat(oci.FromBytes(nil))
	if err == nil || errors.Is(err, oci.ErrBlobUnknown) {
		return nil
	}
	return err
}
