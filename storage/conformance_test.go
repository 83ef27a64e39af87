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
