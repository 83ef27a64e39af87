package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/wharf-registry/wharf/oci"
)

// defaultAccept is sent when the caller gives no Accept list: every manifest
// type a current client can pull.
func defaultAccept() []string {
	return []string{oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest, oci.MediaTypeDockerList, oci.MediaTypeDockerManifest}
}

func (c *Client) manifestRequest(op, method, repo, ref string, accept []string) request {
	if len(accept) == 0 {
		accept = defaultAccept()
	}
	return request{
		op:     op,
		method: method,
		path:   "/v2/" + repo + "/manifests/" + ref,
		scope:  pullScope(repo),
		header: http.Header{"Accept": {strings.Join(accept, ", ")}},
		ok:     []int{http.StatusOK},
	}
}

func manifestOp(verb, repo, ref string) string {
	sep := ":"
	if isDigestRef(ref) {
		sep = "@"
	}
	return verb + " manifest " + repo + sep + ref
}

// HeadManifest resolves ref (a tag or digest) without downloading the
// manifest. On Docker Hub a HEAD does not count against the pull rate limit.
// If the upstream leaves out the digest, size or media type, it falls back
// to GetManifest. The descriptor's digest is always a valid one.
func (c *Client) HeadManifest(ctx context.Context, repo, ref string, accept []string) (_ oci.Descriptor, err error) {
	defer func() { c.observe("manifest", err) }()
	op := manifestOp("HEAD", repo, ref)
	name, err := c.repoName(op, repo)
	if err != nil {
		return oci.Descriptor{}, err
	}
	want, err := c.reference(op, ref)
	if err != nil {
		return oci.Descriptor{}, err
	}
	op = manifestOp("HEAD", name, ref)
	resp, err := c.do(ctx, c.manifestRequest(op, http.MethodHead, name, ref, accept))
	if err != nil {
		return oci.Descriptor{}, err
	}
	resp.Body.Close()
	h := resp.Header.Get("Docker-Content-Digest")
	d := oci.Descriptor{MediaType: contentType(resp.Header), Digest: headerDigest(h), Size: resp.ContentLength}
	if want != "" {
		if h != "" && oci.Digest(h) != want {
			return oci.Descriptor{}, c.badResponse(op, fmt.Sprintf("upstream reports digest %s for %s", h, ref))
		}
		d.Digest = want
	}
	if d.Size > oci.MaxManifestSize {
		return oci.Descriptor{}, c.badResponse(op, fmt.Sprintf("manifest is %d bytes, limit %d", d.Size, oci.MaxManifestSize))
	}
	if d.Digest == "" || d.Size < 0 || genericType(d.MediaType) {
		_, d, err := c.getManifest(ctx, repo, ref, accept)
		return d, err
	}
	return d, nil
}

// GetManifest fetches a manifest. The body is at most oci.MaxManifestSize. The
// returned digest is always the body's: when ref is a digest the body must
// match it, and a Docker-Content-Digest header must match the body.
func (c *Client) GetManifest(ctx context.Context, repo, ref string, accept []string) ([]byte, oci.Descriptor, error) {
	body, d, err := c.getManifest(ctx, repo, ref, accept)
	c.observe("manifest", err)
	return body, d, err
}

func (c *Client) getManifest(ctx context.Context, repo, ref string, accept []string) ([]byte, oci.Descriptor, error) {
	op := manifestOp("GET", repo, ref)
	name, err := c.repoName(op, repo)
	if err != nil {
		return nil, oci.Descriptor{}, err
	}
	want, err := c.reference(op, ref)
	if err != nil {
		return nil, oci.Descriptor{}, err
	}
	op = manifestOp("GET", name, ref)
	resp, err := c.do(ctx, c.manifestRequest(op, http.MethodGet, name, ref, accept))
	if err != nil {
		return nil, oci.Descriptor{}, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > oci.MaxManifestSize {
		return nil, oci.Descriptor{}, c.badResponse(op, fmt.Sprintf("manifest is %d bytes, limit %d", resp.ContentLength, oci.MaxManifestSize))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return nil, oci.Descriptor{}, err
	}
	if len(body) > oci.MaxManifestSize {
		return nil, oci.Descriptor{}, c.badResponse(op, fmt.Sprintf("manifest exceeds %d bytes", oci.MaxManifestSize))
	}

	d := oci.Descriptor{MediaType: contentType(resp.Header), Size: int64(len(body))}
	if genericType(d.MediaType) {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.MediaType != "" {
			d.MediaType = probe.MediaType
		}
	}
	if want != "" {
		if got := oci.FromBytesAlg(want.Algorithm(), body); got != want {
			return nil, oci.Descriptor{}, c.badResponse(op, "manifest body has digest "+got.String())
		}
		d.Digest = want
	}
	if h := headerDigest(resp.Header.Get("Docker-Content-Digest")); h != "" {
		if got := oci.FromBytesAlg(h.Algorithm(), body); got != h {
			return nil, oci.Descriptor{}, c.badResponse(op, fmt.Sprintf("Docker-Content-Digest %s does not match body digest %s", h, got))
		}
		if d.Digest == "" {
			d.Digest = h
		}
	}
	if d.Digest == "" {
		d.Digest = oci.FromBytes(body)
	}
	return body, d, nil
}

func contentType(h http.Header) string {
	ct := h.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	return strings.TrimSpace(ct)
}

// genericType reports a Content-Type that says nothing about which manifest
// this is; some registries serve every manifest as application/json.
func genericType(mt string) bool {
	switch mt {
	case "", "application/json", "text/plain", "application/octet-stream":
		return true
	}
	return false
}
