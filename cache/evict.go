package cache

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// Budget bounds what proxies may keep on disk.
type Budget struct {
	// MaxSize is the most proxied content may take, in bytes (0: no limit).
	MaxSize int64
	// High and Low are watermarks as fractions of MaxSize: eviction starts
	// above High and stops below Low, so it runs in batches rather than
	// one blob per fill.
	High, Low float64
	// MaxUnused evicts content not read for this long (0: never).
	MaxUnused time.Duration
	// Proxies are budgets of single proxies (by name) within the global
	// one; the watermarks apply to them too.
	Proxies map[string]ProxyBudget
}

// ProxyBudget bounds one proxy's content.
type ProxyBudget struct {
	MaxSize   int64
	MaxUnused time.Duration
}

// Lifecycle tracks reads of cached blobs (batched), keeps blobs in use
// from eviction, and evicts least-recently-used proxied content to stay
// within the budget. One Lifecycle serves every proxy of a server.
type Lifecycle struct {
	idx     index.Index
	store   storage.BlobStore
	budget  Budget
	log     *slog.Logger
	m       *metrics.Metrics
	now     func() time.Time
	onEvict func(EvictReport)

	// evictMu runs one eviction pass at a time: two passes computing
	// what to free from the same usage figure would free it twice.
	evictMu   sync.Mutex
	relieving atomic.Bool
	reliefWG  sync.WaitGroup

	mu      sync.Mutex
	active  map[oci.Digest]int
	idle    chan struct{} // closed while active is empty
	touches map[oci.Digest]touch
	kick    chan struct{}
	leading func() bool
}

type touch struct {
	last time.Time
	hits int64
}

// LifecycleOptions configure NewLifecycle.
type LifecycleOptions struct {
	Index   index.Index
	Store   storage.BlobStore
	Budget  Budget
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
	// OnEvict is told after every eviction pass that removed something.
	OnEvict func(EvictReport)
	// Leading, when set, says whether Run may enforce the budget now: in
	// cluster mode one replica at a time does, for the whole cluster, while
	// every replica saves its own access times. Nil: always.
	Leading func() bool
}

// NewLifecycle makes a Lifecycle; call Run to start its loop.
func NewLifecycle(o LifecycleOptions) *Lifecycle {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := o.Budget
	if b.High <= 0 || b.High > 1 {
		b.High = 0.95
	}
	if b.Low <= 0 || b.Low >= b.High {
		b.Low = b.High - 0.10
	}
	idle := make(chan struct{})
	close(idle)
	return &Lifecycle{idx: o.Index, store: o.Store, budget: b, log: o.Logger, m: o.Metrics, now: o.Now, onEvict: o.OnEvict,
		leading: o.Leading, active: map[oci.Digest]int{}, idle: idle, touches: map[oci.Digest]touch{}, kick: make(chan struct{}, 1)}
}

// Budget is the budget in force.
func (l *Lifecycle) Budget() Budget { return l.budget }

// acquire marks d as being read or written; release undoes it.
func (l *Lifecycle) acquire(d oci.Digest) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if len(l.active) == 0 {
		l.idle = make(chan struct{})
	}
	l.active[d]++
	l.mu.Unlock()
}

func (l *Lifecycle) release(d oci.Digest) {
	if l == nil {
		return
	}
	l.mu.Lock()
	if n, ok := l.active[d]; ok && n > 1 {
		l.active[d] = n - 1
	} else if ok {
		delete(l.active, d)
		if len(l.active) == 0 {
			close(l.idle)
		}
	}
	l.mu.Unlock()
}

// InFlight is how many blobs are being read or filled right now. A fill
// counts until its blob is committed and indexed, a moment after its
// last byte reached the clients.
func (l *Lifecycle) InFlight() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.active)
}

// Idle returns a channel that is closed once no blob is being read or
// filled: at once when none is, else when the last one in flight is
// released (a fill, after its blob is committed and indexed). Tests and
// tools that must see what a pull left behind wait on it instead of
// sleeping or polling.
func (l *Lifecycle) Idle() <-chan struct{} {
	if l == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle
}

func (l *Lifecycle) inUse(d oci.Digest) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active[d] > 0
}

// touched records a read of d; it reaches the index with the next flush,
// so the hot path costs a map update, not a database write.
func (l *Lifecycle) touched(d oci.Digest) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	t := l.touches[d]
	t.last = now
	t.hits++
	l.touches[d] = t
	n := len(l.touches)
	l.mu.Unlock()
	if n >= 10000 {
		l.Kick()
	}
}

// Kick asks the loop to flush and check the budget soon.
func (l *Lifecycle) Kick() {
	if l == nil {
		return
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Flush writes batched access times to the index.
func (l *Lifecycle) Flush(ctx context.Context) error {
	l.mu.Lock()
	batch := l.touches
	l.touches = map[oci.Digest]touch{}
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	type item struct {
		d oci.Digest
		t touch
	}
	items := make([]item, 0, len(batch))
	for d, t := range batch {
		items = append(items, item{d, t})
	}
	for len(items) > 0 {
		n := min(len(items), 500)
		chunk := items[:n]
		items = items[n:]
		err := l.idx.Update(ctx, func(tx index.Txn) error {
			for _, it := range chunk {
				if err := tx.Touch(it.d, it.t.last, it.t.hits); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Run flushes access times and enforces the budget every interval (and
// when kicked) until ctx ends, flushing once more on the way out.
func (l *Lifecycle) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.reliefWG.Wait()
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := l.Flush(fctx); err != nil {
				l.log.Warn("saving access times failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
		case <-l.kick:
		}
		if err := l.Flush(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("saving access times failed", "err", err)
		}
		if l.leading != nil && !l.leading() {
			continue
		}
		if _, err := l.Enforce(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("eviction failed", "err", err)
		}
	}
}

// EvictReport says what an eviction pass removed.
type EvictReport struct {
	Blobs      int
	Bytes      int64
	UsedBefore int64
	UsedAfter  int64
	Budget     int64
	Reason     string // "size" or "unused"
	// Proxy is the proxy whose own budget this pass kept; "" for the
	// global budget (any proxy's content).
	Proxy string
}

// ProxiedUsage is the bytes and count of all proxied content.
func (l *Lifecycle) ProxiedUsage() (index.Usage, error) {
	var total index.Usage
	err := l.idx.View(func(tx index.Txn) error {
		all, err := tx.Usages()
		for origin, u := range all {
			if (index.BlobRecord{Origin: origin}).Evictable() {
				total.Bytes += u.Bytes
				total.Count += u.Count
			}
		}
		return err
	})
	return total, err
}

// Enforce evicts content unused for longer than MaxUnused, then least
// recently used content while usage is above the high watermark, down to
// the low one.
func (l *Lifecycle) Enforce(ctx context.Context) ([]EvictReport, error) {
	var reps []EvictReport
	if l.budget.MaxUnused > 0 {
		rep, err := l.evict(ctx, "unused", l.now().Add(-l.budget.MaxUnused), -1)
		if err != nil {
			return reps, err
		}
		if rep.Blobs > 0 {
			reps = append(reps, rep)
		}
	}
	for _, name := range sortedKeys(l.budget.Proxies) {
		pb := l.budget.Proxies[name]
		if pb.MaxUnused > 0 {
			rep, err := l.evictProxy(ctx, name, "unused", l.now().Add(-pb.MaxUnused), -1)
			if err != nil {
				return reps, err
			}
			if rep.Blobs > 0 {
				reps = append(reps, rep)
			}
		}
		if pb.MaxSize > 0 {
			u, err := l.originUsage(name)
			if err != nil {
				return reps, err
			}
			if float64(u.Bytes) > l.budget.High*float64(pb.MaxSize) {
				rep, err := l.evictProxy(ctx, name, "size", time.Time{}, toLowWatermark)
				if err != nil {
					return reps, err
				}
				if rep.Blobs > 0 {
					reps = append(reps, rep)
				}
			}
		}
	}
	if l.budget.MaxSize > 0 {
		u, err := l.ProxiedUsage()
		if err != nil {
			return reps, err
		}
		if float64(u.Bytes) > l.budget.High*float64(l.budget.MaxSize) {
			rep, err := l.evictToLow(ctx)
			if err != nil {
				return reps, err
			}
			if rep.Blobs > 0 {
				reps = append(reps, rep)
			}
		}
	}
	return reps, nil
}

// evictToLow frees down to the low watermark, measuring usage under the
// eviction lock so a concurrent pass cannot make it free too much.
func (l *Lifecycle) evictToLow(ctx context.Context) (EvictReport, error) {
	return l.evict(ctx, "size", time.Time{}, toLowWatermark)
}

// toLowWatermark as evict's free argument: free down to the low
// watermark, measured once the pass holds the lock.
const toLowWatermark = -2

// EvictUnusedFor evicts everything not read for d (wharf cache evict --unused-for).
func (l *Lifecycle) EvictUnusedFor(ctx context.Context, d time.Duration) (EvictReport, error) {
	if err := l.Flush(ctx); err != nil {
		return EvictReport{}, err
	}
	return l.evict(ctx, "unused", l.now().Add(-d), -1)
}

// evictWindow is how many candidates an eviction pass takes from the LRU
// order at a time. The index finds the links of a whole window in one
// walk, which is cheaper per blob the larger the window; the window is
// then claimed and removed a batch (index.MaxEvictBatch) at a time.
const evictWindow = 64 << 10

// evict removes least-recently-used blobs last read before `before` (zero:
// any time) until `free` bytes are gone (negative: no byte limit).
func (l *Lifecycle) evict(ctx context.Context, reason string, before time.Time, free int64) (EvictReport, error) {
	return l.evictProxy(ctx, "", reason, before, free)
}

// originUsage is one proxy's usage.
func (l *Lifecycle) originUsage(origin string) (index.Usage, error) {
	var u index.Usage
	err := l.idx.View(func(tx index.Txn) error {
		all, err := tx.Usages()
		u = all[origin]
		return err
	})
	return u, err
}

// evictProxy is evict restricted to one proxy's content ("": all
// proxies'), measured against that proxy's budget.
func (l *Lifecycle) evictProxy(ctx context.Context, origin, reason string, before time.Time, free int64) (EvictReport, error) {
	l.evictMu.Lock()
	defer l.evictMu.Unlock()
	usage, budget := l.ProxiedUsage, l.budget.MaxSize
	if origin != "" {
		usage = func() (index.Usage, error) { return l.originUsage(origin) }
		budget = l.budget.Proxies[origin].MaxSize
	}
	before0, _ := usage()
	rep := EvictReport{Reason: reason, UsedBefore: before0.Bytes, Budget: budget, Proxy: origin}
	if free == toLowWatermark {
		free = before0.Bytes - int64(l.budget.Low*float64(budget))
		if free <= 0 {
			return rep, nil
		}
	}
	// Walk the LRU order in windows, each resuming where the last one
	// ended: a blob skipped (in use, pinned, read meanwhile) is not looked
	// at again in this pass, and the scan never walks back over what it
	// removed. A window stops once its sizes add up to what is left to
	// free, so a pass frees what the budget asks and hardly more, as it
	// did one blob at a time.
	var cursor index.LRUCursor
	var cands []index.LRUEntry
	// An LRU key written by an earlier version does not carry its size:
	// count it as an average one until the plan has read it.
	avg := int64(1)
	if before0.Count > 0 {
		avg = max(before0.Bytes/before0.Count, 1)
	}
	for free < 0 || rep.Bytes < free {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		cands = cands[:0]
		var want int64
		err := l.idx.View(func(tx index.Txn) error {
			return tx.EachLeastRecentAfter(&cursor, before, func(e index.LRUEntry) (bool, error) {
				if l.busy(e.Digest) || (origin != "" && e.Known() && e.Origin != origin) {
					return true, nil
				}
				cands = append(cands, e)
				if e.Known() {
					want += e.Size
				} else {
					want += avg
				}
				return len(cands) < evictWindow && (free < 0 || rep.Bytes+want < free), nil
			})
		})
		if err != nil {
			return rep, err
		}
		if len(cands) == 0 {
			break
		}
		plan, err := l.idx.PlanEviction(cands, before)
		if err != nil {
			return rep, err
		}
		if origin != "" {
			// Keys of an older version carry no origin: the plan read it.
			plan = slices.DeleteFunc(plan, func(p index.EvictPlan) bool { return p.Origin != origin })
		}
		if free >= 0 {
			// With every size known, take no more than is left to free;
			// the rest of the window is for the next one.
			sum := rep.Bytes
			for i, p := range plan {
				if sum += p.Size; sum >= free {
					if i+1 < len(plan) {
						plan = plan[:i+1]
						cursor.Set(p.LRUEntry)
					}
					break
				}
			}
		}
		for len(plan) > 0 {
			n := min(len(plan), index.MaxEvictBatch)
			blobs, bytes, err := l.evictPlanned(ctx, plan[:n], l.busy)
			rep.Blobs += blobs
			rep.Bytes += bytes
			if err != nil {
				return rep, err
			}
			plan = plan[n:]
		}
	}
	after, _ := usage()
	rep.UsedAfter = after.Bytes
	if rep.Blobs > 0 {
		attrs := []any{"reason", reason, "blobs", rep.Blobs, "bytes", rep.Bytes,
			"used_before", rep.UsedBefore, "used_after", rep.UsedAfter, "budget", budget}
		if origin != "" {
			attrs = append(attrs, "proxy", origin)
		}
		l.log.Info("evicted cached content", attrs...)
		if l.onEvict != nil {
			l.onEvict(rep)
		}
	}
	return rep, nil
}

// busy reports whether d is being read or written, or was read since the
// last flush of access times, which the LRU order does not show yet.
func (l *Lifecycle) busy(d oci.Digest) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, read := l.touches[d]
	return l.active[d] > 0 || read
}

// evictOne removes one blob unless it is pinned, hosted, in use, being
// written, or was read at or after before (zero: any time).
func (l *Lifecycle) evictOne(ctx context.Context, d oci.Digest, before time.Time) (int64, bool, error) {
	// The index keeps a blob whose access time moved between the plan
	// and the removal; asked for this one blob, look again (a few times:
	// a blob read without pause is in use, and kept).
	for range 3 {
		plan, err := l.idx.PlanEviction([]index.LRUEntry{{Digest: d}}, before)
		if err != nil || len(plan) == 0 {
			return 0, false, err
		}
		n, bytes, err := l.evictPlanned(ctx, plan, l.inUse)
		if err != nil || n > 0 || l.inUse(d) {
			return bytes, n > 0, err
		}
	}
	return 0, false, nil
}

// evictPlanned removes the planned blobs that may still go. The index
// keeps pinned ones and any read, re-recorded or made hosted since the
// plan; those being written, or that skip says to leave (in use, say),
// are not even tried. Each is claimed against writers of the same digest,
// who wait until its file is gone too. The records of the whole batch go
// first, in one transaction, then the files: a crash in between leaves
// files without records, which start-up reconciliation records as
// "recovered" and GC then removes; never a record whose file is gone.
func (l *Lifecycle) evictPlanned(ctx context.Context, plan []index.EvictPlan, skip func(oci.Digest) bool) (int, int64, error) {
	claimed := make([]index.EvictPlan, 0, len(plan))
	releases := make([]func(), 0, len(plan))
	defer func() {
		for _, release := range releases {
			release()
		}
	}()
	for _, p := range plan {
		if skip(p.Digest) {
			continue
		}
		release, ok := l.store.TryCollectBlob(p.Digest)
		if !ok {
			continue
		}
		releases = append(releases, release)
		claimed = append(claimed, p)
	}
	if len(claimed) == 0 {
		return 0, 0, nil
	}
	removed, err := l.idx.Evict(ctx, claimed)
	var bytes int64
	perOrigin := map[string]index.Usage{}
	for _, e := range removed {
		if err := l.store.Delete(e.Digest); err != nil {
			l.log.Warn("evicted blob's file could not be removed; start-up reconciliation will", "digest", e.Digest, "err", err)
		}
		bytes += e.Size
		u := perOrigin[e.Origin]
		u.Bytes += e.Size
		u.Count++
		perOrigin[e.Origin] = u
	}
	for origin, u := range perOrigin {
		l.m.Evicted(origin, int(u.Count), u.Bytes)
	}
	return len(removed), bytes, err
}

// RelieveDiskPressure evicts least-recently-used proxied content in the
// background after a write failed for lack of disk space, whatever the
// budget says: a quarter of what proxies hold (at least 16 MiB), so the
// next fill can succeed. Only one relief runs at a time.
func (l *Lifecycle) RelieveDiskPressure() {
	if l == nil || !l.relieving.CompareAndSwap(false, true) {
		return
	}
	l.reliefWG.Add(1)
	go func() {
		defer l.reliefWG.Done()
		defer l.relieving.Store(false)
		u, err := l.ProxiedUsage()
		if err != nil || u.Bytes == 0 {
			return
		}
		free := max(u.Bytes/4, 16<<20)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := l.evict(ctx, "disk full", time.Time{}, free); err != nil {
			l.log.Warn("evicting to relieve a full disk failed", "err", err)
		}
	}()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
