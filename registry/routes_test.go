package registry

import (
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

func TestParseRoute(t *testing.T) {
	dg := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		path string
		want Route
		code string // expected error code, "" for success
	}{
		{"/v2/", Route{Kind: KindBase}, ""},
		{"/v2", Route{Kind: KindBase}, ""},
		{"/v2/_catalog", Route{Kind: KindCatalog}, ""},
		{"/v2/team/app/tags/list", Route{Kind: KindTags, Name: "team/app"}, ""},
		{"/v2/team/app/manifests/latest", Route{Kind: KindManifest, Name: "team/app", Ref: "latest"}, ""},
		{"/v2/a/b/c/manifests/" + dg, Route{Kind: KindManifest, Name: "a/b/c", Ref: dg}, ""},
		{"/v2/team/app/blobs/" + dg, Route{Kind: KindBlob, Name: "team/app", Ref: dg}, ""},
		{"/v2/team/app/blobs/uploads/", Route{Kind: KindUploadStart, Name: "team/app"}, ""},
		{"/v2/team/app/blobs/uploads", Route{Kind: KindUploadStart, Name: "team/app"}, ""},
		{"/v2/team/app/blobs/uploads/abc", Route{Kind: KindUpload, Name: "team/app", Ref: "abc"}, ""},
		{"/v2/team/app/referrers/" + dg, Route{Kind: KindReferrers, Name: "team/app", Ref: dg}, ""},
		// Names may contain the words the API uses as path markers.
		{"/v2/blobs/manifests/tags/list", Route{Kind: KindTags, Name: "blobs/manifests"}, ""},
		{"/v2/x/manifests/manifests/latest", Route{Kind: KindManifest, Name: "x/manifests", Ref: "latest"}, ""},
		{"/v2/library/busybox/manifests/1.36", Route{Kind: KindManifest, Name: "library/busybox", Ref: "1.36"}, ""},

		{"/v2/Team/app/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/team/../app/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/team/%2e%2e/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/team%2Fapp/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/team//app/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/team/app-/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/" + strings.Repeat("a", 256) + "/tags/list", Route{}, "NAME_INVALID"},
		{"/v2/tags/list", Route{}, "NOT_FOUND"},
		{"/v2/team/app/manifests/", Route{}, "NOT_FOUND"},
		{"/v2/team/app/blobs/", Route{}, "NOT_FOUND"},
		{"/v2/team/app", Route{}, "NOT_FOUND"},
		{"/v3/team/app/tags/list", Route{}, "NOT_FOUND"},
		{"/v2/team/app/unknown/x", Route{}, "NOT_FOUND"},
	}
	for _, tt := range tests {
		got, err := ParseRoute(tt.path)
		if tt.code != "" {
			e, ok := oci.AsError(err)
			if !ok || e.Code.Name != tt.code {
				t.Errorf("ParseRoute(%q) error = %v, want code %s", tt.path, err, tt.code)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRoute(%q) = %+v, %v; want %+v", tt.path, got, err, tt.want)
		}
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x",
		"/v2/a/tags/list", "/v2/a/referrers/sha256:00", "/v2/%2e/x", "/v2//blobs/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt, err := ParseRoute(p)
		if err != nil {
			if _, ok := oci.AsError(err); !ok {
				t.Fatalf("ParseRoute(%q) returned a non-OCI error %v", p, err)
			}
			return
		}
		if rt.Kind != KindBase && rt.Kind != KindCatalog {
			if oci.ValidateName(rt.Name) != nil {
				t.Fatalf("ParseRoute(%q) accepted invalid name %q", p, rt.Name)
			}
			if strings.ContainsAny(rt.Name, "%\\") || strings.Contains(rt.Name, "..") {
				t.Fatalf("ParseRoute(%q) accepted unsafe name %q", p, rt.Name)
			}
		}
		if strings.Contains(rt.Ref, "/") {
			t.Fatalf("ParseRoute(%q) returned a ref with a slash: %q", p, rt.Ref)
		}
	})
}
