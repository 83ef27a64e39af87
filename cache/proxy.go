// Package cache is the pull-through service: a hit is served from disk;
// a miss starts exactly one upstream fetch per digest, streamed to every
// client while it is written and verified; tags are revalidated at most
// once per TTL and served stale when the upstream fails.
package cache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// Upstream is what the cache needs of a registry client.
type Upstream interface {
	HeadManifest(ctx context.Context, repo, ref string, accept []string) (oci.Descriptor, error)
	GetManifest(ctx context.Context, repo, ref string, accept []string) ([]byte, oci.Descriptor, error)
	GetBlob(ctx context.Context, repo, digest string, offset int64) (io.ReadCloser, int64, error)
	HeadBlob(ctx context.Context, repo, digest string) (int64, error)
	Tags(ctx context.Context, repo string, n int, last string) ([]string, string, error)
}

// Store is the blob store a proxy fills: any storage.BlobStore, plus the
// filesystem's streaming writer, which a fill reads behind as it writes
// (O_DIRECT, HashAside). The writer becomes a capability of BlobStore
// with a second blob backend (issue #13).
type Store interface {
	storage.BlobStore
	NewWriter(alg string) (*storage.Writer, error)
}

var _ Store = (*storage.Store)(nil)

// Options configure a Proxy.
type Options struct {
	Name     string // the proxy's name; cached repositories live under it
	Upstream Upstream
	Store    Store
	Index    index.Index
	// TagTTL is how long a tag → digest answer is trusted before it is
	// revalidated with a HEAD upstream.
	TagTTL time.Duration
	// FillTimeout bounds one upstream blob download, whoever waits on it.
	FillTimeout time.Duration
	Logger      *slog.Logger
	Metrics     *metrics.Metrics
	Now         func() time.Time
	// Lifecycle, when set, records reads for LRU eviction and keeps blobs
	// in use from being evicted.
	Lifecycle *Lifecycle
	// Pins are the config's pin rules; matching images are never evicted.
	Pins []PinRule
	// Coordinator, when set, shares fills with the other replicas of a
	// cluster; nil for one process.
	Coordinator Coordinator
}

// Proxy caches one upstream registry.
type Proxy struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	fills  map[oci.Digest]*fill
	chunks chunkBudget // the fills' memory, shared
	// flights are the manifest and tag exchanges with the upstream under
	// way; calls the other questions (blob HEADs, tag lists).
	flights flights
	calls   calls

	// fills run on ctx, not on any request's context; Close cancels it
	// and waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	tagsMu sync.Mutex
	tags   map[string]tagPage

	bodies *bodyCache
	// tagMemo answers fresh tags without an index read.
	tagMemo *tagMemo

	// downUntil (unix ns) is set when the upstream just failed: until
	// then, cached tags are served stale at once instead of each request
	// waiting for the upstream to fail again.
	downUntil atomic.Int64
}

// outageBackoff is how long a failed upstream is not asked to revalidate
// cached tags (a 429's Retry-After extends it, up to maxOutageBackoff).
const (
	outageBackoff    = 15 * time.Second
	maxOutageBackoff = 5 * time.Minute
)

func (p *Proxy) noteOutage(err error) {
	d := outageBackoff
	var ue *upstream.Error
	if errors.As(err, &ue) && ue.RetryAfter > d {
		d = min(ue.RetryAfter, maxOutageBackoff)
	}
	p.downUntil.Store(p.o.Now().Add(d).UnixNano())
}

func (p *Proxy) upstreamDown() bool { return p.o.Now().UnixNano() < p.downUntil.Load() }

type tagPage struct {
	tags    []string
	next    string
	fetched time.Time
}

// New makes a Proxy.
func New(o Options) *Proxy {
	if o.TagTTL <= 0 {
		o.TagTTL = 5 * time.Minute
	}
	if o.FillTimeout <= 0 {
		o.FillTimeout = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Proxy{o: o, log: o.Logger.With("proxy", o.Name), fills: map[oci.Digest]*fill{}, tags: map[string]tagPage{}, ctx: ctx, cancel: cancel, bodies: newBodyCache(16 << 20), tagMemo: newTagMemo(100_000)}
}

// Name is the proxy's name.
func (p *Proxy) Name() string { return p.o.Name }

// canonical is the repository name cached content is recorded under.
func (p *Proxy) canonical(repo string) string { return p.o.Name + "/" + repo }

// Source says where served bytes came from.
type Source string

// The sources of served content, as logged and counted.
const (
	SourceHit   Source = "hit"
	SourceMiss  Source = "miss"
	SourceStale Source = "stale"
)

// --- blobs ---

// Blob is a blob ready to be written to a client: either a file on disk
// (a hit) or a running fill that streams as it downloads.
type Blob struct {
	Digest oci.Digest
	Size   int64 // -1 when unknown (the upstream sent no length)
	Source Source
	File   storage.Blob // a hit: serve from here (caller closes via Close)
	fill   *fill
	proxy  *Proxy
}

// Close releases the blob.
func (b *Blob) Close() error {
	if b.File != nil {
		b.proxy.o.Lifecycle.release(b.Digest)
		return b.File.Close()
	}
	if b.fill != nil {
		b.fill.release()
	}
	return nil
}

// StatBlob answers a HEAD: from the cache, or with a HEAD upstream shared
// by every request for that blob meanwhile.
func (p *Proxy) StatBlob(ctx context.Context, repo string, d oci.Digest) (int64, Source, error) {
	canon := p.canonical(repo)
	if size, linked, err := p.cached(canon, d); err != nil {
		return 0, "", err
	} else if linked {
		return size, SourceHit, nil
	}
	v, _, err := p.share(ctx, "head\x00"+canon+"\x00"+string(d), func(ctx context.Context) (any, error) {
		return p.o.Upstream.HeadBlob(ctx, repo, string(d))
	})
	if err != nil {
		return 0, "", p.upstreamError(err, "blob", d.String())
	}
	return v.(int64), SourceMiss, nil
}

// cached reports whether d is on disk and linked to canon.
func (p *Proxy) cached(canon string, d oci.Digest) (int64, bool, error) {
	var rec index.BlobRecord
	linked := false
	err := p.o.Index.View(func(tx index.Txn) error {
		var err error
		if linked, err = tx.BlobLinked(canon, d); err != nil || !linked {
			return err
		}
		rec, err = tx.Blob(d)
		if errors.Is(err, index.ErrNotFound) {
			linked = false
			return nil
		}
		return err
	})
	return rec.Size, linked, err
}

// OpenBlob returns the blob for a GET: a hit from disk, or a shared,
// streaming fill from the upstream.
func (p *Proxy) OpenBlob(ctx context.Context, repo string, d oci.Digest) (*Blob, error) {
	canon := p.canonical(repo)
	if b, err := p.openCached(ctx, repo, canon, d); b != nil || err != nil {
		return b, err
	}
	return p.openFill(ctx, repo, canon, d)
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// openCached serves d from disk when it is there. A blob cached for
// another repository is linked here only after the upstream confirms this
// repository has it.
func (p *Proxy) openCached(ctx context.Context, repo, canon string, d oci.Digest) (*Blob, error) {
	_, linked, err := p.cached(canon, d)
	if err != nil {
		return nil, err
	}
	if !linked {
		var known bool
		err := p.o.Index.View(func(tx index.Txn) error {
			_, err := tx.Blob(d)
			if errors.Is(err, index.ErrNotFound) {
				return nil
			}
			known = err == nil
			return err
		})
		if err != nil || !known {
			return nil, err
		}
		if _, err := p.o.Upstream.HeadBlob(ctx, repo, string(d)); err != nil {
			return nil, p.upstreamError(err, "blob", d.String())
		}
		if err := p.o.Index.Update(ctx, func(tx index.Txn) error { return tx.LinkBlob(canon, d) }); err != nil {
			return nil, err
		}
	}
	p.o.Lifecycle.acquire(d)
	f, size, err := p.o.Store.Open(d)
	if errors.Is(err, oci.ErrBlobUnknown) {
		// Indexed but gone from disk (evicted or lost): fetch it again.
		p.o.Lifecycle.release(d)
		return nil, nil
	}
	if err != nil {
		p.o.Lifecycle.release(d)
		return nil, err
	}
	p.o.Lifecycle.touched(d)
	return &Blob{Digest: d, Size: size, Source: SourceHit, File: f, proxy: p}, nil
}

// --- errors ---

// upstreamError maps an upstream failure to the OCI error a client gets.
func (p *Proxy) upstreamError(err error, what, ref string) error {
	if isCtxErr(err) && !upstream.IsTimeout(err) {
		return err
	}
	var ue *upstream.Error
	if !errors.As(err, &ue) {
		if e, ok := oci.AsError(err); ok {
			return e
		}
		return oci.Errorf(oci.CodeUpstreamFailed, "upstream %s: %v", p.o.Name, err)
	}
	switch ue.Kind {
	case upstream.NotFound:
		switch what {
		case "blob":
			return oci.Errorf(oci.CodeBlobUnknown, "blob %s is not in the upstream registry (%s)", ref, p.o.Name)
		case "tags":
			return oci.Errorf(oci.CodeNameUnknown, "repository %s is not in the upstream registry (%s)", ref, p.o.Name)
		}
		return oci.Errorf(oci.CodeManifestUnknown, "%s is not in the upstream registry (%s)", ref, p.o.Name)
	case upstream.Denied:
		return oci.Errorf(oci.CodeDenied, "the upstream registry (%s) denied access to %s: it does not exist there or needs credentials", p.o.Name, ref)
	case upstream.Unauthorized:
		return oci.Errorf(oci.CodeUpstreamFailed, "the upstream registry (%s) refused wharf's credentials; check proxies[].username and password", p.o.Name)
	case upstream.TooManyRequests:
		e := oci.Errorf(oci.CodeTooManyRequests, "the upstream registry (%s) is rate-limiting wharf; retry later", p.o.Name)
		if ue.RetryAfter > 0 {
			e = e.WithDetail(map[string]any{"retryAfterSeconds": int(ue.RetryAfter.Seconds())})
		}
		return e
	case upstream.Timeout:
		return oci.Errorf(oci.CodeUpstreamTimeout, "the upstream registry (%s) did not answer in time", p.o.Name)
	case upstream.Unavailable:
		return oci.Errorf(oci.CodeUnavailable, "the upstream registry (%s) is unreachable (%v)", p.o.Name, ue)
	case upstream.Invalid:
		if e, ok := oci.AsError(ue.Err); ok {
			return e
		}
		return oci.Errorf(oci.CodeNameInvalid, "%s", ue.Message)
	}
	return oci.Errorf(oci.CodeUpstreamFailed, "the upstream registry (%s) answered badly (%v)", p.o.Name, ue)
}

// staleable reports whether a cached answer should be served instead of err.
func staleable(err error) bool {
	switch upstream.KindOf(err) {
	case upstream.Unavailable, upstream.Timeout, upstream.TooManyRequests, upstream.BadResponse, upstream.Unauthorized:
		return true
	}
	return false
}

// lower-case media types without parameters, for Accept matching
func mediaTypeOnly(s string) string {
	s, _, _ = strings.Cut(s, ";")
	return strings.ToLower(strings.TrimSpace(s))
}

// RateLimit is the upstream's last reported pull limit (Docker Hub's
// ratelimit-limit / ratelimit-remaining headers), when it sends one.
func (p *Proxy) RateLimit() (upstream.RateLimit, bool) {
	if rl, ok := p.o.Upstream.(interface {
		RateLimit() (upstream.RateLimit, bool)
	}); ok {
		return rl.RateLimit()
	}
	return upstream.RateLimit{}, false
}

// Close stops fills that no client waits for any more (their partial
// files are discarded), waits for them, and releases the upstream
// client's connections. Call it after the HTTP server has drained.
func (p *Proxy) Close() {
	p.cancel()
	p.wg.Wait()
	if c, ok := p.o.Upstream.(interface{ Close() }); ok {
		c.Close()
	}
}
