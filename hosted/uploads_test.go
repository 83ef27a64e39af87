package hosted

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// TestExpireUploadsPerReplica: two replicas on one index, each with its
// own scratch store. Each expires its own abandoned sessions (record and
// file) after maxAge; another replica's only after twice maxAge, when
// that replica is gone for good.
func TestExpireUploadsPerReplica(t *testing.T) {
	f := newFixture(t)
	scratchB, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.s, New(scratchB, f.idx, nil)
	b.now = f.clk.Now
	a.SetOwner("replica-a")
	b.SetOwner("replica-b")
	ctx := context.Background()
	idA, err := a.StartUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := b.StartUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	var there *ElsewhereError
	if _, err := b.UploadSize(ctx, "team/app", idA); !errors.As(err, &there) || there.Owner != "replica-a" {
		t.Fatalf("b asked for a's session: %v, want held by replica-a", err)
	}

	const maxAge = 24 * time.Hour
	f.clk.Advance(maxAge + time.Hour)
	if n, err := b.ExpireUploads(ctx, maxAge, false); err != nil || n != 1 {
		t.Fatalf("b expired %d, %v; want its own 1", n, err)
	}
	if _, err := a.UploadSize(ctx, "team/app", idA); err != nil {
		t.Errorf("a's session after b's expiry: %v", err)
	}
	if _, err := b.UploadSize(ctx, "team/app", idB); !errors.Is(err, oci.ErrBlobUploadUnknown) {
		t.Errorf("b's own session after its expiry: %v", err)
	}
	if ids, _ := scratchB.UploadIDs(); len(ids) != 0 {
		t.Errorf("b's scratch keeps %v", ids)
	}
	f.clk.Advance(maxAge)
	if n, err := b.ExpireUploads(ctx, maxAge, false); err != nil || n != 1 {
		t.Fatalf("b expired %d, %v; want a's 1 past twice maxAge", n, err)
	}
	if _, err := a.UploadSize(ctx, "team/app", idA); !errors.Is(err, oci.ErrBlobUploadUnknown) {
		t.Errorf("a's session past twice maxAge: %v", err)
	}
}
