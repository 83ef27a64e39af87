package oci

import (
	"encoding/json"
	"strings"
)

// Media types wharf understands as manifests.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerV1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOCIEmptyJSON   = "application/vnd.oci.empty.v1+json"
)

// MaxManifestSize is the largest manifest accepted or fetched (4 MiB, as
// the spec recommends and Docker Hub enforces).
const MaxManifestSize = 4 << 20

// Descriptor is the OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

// Platform of an index entry.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// IsIndex reports whether mt is a manifest list or index.
func IsIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerList }

// IsManifestMediaType reports whether mt names a manifest type wharf stores.
func IsManifestMediaType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// Manifest is what wharf needs to know of a parsed manifest or index.
type Manifest struct {
	MediaType    string
	ArtifactType string
	Config       *Descriptor
	Layers       []Descriptor // image manifests
	Manifests    []Descriptor // indexes
	Subject      *Descriptor
	Annotations  map[string]string
}

type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *Descriptor       `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// ParseManifest parses body, whose media type is given by the client's
// Content-Type (contentType may be empty or generic; the body's own
// mediaType field then decides). It checks structure only; whether the
// referenced content exists is the store's job.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	if len(body) > MaxManifestSize {
		return nil, Errorf(CodeManifestInvalid, "manifest is %d bytes; the limit is %d", len(body), MaxManifestSize).WithStatus(413)
	}
	var raw rawManifest
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, Errorf(CodeManifestInvalid, "manifest is not valid JSON: %v", err)
	}
	if raw.SchemaVersion == nil || *raw.SchemaVersion != 2 {
		return nil, Errorf(CodeManifestInvalid, "manifest schemaVersion must be 2 (schema 1 manifests are not supported)")
	}
	ct, _, _ := strings.Cut(contentType, ";")
	ct = strings.TrimSpace(ct)
	mt := raw.MediaType
	if !IsManifestMediaType(ct) {
		ct = ""
	}
	switch {
	case ct != "" && mt != "" && ct != mt:
		return nil, Errorf(CodeManifestInvalid, "Content-Type %q does not match the manifest's mediaType %q", ct, mt)
	case mt == "" && ct != "":
		mt = ct
	case mt == "":
		// OCI allows omitting mediaType; infer from shape.
		if raw.Manifests != nil {
			mt = MediaTypeOCIIndex
		} else {
			mt = MediaTypeOCIManifest
		}
	}
	if !IsManifestMediaType(mt) {
		return nil, Errorf(CodeManifestInvalid, "unsupported manifest media type %q", mt)
	}
	m := &Manifest{MediaType: mt, ArtifactType: raw.ArtifactType, Subject: raw.Subject, Annotations: raw.Annotations}
	if IsIndex(mt) {
		if raw.Config != nil || raw.Layers != nil {
			return nil, Errorf(CodeManifestInvalid, "an index must not have config or layers")
		}
		m.Manifests = raw.Manifests
	} else {
		if raw.Config == nil {
			return nil, Errorf(CodeManifestInvalid, "an image manifest needs a config descriptor")
		}
		if raw.Manifests != nil {
			return nil, Errorf(CodeManifestInvalid, "an image manifest must not have manifests")
		}
		m.Config = raw.Config
		m.Layers = raw.Layers
	}
	for _, d := range m.References() {
		if err := validDescriptor(d); err != nil {
			return nil, err
		}
	}
	if m.Subject != nil {
		if err := validDescriptor(*m.Subject); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func validDescriptor(d Descriptor) error {
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return Errorf(CodeManifestInvalid, "descriptor has an invalid digest %q", truncate(string(d.Digest)))
	}
	if d.Size < 0 {
		return Errorf(CodeManifestInvalid, "descriptor %s has a negative size", d.Digest)
	}
	return nil
}

// References are the descriptors a manifest needs present: config and
// layers for an image, child manifests for an index. Layers with URLs
// (foreign layers) are not required to be present.
func (m *Manifest) References() []Descriptor {
	var out []Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	out = append(out, m.Manifests...)
	return out
}

// EffectiveArtifactType is the artifactType the referrers API reports:
// the manifest's own, else its config's media type.
func (m *Manifest) EffectiveArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil && !IsIndex(m.MediaType) {
		return m.Config.MediaType
	}
	return ""
}
