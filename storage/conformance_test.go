package storage_test

import (
	"testing"

	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.BlobStore {
		s, err := storage.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// A staged store (scratch + another store) meets the same contract.
func TestConformanceStaged(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.BlobStore {
		remote, err := storage.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s, err := storage.NewStaged(t.TempDir(), remote)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
