package s3

import (
	"slices"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// sharedFake records the shared claims a Store takes; collectOK is the
// answer of the other replicas.
type sharedFake struct {
	collectOK bool
	log       []string
}

func (f *sharedFake) HoldWrite(d oci.Digest) func() {
	f.log = append(f.log, "hold")
	return func() { f.log = append(f.log, "release hold") }
}

func (f *sharedFake) TryCollect(d oci.Digest) (func(), bool) {
	f.log = append(f.log, "collect")
	if !f.collectOK {
		return nil, false
	}
	return func() { f.log = append(f.log, "release collect") }, true
}

// TestSharedClaims: HoldBlob and TryCollectBlob take this process's
// claim, then the replicas' one, and a refusal from the replicas also
// drops the local claim.
func TestSharedClaims(t *testing.T) {
	const d = oci.Digest("sha256:0000000000000000000000000000000000000000000000000000000000000001")
	f := &sharedFake{}
	s := &Store{}
	s.SetSharedClaims(f)

	if _, ok := s.TryCollectBlob(d); ok {
		t.Fatal("collected while another replica refuses")
	}
	release := s.HoldBlob(d) // the local collect claim was dropped: no wait
	if _, ok := s.TryCollectBlob(d); ok {
		t.Fatal("collected while written here")
	}
	release()
	f.collectOK = true
	release, ok := s.TryCollectBlob(d)
	if !ok {
		t.Fatal("not collected with nobody writing")
	}
	release()
	want := []string{"collect", "hold", "release hold", "collect", "release collect"}
	if !slices.Equal(f.log, want) {
		t.Fatalf("shared claims %v, want %v", f.log, want)
	}
}
