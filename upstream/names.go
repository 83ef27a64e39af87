package upstream

import (
	"strings"

	"github.com/wharf-registry/wharf/oci"
)

// Names, tags and digests are checked here with oci's grammar, not only by
// callers, because they become URL paths: a name must never be able to
// change which endpoint is hit.

// repoName validates repo and applies Docker Hub's implicit "library/".
func (c *Client) repoName(op, repo string) (string, error) {
	if err := oci.ValidateName(repo); err != nil {
		return "", c.invalidOCI(op, err)
	}
	if c.dockerHub && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return repo, nil
}

func pullScope(repo string) string { return "repository:" + repo + ":pull" }

// blobDigest validates a blob digest: sha256 or sha512, the algorithms a
// fill can verify.
func (c *Client) blobDigest(op, digest string) (oci.Digest, error) {
	d, err := oci.ParseDigest(digest)
	if err != nil {
		return "", c.invalidOCI(op, err)
	}
	return d, nil
}

// reference validates a manifest reference and returns its digest, or ""
// for a tag. Tags cannot hold a colon, so one means a digest.
func (c *Client) reference(op, ref string) (oci.Digest, error) {
	if isDigestRef(ref) {
		return c.blobDigest(op, ref)
	}
	if !oci.ValidTag(ref) {
		return "", c.invalid(op, "invalid reference: not a tag or digest")
	}
	return "", nil
}

func isDigestRef(ref string) bool { return strings.Contains(ref, ":") }

// headerDigest is a Docker-Content-Digest header as a digest, or "" when it
// is absent or not one wharf can check.
func headerDigest(v string) oci.Digest {
	d, err := oci.ParseDigest(v)
	if err != nil {
		return ""
	}
	return d
}
