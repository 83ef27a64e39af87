package cache

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// A flight is one upstream exchange about a manifest, shared by every
// request that asks the same question (same repository, reference and
// accepted media types) while it is under way. Docker Hub counts manifest
// GETs against the pull limit, so a CI fleet pulling one tag at once must
// cost the upstream what one client costs.
//
// A flight about a tag has two phases. The first resolves the tag with a
// HEAD (or finds it freshly confirmed by a flight that just ended); it
// ends by closing resolved. The second, a GET, runs only when a waiter
// needs bytes that are not cached. Waiters that needed the HEAD alone
// leave after the first phase, and waiters that need bytes join during
// either phase, so any mix of HEADs and GETs costs at most one upstream
// HEAD and one GET. A flight about a digest has only the GET.
//
// The exchange runs on its own goroutine and context, so the request that
// started it can hang up without failing the others, and every waiter can
// leave when its own context ends.
type flight struct {
	// Under flights.mu.
	joined   int  // requests that waited on it, the starter included
	wantBody bool // some waiter needs the manifest's bytes

	resolved chan struct{} // closed once check and checkErr are set
	check    tagCheck
	checkErr error // the upstream's error, unmapped, so waiters can serve stale

	done chan struct{} // closed once m and err are set
	m    Manifest      // with Body; shared by every waiter, never modified
	err  error         // already an OCI error
}

// tagCheck is the first phase's answer about a tag.
type tagCheck struct {
	// digest is what the tag points at: confirmed by the HEAD, or by a
	// flight that ended just before this one. "" when the upstream's
	// answer named no usable digest: then the GET phase resolves it.
	digest oci.Digest
	desc   oci.Descriptor // the HEAD's answer (zero when none was needed)
	// cached means digest's manifest is in the cache, acceptable to the
	// flight's media types, and the tag now points at it: every waiter
	// is answered from the cache.
	cached bool
}

// flights are the manifest flights of one proxy under way, by key.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
	// joinHook, when set (by tests), is called under mu each time a
	// request joins a flight, with the flight's key and its waiter count.
	joinHook func(key string, joined int)
}

// join returns the flight for key, and true when there was none and the
// caller must start it. wantBody says this request needs the manifest's
// bytes.
func (g *flights) join(key string, wantBody bool) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.m[key]
	if !ok {
		f = &flight{resolved: make(chan struct{}), done: make(chan struct{})}
		if g.m == nil {
			g.m = map[string]*flight{}
		}
		g.m[key] = f
	}
	f.joined++
	f.wantBody = f.wantBody || wantBody
	if g.joinHook != nil {
		g.joinHook(key, f.joined)
	}
	return f, !ok
}

// needBody reports whether a waiter of f wants its bytes. When none does,
// f stops taking waiters here and now, so none can join after the answer.
func (g *flights) needBody(key string, f *flight) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !f.wantBody && g.m[key] == f {
		delete(g.m, key)
	}
	return f.wantBody
}

// stop forgets f: a request arriving now finds the answer in the cache,
// or asks afresh. It returns how many requests joined f in all.
func (g *flights) stop(key string, f *flight) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	return f.joined
}

// finish ends a flight, releasing its waiters; stop it first.
func (f *flight) finish(m Manifest, err error) {
	f.m, f.err = m, err
	close(f.done)
}

// resolve ends a flight's first phase.
func (f *flight) resolve(c tagCheck, err error) {
	f.check, f.checkErr = c, err
	close(f.resolved)
}

// wait blocks until ch closes or ctx ends.
func wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flightTimeout bounds a whole flight, retries included; each upstream
// attempt is bounded by the upstream client's own timeouts.
const flightTimeout = 5 * time.Minute

// flightContext detaches a flight from the request that starts it (its
// values stay, its cancellation does not) and ends it when the proxy
// closes.
func (p *Proxy) flightContext(ctx context.Context) (context.Context, context.CancelFunc) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
	stop := context.AfterFunc(p.ctx, cancel)
	return fctx, func() { stop(); cancel() }
}

// flightKey names a question to the upstream. The proxy is implicit (each
// has its own flights); the accepted media types are part of it because
// they change the upstream's answer, and are normalised so that clients
// listing the same types differently share a flight.
func flightKey(kind, canon, ref string, accept []string) string {
	return kind + "\x00" + canon + "\x00" + ref + "\x00" + acceptKey(accept)
}

// acceptKey is a canonical form of Accept header values: each media range
// lower-cased without white space, sorted, duplicates dropped.
func acceptKey(accept []string) string {
	var ts []string
	for _, a := range accept {
		for _, part := range strings.Split(a, ",") {
			if t := strings.ToLower(strings.Join(strings.Fields(part), "")); t != "" {
				ts = append(ts, t)
			}
		}
	}
	slices.Sort(ts)
	return strings.Join(slices.Compact(ts), ",")
}

// manifestFlights are p's flights under way.
func (p *Proxy) manifestFlights() *flights { return &p.flights }

// calls are the other upstream questions under way (a blob's HEAD, a page
// of a tag list), each shared like a manifest flight by every request
// asking it meanwhile: one upstream exchange, on its own context, whose
// answer (or error) reaches every waiter.
type calls struct {
	mu sync.Mutex
	m  map[string]*call
	// joinHook, when set (by tests), is called under mu each time a
	// request joins a call, with the call's key and its waiter count.
	joinHook func(key string, joined int)
}

type call struct {
	joined int // under calls.mu
	done   chan struct{}
	val    any
	err    error // the upstream's, unmapped: each waiter maps it
}

// share asks fn once for every concurrent request with key and returns
// its answer; joined says this request found the call under way. A
// request leaves when its own ctx ends; the call goes on for the others.
func (p *Proxy) share(ctx context.Context, key string, fn func(ctx context.Context) (any, error)) (val any, joined bool, err error) {
	g := &p.calls
	g.mu.Lock()
	c, joined := g.m[key]
	if !joined {
		c = &call{done: make(chan struct{})}
		if g.m == nil {
			g.m = map[string]*call{}
		}
		g.m[key] = c
		fctx, cancel := p.flightContext(ctx)
		go func() {
			defer cancel()
			v, err := fn(fctx)
			g.mu.Lock()
			delete(g.m, key)
			c.val, c.err = v, err
			g.mu.Unlock()
			close(c.done)
		}()
	}
	c.joined++
	if g.joinHook != nil {
		g.joinHook(key, c.joined)
	}
	g.mu.Unlock()
	if joined {
		p.o.Metrics.CoalescedFetch(p.o.Name)
	}
	if err := wait(ctx, c.done); err != nil {
		return nil, joined, err
	}
	return c.val, joined, c.err
}
