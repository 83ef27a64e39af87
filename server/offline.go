package server

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/storage"
)

// Fsck checks a data dir that no server is using: every blob is re-hashed
// and compared with its name and index record. With repair, corrupt blobs
// are quarantined and the index is reconciled.
func Fsck(ctx context.Context, dataDir string, repair bool, log *slog.Logger, progress func(done, total int64)) (index.FsckReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := lockDir(dataDir)
	if err != nil {
		return index.FsckReport{}, err
	}
	defer lock.Close()
	store, err := storage.Open(dataDir)
	if err != nil {
		return index.FsckReport{}, err
	}
	idx, err := index.Open(filepath.Join(dataDir, "index"), index.Options{Logger: log})
	if err != nil {
		return index.FsckReport{}, err
	}
	defer idx.Close()
	return index.Fsck(ctx, idx, store, repair, progress)
}
