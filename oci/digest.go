package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"strings"
)

// Digest is a validated content digest "algorithm:hex". Only sha256 and
// sha512 are accepted, as in the spec's registered algorithms.
type Digest string

// ParseDigest validates s.
func ParseDigest(s string) (Digest, error) {
	alg, hexPart, ok := strings.Cut(s, ":")
	if !ok {
		return "", Errorf(CodeDigestInvalid, "invalid digest %q: want algorithm:hex", truncate(s))
	}
	var n int
	switch alg {
	case "sha256":
		n = 64
	case "sha512":
		n = 128
	default:
		return "", Errorf(CodeDigestInvalid, "unsupported digest algorithm %q: use sha256 or sha512", truncate(alg))
	}
	if len(hexPart) != n {
		return "", Errorf(CodeDigestInvalid, "invalid %s digest: want %d hex characters, got %d", alg, n, len(hexPart))
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", Errorf(CodeDigestInvalid, "invalid digest %q: hex must be lower-case 0-9a-f", truncate(s))
		}
	}
	return Digest(s), nil
}

// Algorithm is "sha256" or "sha512".
func (d Digest) Algorithm() string { a, _, _ := strings.Cut(string(d), ":"); return a }

// Hex is the hex part.
func (d Digest) Hex() string { _, h, _ := strings.Cut(string(d), ":"); return h }

func (d Digest) String() string { return string(d) }

// NewHash returns a fresh hash for d's algorithm.
func (d Digest) NewHash() hash.Hash { return NewHash(d.Algorithm()) }

// NewHash returns a hash for alg (sha256 when unknown).
func NewHash(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// FromHash builds a digest from a finished hash.
func FromHash(alg string, h hash.Hash) Digest {
	return Digest(alg + ":" + hex.EncodeToString(h.Sum(nil)))
}

// FromBytes digests b with sha256.
func FromBytes(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest("sha256:" + hex.EncodeToString(s[:]))
}

// FromBytesAlg digests b with alg.
func FromBytesAlg(alg string, b []byte) Digest {
	h := NewHash(alg)
	h.Write(b)
	return FromHash(alg, h)
}
