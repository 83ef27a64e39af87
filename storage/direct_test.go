package storage

import (
	"bytes"
	"os"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// TestWriterDirect writes a blob as a cache fill does, aligned 1 MiB
// buffers and an odd tail, past the page cache and hashed aside, and
// also with an unaligned write in the middle (everything after it goes
// through the page cache): the committed file holds exactly the bytes.
func TestWriterDirect(t *testing.T) {
	in := content("direct", 5<<20+333)
	for _, tc := range []struct {
		name  string
		split []int // write sizes; the rest goes in the last write
	}{
		{"aligned then tail", []int{1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20}},
		{"unaligned in the middle", []int{1 << 20, 4095, 1 << 20, 1 << 20}},
		{"blocks", []int{DirectAlign, 3 * DirectAlign, 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			w, err := s.NewWriter("sha256")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if !w.Direct() {
				t.Skip("the test directory's filesystem refuses O_DIRECT")
			}
			sum := w.HashAside()
			if sum == nil {
				t.Fatal("HashAside refused before any write")
			}
			buf := AlignedBuf(1 << 20)
			off := 0
			write := func(n int) {
				p := buf[:n]
				copy(p, in[off:off+n])
				if k, err := w.Write(p); err != nil || k != n {
					t.Fatalf("write of %d at %d: %d, %v", n, off, k, err)
				}
				sum.Write(p)
				off += n
			}
			for _, n := range tc.split {
				write(n)
			}
			for off < len(in) {
				write(min(len(in)-off, len(buf)))
			}
			if w.direct == nil {
				t.Fatal("the aligned writes fell back to the page cache")
			}
			d := oci.FromBytes(in)
			if err := w.Commit(d, int64(len(in))); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(s.path(d))
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("committed file differs from what was written (%d bytes, %v)", len(got), err)
			}
		})
	}
}

// TestHashAsideChecks: Verify checks what was hashed, Commit also that
// every hashed byte was written, and HashAside is refused once the Writer
// hashed something itself.
func TestHashAsideChecks(t *testing.T) {
	in := content("aside", 64<<10)
	d := oci.FromBytes(in)
	s := newStore(t)

	w, _ := s.NewWriter("sha256")
	defer w.Abort()
	sum := w.HashAside()
	w.Write(in)
	sum.Write(in[:len(in)-1])
	if err := w.Verify(d, int64(len(in))); err == nil {
		t.Fatal("verified a blob whose last byte was never hashed")
	}
	sum.Write(in[len(in)-1:])
	if err := w.Verify(d, int64(len(in))); err != nil {
		t.Fatalf("verify: %v", err)
	}

	short, _ := s.NewWriter("sha256")
	defer short.Abort()
	sum = short.HashAside()
	short.Write(in[:len(in)/2])
	sum.Write(in)
	if err := short.Commit(d, -1); err == nil {
		t.Fatal("committed a file holding half of the hashed bytes")
	}
	if _, err := os.Stat(s.path(d)); !os.IsNotExist(err) {
		t.Fatalf("the half-written blob is visible: %v", err)
	}

	late, _ := s.NewWriter("sha256")
	defer late.Abort()
	late.Write(in[:10])
	if late.HashAside() != nil {
		t.Fatal("HashAside accepted after the Writer hashed bytes itself")
	}
	if late.Direct() {
		t.Fatal("Direct accepted after the first write")
	}
}

// TestReadDirect reads spans that start and end off the block size, up to
// the end of a file whose size is not a multiple of it.
func TestReadDirect(t *testing.T) {
	in := content("read", 3*DirectAlign+17)
	name := t.TempDir() + "/f"
	if err := os.WriteFile(name, in, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := OpenDirect(f)
	if d == nil {
		t.Skip("the test directory's filesystem refuses O_DIRECT")
	}
	defer d.Close()
	buf := AlignedBuf(2 * DirectAlign)
	for _, span := range [][2]int64{{0, 10}, {5, DirectAlign + 3}, {DirectAlign, int64(len(in))}, {int64(len(in)) - 1, int64(len(in))}} {
		var got []byte
		for pos := span[0]; pos < span[1]; {
			p, err := ReadDirect(d, buf, pos, span[1])
			if err != nil {
				t.Fatalf("span %v at %d: %v", span, pos, err)
			}
			got = append(got, p...)
			pos += int64(len(p))
		}
		if !bytes.Equal(got, in[span[0]:span[1]]) {
			t.Fatalf("span %v: wrong bytes", span)
		}
	}
	if _, err := ReadDirect(d, buf, int64(len(in)), int64(len(in))+5); err == nil {
		t.Fatal("read past the end without an error")
	}
}
