package oci

import (
	"regexp"
	"strings"
)

// MaxNameLength bounds a repository name; Distribution uses 255 too.
const MaxNameLength = 255

var (
	pathComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	nameRE        = regexp.MustCompile(`^` + pathComponent + `(?:/` + pathComponent + `)*$`)
	tagRE         = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidateName checks a repository name against the spec's grammar.
func ValidateName(name string) error {
	if name == "" {
		return Errorf(CodeNameInvalid, "repository name is empty")
	}
	if len(name) > MaxNameLength {
		return Errorf(CodeNameInvalid, "repository name is longer than %d characters", MaxNameLength)
	}
	if !nameRE.MatchString(name) {
		return Errorf(CodeNameInvalid, "invalid repository name %q: use lower-case letters, digits and single separators (. _ __ -) in components joined by /", truncate(name))
	}
	return nil
}

// ValidTag reports whether s is a valid tag.
func ValidTag(s string) bool { return tagRE.MatchString(s) }

// ValidateTag checks a tag.
func ValidateTag(tag string) error {
	if !ValidTag(tag) {
		return Errorf(CodeManifestInvalid, "invalid tag %q: up to 128 characters of [A-Za-z0-9_.-], not starting with . or -", truncate(tag))
	}
	return nil
}

// Reference is a manifest reference: a tag or a digest.
type Reference struct {
	Tag    string
	Digest Digest
}

func (r Reference) String() string {
	if r.Digest != "" {
		return string(r.Digest)
	}
	return r.Tag
}

// ParseReference parses a tag or digest as found in a manifest URL.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, err
		}
		return Reference{Digest: d}, nil
	}
	if !ValidTag(s) {
		return Reference{}, Errorf(CodeManifestUnknown, "invalid reference %q: not a tag or digest", truncate(s)).WithStatus(404)
	}
	return Reference{Tag: s}, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
