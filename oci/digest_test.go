package oci_test

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

func TestParseDigest(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		alg    string
		hexLen int
	}{
		{"sha256:" + hex64, true, "sha256", 64},
		{"sha512:" + hex128, true, "sha512", 128},
		{"sha256:" + strings.ToUpper(hex64), false, "", 0},
		{"sha256:" + hex64[:63] + "A", false, "", 0},
		{"sha256:" + hex64[:63], false, "", 0},
		{"sha256:" + hex64 + "0", false, "", 0},
		{"sha256:" + hex128, false, "", 0},
		{"sha512:" + hex64, false, "", 0},
		{"sha256:" + hex64[:63] + "g", false, "", 0},
		{"sha256:" + hex64[:63] + ":", false, "", 0},
		{"sha256:", false, "", 0},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", false, "", 0},
		{"blake3:" + hex64, false, "", 0},
		{"SHA256:" + hex64, false, "", 0},
		{"sha256" + hex64, false, "", 0},
		{hex64, false, "", 0},
		{"", false, "", 0},
		{":", false, "", 0},
		{" sha256:" + hex64, false, "", 0},
		{"sha256:" + hex64 + "\n", false, "", 0},
		{"sha256+b64u:" + hex64, false, "", 0},
	}
	for _, tt := range tests {
		d, err := oci.ParseDigest(tt.in)
		if !tt.ok {
			checkCode(t, "ParseDigest("+tt.in+")", err, oci.CodeDigestInvalid, 400)
			if d != "" {
				t.Errorf("ParseDigest(%q) = %q on error, want empty", tt.in, d)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDigest(%q): %v", tt.in, err)
			continue
		}
		if d.String() != tt.in || d.Algorithm() != tt.alg || len(d.Hex()) != tt.hexLen {
			t.Errorf("ParseDigest(%q) = %q (alg %q, hex %d chars)", tt.in, d, d.Algorithm(), len(d.Hex()))
		}
	}
}

func TestParseDigestLongInputIsTruncatedInMessage(t *testing.T) {
	_, err := oci.ParseDigest("sha256:" + strings.Repeat("Z", 10000))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("error for a 10 kB digest is %d bytes, want it truncated", len(err.Error()))
	}
}

func TestDigestHelpers(t *testing.T) {
	data := []byte("hello, wharf")
	s256 := sha256.Sum256(data)
	s512 := sha512.Sum512(data)
	want256 := oci.Digest("sha256:" + hex.EncodeToString(s256[:]))
	want512 := oci.Digest("sha512:" + hex.EncodeToString(s512[:]))

	if got := oci.FromBytes(data); got != want256 {
		t.Errorf("FromBytes = %s, want %s", got, want256)
	}
	if got := oci.FromBytesAlg("sha256", data); got != want256 {
		t.Errorf("FromBytesAlg(sha256) = %s, want %s", got, want256)
	}
	if got := oci.FromBytesAlg("sha512", data); got != want512 {
		t.Errorf("FromBytesAlg(sha512) = %s, want %s", got, want512)
	}
	for _, d := range []oci.Digest{want256, want512} {
		h := d.NewHash()
		h.Write(data)
		if got := oci.FromHash(d.Algorithm(), h); got != d {
			t.Errorf("NewHash for %s hashes to %s", d, got)
		}
		if _, err := oci.ParseDigest(string(d)); err != nil {
			t.Errorf("computed digest %s does not parse: %v", d, err)
		}
	}
	// Unknown algorithms fall back to sha256 rather than panicking.
	if got := oci.NewHash("md5").Size(); got != sha256.Size {
		t.Errorf("NewHash(md5) size = %d, want sha256's %d", got, sha256.Size)
	}
	var zero oci.Digest
	if zero.Algorithm() != "" || zero.Hex() != "" {
		t.Errorf("zero Digest: Algorithm %q Hex %q, want empty", zero.Algorithm(), zero.Hex())
	}
}
