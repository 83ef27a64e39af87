package index

import (
	"context"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

func TestCountEntries(t *testing.T) {
	x, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	a, b := oci.FromBytes([]byte("a")), oci.FromBytes([]byte("b"))
	err = x.Update(context.Background(), func(tx Txn) error {
		for _, d := range []oci.Digest{a, b} {
			if err := tx.PutBlob(BlobRecord{Digest: d, Size: 1, Created: time.Now(), Origin: "hub"}); err != nil {
				return err
			}
			if err := tx.LinkBlob("hub/x", d); err != nil {
				return err
			}
		}
		if err := tx.PutManifest("hub/x", ManifestRecord{Digest: a, MediaType: "m"}); err != nil {
			return err
		}
		return tx.SetTag("hub/x", "1", a)
	})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int64
	if err := x.View(func(tx Txn) error { got, err = tx.CountEntries(); return err }); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"blob": 2, "manifest": 1, "tag": 1, "link": 2, "referrer": 0, "upload": 0}
	for typ, n := range want {
		if got[typ] != n {
			t.Errorf("%s entries = %d, want %d (all: %v)", typ, got[typ], n, got)
		}
	}
}
