package index_test

import (
	"context"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/storage"
)

// The index benchmarks measure eviction as the server runs it.
func init() {
	index.EvictAsServer = func(ctx context.Context, x index.Index, storeDir string, before time.Time) (int, error) {
		st, err := storage.Open(storeDir)
		if err != nil {
			return 0, err
		}
		l := cache.NewLifecycle(cache.LifecycleOptions{Index: x, Store: st, Now: func() time.Time { return before }})
		rep, err := l.EvictUnusedFor(ctx, 0)
		return rep.Blobs, err
	}
}
