package settings

import (
	"bytes"
	"regexp"
)

// yaml.v3 keeps comments but drops blank lines, which people use to set
// the sections of a config apart. spacing remembers which top-level keys
// had a blank line above them (above their comments, if any) so that
// rendering can put it back.

var topKey = regexp.MustCompile(`^([A-Za-z_][\w-]*):`)

// blockStarts maps each top-level key of text to the index of the first
// line of its block: the key's line, or the first of the comment lines
// right above it.
func blockStarts(lines [][]byte) map[string]int {
	out := map[string]int{}
	for i, l := range lines {
		m := topKey.FindSubmatch(l)
		if m == nil {
			continue
		}
		start := i
		for start > 0 && bytes.HasPrefix(lines[start-1], []byte("#")) {
			start--
		}
		out[string(m[1])] = start
	}
	return out
}

// spacedKeys are the top-level keys of text with a blank line above their
// block.
func spacedKeys(text []byte) map[string]bool {
	lines := bytes.Split(text, []byte("\n"))
	out := map[string]bool{}
	for k, start := range blockStarts(lines) {
		if start > 0 && len(bytes.TrimSpace(lines[start-1])) == 0 {
			out[k] = true
		}
	}
	return out
}

// respace puts a blank line above the block of each key in spaced.
func respace(text []byte, spaced map[string]bool) []byte {
	lines := bytes.Split(text, []byte("\n"))
	blank := map[int]bool{}
	for k, start := range blockStarts(lines) {
		if spaced[k] && start > 0 && len(bytes.TrimSpace(lines[start-1])) > 0 {
			blank[start] = true
		}
	}
	if len(blank) == 0 {
		return text
	}
	var out bytes.Buffer
	for i, l := range lines {
		if blank[i] {
			out.WriteByte('\n')
		}
		out.Write(l)
		if i < len(lines)-1 {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
