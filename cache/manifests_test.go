package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/internal/testclock"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// manifestOrigin is an in-process registry (go-containerregistry's) that
// counts manifest requests as they arrive and can hold them until the test
// lets them go, or fail them.
type manifestOrigin struct {
	*httptest.Server
	heads, gets atomic.Int64
	arrived     chan string // the method of each manifest request, on arrival
	// blobHeads and tagLists count the other gated requests.
	blobHeads, tagLists atomic.Int64

	mu   sync.Mutex
	gate chan struct{} // non-nil: manifest requests wait for it to close
	fail int           // non-zero: manifest requests get this status
}

func newManifestOrigin(t *testing.T) *manifestOrigin {
	o := &manifestOrigin{arrived: make(chan string, 1000)}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/manifests/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			if r.Method == http.MethodHead {
				o.heads.Add(1)
			} else {
				o.gets.Add(1)
			}
			o.arrived <- r.Method
		case strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Method == http.MethodHead:
			o.blobHeads.Add(1)
		case strings.HasSuffix(r.URL.Path, "/tags/list") && r.Method == http.MethodGet:
			o.tagLists.Add(1)
		default:
			reg.ServeHTTP(w, r)
			return
		}
		o.mu.Lock()
		gate, fail := o.gate, o.fail
		o.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if fail != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(fail)
			fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"origin says %d"}]}`, fail)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// hold makes manifest requests wait until the returned func is called,
// and resets the counts.
func (o *manifestOrigin) hold(t *testing.T) (release func()) {
	gate := make(chan struct{})
	o.mu.Lock()
	o.gate = gate
	o.mu.Unlock()
	o.heads.Store(0)
	o.gets.Store(0)
	o.blobHeads.Store(0)
	o.tagLists.Store(0)
	for len(o.arrived) > 0 {
		<-o.arrived
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return release
}

func (o *manifestOrigin) setFail(status int) {
	o.mu.Lock()
	o.fail = status
	o.mu.Unlock()
}

// push puts a new random image at repo:tag and returns its manifest.
func (o *manifestOrigin) push(t *testing.T, repoTag string) (oci.Digest, []byte) {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(o.URL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return oci.FromBytes(raw), raw
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

const testTTL = time.Minute

// newFlightProxy is a Proxy of the origin with a clock the test turns and
// its log in logs.
func newFlightProxy(t *testing.T, o *manifestOrigin) (*Proxy, *testclock.Clock, *logBuf) {
	t.Helper()
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Open("", index.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	up, err := upstream.New(upstream.Config{Name: "origin", URL: o.URL, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	logs := &logBuf{}
	p := New(Options{Name: "hub", Upstream: up, Store: store, Index: idx, TagTTL: testTTL, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	t.Cleanup(func() { p.Close(); idx.Close() })
	return p, clk, logs
}

// flightJoined returns a channel closed once a flight whose key starts with
// kind has n waiters.
func flightJoined(p *Proxy, kind string, n int) <-chan struct{} {
	g := p.manifestFlights()
	return joinedBy(&g.mu, &g.joinHook, kind, n)
}

// joinedBy sets the join hook (under mu) of flights or calls to close the
// returned channel once one whose key starts with kind has n waiters.
func joinedBy(mu *sync.Mutex, hook *func(key string, joined int), kind string, n int) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	mu.Lock()
	*hook = func(key string, k int) {
		if strings.HasPrefix(key, kind+"\x00") && k == n {
			once.Do(func() { close(ch) })
		}
	}
	mu.Unlock()
	return ch
}

func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type reply struct {
	m   Manifest
	err error
}

// runClients runs n requests at once; the returned channel yields all their
// answers, in client order, when every one has returned.
func runClients(n int, do func(i int) (Manifest, error)) <-chan []reply {
	out := make(chan []reply, 1)
	res := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := do(i)
			res[i] = reply{m, err}
		}()
	}
	go func() { wg.Wait(); out <- res }()
	return out
}

// The Accept header values of real clients, listed in different orders and
// splits: all the same set of media types.
var testAccepts = [][]string{
	{"application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"},
	{"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"},
	{"Application/vnd.OCI.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"},
}

// waiters is how many clients ask at once, as in the CI fleet.
const waiters = 30

// checkAnswers checks every reply is d's manifest, body and all for a GET.
func checkAnswers(t *testing.T, res []reply, isHead func(i int) bool, d oci.Digest, raw []byte, src Source) {
	t.Helper()
	for i, a := range res {
		switch {
		case a.err != nil:
			t.Errorf("client %d: %v", i, a.err)
		case a.m.Digest != d || a.m.Size != int64(len(raw)):
			t.Errorf("client %d: got %s (%d bytes), want %s (%d)", i, a.m.Digest, a.m.Size, d, len(raw))
		case isHead(i) && a.m.Body != nil:
			t.Errorf("client %d: a HEAD got a body", i)
		case !isHead(i) && !bytes.Equal(a.m.Body, raw):
			t.Errorf("client %d: body differs from the origin's (%d bytes)", i, len(a.m.Body))
		case src != "" && a.m.Source != src:
			t.Errorf("client %d: source %s, want %s", i, a.m.Source, src)
		}
	}
}

func checkCounts(t *testing.T, o *manifestOrigin, heads, gets int64) {
	t.Helper()
	if h, g := o.heads.Load(), o.gets.Load(); h != heads || g != gets {
		t.Errorf("origin saw %d manifest HEAD(s) and %d GET(s), want %d and %d", h, g, heads, gets)
	}
}

// An uncached tag asked for by many clients at once, a third of them with a
// HEAD: one HEAD and one GET upstream, the manifest stored once.
func TestManifestFlightUncachedTag(t *testing.T) {
	o := newManifestOrigin(t)
	d, raw := o.push(t, "library/app:1")
	p, _, logs := newFlightProxy(t, o)

	release := o.hold(t)
	all := flightJoined(p, "tag", waiters)
	isHead := func(i int) bool { return i%3 == 0 }
	done := runClients(waiters, func(i int) (Manifest, error) {
		return p.GetManifest(t.Context(), "library/app", oci.Reference{Tag: "1"}, testAccepts[i%len(testAccepts)], isHead(i))
	})
	if m := within(t, o.arrived, "the first upstream request"); m != http.MethodHead {
		t.Errorf("first upstream request is a %s, want HEAD", m)
	}
	within(t, all, "every client to join the flight")
	release()
	res := within(t, done, "the clients")

	checkAnswers(t, res, isHead, d, raw, SourceMiss)
	checkCounts(t, o, 1, 1)
	if c := logs.count(`msg="cached manifest"`); c != 1 {
		t.Errorf("manifest stored %d times, want 1", c)
	}
	if logs.count(fmt.Sprintf("clients_joined=%d", waiters)) != 1 {
		t.Errorf("no log of the manifest stored for %d clients", waiters)
	}
	// Now a fresh tag: no upstream request at all.
	if m, err := p.GetManifest(t.Context(), "library/app", oci.Reference{Tag: "1"}, testAccepts[0], false); err != nil || m.Source != SourceHit {
		t.Errorf("after the flight: %v, %v", m.Source, err)
	}
	checkCounts(t, o, 1, 1)
}

// An expired tag revalidated by many clients at once: one HEAD; a GET only
// when the tag has moved.
func TestManifestFlightExpiredTag(t *testing.T) {
	o := newManifestOrigin(t)
	d, raw := o.push(t, "library/app:1")
	p, clk, logs := newFlightProxy(t, o)
	get := func(i int) (Manifest, error) {
		return p.GetManifest(t.Context(), "library/app", oci.Reference{Tag: "1"}, testAccepts[i%len(testAccepts)], false)
	}
	if _, err := get(0); err != nil {
		t.Fatal(err)
	}
	noHead := func(int) bool { return false }

	t.Run("unchanged", func(t *testing.T) {
		clk.Advance(2 * testTTL)
		release := o.hold(t)
		all := flightJoined(p, "tag", waiters)
		done := runClients(waiters, get)
		within(t, o.arrived, "the revalidation")
		within(t, all, "every client to join the flight")
		release()
		checkAnswers(t, within(t, done, "the clients"), noHead, d, raw, SourceHit)
		checkCounts(t, o, 1, 0)
	})

	t.Run("moved", func(t *testing.T) {
		d2, raw2 := o.push(t, "library/app:1")
		clk.Advance(2 * testTTL)
		release := o.hold(t)
		all := flightJoined(p, "tag", waiters)
		done := runClients(waiters, get)
		within(t, o.arrived, "the revalidation")
		within(t, all, "every client to join the flight")
		release()
		checkAnswers(t, within(t, done, "the clients"), noHead, d2, raw2, SourceMiss)
		checkCounts(t, o, 1, 1)
		if c := logs.count(`msg="cached manifest"`); c != 2 {
			t.Errorf("%d manifests stored in all, want 2", c)
		}
	})
}

// A manifest by digest asked for by many clients at once, HEADs and GETs:
// one GET upstream.
func TestManifestFlightByDigest(t *testing.T) {
	o := newManifestOrigin(t)
	d, raw := o.push(t, "library/app:1")
	p, _, logs := newFlightProxy(t, o)

	release := o.hold(t)
	all := flightJoined(p, "digest", waiters)
	isHead := func(i int) bool { return i%2 == 0 }
	done := runClients(waiters, func(i int) (Manifest, error) {
		return p.GetManifest(t.Context(), "library/app", oci.Reference{Digest: d}, testAccepts[i%len(testAccepts)], isHead(i))
	})
	within(t, o.arrived, "the first upstream request")
	within(t, all, "every client to join the flight")
	release()
	checkAnswers(t, within(t, done, "the clients"), isHead, d, raw, SourceMiss)
	checkCounts(t, o, 0, 1)
	if c := logs.count(`msg="cached manifest"`); c != 1 {
		t.Errorf("manifest stored %d times, want 1", c)
	}
	if logs.count(fmt.Sprintf("clients_joined=%d", waiters)) != 1 {
		t.Errorf("no log of the manifest stored for %d clients", waiters)
	}
}

// An upstream failure reaches every waiter as the same error; a tag the
// cache holds is served stale to every waiter instead.
func TestManifestFlightFailure(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusNotFound} {
		t.Run(fmt.Sprintf("uncached/%d", status), func(t *testing.T) {
			o := newManifestOrigin(t)
			o.push(t, "library/app:1")
			p, _, _ := newFlightProxy(t, o)
			o.setFail(status)
			release := o.hold(t)
			all := flightJoined(p, "tag", waiters)
			done := runClients(waiters, func(i int) (Manifest, error) {
				return p.GetManifest(t.Context(), "library/app", oci.Reference{Tag: "1"}, testAccepts[i%len(testAccepts)], false)
			})
			within(t, o.arrived, "the first upstream request")
			within(t, all, "every client to join the flight")
			release()
			res := within(t, done, "the clients")
			checkCounts(t, o, 1, 0)
			first := res[0].err
			if _, ok := oci.AsError(first); !ok {
				t.Fatalf("client 0: %v, want an OCI error", first)
			}
			for i, a := range res {
				if a.err == nil || a.err.Error() != first.Error() {
					t.Errorf("client %d: %v, want %v", i, a.err, first)
				}
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		o := newManifestOrigin(t)
		d, raw := o.push(t, "library/app:1")
		p, clk, _ := newFlightProxy(t, o)
		get := func(i int) (Manifest, error) {
			return p.GetManifest(t.Context(), "library/app", oci.Reference{Tag: "1"}, testAccepts[i%len(testAccepts)], i%3 == 0)
		}
		if _, err := get(1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * testTTL)
		o.setFail(http.StatusServiceUnavailable)
		release := o.hold(t)
		all := flightJoined(p, "tag", waiters)
		done := runClients(waiters, get)
		within(t, o.arrived, "the revalidation")
		within(t, all, "every client to join the flight")
		release()
		checkAnswers(t, within(t, done, "the clients"), func(i int) bool { return i%3 == 0 }, d, raw, SourceStale)
		checkCounts(t, o, 1, 0)
	})
}

// The request that started a flight hangs up: it returns at once, and the
// flight goes on for the others.
func TestManifestFlightOutlivesItsStarter(t *testing.T) {
	o := newManifestOrigin(t)
	d, raw := o.push(t, "library/app:1")
	p, _, _ := newFlightProxy(t, o)

	release := o.hold(t)
	all := flightJoined(p, "tag", waiters)
	ctx, cancel := context.WithCancel(t.Context())
	first := runClients(1, func(int) (Manifest, error) {
		return p.GetManifest(ctx, "library/app", oci.Reference{Tag: "1"}, testAccepts[0], false)
	})
	within(t, o.arrived, "the starter's upstream request")
	rest := runClients(waiters-1, func(i int) (Manifest, error) {
		return p.GetManifest(t.Context(), "library/app", oci.Reference{Tag: "1"}, testAccepts[i%len(testAccepts)], false)
	})
	within(t, all, "every client to join the flight")
	cancel()
	// Still held at the origin: the starter must not wait for it.
	if a := within(t, first, "the starter to give up")[0]; !errors.Is(a.err, context.Canceled) {
		t.Errorf("starter: %+v, want context.Canceled", a)
	}
	release()
	checkAnswers(t, within(t, rest, "the other clients"), func(int) bool { return false }, d, raw, SourceMiss)
	checkCounts(t, o, 1, 1)
}

func TestAcceptKey(t *testing.T) {
	for _, a := range testAccepts[1:] {
		if acceptKey(a) != acceptKey(testAccepts[0]) {
			t.Errorf("acceptKey(%q) = %q, want %q", a, acceptKey(a), acceptKey(testAccepts[0]))
		}
	}
	for _, a := range [][]string{nil, {"application/vnd.oci.image.manifest.v1+json"}, {"*/*"}} {
		if acceptKey(a) == acceptKey(testAccepts[0]) {
			t.Errorf("acceptKey(%q) is the key of a different set", a)
		}
	}
}
