package index_test

import (
	"errors"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wharf-registry/wharf/cache/index"
)

// A failed operation says what it was and on which records, once, and
// keeps the cause for errors.Is; a missing record stays the bare
// ErrNotFound. Writes in a read-only transaction are the failure at hand.
func TestErrorsSayWhatFailed(t *testing.T) {
	x := openMem(t)
	d := dg(7)
	tests := []struct {
		name string
		op   func(tx index.Txn) error
		want string
	}{
		{"link", func(tx index.Txn) error { return tx.LinkBlob("team/app", d) }, "index: link " + string(d) + " into team/app: "},
		{"unlink", func(tx index.Txn) error { return tx.UnlinkBlob("team/app", d) }, "index: unlink " + string(d) + " from team/app: "},
		{"put blob", func(tx index.Txn) error { return tx.PutBlob(index.BlobRecord{Digest: d, Origin: "hub"}) }, "index: put blob " + string(d) + ": "},
		{"put manifest", func(tx index.Txn) error { return tx.PutManifest("team/app", index.ManifestRecord{Digest: d}) }, "index: put manifest " + string(d) + " in team/app: "},
		{"tag", func(tx index.Txn) error { return tx.SetTag("team/app", "v1", d) }, "index: tag " + string(d) + " as team/app:v1: "},
		{"pin", func(tx index.Txn) error { return tx.Pin(d, "hub/x:1") }, "index: pin " + string(d) + " (hub/x:1): "},
		{"upload", func(tx index.Txn) error { return tx.PutUpload(index.UploadRecord{ID: "u1"}) }, "index: put upload u1: "},
	}
	for _, tt := range tests {
		err := x.View(tt.op)
		if !errors.Is(err, badger.ErrReadOnlyTxn) || !strings.HasPrefix(err.Error(), tt.want) || strings.Count(err.Error(), "index:") != 1 {
			t.Errorf("%s: %v, want %q… wrapping ErrReadOnlyTxn once", tt.name, err, tt.want)
		}
	}
	err := x.View(func(tx index.Txn) error {
		if _, err := tx.Blob(d); err != index.ErrNotFound {
			t.Errorf("Blob(missing) = %v, want the bare ErrNotFound", err)
		}
		if _, err := tx.Manifest("team/app", d); err != index.ErrNotFound {
			t.Errorf("Manifest(missing) = %v, want the bare ErrNotFound", err)
		}
		if _, err := tx.Tag("team/app", "v1"); err != index.ErrNotFound {
			t.Errorf("Tag(missing) = %v, want the bare ErrNotFound", err)
		}
		if err := tx.DeleteManifest("team/app", d); err != index.ErrNotFound {
			t.Errorf("DeleteManifest(missing) = %v, want the bare ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
