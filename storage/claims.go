package storage

import (
	"sync"

	"github.com/wharf-registry/wharf/oci"
)

// HoldBlob marks d as being written (an upload, a manifest, a proxy fill)
// until release is called, waiting while a collection (GC or eviction)
// is deleting it. Writers and collectors of the same digest thus never
// interleave "file is there, keep it" with "delete the file".
func (s *Store) HoldBlob(d oci.Digest) (release func()) { return s.claims.Hold(d) }

// TryCollectBlob claims d for deletion unless it is being written.
func (s *Store) TryCollectBlob(d oci.Digest) (release func(), ok bool) { return s.claims.TryCollect(d) }

// Claims keeps GC's delete of a blob apart from writes of the same blob.
// The zero value is ready to use. Every BlobStore embeds one, so the
// exclusion is the same whatever holds the bytes; it is in-process only:
// replicas sharing one S3 bucket add SharedClaims (from PostgreSQL), with
// these claims still ordering one replica's goroutines.
type Claims struct {
	mu         sync.Mutex
	writing    map[oci.Digest]int
	collecting map[oci.Digest]chan struct{}
}

// Hold marks d as being written until release is called, waiting while a
// collection deletes it.
func (c *Claims) Hold(d oci.Digest) (release func()) {
	for {
		c.mu.Lock()
		if ch, ok := c.collecting[d]; ok {
			c.mu.Unlock()
			<-ch
			continue
		}
		if c.writing == nil {
			c.writing = map[oci.Digest]int{}
		}
		c.writing[d]++
		c.mu.Unlock()
		return func() {
			c.mu.Lock()
			if c.writing[d]--; c.writing[d] <= 0 {
				delete(c.writing, d)
			}
			c.mu.Unlock()
		}
	}
}

// TryCollect claims d for deletion unless it is being written.
func (c *Claims) TryCollect(d oci.Digest) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing[d] > 0 {
		return nil, false
	}
	if c.collecting == nil {
		c.collecting = map[oci.Digest]chan struct{}{}
	}
	ch := make(chan struct{})
	c.collecting[d] = ch
	return func() {
		c.mu.Lock()
		delete(c.collecting, d)
		c.mu.Unlock()
		close(ch)
	}, true
}

// SharedClaims extend Claims to every process sharing one store: the
// replicas of a cluster on one bucket. A store takes its own Claims
// first, then these.
type SharedClaims interface {
	// HoldWrite claims d for a write until release is called, waiting
	// while another process deletes d.
	HoldWrite(d oci.Digest) (release func())
	// TryCollect claims d for deletion unless another process writes or
	// deletes it; when the claim cannot be checked, ok is false.
	TryCollect(d oci.Digest) (release func(), ok bool)
}
