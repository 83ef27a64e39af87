package oci_test

import (
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

func TestValidateName(t *testing.T) {
	max := strings.Repeat("a", oci.MaxNameLength)
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"a/b", true},
		{"a.b-c__d", true},
		{"a--b", true},
		{"a---b", true},
		{"a_b", true},
		{"0", true},
		{"library/busybox", true},
		{"team/app/sub/deep", true},
		{"a1.b2/c3-d4/e5__f6", true},
		{max, true},
		{strings.Repeat("a/", 127) + "a", true},

		{"", false},
		{max + "a", false},
		{"A", false},
		{"Team/app", false},
		{"team/App", false},
		{"a..b", false},
		{"..", false},
		{"a/../b", false},
		{"a/./b", false},
		{".a", false},
		{"a.", false},
		{"-a", false},
		{"a-", false},
		{"_a", false},
		{"a_", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"/", false},
		{"a___b", false},
		{"a._b", false},
		{"a-.b", false},
		{"a_-b", false},
		{"a b", false},
		{"a:b", false},
		{"a@b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a/b\n", false},
		{"ä", false},
		{"a/-b", false},
		{"a/b.", false},
	}
	for _, tt := range tests {
		err := oci.ValidateName(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidateName(%q): %v", tt.name, err)
		}
		if !tt.ok {
			checkCode(t, "ValidateName("+tt.name+")", err, oci.CodeNameInvalid, 400)
		}
	}
}

func TestTags(t *testing.T) {
	tests := []struct {
		tag string
		ok  bool
	}{
		{"latest", true},
		{"v1.2.3", true},
		{"1.36", true},
		{"_", true},
		{"A", true},
		{"Release_2024-01.rc1", true},
		{"a" + strings.Repeat("b", 127), true},

		{"", false},
		{"a" + strings.Repeat("b", 128), false},
		{".hidden", false},
		{"-flag", false},
		{"a/b", false},
		{"a:b", false},
		{"a b", false},
		{"a+b", false},
		{"latest\n", false},
		{"sha256:" + hex64, false},
	}
	for _, tt := range tests {
		if got := oci.ValidTag(tt.tag); got != tt.ok {
			t.Errorf("ValidTag(%q) = %v, want %v", tt.tag, got, tt.ok)
		}
		err := oci.ValidateTag(tt.tag)
		if tt.ok && err != nil {
			t.Errorf("ValidateTag(%q): %v", tt.tag, err)
		}
		if !tt.ok {
			checkCode(t, "ValidateTag("+tt.tag+")", err, oci.CodeManifestInvalid, 400)
		}
	}
}

func TestParseReference(t *testing.T) {
	tests := []struct {
		in     string
		want   oci.Reference
		code   oci.Code // zero: success
		status int
	}{
		{"latest", oci.Reference{Tag: "latest"}, oci.Code{}, 0},
		{"v1.0", oci.Reference{Tag: "v1.0"}, oci.Code{}, 0},
		{dgA, oci.Reference{Digest: oci.Digest(dgA)}, oci.Code{}, 0},
		{"sha512:" + hex128, oci.Reference{Digest: oci.Digest("sha512:" + hex128)}, oci.Code{}, 0},

		{"sha256:baddigeststring", oci.Reference{}, oci.CodeDigestInvalid, 400},
		{"sha256:" + strings.ToUpper(hex64), oci.Reference{}, oci.CodeDigestInvalid, 400},
		{"latest:x", oci.Reference{}, oci.CodeDigestInvalid, 400},
		{"", oci.Reference{}, oci.CodeManifestUnknown, 404},
		{".x", oci.Reference{}, oci.CodeManifestUnknown, 404},
		{"a/b", oci.Reference{}, oci.CodeManifestUnknown, 404},
		{strings.Repeat("t", 129), oci.Reference{}, oci.CodeManifestUnknown, 404},
	}
	for _, tt := range tests {
		got, err := oci.ParseReference(tt.in)
		if tt.code.Name != "" {
			checkCode(t, "ParseReference("+tt.in+")", err, tt.code, tt.status)
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("ParseReference(%q).String() = %q", tt.in, got.String())
		}
	}
}
