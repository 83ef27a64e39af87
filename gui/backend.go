package gui

import (
	"context"
	"fmt"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/internal/adminclient"
	"github.com/wharf-registry/wharf/server"
)

// cacheBackend is what the Cache tab asks of a wharf: the server running
// in this process, or one elsewhere through its admin API.
type cacheBackend interface {
	CacheList(ctx context.Context, sortBy, proxy string, limit int) ([]server.CacheEntry, error)
	CacheStats(ctx context.Context) (server.CacheStats, error)
	EvictImage(ctx context.Context, image string) (cache.EvictReport, error)
	PinImage(ctx context.Context, image string, pin bool) (server.PinResult, error)
	GC(ctx context.Context, req server.GCRequest) (server.GCReport, error)
	// Prewarm caches an image; p counts its bytes where the backend can.
	Prewarm(ctx context.Context, image string, p *server.PrewarmProgress) (server.PrewarmResult, error)
}

// local is the embedded server as a cacheBackend.
type local struct{ *server.Server }

func (l local) CacheList(_ context.Context, sortBy, proxy string, limit int) ([]server.CacheEntry, error) {
	return l.Server.CacheList(sortBy, proxy, limit)
}

func (l local) CacheStats(context.Context) (server.CacheStats, error) { return l.Server.CacheStats() }

func (l local) EvictImage(ctx context.Context, image string) (cache.EvictReport, error) {
	rep, err := l.Server.EvictImage(ctx, image)
	if err != nil {
		return cache.EvictReport{}, err
	}
	r, ok := rep.(cache.EvictReport)
	if !ok {
		return cache.EvictReport{}, fmt.Errorf("eviction answered %T", rep)
	}
	return r, nil
}

// remoteWharf is a wharf elsewhere as a cacheBackend.
type remoteWharf struct{ *adminclient.Client }

// Prewarm asks the remote wharf to cache the image; its bytes show as
// transfers on the dashboard, not on p.
func (r remoteWharf) Prewarm(ctx context.Context, image string, _ *server.PrewarmProgress) (server.PrewarmResult, error) {
	return r.Client.Prewarm(ctx, image)
}

// backend is the wharf the Cache tab works on now: the remote one, or
// the embedded server while it runs (nil otherwise), and the server's
// generation (a new one when it restarted).
func (a *App) backend() (cacheBackend, int) {
	if a.opts.Remote != nil {
		return remoteWharf{a.opts.Remote}, a.lastGen
	}
	srv, gen, life, _ := a.c.server()
	if srv == nil || life.Phase != model.Running {
		return nil, gen
	}
	return local{srv}, gen
}
