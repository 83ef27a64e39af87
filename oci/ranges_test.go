package oci_test

import (
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		h    string
		size int64
		want oci.ByteRange
		ok   bool
	}{
		{"bytes=0-99", 100, br(0, 99), true},
		{"bytes=10-19", 100, br(10, 19), true},
		{"bytes=0-0", 1, br(0, 0), true},
		{"bytes=99-99", 100, br(99, 99), true},
		{" bytes=5-9 ", 100, br(5, 9), true},
		{"bytes= 5 - 9", 100, br(5, 9), true},
		// open
		{"bytes=10-", 100, br(10, 99), true},
		{"bytes=0-", 1, br(0, 0), true},
		// suffix
		{"bytes=-10", 100, br(90, 99), true},
		{"bytes=-100", 100, br(0, 99), true},
		{"bytes=-1000", 100, br(0, 99), true},
		{"bytes=-1", 1, br(0, 0), true},
		// end beyond the blob is clamped (RFC 9110 §14.1.2)
		{"bytes=0-1000", 100, br(0, 99), true},
		{"bytes=50-9223372036854775807", 100, br(50, 99), true},
		{"bytes=0-99", 9223372036854775807, br(0, 99), true},

		// start at or beyond the end
		{"bytes=100-", 100, oci.ByteRange{}, false},
		{"bytes=100-200", 100, oci.ByteRange{}, false},
		{"bytes=5000-10000", 100, oci.ByteRange{}, false},
		{"bytes=0-", 0, oci.ByteRange{}, false},
		{"bytes=0-0", 0, oci.ByteRange{}, false},
		{"bytes=-5", 0, oci.ByteRange{}, false},
		{"bytes=-0", 100, oci.ByteRange{}, false},
		// negative sizes are a caller bug; never answer with a range
		{"bytes=-5", -3, oci.ByteRange{}, false},
		{"bytes=0-", -1, oci.ByteRange{}, false},
		// end before start
		{"bytes=500-0", 1000, oci.ByteRange{}, false},
		{"bytes=10-9", 100, oci.ByteRange{}, false},
		// multi-range is refused
		{"bytes=0-1,5-6", 100, oci.ByteRange{}, false},
		{"bytes=0-1, 5-6", 100, oci.ByteRange{}, false},
		// garbage
		{"", 100, oci.ByteRange{}, false},
		{"bytes=", 100, oci.ByteRange{}, false},
		{"bytes=-", 100, oci.ByteRange{}, false},
		{"bytes=5", 100, oci.ByteRange{}, false},
		{"bytes=a-b", 100, oci.ByteRange{}, false},
		{"bytes=+1-2", 100, oci.ByteRange{}, false},
		{"bytes=-1-2", 100, oci.ByteRange{}, false},
		{"bytes=1--2", 100, oci.ByteRange{}, false},
		{"bytes=0x10-20", 100, oci.ByteRange{}, false},
		{"bytes 0-10", 100, oci.ByteRange{}, false},
		{"items=0-10", 100, oci.ByteRange{}, false},
		{"0-10", 100, oci.ByteRange{}, false},
		{"bytes=1.5-2", 100, oci.ByteRange{}, false},
		// overflow
		{"bytes=9223372036854775808-", 100, oci.ByteRange{}, false},
		{"bytes=0-9223372036854775808", 100, oci.ByteRange{}, false},
		{"bytes=0-99999999999999999999", 100, oci.ByteRange{}, false},
		{"bytes=-9223372036854775808", 100, oci.ByteRange{}, false},
	}
	for _, tt := range tests {
		got, err := oci.ParseRange(tt.h, tt.size)
		if !tt.ok {
			checkCode(t, "ParseRange("+tt.h+")", err, oci.CodeRangeInvalid, 416)
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRange(%q, %d) = %+v, %v; want %+v", tt.h, tt.size, got, err, tt.want)
		}
		if got.Len() != tt.want.End-tt.want.Start+1 {
			t.Errorf("Len of %+v = %d", got, got.Len())
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		h    string
		want oci.ByteRange
		ok   bool
	}{
		{"0-99", br(0, 99), true},
		{"100-199", br(100, 199), true},
		{"5-5", br(5, 5), true},
		{"bytes 0-99/100", br(0, 99), true},
		{"bytes 0-99/*", br(0, 99), true},
		{"bytes=0-99", br(0, 99), true},
		{" 0-99 ", br(0, 99), true},
		{"0-9223372036854775806", br(0, 9223372036854775806), true},
		{"1-9223372036854775807", br(1, 9223372036854775807), true},

		{"", oci.ByteRange{}, false},
		{"bytes", oci.ByteRange{}, false},
		{"99-0", oci.ByteRange{}, false},
		{"10-9", oci.ByteRange{}, false},
		{"0-", oci.ByteRange{}, false},
		{"-99", oci.ByteRange{}, false},
		{"-", oci.ByteRange{}, false},
		{"0", oci.ByteRange{}, false},
		{"a-b", oci.ByteRange{}, false},
		{"0 - 99", oci.ByteRange{}, false},
		{"bytes */100", oci.ByteRange{}, false},
		{"0-99-100", oci.ByteRange{}, false},
		{"-1-5", oci.ByteRange{}, false},
		{"0-9223372036854775807", oci.ByteRange{}, false}, // Len would overflow
		{"0-9223372036854775808", oci.ByteRange{}, false},
		{"99999999999999999999-1", oci.ByteRange{}, false},
	}
	for _, tt := range tests {
		got, err := oci.ParseContentRange(tt.h)
		if !tt.ok {
			checkCode(t, "ParseContentRange("+tt.h+")", err, oci.CodeRangeInvalid, 416)
			continue
		}
		if err != nil || got != tt.want || got.Len() < 1 {
			t.Errorf("ParseContentRange(%q) = %+v (Len %d), %v; want %+v", tt.h, got, got.Len(), err, tt.want)
		}
	}
}

func br(start, end int64) oci.ByteRange { return oci.ByteRange{Start: start, End: end} }
