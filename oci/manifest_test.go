package oci_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

func desc(mt, dg string, size int64) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, dg, size)
}

const (
	mtConfig      = "application/vnd.oci.image.config.v1+json"
	mtLayer       = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerCfg   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mtForeign     = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mtSBOM        = "application/spdx+json"
)

var (
	ociManifest = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `",
		"config":` + desc(mtConfig, dgA, 10) + `,
		"layers":[` + desc(mtLayer, dgB, 20) + `,` + desc(mtLayer, dgC, 30) + `],
		"annotations":{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}`
	ociIndex = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIIndex + `",
		"manifests":[{"mediaType":"` + oci.MediaTypeOCIManifest + `","digest":"` + dgA + `","size":500,
		"platform":{"architecture":"amd64","os":"linux"}},` + desc(oci.MediaTypeOCIManifest, dgB, 501) + `]}`
	dockerManifest = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeDockerManifest + `",
		"config":` + desc(mtDockerCfg, dgA, 10) + `,
		"layers":[` + desc(mtDockerLayer, dgB, 20) + `]}`
	dockerList = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeDockerList + `",
		"manifests":[{"mediaType":"` + oci.MediaTypeDockerManifest + `","digest":"` + dgA + `","size":500,
		"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}`
	noMediaTypeManifest = `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 10) + `,"layers":[]}`
	noMediaTypeIndex    = `{"schemaVersion":2,"manifests":[]}`
	artifact            = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `",
		"artifactType":"` + mtSBOM + `",
		"config":` + desc(oci.MediaTypeOCIEmptyJSON, dgA, 2) + `,
		"layers":[` + desc(mtSBOM, dgB, 20) + `],
		"subject":` + desc(oci.MediaTypeOCIManifest, dgC, 400) + `}`
	withForeign = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeDockerManifest + `",
		"config":` + desc(mtDockerCfg, dgA, 10) + `,
		"layers":[{"mediaType":"` + mtForeign + `","digest":"` + dgB + `","size":20,"urls":["https://example.com/l"]}]}`
)

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name      string
		ct        string
		body      string
		mediaType string
		refs      []string // digests of References(), in order
		artifact  string   // EffectiveArtifactType
		subject   string
	}{
		{"oci manifest", oci.MediaTypeOCIManifest, ociManifest, oci.MediaTypeOCIManifest, []string{dgA, dgB, dgC}, mtConfig, ""},
		{"oci manifest, ct with parameters", oci.MediaTypeOCIManifest + "; charset=utf-8", ociManifest, oci.MediaTypeOCIManifest, []string{dgA, dgB, dgC}, mtConfig, ""},
		{"oci manifest, no ct", "", ociManifest, oci.MediaTypeOCIManifest, []string{dgA, dgB, dgC}, mtConfig, ""},
		{"oci manifest, generic ct", "application/json", ociManifest, oci.MediaTypeOCIManifest, []string{dgA, dgB, dgC}, mtConfig, ""},
		{"oci index", oci.MediaTypeOCIIndex, ociIndex, oci.MediaTypeOCIIndex, []string{dgA, dgB}, "", ""},
		{"docker v2", oci.MediaTypeDockerManifest, dockerManifest, oci.MediaTypeDockerManifest, []string{dgA, dgB}, mtDockerCfg, ""},
		{"docker list", oci.MediaTypeDockerList, dockerList, oci.MediaTypeDockerList, []string{dgA}, "", ""},
		{"mediaType omitted: manifest inferred", "", noMediaTypeManifest, oci.MediaTypeOCIManifest, []string{dgA}, mtConfig, ""},
		{"mediaType omitted: index inferred", "", noMediaTypeIndex, oci.MediaTypeOCIIndex, nil, "", ""},
		{"mediaType omitted: taken from ct", oci.MediaTypeOCIIndex, noMediaTypeIndex, oci.MediaTypeOCIIndex, nil, "", ""},
		{"mediaType omitted: docker from ct", oci.MediaTypeDockerManifest, noMediaTypeManifest, oci.MediaTypeDockerManifest, []string{dgA}, mtConfig, ""},
		{"artifact with subject", oci.MediaTypeOCIManifest, artifact, oci.MediaTypeOCIManifest, []string{dgA, dgB}, mtSBOM, dgC},
		// References includes foreign layers; hosted skips those with URLs itself.
		{"foreign layer", "", withForeign, oci.MediaTypeDockerManifest, []string{dgA, dgB}, mtDockerCfg, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := oci.ParseManifest(tt.ct, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tt.mediaType {
				t.Errorf("MediaType = %q, want %q", m.MediaType, tt.mediaType)
			}
			var refs []string
			for _, d := range m.References() {
				refs = append(refs, string(d.Digest))
			}
			if fmt.Sprint(refs) != fmt.Sprint(tt.refs) {
				t.Errorf("References = %v, want %v", refs, tt.refs)
			}
			if got := m.EffectiveArtifactType(); got != tt.artifact {
				t.Errorf("EffectiveArtifactType = %q, want %q", got, tt.artifact)
			}
			if (m.Subject == nil) != (tt.subject == "") || (m.Subject != nil && string(m.Subject.Digest) != tt.subject) {
				t.Errorf("Subject = %+v, want %q", m.Subject, tt.subject)
			}
			if oci.IsIndex(m.MediaType) != (m.Config == nil) {
				t.Errorf("index %v but Config = %+v", oci.IsIndex(m.MediaType), m.Config)
			}
		})
	}
}

func TestParseManifestDetails(t *testing.T) {
	m, err := oci.ParseManifest("", []byte(ociIndex))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Manifests[0].Platform; p == nil || p.Architecture != "amd64" || p.OS != "linux" {
		t.Errorf("platform = %+v", p)
	}
	if m.Manifests[1].Size != 501 {
		t.Errorf("size = %d", m.Manifests[1].Size)
	}
	m, err = oci.ParseManifest("", []byte(ociManifest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["org.opencontainers.image.created"] == "" || m.Config.Size != 10 || len(m.Layers) != 2 {
		t.Errorf("manifest = %+v", m)
	}
	m, err = oci.ParseManifest("", []byte(withForeign))
	if err != nil {
		t.Fatal(err)
	}
	if u := m.Layers[0].URLs; len(u) != 1 {
		t.Errorf("foreign layer URLs = %v", u)
	}
}

func TestParseManifestRejects(t *testing.T) {
	big := append([]byte(`{"schemaVersion":2,"config":`+desc(mtConfig, dgA, 1)+`,"annotations":{"x":"`),
		bytes.Repeat([]byte("a"), oci.MaxManifestSize)...)
	big = append(big, `"}}`...)
	tests := []struct {
		name   string
		ct     string
		body   string
		status int
	}{
		{"ct vs mediaType", oci.MediaTypeOCIIndex, ociManifest, 400},
		{"docker ct, oci body", oci.MediaTypeDockerManifest, ociManifest, 400},
		{"oci ct, docker list body", oci.MediaTypeOCIManifest, dockerList, 400},
		{"schema 1", "", `{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}`, 400},
		{"schema 1 signed", oci.MediaTypeDockerV1Signed, `{"schemaVersion":1,"mediaType":"` + oci.MediaTypeDockerV1Signed + `"}`, 400},
		{"schemaVersion missing", "", `{"config":` + desc(mtConfig, dgA, 1) + `}`, 400},
		{"schemaVersion 3", "", `{"schemaVersion":3,"config":` + desc(mtConfig, dgA, 1) + `}`, 400},
		{"schemaVersion string", "", `{"schemaVersion":"2","config":` + desc(mtConfig, dgA, 1) + `}`, 400},
		{"unknown mediaType", "", `{"schemaVersion":2,"mediaType":"application/json","config":` + desc(mtConfig, dgA, 1) + `}`, 400},
		{"index with layers", "", `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIIndex + `","manifests":[],"layers":[]}`, 400},
		{"index with config", "", `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIIndex + `","manifests":[],"config":` + desc(mtConfig, dgA, 1) + `}`, 400},
		{"docker list with layers", oci.MediaTypeDockerList, `{"schemaVersion":2,"manifests":[],"layers":[` + desc(mtLayer, dgA, 1) + `]}`, 400},
		{"manifest without config", "", `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","layers":[]}`, 400},
		{"empty object", "", `{"schemaVersion":2}`, 400},
		{"manifest with manifests", oci.MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"manifests":[]}`, 400},
		{"bad config digest", "", `{"schemaVersion":2,"config":` + desc(mtConfig, "sha256:abc", 1) + `}`, 400},
		{"bad layer digest", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"layers":[` + desc(mtLayer, "md5:x", 1) + `]}`, 400},
		{"upper-case layer digest", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"layers":[` + desc(mtLayer, strings.ToUpper(dgB), 1) + `]}`, 400},
		{"missing layer digest", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"layers":[{"mediaType":"x","size":1}]}`, 400},
		{"bad child digest", "", `{"schemaVersion":2,"manifests":[` + desc(oci.MediaTypeOCIManifest, "sha256:", 1) + `]}`, 400},
		{"bad subject digest", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"subject":` + desc(oci.MediaTypeOCIManifest, "nope", 1) + `}`, 400},
		{"negative config size", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, -1) + `}`, 400},
		{"negative layer size", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"layers":[` + desc(mtLayer, dgB, -5) + `]}`, 400},
		{"negative subject size", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"subject":` + desc(oci.MediaTypeOCIManifest, dgB, -1) + `}`, 400},
		{"fractional size", "", `{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + dgA + `","size":1.5}}`, 400},
		{"not JSON", "", `schemaVersion: 2`, 400},
		{"truncated JSON", "", ociManifest[:40], 400},
		{"JSON array", "", `[]`, 400},
		{"JSON null", "", `null`, 400},
		{"empty body", "", ``, 400},
		{"layers not a list", "", `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `,"layers":{}}`, 400},
		{"over 4 MiB", "", string(big), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := oci.ParseManifest(tt.ct, []byte(tt.body))
			if m != nil {
				t.Errorf("got manifest %+v with error %v", m, err)
			}
			checkCode(t, tt.name, err, oci.CodeManifestInvalid, tt.status)
		})
	}
}

func TestParseManifestSizeLimit(t *testing.T) {
	// Exactly MaxManifestSize is accepted; one byte more is 413.
	head := `{"schemaVersion":2,"config":` + desc(mtConfig, dgA, 1) + `}`
	body := []byte(head + strings.Repeat(" ", oci.MaxManifestSize-len(head)))
	if _, err := oci.ParseManifest("", body); err != nil {
		t.Errorf("manifest of exactly %d bytes: %v", len(body), err)
	}
	_, err := oci.ParseManifest("", append(body, ' '))
	checkCode(t, "one byte over", err, oci.CodeManifestInvalid, 413)
}

func TestEffectiveArtifactType(t *testing.T) {
	tests := []struct {
		m    oci.Manifest
		want string
	}{
		{oci.Manifest{MediaType: oci.MediaTypeOCIManifest, ArtifactType: "a/b", Config: &oci.Descriptor{MediaType: "c/d"}}, "a/b"},
		{oci.Manifest{MediaType: oci.MediaTypeOCIManifest, Config: &oci.Descriptor{MediaType: "c/d"}}, "c/d"},
		{oci.Manifest{MediaType: oci.MediaTypeOCIIndex, ArtifactType: "a/b"}, "a/b"},
		{oci.Manifest{MediaType: oci.MediaTypeOCIIndex}, ""},
		{oci.Manifest{MediaType: oci.MediaTypeOCIIndex, Config: &oci.Descriptor{MediaType: "c/d"}}, ""},
		{oci.Manifest{}, ""},
	}
	for i, tt := range tests {
		if got := tt.m.EffectiveArtifactType(); got != tt.want {
			t.Errorf("%d: EffectiveArtifactType = %q, want %q", i, got, tt.want)
		}
	}
}

func TestMediaTypePredicates(t *testing.T) {
	for _, tt := range []struct {
		mt            string
		index, stored bool
	}{
		{oci.MediaTypeOCIManifest, false, true},
		{oci.MediaTypeOCIIndex, true, true},
		{oci.MediaTypeDockerManifest, false, true},
		{oci.MediaTypeDockerList, true, true},
		{oci.MediaTypeDockerV1Signed, false, false},
		{oci.MediaTypeOCIEmptyJSON, false, false},
		{"", false, false},
		{oci.MediaTypeOCIIndex + "; charset=utf-8", false, false},
	} {
		if got := oci.IsIndex(tt.mt); got != tt.index {
			t.Errorf("IsIndex(%q) = %v", tt.mt, got)
		}
		if got := oci.IsManifestMediaType(tt.mt); got != tt.stored {
			t.Errorf("IsManifestMediaType(%q) = %v", tt.mt, got)
		}
	}
}
