package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxManifestSize is the largest manifest accepted from an upstream; the
// same limit distribution applies to pushes.
const MaxManifestSize = 4 << 20

// Descriptor describes a manifest as the upstream served it.
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

// defaultAccept is sent when the caller gives no Accept list: every manifest
// type a current client can pull.
func defaultAccept() []string {
	return []string{
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.docker.distribution.manifest.v2+json",
	}
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
	if validDigest(ref) {
		sep = "@"
	}
	return verb + " manifest " + repo + sep + ref
}

// HeadManifest resolves ref (a tag or digest) without downloading the
// manifest. On Docker Hub a HEAD does not count against the pull rate limit.
// If the upstream leaves out the digest, size or media type, it falls back
// to GetManifest.
func (c *Client) HeadManifest(ctx context.Context, repo, ref string, accept []string) (_ Descriptor, err error) {
	defer func() { c.observe("manifest", err) }()
	op := manifestOp("HEAD", repo, ref)
	name, err := c.repoName(op, repo)
	if err != nil {
		return Descriptor{}, err
	}
	if !validReference(ref) {
		return Descriptor{}, c.invalid(op, "invalid reference")
	}
	op = manifestOp("HEAD", name, ref)
	resp, err := c.do(ctx, c.manifestRequest(op, http.MethodHead, name, ref, accept))
	if err != nil {
		return Descriptor{}, err
	}
	resp.Body.Close()
	d := Descriptor{
		MediaType: contentType(resp.Header),
		Digest:    resp.Header.Get("Docker-Content-Digest"),
		Size:      resp.ContentLength,
	}
	if validDigest(ref) {
		if d.Digest != "" && d.Digest != ref {
			return Descriptor{}, c.badResponse(op, fmt.Sprintf("upstream reports digest %s for %s", d.Digest, ref))
		}
		d.Digest = ref
	}
	if d.Size > MaxManifestSize {
		return Descriptor{}, c.badResponse(op, fmt.Sprintf("manifest is %d bytes, limit %d", d.Size, MaxManifestSize))
	}
	if !validDigest(d.Digest) || d.Size < 0 || genericType(d.MediaType) {
		_, d, err := c.getManifest(ctx, repo, ref, accept)
		return d, err
	}
	return d, nil
}

// GetManifest fetches a manifest. The body is at most MaxManifestSize. The
// returned digest is always the body's: when ref is a digest the body must
// match it, and a Docker-Content-Digest header must match the body.
func (c *Client) GetManifest(ctx context.Context, repo, ref string, accept []string) ([]byte, Descriptor, error) {
	body, d, err := c.getManifest(ctx, repo, ref, accept)
	c.observe("manifest", err)
	return body, d, err
}

func (c *Client) getManifest(ctx context.Context, repo, ref string, accept []string) ([]byte, Descriptor, error) {
	op := manifestOp("GET", repo, ref)
	name, err := c.repoName(op, repo)
	if err != nil {
		return nil, Descriptor{}, err
	}
	if !validReference(ref) {
		return nil, Descriptor{}, c.invalid(op, "invalid reference")
	}
	op = manifestOp("GET", name, ref)
	resp, err := c.do(ctx, c.manifestRequest(op, http.MethodGet, name, ref, accept))
	if err != nil {
		return nil, Descriptor{}, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return nil, Descriptor{}, c.badResponse(op, fmt.Sprintf("manifest is %d bytes, limit %d", resp.ContentLength, MaxManifestSize))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, Descriptor{}, err
	}
	if len(body) > MaxManifestSize {
		return nil, Descriptor{}, c.badResponse(op, fmt.Sprintf("manifest exceeds %d bytes", MaxManifestSize))
	}

	d := Descriptor{MediaType: contentType(resp.Header), Size: int64(len(body))}
	if genericType(d.MediaType) {
		var probe struct {
			MediaType string `json:"mediaType"`
		}
		if json.Unmarshal(body, &probe) == nil && probe.MediaType != "" {
			d.MediaType = probe.MediaType
		}
	}
	if validDigest(ref) {
		if got := digestOf(ref, body); got != ref {
			return nil, Descriptor{}, c.badResponse(op, "manifest body has digest "+got)
		}
		d.Digest = ref
	}
	if h := resp.Header.Get("Docker-Content-Digest"); validDigest(h) {
		if got := digestOf(h, body); got != h {
			return nil, Descriptor{}, c.badResponse(op, fmt.Sprintf("Docker-Content-Digest %s does not match body digest %s", h, got))
		}
		if d.Digest == "" {
			d.Digest = h
		}
	}
	if d.Digest == "" {
		d.Digest = digestOf("sha256:", body)
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
