package upstream

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"regexp"
	"strings"
)

// Names are checked here, not only by callers, because they become URL
// paths: a name must never be able to change which endpoint is hit.
var (
	repoPattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
	tagPattern  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
)

const maxRepoLen = 255

// repoName validates repo and applies Docker Hub's implicit "library/".
func (c *Client) repoName(op, repo string) (string, error) {
	if len(repo) > maxRepoLen || !repoPattern.MatchString(repo) {
		return "", c.invalid(op, "invalid repository name")
	}
	if c.dockerHub && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return repo, nil
}

func pullScope(repo string) string { return "repository:" + repo + ":pull" }

// validDigest accepts the algorithms we can verify: sha256 and sha512.
func validDigest(d string) bool {
	alg, enc, ok := strings.Cut(d, ":")
	if !ok {
		return false
	}
	var n int
	switch alg {
	case "sha256":
		n = 64
	case "sha512":
		n = 128
	default:
		return false
	}
	if len(enc) != n {
		return false
	}
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func algorithm(digest string) string {
	alg, _, _ := strings.Cut(digest, ":")
	return alg
}

func validReference(ref string) bool {
	return tagPattern.MatchString(ref) || validDigest(ref)
}

// digestOf computes the digest of b with the algorithm of like, which must
// be a valid digest.
func digestOf(like string, b []byte) string {
	if strings.HasPrefix(like, "sha512:") {
		sum := sha512.Sum512(b)
		return "sha512:" + hex.EncodeToString(sum[:])
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
