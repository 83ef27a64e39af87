package cache

import (
	"testing"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/upstream"
)

// TestUpstreamInvalidKeepsCode: a request the upstream client refused
// before sending it answers with oci's code for what was wrong, not
// NAME_INVALID for everything.
func TestUpstreamInvalidKeepsCode(t *testing.T) {
	up, err := upstream.New(upstream.Config{Name: "origin", URL: "http://127.0.0.1:1", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{Name: "origin", Upstream: up})
	defer p.Close()
	for _, tc := range []struct {
		call func() error
		want oci.Code
	}{
		{func() error { _, err := up.HeadBlob(t.Context(), "r", "sha256:nothex"); return err }, oci.CodeDigestInvalid},
		{func() error { _, err := up.HeadBlob(t.Context(), "UPPER/case", "sha256:"+zeros); return err }, oci.CodeNameInvalid},
	} {
		got, ok := oci.AsError(p.upstreamError(tc.call(), "blob", "x"))
		if !ok || got.Code.Name != tc.want.Name {
			t.Errorf("got %v, want code %s", got, tc.want.Name)
		}
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
