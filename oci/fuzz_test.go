package oci_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// The seeds below are also committed under testdata/fuzz/<Name>/ so that a
// plain `go test` replays them and `-fuzz` starts from them.

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		"sha256:" + hex64, "sha512:" + hex128, "sha256:" + strings.ToUpper(hex64),
		"sha256:" + hex64[:63], "md5:abc", "sha256", ":", "", "sha256::" + hex64[:63],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := oci.ParseDigest(s)
		if err != nil {
			check4xx(t, "ParseDigest", err)
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDigest(%q) = %q", s, d)
		}
		var want int
		switch d.Algorithm() {
		case "sha256":
			want = 64
		case "sha512":
			want = 128
		default:
			t.Fatalf("ParseDigest(%q) accepted algorithm %q", s, d.Algorithm())
		}
		h := d.Hex()
		if len(h) != want || strings.Trim(h, "0123456789abcdef") != "" {
			t.Fatalf("ParseDigest(%q): hex %q is not %d lower-case hex digits", s, h, want)
		}
		if d.Algorithm()+":"+h != s {
			t.Fatalf("ParseDigest(%q) does not split back into %q:%q", s, d.Algorithm(), h)
		}
		if again, err := oci.ParseDigest(d.String()); err != nil || again != d {
			t.Fatalf("round trip of %q: %q, %v", d, again, err)
		}
		if d.NewHash().Size()*2 != want {
			t.Fatalf("%s: NewHash size %d", d, d.NewHash().Size())
		}
	})
}

// specName is the spec's name grammar written out by hand, to check the
// regexp against something that is not a regexp:
// component (/ component)*, component = alnum (sep alnum)*, sep = . _ __ -+
func specName(s string) bool {
	if s == "" || len(s) > oci.MaxNameLength {
		return false
	}
	for _, comp := range strings.Split(s, "/") {
		if comp == "" {
			return false
		}
		isAlnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
		if !isAlnum(comp[0]) || !isAlnum(comp[len(comp)-1]) {
			return false
		}
		for i := 0; i < len(comp); {
			if isAlnum(comp[i]) {
				i++
				continue
			}
			j := i
			for j < len(comp) && !isAlnum(comp[j]) {
				j++
			}
			switch sep := comp[i:j]; {
			case sep == ".", sep == "_", sep == "__", strings.Trim(sep, "-") == "":
			default:
				return false
			}
			i = j
		}
	}
	return true
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{
		"a", "a/b", "a.b-c__d", "a--b", "library/busybox", "A", "a..b", "a//b", "/a", "a/",
		"a___b", "a._b", strings.Repeat("a", 256), "team/../etc", "a\x00b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := oci.ValidateName(s)
		if ok := specName(s); ok != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, hand-written grammar says valid=%v", s, err, ok)
		}
		if err != nil {
			check4xx(t, "ValidateName", err)
			return
		}
		if strings.Contains(s, "..") || strings.Contains(s, "//") || strings.ToLower(s) != s ||
			strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || len(s) > oci.MaxNameLength {
			t.Fatalf("ValidateName accepted %q", s)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-99", int64(100))
	f.Add("bytes=10-", int64(100))
	f.Add("bytes=-10", int64(100))
	f.Add("bytes=-1000", int64(100))
	f.Add("bytes=0-1000", int64(100))
	f.Add("bytes=100-", int64(100))
	f.Add("bytes=0-1,5-6", int64(100))
	f.Add("bytes=0-", int64(0))
	f.Add("bytes=-5", int64(-3))
	f.Add("bytes=9223372036854775807-", int64(9223372036854775807))
	f.Add("bytes=0-99999999999999999999", int64(100))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		r, err := oci.ParseRange(h, size)
		if err != nil {
			check4xx(t, "ParseRange", err)
			return
		}
		if r.Start < 0 || r.Start > r.End || r.End >= size {
			t.Fatalf("ParseRange(%q, %d) = %+v: want 0 <= Start <= End < size", h, size, r)
		}
		if r.Len() < 1 || r.Len() > size {
			t.Fatalf("ParseRange(%q, %d) = %+v of length %d", h, size, r, r.Len())
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-99", "bytes 0-99/100", "bytes=0-99", "bytes 0-99/*", "99-0", "-1", "0-", "a-b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r, err := oci.ParseContentRange(h)
		if err != nil {
			check4xx(t, "ParseContentRange", err)
			return
		}
		if r.Start < 0 || r.End < r.Start || r.Len() < 1 {
			t.Fatalf("ParseContentRange(%q) = %+v: want 0 <= Start <= End", h, r)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{oci.MediaTypeOCIManifest, ociManifest},
		{"", ociIndex},
		{oci.MediaTypeDockerManifest, dockerManifest},
		{oci.MediaTypeDockerList, dockerList},
		{"", noMediaTypeManifest},
		{oci.MediaTypeOCIIndex, noMediaTypeIndex},
		{"", artifact},
		{oci.MediaTypeOCIIndex, ociManifest},
		{"", `{"schemaVersion":1}`},
		{"", `{"schemaVersion":2,"manifests":[],"layers":[]}`},
		{"", `{"schemaVersion":2,"config":{"digest":"sha256:x","size":-1}}`},
		{"application/json", `null`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := oci.ParseManifest(ct, body)
		if err != nil {
			check4xx(t, "ParseManifest", err)
			if m != nil {
				t.Fatalf("manifest %+v returned with error %v", m, err)
			}
			return
		}
		if !oci.IsManifestMediaType(m.MediaType) {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		if !json.Valid(body) || len(body) > oci.MaxManifestSize {
			t.Fatalf("accepted a body that is not valid JSON under the size limit")
		}
		if oci.IsIndex(m.MediaType) {
			if m.Config != nil || m.Layers != nil {
				t.Fatalf("index with config or layers: %+v", m)
			}
		} else if m.Config == nil || m.Manifests != nil {
			t.Fatalf("image manifest without config or with manifests: %+v", m)
		}
		ds := m.References()
		if m.Subject != nil {
			ds = append(ds, *m.Subject)
		}
		for _, d := range ds {
			if _, err := oci.ParseDigest(string(d.Digest)); err != nil || d.Size < 0 {
				t.Fatalf("accepted descriptor %+v", d)
			}
		}
		_ = m.EffectiveArtifactType()
	})
}
