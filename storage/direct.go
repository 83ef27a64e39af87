package storage

// Direct I/O for cache fills.
//
// A cache fill writes a blob nobody has asked for twice yet, at network
// speed, while clients wait for it. Written through the page cache, every
// MiB first needs fresh pages, which on a virtual machine means host page
// faults: measured here, the page-cache copy alone was 40 % of wharf's CPU
// during a cold pull and paced the download. With O_DIRECT the bytes go
// from the fill's own (reused) buffers to the disk without that copy. The
// hash no longer reads the file back either: the fill hashes the same
// buffers it writes from (HashAside), beside the writes.
//
// Only aligned writes can go direct: the offset, the length and the
// buffer address must be multiples of the disk's block size (4096 covers
// every Linux filesystem). Anything else, such as the tail of a blob,
// goes through the page cache as before; Linux keeps the two coherent.
// Where the filesystem refuses O_DIRECT (tmpfs on older kernels, some
// network filesystems), every write goes through the page cache.

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DirectAlign is the alignment direct I/O needs of offsets, lengths and
// buffer addresses.
const DirectAlign = 4096

// AlignedBuf returns a buffer of n bytes whose address is DirectAlign-aligned.
func AlignedBuf(n int) []byte {
	raw := make([]byte, n+DirectAlign)
	skip := (DirectAlign - int(uintptr(unsafe.Pointer(&raw[0]))%DirectAlign)) % DirectAlign
	return raw[skip : skip+n : skip+n]
}

// IsAligned reports whether p's address suits direct I/O.
func IsAligned(p []byte) bool {
	return len(p) > 0 && uintptr(unsafe.Pointer(&p[0]))%DirectAlign == 0
}

// Direct lets the Writer send aligned writes past the page cache. It
// reports whether the filesystem took it; either way Write keeps working.
// Call it before the first Write.
func (w *Writer) Direct() bool {
	if w.direct != nil {
		return true
	}
	if w.n > 0 || w.done {
		return false
	}
	f, err := os.OpenFile(w.f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return false
	}
	w.direct = f
	return true
}

// writeDirect writes p at the writer's end through the O_DIRECT handle;
// ok is false when p or the offset is not aligned, or the filesystem
// refused, so the caller writes it through the page cache instead.
func (w *Writer) writeDirect(p []byte) (n int, ok bool, err error) {
	if w.direct == nil || w.n%DirectAlign != 0 || len(p)%DirectAlign != 0 || !IsAligned(p) {
		return 0, false, nil
	}
	n, err = w.direct.WriteAt(p, w.n)
	if errors.Is(err, unix.EINVAL) && n == 0 {
		// Accepted at open, refused on write (some FUSE and network
		// filesystems): page cache from now on.
		w.closeDirect()
		return 0, false, nil
	}
	return n, true, err
}

func (w *Writer) closeDirect() {
	if w.direct != nil {
		w.direct.Close()
		w.direct = nil
	}
}

// HashAside hands the hash to the caller: Write stops hashing, and the
// caller writes every byte of the blob, in order, to the returned writer,
// from the same memory it gives Write. The caller hashes on a goroutine of
// its own, beside the file writes, rather than waiting for them or reading
// the file back. Verify then checks what was hashed; Commit also checks
// that exactly the hashed bytes were written. Call it before the first
// Write; it returns nil after one.
func (w *Writer) HashAside() io.Writer {
	if w.n > 0 || w.done {
		return nil
	}
	w.aside = &countingHash{h: w.h}
	return w.aside
}

// countingHash is a hash that counts what went into it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

// OpenDirect opens a read handle on the same file as f that bypasses the
// page cache; nil when the filesystem refuses. It works after the file was
// renamed or unlinked, because it goes through /proc.
func OpenDirect(f *os.File) *os.File {
	if f == nil {
		return nil
	}
	d, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return d
}

// ReadDirect reads from a handle of OpenDirect as much of [pos, limit) as
// buf holds (an AlignedBuf), reading whole blocks around it, and returns
// the bytes of the span it got.
func ReadDirect(f *os.File, buf []byte, pos, limit int64) ([]byte, error) {
	off := pos &^ (DirectAlign - 1)
	want := min((limit-off+DirectAlign-1)&^(DirectAlign-1), int64(len(buf))&^(DirectAlign-1))
	n, err := f.ReadAt(buf[:want], off)
	got := min(int64(n), limit-off)
	if got <= pos-off {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("storage: reading the blob at %d: %w", pos, err)
	}
	return buf[pos-off : got], nil
}
