package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/wharf-registry/wharf/oci"
)

// fill is one upstream download of a blob, shared by every client that
// asks for it while it runs. The bytes go to a temp file as they arrive;
// readers follow the writer through a second file handle (ReadAt), waking
// on each chunk. Nothing about a fill depends on any client: it runs on
// its own context, so the first client hanging up does not abort it.
type fill struct {
	digest oci.Digest
	repo   string // canonical repository that started it

	ready chan struct{} // closed once the upstream answered (size known) or failed
	size  int64         // -1 when the upstream sent no length; set before ready closes

	mu       sync.Mutex
	written  int64
	done     bool
	verified bool
	err      error
	changed  chan struct{} // closed and replaced on every change
	file     *os.File      // read handle on the temp (then final) file
	refs     int
	waiters  int // clients that joined rather than started the fill
}

func newFill(d oci.Digest, repo string) *fill {
	return &fill{digest: d, repo: repo, ready: make(chan struct{}), size: -1, changed: make(chan struct{}), refs: 1}
}

// progress records n more bytes on disk and wakes readers.
func (f *fill) progress(n int64) {
	f.mu.Lock()
	f.written += n
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// verify releases the held-back bytes: the content matched its digest.
func (f *fill) verify() {
	f.mu.Lock()
	f.verified = true
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// finish ends the fill: err == nil means the blob was verified and
// committed. A commit that fails after verification leaves verified set:
// readers still got correct bytes; only the cache copy is lost.
func (f *fill) finish(err error) {
	f.mu.Lock()
	f.done, f.err = true, err
	if err == nil {
		f.verified = true
	}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// acquire adds a reference; release drops one and closes the file with the last.
func (f *fill) acquire() {
	f.mu.Lock()
	f.refs++
	f.waiters++
	f.mu.Unlock()
}

func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	file := f.file
	f.mu.Unlock()
	if last && file != nil {
		file.Close()
	}
}

// waitReady blocks until the upstream answered.
func (f *fill) waitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.file == nil {
			if f.err != nil {
				return f.err
			}
			return errors.New("cache: fill ended before it started")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// copyTo streams bytes [start, end] (end < 0: to the end) to w as they
// arrive. The last byte of the requested span is held back until the
// whole blob is verified, so a corrupt or truncated upstream stream never
// reaches a client as a complete body: the caller aborts the connection
// on the returned error instead.
func (f *fill) copyTo(ctx context.Context, w io.Writer, start, end int64, buf []byte) (int64, error) {
	pos := start
	var sent int64
	// A writer that can take a file (an HTTP response: sendfile) gets a
	// handle of its own, with its own offset, so the kernel copies and
	// concurrent readers do not share a position.
	var own *os.File
	if _, ok := w.(io.ReaderFrom); ok {
		f.mu.Lock()
		shared := f.file
		f.mu.Unlock()
		if h, err := reopen(shared); err == nil {
			own = h
			defer own.Close()
		}
	}
	for {
		f.mu.Lock()
		written, done, verified, ferr, ch, file := f.written, f.done, f.verified, f.err, f.changed, f.file
		size := f.size
		f.mu.Unlock()

		target := int64(-1) // one past the last byte wanted, when known
		switch {
		case end >= 0:
			target = end + 1
		case size >= 0:
			target = size
		case verified:
			target = written
		}
		limit := written
		if target >= 0 && limit > target {
			limit = target
		}
		if !verified && (target < 0 || limit >= target) {
			limit-- // hold back the final byte until verified
		}
		if pos < limit && own != nil {
			if _, err := own.Seek(pos, io.SeekStart); err != nil {
				return sent, err
			}
			k, err := io.Copy(w, io.LimitReader(own, limit-pos))
			pos += k
			sent += k
			if err != nil {
				return sent, err
			}
			continue
		}
		if pos < limit {
			n := limit - pos
			if n > int64(len(buf)) {
				n = int64(len(buf))
			}
			m, err := file.ReadAt(buf[:n], pos)
			if m > 0 {
				k, werr := w.Write(buf[:m])
				pos += int64(k)
				sent += int64(k)
				if werr != nil {
					return sent, werr
				}
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return sent, err
			}
			continue
		}
		if verified && target >= 0 && pos >= target {
			return sent, nil
		}
		if done && ferr != nil {
			return sent, ferr
		}
		// About to wait for the upstream: push what the client has so far
		// out of any response buffer, so bytes flow as they arrive.
		if fl, ok := w.(interface{ Flush() }); ok {
			fl.Flush()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return sent, ctx.Err()
		}
	}
}

// reopen opens a second handle on the file f has open. It works after the
// file was renamed or unlinked, because it goes through /proc.
func reopen(f *os.File) (*os.File, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	return os.Open("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}
