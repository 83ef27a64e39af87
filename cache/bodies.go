package cache

import (
	"sync"

	"github.com/wharf-registry/wharf/oci"
)

// bodyCache keeps recently served manifests in memory. Manifests are
// content-addressed, so a cached body can never be stale; the budget
// bounds memory, and any entry may go when it is exceeded.
type bodyCache struct {
	mu     sync.Mutex
	budget int
	used   int
	m      map[oci.Digest][]byte
}

func newBodyCache(budget int) *bodyCache {
	return &bodyCache{budget: budget, m: map[oci.Digest][]byte{}}
}

func (c *bodyCache) get(d oci.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[d]
	return b, ok
}

func (c *bodyCache) put(d oci.Digest, b []byte) {
	if len(b) > c.budget/8 {
		return // a huge manifest would push out many small, hot ones
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[d]; ok {
		return
	}
	for k, v := range c.m {
		if c.used+len(b) <= c.budget {
			break
		}
		delete(c.m, k)
		c.used -= len(v)
	}
	c.m[d] = b
	c.used += len(b)
}
