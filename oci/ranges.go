package oci

import (
	"math"
	"strconv"
	"strings"
)

// ByteRange is an inclusive byte range [Start, End].
type ByteRange struct{ Start, End int64 }

// Len is the number of bytes in the range.
func (r ByteRange) Len() int64 { return r.End - r.Start + 1 }

// ParseRange parses a single-range "Range: bytes=a-b" header against a
// resource of size bytes. Multi-range requests are not supported by
// registries; they get RANGE_INVALID. Suffix ranges ("bytes=-n") and open
// ranges ("bytes=a-") are resolved against size.
func ParseRange(h string, size int64) (ByteRange, error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return ByteRange{}, Errorf(CodeRangeInvalid, "unsupported Range %q: want a single bytes=start-end", truncate(h))
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return ByteRange{}, Errorf(CodeRangeInvalid, "invalid Range %q", truncate(h))
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		n, err := parseNonNeg(b)
		if err != nil || n == 0 {
			return ByteRange{}, Errorf(CodeRangeInvalid, "invalid suffix Range %q", truncate(h))
		}
		if n > size {
			n = size
		}
		// <= rather than ==: a negative size (a caller's bug) must not
		// yield a range ending before it starts.
		if size <= 0 {
			return ByteRange{}, Errorf(CodeRangeInvalid, "Range %q is outside the %d-byte blob", truncate(h), size)
		}
		return ByteRange{Start: size - n, End: size - 1}, nil
	}
	start, err := parseNonNeg(a)
	if err != nil {
		return ByteRange{}, Errorf(CodeRangeInvalid, "invalid Range start in %q", truncate(h))
	}
	end := size - 1
	if b != "" {
		end, err = parseNonNeg(b)
		if err != nil || end < start {
			return ByteRange{}, Errorf(CodeRangeInvalid, "invalid Range end in %q", truncate(h))
		}
		if end >= size {
			end = size - 1
		}
	}
	if start >= size {
		return ByteRange{}, Errorf(CodeRangeInvalid, "Range %q is outside the %d-byte blob", truncate(h), size)
	}
	return ByteRange{Start: start, End: end}, nil
}

// ParseContentRange parses the "Content-Range" of an upload chunk, which
// the spec writes as "start-end" (Docker clients send "bytes start-end" or
// "bytes=start-end" too). Both ends are inclusive.
func ParseContentRange(h string) (ByteRange, error) {
	s := strings.TrimSpace(h)
	s = strings.TrimPrefix(s, "bytes")
	s = strings.TrimLeft(s, " =")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return ByteRange{}, Errorf(CodeRangeInvalid, "invalid Content-Range %q: want start-end", truncate(h))
	}
	start, err1 := parseNonNeg(a)
	end, err2 := parseNonNeg(b)
	// end-start == MaxInt64 is the one range whose Len overflows int64.
	if err1 != nil || err2 != nil || end < start || end-start == math.MaxInt64 {
		return ByteRange{}, Errorf(CodeRangeInvalid, "invalid Content-Range %q: want start-end", truncate(h))
	}
	return ByteRange{Start: start, End: end}, nil
}

func parseNonNeg(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
