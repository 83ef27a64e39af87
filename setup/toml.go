package setup

import (
	"fmt"
	"regexp"
	"strings"
)

// marker starts every file setup writes whole, so a later run may replace
// it; a file without it is someone else's and is merged into instead.
const marker = "# Written by `wharf setup"

var (
	tomlHeader = regexp.MustCompile(`^\[\[?\s*([A-Za-z0-9_.-]+|"[^"]*"|'[^']*')(\s*\.\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*\s*\]\]?$`)
	tomlKey    = regexp.MustCompile(`^([A-Za-z0-9_-]+|"[^"]*"|'[^']*')(\s*\.\s*([A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*\s*=\s*\S`)
)

// checkTOML is a shape check, not a TOML parser (wharf has none): every
// line outside a multi-line array or string is blank, a comment, a table
// header or KEY = VALUE. It catches the files a person broke by hand,
// which is what setup must refuse to merge into.
func checkTOML(b []byte) error {
	depth := 0    // open [ in a value
	inMulti := "" // open """ or '''
	for n, line := range strings.Split(string(b), "\n") {
		s := strings.TrimSpace(line)
		if inMulti != "" {
			if strings.Count(s, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if depth == 0 {
			if s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			if strings.HasPrefix(s, "[") {
				h := stripComment(s)
				if !tomlHeader.MatchString(h) || strings.HasPrefix(h, "[[") != strings.HasSuffix(h, "]]") {
					return fmt.Errorf("line %d: %q is not a table header", n+1, s)
				}
				continue
			}
			if !tomlKey.MatchString(s) {
				return fmt.Errorf("line %d: %q is not KEY = VALUE", n+1, s)
			}
			_, s, _ = strings.Cut(s, "=")
		}
		for _, q := range []string{`"""`, `'''`} {
			if strings.Count(s, q)%2 == 1 {
				inMulti = q
			}
		}
		if inMulti != "" {
			continue
		}
		s = stripComment(s)
		depth += strings.Count(s, "[") - strings.Count(s, "]")
		if depth < 0 {
			return fmt.Errorf("line %d: unbalanced ]", n+1)
		}
	}
	if depth != 0 || inMulti != "" {
		return fmt.Errorf("an array or string is not closed at the end")
	}
	return nil
}

// stripComment drops a # comment and the contents of quoted strings, so
// brackets inside them are not counted.
func stripComment(s string) string {
	var b strings.Builder
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
				b.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote = r
			b.WriteRune(r)
		case r == '#':
			return strings.TrimSpace(b.String())
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
