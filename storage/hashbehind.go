package storage

import (
	"fmt"
	"hash"
	"os"
	"sync"
	"sync/atomic"
)

// hashBehindAfter is how many bytes a Writer hashes inline before it hands
// the hash to a goroutine of its own: small blobs (manifests, configs,
// most layers of a base image) are cheaper to hash on the spot.
const hashBehindAfter = 4 << 20

// hashBehind hashes a Writer's temp file on a goroutine of its own,
// following the writes through the page cache.
//
// SHA-256 without SHA-NI runs at a few hundred MB/s, about the speed of a
// network stream. Hashed inline, a cache fill's writes wait for the hash,
// so the bytes reach the waiting clients at the hash's pace, and the
// clients' own checks then run after it instead of beside it. Hashed
// behind, the writes (and the clients following them) go at the network's
// pace, on one core, while the hash runs on another; only the verdict on
// the last byte waits for it. Memory stays one buffer: the bytes are read
// back from the file, which also means the digest covers what is on disk.
//
// The writer side (advance, finish, abandon) is not safe for concurrent
// use; finish or abandon must end every hashBehind that was started.
type hashBehind struct {
	h      hash.Hash
	r      *os.File // a read handle of the hasher's own
	hashed int64    // hasher goroutine only

	mu      sync.Mutex
	cond    sync.Cond
	written int64 // bytes in the file, as the writer announced them
	closed  bool  // no more writes will come
	quit    atomic.Bool
	err     error // read-back failure; valid once done is closed
	done    chan struct{}
}

// startHashBehind continues h, which has hashed the file's first hashed
// bytes, on a goroutine reading the file at name.
func startHashBehind(h hash.Hash, name string, hashed, written int64) (*hashBehind, error) {
	r, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	b := &hashBehind{h: h, r: r, hashed: hashed, written: written, done: make(chan struct{})}
	b.cond.L = &b.mu
	go b.run()
	return b, nil
}

// advance announces that the file now holds n bytes.
func (b *hashBehind) advance(n int64) {
	b.mu.Lock()
	b.written = n
	b.mu.Unlock()
	b.cond.Signal()
}

// finish waits until every announced byte is in h.
func (b *hashBehind) finish() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cond.Signal()
	<-b.done
	return b.err
}

// abandon stops the hasher as soon as it is between two reads.
func (b *hashBehind) abandon() {
	b.quit.Store(true)
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cond.Signal()
	<-b.done
}

func (b *hashBehind) run() {
	defer close(b.done)
	defer b.r.Close()
	buf := getBuf()
	defer putBuf(buf)
	for {
		b.mu.Lock()
		for b.hashed == b.written && !b.closed {
			b.cond.Wait()
		}
		target, closed := b.written, b.closed
		b.mu.Unlock()
		if b.hashed == target && closed {
			return
		}
		for b.hashed < target {
			if b.quit.Load() {
				return
			}
			want := min(target-b.hashed, int64(len(*buf)))
			n, err := b.r.ReadAt((*buf)[:want], b.hashed)
			b.h.Write((*buf)[:n])
			b.hashed += int64(n)
			if int64(n) < want {
				if err == nil {
					err = fmt.Errorf("short read at %d", b.hashed)
				}
				b.err = fmt.Errorf("storage: reading back the blob to hash it: %w", err)
				return
			}
		}
	}
}
