package index_test

import (
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/indextest"
	"github.com/wharf-registry/wharf/oci"
)

func openMem(t *testing.T) index.Index {
	t.Helper()
	x, err := index.Open("", index.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// TestBadger runs the behaviour every index shares on Badger.
func TestBadger(t *testing.T) { indextest.Run(t, openMem) }

// The shared suite's helpers.
var (
	update = indextest.Update
	view   = indextest.View
)

var dg = indextest.Digest

func TestPersistsOnDisk(t *testing.T) {
	dir := t.TempDir()
	x, err := index.Open(dir, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	update(t, x, func(tx index.Txn) error {
		tx.PutBlob(index.BlobRecord{Digest: dg(1), Size: 5})
		tx.LinkBlob("r", dg(1))
		tx.PutManifest("r", index.ManifestRecord{Digest: dg(1), MediaType: oci.MediaTypeOCIManifest, Size: 123})
		return tx.SetTag("r", "latest", dg(1))
	})
	x.RunGC()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	x, err = index.Open(dir, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	view(t, x, func(tx index.Txn) error {
		if d, err := tx.Tag("r", "latest"); err != nil || d != dg(1) {
			t.Errorf("tag after reopen: %s, %v", d, err)
		}
		if ok, _ := tx.BlobLinked("r", dg(1)); !ok {
			t.Error("link lost on reopen")
		}
		return nil
	})
}

// when is a fixed UTC time: records go through JSON, so compare with Equal.
var when = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
