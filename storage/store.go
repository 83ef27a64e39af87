// Package storage keeps content-addressed blob files on the local
// filesystem. Content is written to a temporary file while it is hashed,
// checked against its expected digest and size, fsynced, and only then
// renamed into place: a file under blobs/ is always complete and verified,
// whatever moment the process dies at.
package storage

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wharf-registry/wharf/oci"
)

// ErrNoSpace is returned (wrapped) when the disk is full.
var ErrNoSpace = errors.New("no space left on the data disk")

// Store is a blob store rooted at a directory.
type Store struct {
	claims  Claims
	root    string
	blobs   string
	tmp     string
	uploads string
	// publishTo, when set (a Staged store's scratch area), receives
	// committed blobs instead of the blobs directory.
	publishTo BlobStore
}

// Open prepares the directory layout under root.
func Open(root string) (*Store, error) {
	s := &Store{
		root:    root,
		blobs:   filepath.Join(root, "blobs"),
		tmp:     filepath.Join(root, "tmp"),
		uploads: filepath.Join(root, "uploads"),
	}
	for _, d := range []string{s.blobs, s.tmp, s.uploads} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return s, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

// path is where a committed blob lives. Digests are validated before they
// reach here, so the hex part never contains a path separator.
func (s *Store) path(d oci.Digest) string {
	h := d.Hex()
	return filepath.Join(s.blobs, d.Algorithm(), h[:2], h)
}

// Stat returns a committed blob's size.
func (s *Store) Stat(d oci.Digest) (int64, error) {
	fi, err := os.Stat(s.path(d))
	if err != nil {
		return 0, notFound("stat", d, err)
	}
	return fi.Size(), nil
}

// Open opens a committed blob for reading. The Blob is an *os.File, so
// io.Copy to a socket uses sendfile and a fill reader can use O_DIRECT.
func (s *Store) Open(d oci.Digest) (Blob, int64, error) {
	f, err := os.Open(s.path(d))
	if err != nil {
		return nil, 0, notFound("open", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("storage: open %s: %w", d, err)
	}
	return f, fi.Size(), nil
}

// Delete removes a committed blob; a missing blob is not an error.
func (s *Store) Delete(d oci.Digest) error {
	err := os.Remove(s.path(d))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", d, err)
	}
	return nil
}

// notFound is BLOB_UNKNOWN for a missing file; any other failure says
// which operation on which blob failed.
func notFound(op string, d oci.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", oci.ErrBlobUnknown, d)
	}
	return fmt.Errorf("storage: %s %s: %w", op, d, err)
}

// Put streams r into the store as the blob d. size < 0 means unknown. It
// returns the number of bytes written. Nothing becomes visible unless the
// bytes hash to d (and, when given, their count is size).
// Errors say which blob failed and keep their cause for errors.Is
// (ErrNoSpace, the reader's own errors, the context's).
func (s *Store) Put(ctx context.Context, d oci.Digest, size int64, r io.Reader) (int64, error) {
	w, err := s.NewWriter(d.Algorithm())
	if err != nil {
		return 0, fmt.Errorf("storage: put %s: %w", d, err)
	}
	defer w.Abort()
	n, err := copyCtx(ctx, w, r)
	if err != nil {
		return n, fmt.Errorf("storage: put %s after %d bytes: %w", d, n, err)
	}
	if err := w.Commit(d, size); err != nil {
		return n, err
	}
	return n, nil
}

// Writer writes one blob: Write, then Commit with the expected digest, or
// Abort. Abort after Commit is a no-op, so `defer w.Abort()` is safe.
// The first few MiB are hashed as they are written; beyond that the hash
// follows the file on a goroutine of its own (see hashBehind), and
// Verify, Digest and Commit wait for it to catch up. A cache fill, which
// holds the bytes in memory anyway, hashes them itself (HashAside) and
// writes past the page cache (Direct): see direct.go.
type Writer struct {
	sinceCheck int64
	s          *Store
	f          *os.File
	alg        string
	h          hash.Hash
	behind     *hashBehind   // nil while hashing inline
	aside      *countingHash // the caller hashes (HashAside)
	direct     *os.File      // O_DIRECT handle on f (Direct), nil without
	hashErr    error         // the hash could not read the file back
	n          int64
	done       bool
}

// NewWriter starts a blob in the store's tmp directory, hashing with alg
// (sha256 or sha512).
func (s *Store) NewWriter(alg string) (*Writer, error) {
	if err := s.checkSpace(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.tmp, "blob-*")
	if err != nil {
		return nil, classify(err)
	}
	return &Writer{s: s, f: f, alg: alg, h: oci.NewHash(alg)}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.sinceCheck += int64(len(p)); w.sinceCheck >= checkEvery {
		w.sinceCheck = 0
		if err := w.s.checkSpace(); err != nil {
			return 0, err
		}
	}
	n, ok, err := w.writeDirect(p)
	if !ok {
		n, err = w.f.WriteAt(p, w.n)
	}
	w.n += int64(n)
	switch {
	case w.aside != nil:
	case w.behind != nil:
		w.behind.advance(w.n)
	case w.n <= hashBehindAfter || w.hashErr != nil:
		w.h.Write(p[:n])
	default:
		b, berr := startHashBehind(w.h, w.f.Name(), w.n-int64(n), w.n)
		if berr != nil { // no second handle (out of descriptors): stay inline
			w.h.Write(p[:n])
			break
		}
		w.behind = b
	}
	return n, classify(err)
}

// Preallocate reserves disk blocks for n bytes without changing the file's
// size, so the writes that follow need not allocate as they go. It is a
// hint: where the filesystem cannot, or the disk has no room (the writes
// then fail as they would have), nothing changes.
func (w *Writer) Preallocate(n int64) {
	if n > 0 {
		_ = unix.Fallocate(int(w.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, n)
	}
}

// syncHash waits for the hash to cover every byte written. A Write after
// it starts a new hasher where this one stopped.
func (w *Writer) syncHash() error {
	if w.behind != nil {
		if err := w.behind.finish(); err != nil && w.hashErr == nil {
			w.hashErr = err
		}
		w.behind = nil
	}
	return w.hashErr
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Commit verifies and publishes the blob as d. A mismatch is the OCI
// error Verify returns, which names the digests; a failure to publish
// says which blob it was.
func (w *Writer) Commit(d oci.Digest, size int64) error {
	if w.done {
		return fmt.Errorf("storage: commit %s: writer already finished", d)
	}
	if err := w.Verify(d, size); err != nil {
		return err
	}
	if w.aside != nil && w.aside.n != w.n {
		return fmt.Errorf("storage: commit %s: %d bytes hashed but %d written", d, w.aside.n, w.n)
	}
	if err := w.s.publish(w, d); err != nil {
		return fmt.Errorf("storage: commit %s: %w", d, err)
	}
	return nil
}

// Verify checks the bytes written so far against d (and size, when >= 0)
// without publishing them. A streaming reader may release the bytes to
// clients once this passes: they are right, whether or not the durable
// commit that follows succeeds.
func (w *Writer) Verify(d oci.Digest, size int64) error {
	// With the hash aside, Verify checks what was hashed and may run while
	// the file write is still going on (so it must not read w.n); Commit
	// checks that every hashed byte was written.
	var n int64
	if w.aside != nil {
		n = w.aside.n
	} else {
		n = w.n
	}
	if size >= 0 && n != size {
		return oci.Errorf(oci.CodeSizeInvalid, "got %d bytes, expected %d", n, size)
	}
	if d.Algorithm() != w.alg {
		return oci.Errorf(oci.CodeDigestInvalid, "content was hashed with %s, cannot check %s", w.alg, d)
	}
	if err := w.syncHash(); err != nil {
		return fmt.Errorf("storage: verify %s: reading the written bytes back to hash them: %w", d, err)
	}
	if got := oci.FromHash(w.alg, w.h); got != d {
		return oci.Errorf(oci.CodeDigestInvalid, "content hashes to %s, not %s", got, d)
	}
	return nil
}

// Digest is what the bytes written so far hash to.
// It is empty when the bytes could not be read back to hash them.
func (w *Writer) Digest() oci.Digest {
	if w.syncHash() != nil {
		return ""
	}
	return oci.FromHash(w.alg, w.h)
}

func (s *Store) publish(w *Writer, d oci.Digest) error {
	w.done = true
	w.closeDirect()
	name := w.f.Name()
	if s.publishTo != nil { // the durable copy is the remote's
		w.f.Close()
		return s.link(name, d)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(name)
		return classify(err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(name)
		return classify(err)
	}
	return s.link(name, d)
}

// link renames a verified temp file into place and makes the rename
// durable, or hands it over to the store it is staged for.
func (s *Store) link(tmpName string, d oci.Digest) error {
	if s.publishTo != nil {
		return s.handOff(tmpName, d)
	}
	final := s.path(d)
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		os.Remove(tmpName)
		return classify(err)
	}
	if _, err := os.Stat(final); err == nil {
		// Same digest, same bytes: keep the one already there.
		os.Remove(tmpName)
		return nil
	}
	if err := os.Rename(tmpName, final); err != nil {
		os.Remove(tmpName)
		return classify(err)
	}
	return syncDir(dir)
}

// Abort discards an unfinished blob.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	if w.behind != nil {
		w.behind.abandon()
		w.behind = nil
	}
	w.closeDirect()
	w.f.Close()
	os.Remove(w.f.Name())
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// classify turns ENOSPC and EDQUOT into ErrNoSpace so the HTTP layer can
// answer with a clear message rather than a bare 500.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return err
}

// Walk calls fn for every committed blob. Files whose names are not
// digests are reported with a nil-size error through fn's bad callback.
func (s *Store) Walk(fn func(d oci.Digest, size int64) error, bad func(path string)) error {
	return filepath.WalkDir(s.blobs, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.blobs, p)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			bad(p)
			return nil
		}
		d, perr := oci.ParseDigest(parts[0] + ":" + parts[2])
		// The fan-out directory must be exactly where path() puts the file,
		// or the digest reported here could not be opened.
		if perr != nil || parts[1] != parts[2][:2] {
			bad(p)
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		return fn(d, fi.Size())
	})
}

// Verify re-hashes a committed blob and reports whether it matches its name.
func (s *Store) Verify(d oci.Digest) (bool, error) { return VerifyBlob(s, d) }

// Quarantine moves a corrupt blob out of the way (fsck --repair), keeping
// it for inspection rather than deleting evidence.
func (s *Store) Quarantine(path string) error {
	dir := filepath.Join(s.root, "quarantine")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return os.Rename(path, filepath.Join(dir, filepath.Base(path)))
}

// BlobPath exposes a blob's file path for fsck messages.
func (s *Store) BlobPath(d oci.Digest) string { return s.path(d) }

// CleanTemp removes every temp file; called at start, when no writer of
// this process can exist yet.
func (s *Store) CleanTemp() (int, error) {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if os.RemoveAll(filepath.Join(s.tmp, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

func copyCtx(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := getBuf()
	defer putBuf(buf)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(*buf)
		if m > 0 {
			k, werr := w.Write((*buf)[:m])
			n += int64(k)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
