package cache

import (
	"sync"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// tagMemo keeps the answer of cachedTag in memory, so a fresh tag (the
// hot path of every `docker pull` of a cached image) costs no index read.
// Writes of a tag invalidate its entry; a read that raced a write is not
// kept (the generation check), so the memo never answers older than the
// index does.
type tagMemo struct {
	mu  sync.Mutex
	gen uint64
	max int
	m   map[string]tagMemoEntry
}

type tagMemoEntry struct {
	d       oci.Digest
	checked time.Time
	rec     *index.ManifestRecord
}

func newTagMemo(max int) *tagMemo { return &tagMemo{max: max, m: map[string]tagMemoEntry{}} }

func memoKey(canon, tag string) string { return canon + "\x00" + tag }

// get returns the entry and the generation to pass to put.
func (t *tagMemo) get(canon, tag string) (tagMemoEntry, bool, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[memoKey(canon, tag)]
	return e, ok, t.gen
}

// put stores an entry read at generation gen, unless a write came since.
func (t *tagMemo) put(gen uint64, canon, tag string, e tagMemoEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if gen != t.gen {
		return
	}
	if len(t.m) >= t.max {
		clear(t.m) // rare: more hot tags than max; refill from the index
	}
	t.m[memoKey(canon, tag)] = e
}

// invalidate forgets canon:tag; call it after the index write commits.
func (t *tagMemo) invalidate(canon, tag string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	delete(t.m, memoKey(canon, tag))
}
