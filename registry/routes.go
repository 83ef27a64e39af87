// Package registry is the HTTP face of wharf: one route parser, a dispatch
// table of handlers that return errors, one function that writes every
// error as the OCI JSON envelope, and the middleware around them.
package registry

import (
	"strings"

	"github.com/wharf-registry/wharf/oci"
)

// Kind is the API endpoint a request addresses.
type Kind int

// The endpoints of the distribution spec.
const (
	KindUnknown Kind = iota
	KindBase
	KindCatalog
	KindTags
	KindManifest
	KindBlob
	KindUploadStart
	KindUpload
	KindReferrers
)

var kindNames = [...]string{"unknown", "base", "catalog", "tags", "manifest", "blob", "upload", "upload", "referrers"}

func (k Kind) String() string { return kindNames[k] }

// Route is a parsed request path.
type Route struct {
	Kind Kind
	Name string // repository
	// Ref is the manifest reference, the blob or subject digest, or the
	// upload id, depending on Kind.
	Ref string
}

// ParseRoute parses an escaped URL path. It validates the repository name
// (NAME_INVALID) but not references, which each handler checks with the
// error its endpoint calls for.
func ParseRoute(escapedPath string) (Route, error) {
	rest, ok := strings.CutPrefix(escapedPath, "/v2")
	if !ok {
		return Route{}, errNotFound
	}
	if rest == "" || rest == "/" {
		return Route{Kind: KindBase}, nil
	}
	rest = rest[1:]
	if strings.ContainsRune(rest, '%') {
		// Encoded characters (%2F, %2E…) are never part of a valid name,
		// tag, digest or upload id; refusing them here keeps every later
		// step working on plain text.
		return Route{}, oci.Errorf(oci.CodeNameInvalid, "percent-encoded characters are not allowed in repository paths")
	}
	if rest == "_catalog" {
		return Route{Kind: KindCatalog}, nil
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	var rt Route
	var nameSegs int
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		rt, nameSegs = Route{Kind: KindTags}, n-2
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads" && segs[n-1] == "":
		rt, nameSegs = Route{Kind: KindUploadStart}, n-3
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		rt, nameSegs = Route{Kind: KindUploadStart}, n-2
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		rt, nameSegs = Route{Kind: KindUpload, Ref: segs[n-1]}, n-3
	case n >= 3 && segs[n-2] == "blobs":
		rt, nameSegs = Route{Kind: KindBlob, Ref: segs[n-1]}, n-2
	case n >= 3 && segs[n-2] == "manifests":
		rt, nameSegs = Route{Kind: KindManifest, Ref: segs[n-1]}, n-2
	case n >= 3 && segs[n-2] == "referrers":
		rt, nameSegs = Route{Kind: KindReferrers, Ref: segs[n-1]}, n-2
	default:
		return Route{}, errNotFound
	}
	rt.Name = strings.Join(segs[:nameSegs], "/")
	if err := oci.ValidateName(rt.Name); err != nil {
		return Route{}, err
	}
	if rt.Ref == "" && rt.Kind != KindTags && rt.Kind != KindUploadStart {
		return Route{}, errNotFound
	}
	return rt, nil
}

var errNotFound = oci.Errorf(oci.CodeNotFound, "no such API endpoint; wharf serves the OCI distribution API under /v2/")
