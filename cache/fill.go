package cache

// A blob miss, top to bottom: the first client to ask for a digest starts
// one upstream download (a fill); every client asking while it runs joins
// it. The fill runs three loops, none waiting on another except through
// the bounded window between them:
//
//	upstream socket ──receive──▶ window (memory, ≤ windowChunks) ──persist──▶ temp file (O_DIRECT where it can)
//	                                   │           └────────────hash──▶ digest
//	                                   └─────────── copyTo: clients ◀─────────────┘ (from the window, else the file)
//
// Clients are served from the window as soon as bytes arrive, so neither
// the file write nor the hash sits between the upstream and the clients.
// The hash reads the window too, not the file, so it never waits for the
// disk, and the file is written past the page cache (storage.Writer.Direct),
// which spares the CPU the copy into fresh page-cache pages. A client that
// falls behind the window reads the file instead. The window frees a chunk
// only once it is on disk and hashed, so a slow disk slows the download
// (memory stays bounded), but a slow client never does. The last byte of
// every response is held back until the whole blob matched its digest;
// only then is the file fsynced, renamed into place and indexed.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

const (
	// chunkSize is the window's unit: large enough that a client write or
	// a file write moves a lot at once, small enough to free memory often.
	chunkSize = 1 << 20
	// windowChunks bounds one fill's memory. Past it, the download waits
	// for the file write to catch up.
	windowChunks = 16
	// laggardChunks is how far the window may grow, out of the proxy's
	// shared budget, while a client is still reading its oldest chunk: a
	// client that fell a few MiB behind (a scheduling hiccup on a busy
	// machine) stays on the window instead of going to the disk. A client
	// further behind reads the file; it never holds the download.
	laggardChunks = sharedChunks / 2
	// sharedChunks is how many chunks beyond its first all of a proxy's
	// fills may hold together, so many fills at once stay within memory.
	sharedChunks = 64
	// sendBatch is the least a client that keeps up is sent at once (but at
	// the end of a chunk or the stream).
	sendBatch = 256 << 10
	// persistBatch is the least the file write takes at once (but at the
	// end of a chunk or the stream): fewer, larger writes cost less.
	persistBatch = 256 << 10
	// maxResumes bounds how often one fill resumes a broken upstream stream.
	maxResumes = 3
)

// openFill returns a running fill of d for a client of repo: the one
// already running, or a new one.
func (p *Proxy) openFill(ctx context.Context, repo, canon string, d oci.Digest) (*Blob, error) {
	f, started := p.joinOrStart(repo, canon, d)
	if !started && f.repo != canon {
		// Another repository's fill: the same digest is not proof that
		// this repository may see it upstream.
		if _, err := p.o.Upstream.HeadBlob(ctx, repo, string(d)); err != nil {
			f.release()
			return nil, p.upstreamError(err, "blob", d.String())
		}
	}
	if err := f.waitReady(ctx); err != nil {
		f.release()
		if started || !isCtxErr(err) {
			return nil, p.upstreamError(err, "blob", d.String())
		}
		return nil, err
	}
	src := SourceMiss
	if !started {
		f.mu.Lock()
		verified := f.verified
		f.mu.Unlock()
		if verified {
			// Downloaded and verified, only its commit still running:
			// for this client it is a hit, and nothing was coalesced.
			src = SourceHit
		} else {
			p.o.Metrics.CoalescedFetch(p.o.Name)
		}
	}
	return &Blob{Digest: d, Size: f.size, Source: src, fill: f, proxy: p}, nil
}

// joinOrStart returns the running fill for d, or starts one.
func (p *Proxy) joinOrStart(repo, canon string, d oci.Digest) (*fill, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.fills[d]; ok && !f.failed() {
		f.acquire()
		return f, false
	}
	// A fill that failed (bad bytes, a broken upstream) stays in the map
	// until its cleanup is done; its clients already got its error. One
	// arriving now must not join it and get that error too: it starts a
	// fill of its own, which replaces the failed one here.
	f := newFill(d, canon, &p.chunks)
	p.fills[d] = f
	f.refs++ // the fill goroutine's own reference
	p.wg.Add(1)
	go p.run(f, repo)
	return f, true
}

// run downloads, verifies and commits one blob, detached from every
// client: the first one hanging up does not abort it.
func (p *Proxy) run(f *fill, repo string) {
	defer p.wg.Done()
	defer f.release()
	p.o.Lifecycle.acquire(f.digest) // not evictable while it is written
	defer p.o.Lifecycle.release(f.digest)
	ctx, cancel := context.WithTimeout(p.ctx, p.o.FillTimeout)
	defer cancel()
	start := p.o.Now()
	f.src = p.o.Upstream
	if p.o.Coordinator != nil {
		f.shared = p.o.Coordinator.Fill(f.digest, p.o.Upstream)
		f.src = f.shared
	}
	err := p.download(ctx, f, repo)
	if f.shared != nil {
		// After the commit to the store and the index: a replica that
		// missed the digest meanwhile finds it there, not a free lease.
		f.shared.Done()
	}
	f.finish(err)
	p.mu.Lock()
	if p.fills[f.digest] == f { // not a fill that replaced this failed one
		delete(p.fills, f.digest)
	}
	p.mu.Unlock()
	f.mu.Lock()
	joined, received := f.waiters, f.received
	f.mu.Unlock()
	if err != nil {
		if storage.EvictionFrees(p.o.Store, err) {
			p.log.Warn("data disk full: blob not cached; evicting cached content to make room", "repo", repo, "digest", f.digest, "err", err)
			p.o.Lifecycle.RelieveDiskPressure()
			return
		}
		if errors.Is(err, storage.ErrNoSpace) {
			// Cluster mode: this replica's scratch area, which holds no
			// cached blob, is full. Evicting from the bucket would not help.
			p.log.Warn("scratch area full: blob not cached; make room on the disk of this replica's data_dir (or give it more)", "repo", repo, "digest", f.digest, "err", err)
			return
		}
		p.log.Warn("upstream blob fetch failed; nothing cached", "repo", repo, "digest", f.digest, "err", err)
		return
	}
	p.o.Lifecycle.Kick()
	p.log.Info("cached blob", "repo", repo, "digest", f.digest, "bytes", received, "clients_joined", joined,
		"duration", p.o.Now().Sub(start).Round(time.Millisecond))
}

// download fetches the blob into the window and the temp file, verifies
// it, releases the held-back bytes, and commits it to the store and index.
func (p *Proxy) download(ctx context.Context, f *fill, repo string) (err error) {
	readyClosed := false
	defer func() {
		if !readyClosed {
			f.mu.Lock()
			f.err = err
			f.mu.Unlock()
			close(f.ready)
		}
	}()
	body, size, err := f.src.GetBlob(ctx, repo, string(f.digest), 0)
	if err != nil {
		return err
	}
	defer func() { body.Close() }()
	w, err := p.o.Store.NewWriter(f.digest.Algorithm())
	if err != nil {
		return fmt.Errorf("cache: temp file for %s: %w", f.digest, err)
	}
	defer w.Abort()
	w.Preallocate(size)
	block := 1
	if w.Direct() {
		block = storage.DirectAlign
	}
	sum := w.HashAside()
	rf, err := w.OpenReader()
	if err != nil {
		return fmt.Errorf("cache: read handle on the temp file of %s: %w", f.digest, err)
	}
	f.mu.Lock()
	f.size, f.file, f.direct = size, rf, block > 1
	f.mu.Unlock()
	close(f.ready)
	readyClosed = true

	persisted, hashed := make(chan error, 1), make(chan error, 1)
	go func() { persisted <- f.persist(ctx, w, block) }()
	go func() { hashed <- f.hash(ctx, sum) }()
	err = p.receiveAll(ctx, f, repo, &body, size)
	f.endReceive(err)
	if herr := <-hashed; err == nil {
		err = herr
	}
	if err == nil {
		if verr := w.Verify(f.digest, size); verr != nil {
			err = fmt.Errorf("upstream sent bad content for %s: %w", f.digest, verr)
			f.fail(err) // stops the file write
		}
	}
	if err == nil {
		// Readers may finish now: the file write catching up and making
		// the copy durable (fsync, rename, index) need not delay them.
		f.verify()
	}
	if perr := <-persisted; err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	release := p.o.Store.HoldBlob(f.digest) // no GC or eviction of this digest meanwhile
	defer release()
	if f.shared != nil && f.shared.Stored(ctx) {
		// Another replica filled the shared store while this one streamed
		// from it: uploading the same bytes again would only cost time.
		w.Abort()
		p.log.Info("blob already in the shared store; not uploading it again", "repo", repo, "digest", f.digest)
	} else {
		if err := w.Commit(f.digest, size); err != nil {
			return fmt.Errorf("caching %s: %w", f.digest, err)
		}
		p.o.Metrics.CacheFilled(p.o.Name, w.Size())
	}
	now := p.o.Now()
	// The file is in place: its record must follow even when Shutdown is
	// cancelling the fill (Update gives up on a conflict retry once ctx
	// ends), or the file stays unindexed, and after a clean stop nothing
	// reconciles it.
	err = p.o.Index.Update(context.WithoutCancel(ctx), func(tx index.Txn) error {
		if _, err := tx.Blob(f.digest); errors.Is(err, index.ErrNotFound) {
			if err := tx.PutBlob(index.BlobRecord{Digest: f.digest, Size: w.Size(), Created: now, LastAccess: now, Origin: p.o.Name}); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		return tx.LinkBlob(f.repo, f.digest)
	})
	if err != nil {
		return fmt.Errorf("cache: indexing %s in %s: %w", f.digest, f.repo, err)
	}
	return nil
}

// receiveAll reads the upstream body into the window, resuming a stream
// that breaks mid-way (a CDN hiccup) where it stopped rather than starting
// over; the digest check at the end covers the joined stream.
// body is replaced by each resumed stream, so the caller closes the last.
func (p *Proxy) receiveAll(ctx context.Context, f *fill, repo string, body *io.ReadCloser, size int64) error {
	for resumes := 0; ; resumes++ {
		err := f.receive(ctx, *body)
		if err == nil {
			return nil
		}
		at := f.receivedBytes()
		if !upstream.IsUnavailable(err) || ctx.Err() != nil || resumes >= maxResumes || (size >= 0 && at >= size) {
			return err
		}
		p.log.Warn("upstream blob stream broke; resuming", "repo", repo, "digest", f.digest, "offset", at, "err", err)
		next, _, gerr := f.src.GetBlob(ctx, repo, string(f.digest), at)
		if gerr != nil {
			return gerr
		}
		(*body).Close()
		*body = next
	}
}

// --- the shared stream ---

// fill is one upstream download of a blob, shared by every client that
// asks for it while it runs.
type fill struct {
	digest oci.Digest
	repo   string // canonical repository that started it
	budget *chunkBudget
	src    blobSource // the upstream, or shared; set by run
	shared FillSource // the Coordinator's source; nil outside cluster mode

	ready chan struct{} // closed once the upstream answered (size known) or failed
	size  int64         // -1 when the upstream sent no length; set before ready closes

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	window    []*chunk      // contiguous, oldest first, ending at received
	received  int64         // bytes from the upstream
	persisted int64         // bytes written to the temp file; ≤ received
	hashed    int64         // bytes hashed; ≤ received
	direct    bool          // the file is written with O_DIRECT: read it that way too
	ended     bool          // receive is over: received is final, or err is set
	verified  bool          // every byte matched the digest
	done      bool
	err       error
	file      *os.File // read handle on the temp (then final) file
	refs      int
	waiters   int          // clients that joined rather than started the fill
	readers   []*readerPos // clients reading it now
}

// readerPos is where one client reading a fill has got to.
type readerPos struct{ at atomic.Int64 }

// chunk is a piece of the window: bytes [off, off+len(buf)) of the blob,
// filled up to received. Readers hold a reference while they write from
// it, so it is recycled only after the last of them is done.
type chunk struct {
	off    int64
	buf    []byte
	pooled *[]byte // buf's buffer from chunkPool, returned there
	shared bool    // took a place in the proxy's budget
	refs   atomic.Int32
}

// chunkPool's buffers are aligned for direct I/O.
var chunkPool = sync.Pool{New: func() any { b := storage.AlignedBuf(chunkSize); return &b }}

func (c *chunk) unref(b *chunkBudget) {
	if c.refs.Add(-1) != 0 {
		return
	}
	if c.shared {
		b.put()
	}
	if c.pooled != nil {
		chunkPool.Put(c.pooled)
	}
}

// chunkBudget is how many chunks past their first the fills of one proxy
// may hold at once.
type chunkBudget struct{ used atomic.Int32 }

func (b *chunkBudget) take() bool {
	if b.used.Add(1) > sharedChunks {
		b.used.Add(-1)
		return false
	}
	return true
}

func (b *chunkBudget) put() { b.used.Add(-1) }

func newFill(d oci.Digest, repo string, b *chunkBudget) *fill {
	return &fill{digest: d, repo: repo, budget: b, ready: make(chan struct{}), size: -1, changed: make(chan struct{}), refs: 1}
}

// broadcast wakes everyone waiting on a change; f.mu must be held.
func (f *fill) broadcast() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fill) receivedBytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received
}

// receive moves body into the window until EOF, an error, or the fill
// failing elsewhere (the file write).
func (f *fill) receive(ctx context.Context, body io.Reader) error {
	for {
		if at := f.receivedBytes(); f.size >= 0 && at >= f.size {
			return expectEOF(body, f.size)
		}
		c, err := f.room(ctx)
		if err != nil {
			return err
		}
		at := f.receivedBytes() - c.off
		n, rerr := body.Read(c.buf[at:])
		if n > 0 {
			f.mu.Lock()
			f.received += int64(n)
			f.broadcast()
			f.mu.Unlock()
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// expectEOF reads the end of a body that sent all size bytes it announced.
func expectEOF(body io.Reader, size int64) error {
	var one [1]byte
	n, err := io.ReadFull(body, one[:])
	switch {
	case n > 0:
		return oci.Errorf(oci.CodeSizeInvalid, "the upstream sent more than the %d bytes it announced", size)
	case errors.Is(err, io.EOF):
		return nil
	}
	return err
}

// room returns the chunk the next bytes go into: the newest one while it
// has space, else a new one. A fill may always have one chunk; more come
// from the proxy's shared budget, up to windowChunks (laggardChunks while
// a client still reads the oldest chunk). When the window can
// grow no more, its oldest chunk goes once it is on disk and hashed
// (readers still on it finish from their own reference, later ones read
// the file), waiting for the file write and the hash if need be.
func (f *fill) room(ctx context.Context) (*chunk, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if f.err != nil {
			return nil, f.err // the file write failed
		}
		n := len(f.window)
		if n > 0 {
			if last := f.window[n-1]; f.received < last.off+int64(len(last.buf)) {
				return last, nil
			}
		}
		if n == 0 {
			return f.newChunk(false), nil
		}
		if (n < windowChunks || n < laggardChunks && f.laggard()) && f.budget.take() {
			return f.newChunk(true), nil
		}
		if old := f.window[0]; old.off+int64(len(old.buf)) <= min(f.persisted, f.hashed) {
			f.window = f.window[1:]
			old.unref(f.budget)
			continue
		}
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			f.mu.Lock()
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
}

// laggard reports whether a client is still reading the window's oldest
// chunk; f.mu must be held, and the window not empty.
func (f *fill) laggard() bool {
	old := f.window[0]
	for _, r := range f.readers {
		if at := r.at.Load(); at >= old.off && at < old.off+int64(len(old.buf)) {
			return true
		}
	}
	return false
}

// newChunk appends a chunk starting at received; shared says it holds a
// place in the budget. A chunk never reaches past a known size, so a small
// blob costs only its own size in memory. f.mu must be held.
func (f *fill) newChunk(shared bool) *chunk {
	c := &chunk{off: f.received, shared: shared}
	if n := f.size - f.received; f.size >= 0 && n < chunkSize {
		c.buf = make([]byte, n)
	} else {
		c.pooled = chunkPool.Get().(*[]byte)
		c.buf = *c.pooled
	}
	c.refs.Store(1) // the window's
	f.window = append(f.window, c)
	return c
}

// endReceive marks the end of the upstream stream; err != nil fails the
// fill at once, so the file write, the hash and readers stop.
func (f *fill) endReceive(err error) {
	f.mu.Lock()
	f.ended = true
	if err != nil && f.err == nil {
		f.err = err
	}
	f.broadcast()
	f.mu.Unlock()
}

// failed reports whether the fill has failed: it will not serve anyone.
func (f *fill) failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err != nil
}

// fail fails the fill (unless it failed already), stopping every loop.
func (f *fill) fail(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.broadcast()
	f.mu.Unlock()
}

// persist writes the window to the temp file as bytes arrive, until the
// stream ended and every byte is written. Each write but the last is a
// multiple of block bytes, so a direct-I/O file takes it as it is.
func (f *fill) persist(ctx context.Context, w io.Writer, block int) error {
	return f.follow(ctx, w, &f.persisted, block)
}

// hash feeds the window to the blob's hash as bytes arrive, from memory,
// beside the file write.
func (f *fill) hash(ctx context.Context, h io.Writer) error {
	return f.follow(ctx, h, &f.hashed, 1)
}

// follow writes the window to w as bytes arrive, in batches, advancing *at
// (a position guarded by f.mu) until the stream ended and w has every
// byte. The window keeps each chunk until every follower is past it.
func (f *fill) follow(ctx context.Context, w io.Writer, at *int64, block int) error {
	for {
		f.mu.Lock()
		for f.received-*at < persistBatch && !f.chunkFull(*at) && !f.ended && f.err == nil && !f.done {
			ch := f.changed
			f.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			f.mu.Lock()
		}
		if f.err != nil || f.done || (f.ended && *at == f.received) {
			// A failing loop reports its own error; a finished fill has
			// dropped its window, so nothing is left to follow.
			f.mu.Unlock()
			return nil
		}
		c := f.chunkAt(*at)
		seg := c.buf[*at-c.off : min(f.received-c.off, int64(len(c.buf)))]
		if last := f.ended && *at+int64(len(seg)) == f.received; !last && len(seg) > block {
			seg = seg[:len(seg)/block*block]
		}
		f.mu.Unlock()
		n, err := w.Write(seg)
		f.mu.Lock()
		*at += int64(n)
		if err != nil && f.err == nil {
			f.err = err
		}
		f.broadcast()
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// chunkFull reports whether the chunk holding byte pos has all its bytes;
// f.mu must be held.
func (f *fill) chunkFull(pos int64) bool {
	c := f.chunkAt(pos)
	return c != nil && f.received >= c.off+int64(len(c.buf))
}

// chunkAt is the window's chunk holding byte pos, nil when pos is before
// the window (then it is on disk) or not received yet; f.mu must be held.
func (f *fill) chunkAt(pos int64) *chunk {
	if pos >= f.received {
		return nil
	}
	for i := len(f.window) - 1; i >= 0; i-- {
		if c := f.window[i]; pos >= c.off {
			return c
		}
	}
	return nil
}

// verify releases the held-back bytes: the content matched its digest.
func (f *fill) verify() {
	f.mu.Lock()
	f.verified = true
	f.broadcast()
	f.mu.Unlock()
}

// finish ends the fill: err == nil means the blob was verified and
// committed. A commit that fails after verification leaves verified set:
// readers still got correct bytes; only the cache copy is lost. The window
// goes: readers still behind it read the file.
func (f *fill) finish(err error) {
	f.mu.Lock()
	f.done, f.ended = true, true
	if f.err == nil {
		f.err = err
	}
	if err == nil {
		f.verified = true
	}
	for _, c := range f.window {
		c.unref(f.budget)
	}
	f.window = nil
	f.broadcast()
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

// StreamTo writes bytes [start, end] of a downloading blob (end < 0: to
// the end). An error after the first byte means the client must be cut off.
func (b *Blob) StreamTo(ctx context.Context, w io.Writer, start, end int64) (int64, error) {
	return b.fill.copyTo(ctx, w, start, end, nil)
}

// copyTo streams bytes [start, end] (end < 0: to the end) to w as they
// arrive: from the window while they are in it, else from the file. The
// last byte of the requested span is held back until the whole blob is
// verified, so a corrupt or truncated upstream stream never reaches a
// client as a complete body: the caller aborts the connection on the
// returned error instead. buf (allocated when nil) carries file reads
// when w cannot take the file itself.
func (f *fill) copyTo(ctx context.Context, w io.Writer, start, end int64, buf []byte) (int64, error) {
	pos := start
	var sent int64
	me := &readerPos{}
	me.at.Store(pos)
	f.mu.Lock()
	f.readers = append(f.readers, me)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.readers = slices.DeleteFunc(f.readers, func(r *readerPos) bool { return r == me })
		f.mu.Unlock()
	}()
	wrote := func(k int64) { // k more bytes went to the client
		pos += k
		sent += k
		me.at.Store(pos)
	}
	// A writer that can take a file (an HTTP/1.1 response: sendfile) gets
	// a handle of its own for the bytes behind the window, with its own
	// offset, so the kernel copies and readers do not share a position.
	// A file written with O_DIRECT is read that way too: its bytes are not
	// in the page cache, and faulting them in costs more than the copy.
	_, sendfile := w.(io.ReaderFrom)
	var own, direct *os.File
	noDirect := false // the filesystem refused a direct read handle
	defer func() {
		if own != nil {
			own.Close()
		}
		if direct != nil {
			direct.Close()
		}
	}()
	for {
		f.mu.Lock()
		received, persisted, verified, ended, ferr, ch, file := f.received, f.persisted, f.verified, f.ended, f.err, f.changed, f.file
		readDirect := f.direct
		size := f.size

		target := int64(-1) // one past the last byte wanted, when known
		switch {
		case end >= 0:
			target = end + 1
		case size >= 0:
			target = size
		case verified:
			target = received
		}
		limit := received
		if target >= 0 && limit > target {
			limit = target
		}
		if !verified && (target < 0 || limit >= target) {
			limit-- // hold back the final byte until verified
		}
		wait := false
		if pos < limit {
			if c := f.chunkAt(pos); c != nil && !worthSending(c, pos, limit, target, sent, ended) {
				wait = true // more is coming in a moment
			} else if c != nil {
				seg := c.buf[pos-c.off : min(limit-c.off, int64(len(c.buf)))]
				c.refs.Add(1)
				f.mu.Unlock()
				k, err := w.Write(seg)
				c.unref(f.budget)
				wrote(int64(k))
				if err != nil {
					return sent, err
				}
				continue
			}
		}
		f.mu.Unlock()
		if onDisk := min(limit, persisted); pos < onDisk && !wait {
			// Behind the window: on disk (the window frees only written chunks).
			if readDirect && direct == nil && !noDirect {
				if direct = storage.OpenDirect(file); direct == nil {
					noDirect = true
				} else if len(buf) < chunkSize || !storage.IsAligned(buf) {
					buf = storage.AlignedBuf(chunkSize)
				}
			}
			if direct != nil {
				span, err := storage.ReadDirect(direct, buf, pos, onDisk)
				if err != nil {
					return sent, err
				}
				k, err := w.Write(span)
				wrote(int64(k))
				if err != nil {
					return sent, err
				}
				continue
			}
			if sendfile && own == nil {
				if own, _ = reopen(file); own == nil {
					sendfile = false
				}
			}
			if own == nil && buf == nil {
				buf = make([]byte, 256<<10)
			}
			k, err := copyFile(w, own, file, pos, onDisk, buf)
			wrote(k)
			if err != nil {
				return sent, err
			}
			continue
		}
		if verified && target >= 0 && pos >= target {
			return sent, nil
		}
		if ended && ferr != nil {
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

// worthSending reports whether bytes [pos, limit) of chunk c make a write
// worth its system call: sendBatch of them, the rest of the chunk, or all
// there will be before verification. A reader that keeps up with the
// upstream would otherwise write every few KiB the socket delivers. The
// first write goes at once, whatever its size.
func worthSending(c *chunk, pos, limit, target, sent int64, ended bool) bool {
	return sent == 0 || ended || limit-pos >= sendBatch || limit >= c.off+int64(len(c.buf)) ||
		(target >= 0 && limit >= target-1)
}

// copyFile writes bytes [pos, limit) of the file to w: through own, a
// handle w can sendfile from, when there is one, else through buf.
func copyFile(w io.Writer, own, file *os.File, pos, limit int64, buf []byte) (int64, error) {
	if own != nil {
		if _, err := own.Seek(pos, io.SeekStart); err != nil {
			return 0, err
		}
		return io.Copy(w, io.LimitReader(own, limit-pos))
	}
	n := min(limit-pos, int64(len(buf)))
	m, err := file.ReadAt(buf[:n], pos)
	if m > 0 {
		k, werr := w.Write(buf[:m])
		if werr != nil {
			return int64(k), werr
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return int64(m), err
	}
	return int64(m), nil
}

// reopen opens a second handle on the file f has open. It works after the
// file was renamed or unlinked, because it goes through /proc.
func reopen(f *os.File) (*os.File, error) {
	if f == nil {
		return nil, os.ErrInvalid
	}
	return os.Open("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}
