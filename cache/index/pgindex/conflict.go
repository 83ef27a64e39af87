package pgindex

import "github.com/wharf-registry/wharf/cache/index"

// errConflict is what an Update that gave up on conflicts wraps, so that
// index.IsConflict recognises it.
var errConflict = index.ErrConflict

var (
	_ index.Index = (*Index)(nil)
	_ index.Txn   = (*Txn)(nil)
)
