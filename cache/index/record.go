package index

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// Blob records are the one value read on every request, so they are
// stored in a compact binary form rather than JSON: decoding JSON with two
// RFC 3339 times was a quarter of a lookup, and the smaller values pack
// more records into each cached table block. Records written before this
// form are JSON, which always begins with '{', and are still read; they
// are rewritten in the new form the next time they change.
//
//	0x01                      version
//	flags                     bit 0: Created set, bit 1: LastAccess set
//	varint size
//	uvarint len, media type
//	[varint unix ns created]
//	[varint unix ns last access]
//	uvarint len, origin
//	varint hits
//
// The digest is the key's, so it is not repeated.
const blobRecordV1 = 0x01

const (
	flagCreated    = 1 << 0
	flagLastAccess = 1 << 1
)

var errBadRecord = errors.New("index: damaged blob record")

// encodeBlobRecord returns r's stored form: binary, or JSON for a record
// with a time the binary form cannot hold (outside 1678–2262).
func encodeBlobRecord(r BlobRecord) ([]byte, error) {
	if !unixNanoExact(r.Created) || !unixNanoExact(r.LastAccess) {
		return json.Marshal(r)
	}
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+2+len(r.MediaType)+len(r.Origin)+2*binary.MaxVarintLen64)
	var flags byte
	if !r.Created.IsZero() {
		flags |= flagCreated
	}
	if !r.LastAccess.IsZero() {
		flags |= flagLastAccess
	}
	b = append(b, blobRecordV1, flags)
	b = binary.AppendVarint(b, r.Size)
	b = binary.AppendUvarint(b, uint64(len(r.MediaType)))
	b = append(b, r.MediaType...)
	if flags&flagCreated != 0 {
		b = binary.AppendVarint(b, r.Created.UnixNano())
	}
	if flags&flagLastAccess != 0 {
		b = binary.AppendVarint(b, r.LastAccess.UnixNano())
	}
	b = binary.AppendUvarint(b, uint64(len(r.Origin)))
	b = append(b, r.Origin...)
	b = binary.AppendVarint(b, r.Hits)
	return b, nil
}

// unixNanoExact reports whether t survives a round trip through unix
// nanoseconds (the zero time is stored as a flag).
func unixNanoExact(t time.Time) bool {
	return t.IsZero() || time.Unix(0, t.UnixNano()).Equal(t)
}

// decodeBlobRecord reads a stored record of d, binary or JSON.
func decodeBlobRecord(d oci.Digest, b []byte, r *BlobRecord) error {
	if len(b) > 0 && b[0] == '{' {
		*r = BlobRecord{}
		return json.Unmarshal(b, r)
	}
	if len(b) < 2 || b[0] != blobRecordV1 {
		return errBadRecord
	}
	flags := b[1]
	rd := recordReader{b: b[2:]}
	*r = BlobRecord{Digest: d}
	r.Size = rd.varint()
	r.MediaType = rd.str()
	if flags&flagCreated != 0 {
		r.Created = time.Unix(0, rd.varint())
	}
	if flags&flagLastAccess != 0 {
		r.LastAccess = time.Unix(0, rd.varint())
	}
	r.Origin = rd.str()
	r.Hits = rd.varint()
	if rd.bad || len(rd.b) != 0 {
		*r = BlobRecord{}
		return errBadRecord
	}
	return nil
}

type recordReader struct {
	b   []byte
	bad bool
}

func (rd *recordReader) varint() int64 {
	v, n := binary.Varint(rd.b)
	if n <= 0 {
		rd.bad = true
		rd.b = nil
		return 0
	}
	rd.b = rd.b[n:]
	return v
}

func (rd *recordReader) str() string {
	n, k := binary.Uvarint(rd.b)
	if k <= 0 || n > uint64(len(rd.b)-k) {
		rd.bad = true
		rd.b = nil
		return ""
	}
	s := string(rd.b[k : k+int(n)])
	rd.b = rd.b[k+int(n):]
	return s
}

// The value of an LRU key (a/) carries the record's size and origin, so
// that eviction can choose a window of blobs by size and account for them
// without reading each record:
//
//	varint size, origin
//
// Keys written before it did have an empty value.
func lruValue(r BlobRecord) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(r.Origin))
	b = binary.AppendVarint(b, r.Size)
	return append(b, r.Origin...)
}

// decodeLRUValue reads an LRU key's value; ok is false for an empty
// (older) or damaged one.
func decodeLRUValue(b []byte) (size int64, origin string, ok bool) {
	size, n := binary.Varint(b)
	if n <= 0 {
		return 0, "", false
	}
	return size, string(b[n:]), true
}
