package index

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

func TestBlobRecordEncoding(t *testing.T) {
	d := oci.FromBytes([]byte("x"))
	at := time.Date(2025, 3, 4, 5, 6, 7, 891011, time.UTC)
	tests := []struct {
		name string
		r    BlobRecord
		json bool // stored as JSON: the binary form cannot hold it
	}{
		{"full", BlobRecord{Digest: d, Size: 1 << 40, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Created: at, LastAccess: at.Add(time.Hour), Origin: "hub", Hits: 42}, false},
		{"zero", BlobRecord{Digest: d}, false},
		{"zero times", BlobRecord{Digest: d, Size: 3, Origin: OriginHosted}, false},
		{"epoch", BlobRecord{Digest: d, Created: time.Unix(0, 0), LastAccess: time.Unix(0, 1)}, false},
		{"negative", BlobRecord{Digest: d, Size: -1, Hits: math.MinInt64}, false},
		{"far future", BlobRecord{Digest: d, Created: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), LastAccess: at}, true},
		{"distant past", BlobRecord{Digest: d, Created: at, LastAccess: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeBlobRecord(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if isJSON := b[0] == '{'; isJSON != tt.json {
				t.Fatalf("stored as JSON: %v, want %v (%q)", isJSON, tt.json, b)
			}
			var got BlobRecord
			if err := decodeBlobRecord(d, b, &got); err != nil {
				t.Fatal(err)
			}
			if !sameRecord(got, tt.r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.r)
			}
		})
	}
}

func sameRecord(a, b BlobRecord) bool {
	return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType && a.Origin == b.Origin &&
		a.Hits == b.Hits && a.Created.Equal(b.Created) && a.LastAccess.Equal(b.LastAccess) &&
		a.Created.IsZero() == b.Created.IsZero() && a.LastAccess.IsZero() == b.LastAccess.IsZero()
}

// Every truncation and a few corruptions of a record are errors, never a
// panic or a record with wrong fields.
func TestBlobRecordDamaged(t *testing.T) {
	d := oci.FromBytes([]byte("x"))
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	b, _ := encodeBlobRecord(BlobRecord{Digest: d, Size: 300, MediaType: "m", Created: at, LastAccess: at, Origin: "hub", Hits: 1})
	for n := range len(b) {
		var r BlobRecord
		if err := decodeBlobRecord(d, b[:n], &r); err == nil {
			t.Errorf("a record cut to %d of %d bytes decoded: %+v", n, len(b), r)
		}
	}
	for _, bad := range [][]byte{
		append(append([]byte{}, b...), 0),                  // trailing byte
		append([]byte{0x02}, b[1:]...),                     // unknown version
		{blobRecordV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, // media type longer than the record
		[]byte(`{"size":`),
	} {
		var r BlobRecord
		if err := decodeBlobRecord(d, bad, &r); err == nil {
			t.Errorf("%q decoded: %+v", bad, r)
		}
	}
}

// Indexes written before the binary form hold JSON records and LRU keys
// without a value: they read, evict and update as before, and a record is
// rewritten in the new form when it next changes.
func TestLegacyRecords(t *testing.T) {
	x, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ctx := context.Background()
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	old := func(i int) BlobRecord {
		return BlobRecord{Digest: oci.FromBytes([]byte{byte(i)}), Size: int64(100 + i), MediaType: "a/b", Created: at,
			LastAccess: at.Add(time.Duration(i) * time.Minute), Origin: "hub", Hits: 7}
	}
	// What PutBlob and LinkBlob wrote before.
	err = x.update(ctx, func(tx *badgerTxn) error {
		for i := range 4 {
			r := old(i)
			if err := tx.t.Set(accessKey(r.LastAccess, r.Digest), nil); err != nil {
				return err
			}
			if err := tx.addUsage(r.Origin, r.Size, 1); err != nil {
				return err
			}
			if err := tx.setJSON(pBlob+string(r.Digest), r); err != nil {
				return err
			}
			if err := tx.LinkBlob("hub/lib/a", r.Digest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = x.View(func(tx Txn) error {
		for i := range 4 {
			got, err := tx.Blob(old(i).Digest)
			if err != nil || !sameRecord(got, old(i)) {
				t.Errorf("Blob(old record %d) = %+v, %v", i, got, err)
			}
		}
		n := 0
		if err := tx.EachBlob(func(BlobRecord) error { n++; return nil }); err != nil || n != 4 {
			t.Errorf("EachBlob visited %d old records (%v), want 4", n, err)
		}
		var c LRUCursor
		var seen []LRUEntry
		err := tx.EachLeastRecentAfter(&c, time.Time{}, func(e LRUEntry) (bool, error) {
			seen = append(seen, e)
			return true, nil
		})
		if err != nil || len(seen) != 4 {
			t.Fatalf("EachLeastRecentAfter: %d entries, %v", len(seen), err)
		}
		for i, e := range seen {
			if r := old(i); e.Digest != r.Digest || !e.LastAccess.Equal(r.LastAccess) || e.Known() || e.Size != -1 {
				t.Errorf("old LRU entry %d = %+v, want %s at %s, size unknown", i, e, r.Digest, r.LastAccess)
			}
		}
		// The plan reads what the keys do not carry.
		plan, err := x.PlanEviction(seen, time.Time{})
		if err != nil || len(plan) != 4 {
			t.Fatalf("PlanEviction(old entries) = %d plans, %v", len(plan), err)
		}
		for i, p := range plan {
			if r := old(i); p.Digest != r.Digest || p.Size != r.Size || p.Origin != r.Origin {
				t.Errorf("plan %d = %+v, want the record's size and origin", i, p.LRUEntry)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A read rewrites the record in the binary form, with an LRU value;
	// the entry seen before it is stale.
	if err := x.Update(ctx, func(tx Txn) error { return tx.Touch(old(0).Digest, at.Add(time.Hour), 1) }); err != nil {
		t.Fatal(err)
	}
	stale := LRUEntry{Digest: old(0).Digest, LastAccess: old(0).LastAccess, Size: -1}
	if plan, err := x.PlanEviction([]LRUEntry{stale}, time.Time{}); err != nil || len(plan) != 0 {
		t.Errorf("PlanEviction(an old entry read since) = %+v, %v", plan, err)
	}
	err = x.view(func(tx *badgerTxn) error {
		it, err := tx.t.Get(blobKey(old(0).Digest))
		if err != nil {
			return err
		}
		v, _ := it.ValueCopy(nil)
		if v[0] != blobRecordV1 {
			t.Errorf("touched record still stored as %q", v)
		}
		it, err = tx.t.Get(accessKey(at.Add(time.Hour), old(0).Digest))
		if err != nil {
			return err
		}
		v, _ = it.ValueCopy(nil)
		if size, origin, ok := decodeLRUValue(v); !ok || size != old(0).Size || origin != "hub" {
			t.Errorf("touched record's LRU value = %d %q %v", size, origin, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Old records evict, usage and all.
	gone, err := x.EvictBlobs(ctx, []LRUEntry{{Digest: old(1).Digest, LastAccess: old(1).LastAccess}, {Digest: old(2).Digest}}, time.Time{})
	if err != nil || len(gone) != 2 {
		t.Fatalf("EvictBlobs(old records) = %+v, %v", gone, err)
	}
	for i, e := range gone {
		if r := old(i + 1); e.Digest != r.Digest || e.Size != r.Size || e.Origin != "hub" {
			t.Errorf("evicted %+v, want %s of %d bytes from hub", e, r.Digest, r.Size)
		}
	}
	err = x.View(func(tx Txn) error {
		u, err := tx.Usage("hub")
		if want := (Usage{Bytes: old(0).Size + old(3).Size, Count: 2}); u != want {
			t.Errorf("usage after evicting two old records = %+v, want %+v", u, want)
		}
		repos, _ := tx.BlobRepos(old(1).Digest)
		if len(repos) != 0 {
			t.Errorf("evicted old record still linked in %v", repos)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLRUValue(t *testing.T) {
	for _, r := range []BlobRecord{{Size: 0, Origin: "a"}, {Size: 1 << 50, Origin: "docker.io"}, {Size: -5, Origin: "x"}} {
		size, origin, ok := decodeLRUValue(lruValue(r))
		if !ok || size != r.Size || origin != r.Origin {
			t.Errorf("LRU value of %+v reads as %d %q %v", r, size, origin, ok)
		}
	}
	if _, _, ok := decodeLRUValue(nil); ok {
		t.Error("an empty LRU value (an older key) read as known")
	}
}

// JSON records written by older versions carry their own digest; the
// binary form takes the key's, and so must agree with what JSON gave.
func TestBlobRecordJSONCompatible(t *testing.T) {
	d := oci.FromBytes([]byte("y"))
	r := BlobRecord{Digest: d, Size: 9, MediaType: "m", Created: time.Unix(100, 5).UTC(), LastAccess: time.Unix(200, 7).UTC(), Origin: "o", Hits: 3}
	j, _ := json.Marshal(r)
	b, _ := encodeBlobRecord(r)
	var fromJSON, fromBinary BlobRecord
	if err := decodeBlobRecord(d, j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := decodeBlobRecord(d, b, &fromBinary); err != nil {
		t.Fatal(err)
	}
	if !sameRecord(fromJSON, fromBinary) {
		t.Errorf("JSON %+v, binary %+v", fromJSON, fromBinary)
	}
	if fromBinary.Digest != d {
		t.Error("binary record lost its digest")
	}
}
