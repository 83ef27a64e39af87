package cluster

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// fakeLeases is the lease table in memory, on a clock the test moves.
type fakeLeases struct {
	mu     sync.Mutex
	now    time.Time
	leases map[string]pgindex.Lease
}

func newFakeLeases() *fakeLeases {
	return &fakeLeases{now: time.Unix(1000, 0), leases: map[string]pgindex.Lease{}}
}

func (f *fakeLeases) ClaimFill(_ context.Context, d, owner, addr string, ttl time.Duration) (pgindex.Lease, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.leases[d]; ok && !l.Expires.Before(f.now) {
		return l, l.Owner == owner, nil
	}
	l := pgindex.Lease{Owner: owner, Addr: addr, Expires: f.now.Add(ttl)}
	f.leases[d] = l
	return l, true, nil
}

func (f *fakeLeases) RenewFill(_ context.Context, d, owner string, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.leases[d]
	if !ok || l.Owner != owner {
		return false, nil
	}
	l.Expires = f.now.Add(ttl)
	f.leases[d] = l
	return true, nil
}

func (f *fakeLeases) ReleaseFill(_ context.Context, d, owner string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.leases[d]; ok && l.Owner == owner {
		delete(f.leases, d)
	}
	return nil
}

func (f *fakeLeases) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeLeases) holder(d string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leases[d].Owner
}

// countingUpstream serves one blob and counts its GETs.
type countingUpstream struct {
	cache.Upstream // nil: only GetBlob is called
	mu             sync.Mutex
	blob           []byte
	gets           []int64 // offsets asked for
}

func (u *countingUpstream) GetBlob(_ context.Context, _, _ string, offset int64) (io.ReadCloser, int64, error) {
	u.mu.Lock()
	u.gets = append(u.gets, offset)
	u.mu.Unlock()
	return io.NopCloser(bytes.NewReader(u.blob[offset:])), int64(len(u.blob)), nil
}

func newStore(t *testing.T) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newIndex(t *testing.T) index.Index {
	t.Helper()
	idx, err := index.Open(t.TempDir(), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return idx
}

// serve starts c's internal endpoint and registers its address.
func serve(t *testing.T, c *Coordinator) {
	t.Helper()
	srv := httptest.NewServer(c.Handler(func() []*cache.Proxy { return nil }))
	t.Cleanup(srv.Close)
	c.SetAddr(srv.URL)
}

func TestEndpoint(t *testing.T) {
	st := newStore(t)
	blob := []byte("the bytes of a committed blob")
	d := oci.FromBytes(blob)
	if _, err := st.Put(context.Background(), d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Leases: newFakeLeases(), Store: st, Token: "s3cret"})
	serve(t, c)
	unknown := oci.FromBytes([]byte("nowhere"))
	for _, tc := range []struct {
		name, path, token string
		status            int
		body              string
	}{
		{"no token", d.String(), "", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"wrong token", d.String(), "s3cres", http.StatusUnauthorized, "UNAUTHORIZED"},
		{"bad digest", "sha256:xyz", "s3cret", http.StatusBadRequest, "DIGEST_INVALID"},
		{"bad offset", d.String() + "?offset=-1", "s3cret", http.StatusBadRequest, "PARAMETER_INVALID"},
		{"past the end", d.String() + "?offset=1000", "s3cret", http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID"},
		{"unknown", unknown.String(), "s3cret", http.StatusNotFound, "BLOB_UNKNOWN"},
		{"stored", d.String(), "s3cret", http.StatusOK, string(blob)},
		{"stored from an offset", d.String() + "?offset=4", "s3cret", http.StatusOK, string(blob[4:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, c.Addr()+BlobPath+tc.path, nil)
			if tc.token != "" {
				req.Header.Set(TokenHeader, tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if tc.status != http.StatusOK {
				// Errors come in the OCI envelope, with the code in body.
				if !strings.Contains(string(b), `"code":"`+tc.body+`"`) || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Errorf("error body %s (%s), want the OCI envelope with code %s", b, resp.Header.Get("Content-Type"), tc.body)
				}
			}
			if tc.status == http.StatusOK {
				if string(b) != tc.body {
					t.Errorf("body %q, want %q", b, tc.body)
				}
				if got := resp.Header.Get(sizeHeader); got != "29" {
					t.Errorf("%s: %q, want the whole size", sizeHeader, got)
				}
			}
		})
	}
}

// A replica whose peer holds the lease streams from the peer; when the
// peer stops renewing, a resume takes the lease and goes upstream at the
// offset; Done releases it.
func TestSourceFollowsThenTakesOver(t *testing.T) {
	leases := newFakeLeases()
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	d := oci.FromBytes(blob)
	peerStore := newStore(t)
	if _, err := peerStore.Put(context.Background(), d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	a := New(Options{Leases: leases, Store: peerStore, Index: newIndex(t), Token: "tok", Poll: time.Millisecond, TTL: time.Hour})
	b := New(Options{Leases: leases, Store: newStore(t), Index: newIndex(t), Token: "tok", Poll: time.Millisecond, TTL: time.Hour})
	serve(t, a)
	serve(t, b)
	upA, upB := &countingUpstream{blob: blob}, &countingUpstream{blob: blob}
	ctx := context.Background()

	sa := a.Fill(d, upA)
	ra, size, err := sa.GetBlob(ctx, "lib/x", d.String(), 0)
	if err != nil || size != int64(len(blob)) {
		t.Fatalf("first fill: %d, %v", size, err)
	}
	ra.Close()
	if len(upA.gets) != 1 {
		t.Fatalf("the lease holder asked its upstream %d times", len(upA.gets))
	}

	sb := b.Fill(d, upB)
	rb, size, err := sb.GetBlob(ctx, "lib/x", d.String(), 0)
	if err != nil || size != int64(len(blob)) {
		t.Fatalf("follower: %d, %v", size, err)
	}
	got, err := io.ReadAll(rb)
	rb.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("follower read %d bytes, %v", len(got), err)
	}
	if len(upB.gets) != 0 {
		t.Fatalf("the follower asked its upstream: %v", upB.gets)
	}

	// a stops renewing (it died): once the lease expired, b's resume
	// takes it and asks its upstream from where it stopped.
	owner := leases.holder(d.String())
	leases.advance(2 * time.Hour)
	rb, _, err = sb.GetBlob(ctx, "lib/x", d.String(), 7)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rb)
	rb.Close()
	if !bytes.Equal(got, blob[7:]) || len(upB.gets) != 1 || upB.gets[0] != 7 {
		t.Fatalf("takeover: %d bytes, upstream asked %v", len(got), upB.gets)
	}
	if h := leases.holder(d.String()); h == owner || !strings.HasPrefix(h, b.id) {
		t.Fatalf("lease holder %q after the takeover, want one of b (%s)", h, b.id)
	}
	sb.Done()
	if h := leases.holder(d.String()); h != "" {
		t.Fatalf("lease held by %q after Done", h)
	}
	sa.Done() // a's lease is gone already: a no-op
}

// A follower's fill does not upload what the filler commits: Stored waits
// for the filler's lease to go, then finds the blob in the shared store.
func TestStoredWaitsForTheFiller(t *testing.T) {
	leases := newFakeLeases()
	blob := bytes.Repeat([]byte("abcdefgh"), 512)
	d := oci.FromBytes(blob)
	shared := newStore(t) // the bucket both replicas commit to
	a := New(Options{Leases: leases, Store: shared, Index: newIndex(t), Token: "tok", Poll: time.Millisecond, TTL: time.Hour})
	b := New(Options{Leases: leases, Store: shared, Index: newIndex(t), Token: "tok", Poll: time.Millisecond, TTL: time.Hour})
	serve(t, a)
	serve(t, b)
	ctx := context.Background()
	sa := a.Fill(d, &countingUpstream{blob: blob})
	if r, _, err := sa.GetBlob(ctx, "lib/x", d.String(), 0); err != nil {
		t.Fatal(err)
	} else {
		r.Close()
	}
	// a's fill is "running": its endpoint answers from the store here,
	// which a commits to now, before b has read a byte.
	if _, err := shared.Put(ctx, d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	sb := b.Fill(d, &countingUpstream{blob: blob})
	r, _, err := sb.GetBlob(ctx, "lib/x", d.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	r.Close()

	stored := make(chan bool, 1)
	go func() { stored <- sb.Stored(ctx) }()
	if h := leases.holder(d.String()); !strings.HasPrefix(h, a.id) {
		t.Fatalf("lease held by %q while a commits, want a", h)
	}
	sa.Done() // a committed and indexed
	if !<-stored {
		t.Fatal("Stored = false with the blob in the shared store: b would upload it again")
	}
	sb.Done()
	if h := leases.holder(d.String()); h != "" {
		t.Fatalf("lease held by %q after both fills", h)
	}
}

// A peer that hangs without dying: its stream stalls and its lease is no
// longer renewed. Once the lease has expired the follower takes it, cuts
// the stalled stream (an unavailable upstream, which the fill resumes)
// and the resume goes to its upstream from where the stream stopped.
func TestSourceTakesOverFromAHungPeer(t *testing.T) {
	leases := newFakeLeases()
	blob := bytes.Repeat([]byte("abcdefghij"), 1000)
	d := oci.FromBytes(blob)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(sizeHeader, strconv.Itoa(len(blob)))
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.WriteHeader(http.StatusOK)
		w.Write(blob[:100])
		w.(http.Flusher).Flush()
		select { // hangs: neither more bytes nor a broken connection
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	if _, won, _ := leases.ClaimFill(context.Background(), d.String(), "the-hung-one", hung.URL, time.Minute); !won {
		t.Fatal("the peer did not get the lease")
	}
	b := New(Options{Leases: leases, Store: newStore(t), Index: newIndex(t), Token: "tok", Poll: time.Millisecond, TTL: 20 * time.Millisecond})
	serve(t, b)
	up := &countingUpstream{blob: blob}
	s := b.Fill(d, up)
	defer s.Done()
	body, _, err := s.GetBlob(context.Background(), "lib/x", d.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 100)
	if _, err := io.ReadFull(body, first); err != nil || !bytes.Equal(first, blob[:100]) {
		t.Fatalf("first bytes from the peer: %v", err)
	}
	// While the lease is live the stream is left alone, however slow.
	if h := leases.holder(d.String()); h != "the-hung-one" {
		t.Fatalf("lease taken from a live holder by %q", h)
	}
	leases.advance(2 * time.Minute) // the hung peer's lease runs out
	readErr := make(chan error, 1)
	go func() {
		_, err := body.Read(make([]byte, 10))
		readErr <- err
	}()
	select {
	case err = <-readErr:
	case <-time.After(30 * time.Second):
		t.Fatal("the stalled stream was not cut a minute after the peer's lease ran out")
	}
	body.Close()
	if !upstream.IsUnavailable(err) {
		t.Fatalf("the cut stream read %v, want an unavailable upstream (which the fill resumes)", err)
	}
	if h := leases.holder(d.String()); !strings.HasPrefix(h, b.id) {
		t.Fatalf("lease holder %q after the takeover, want b", h)
	}
	rest, _, err := s.GetBlob(context.Background(), "lib/x", d.String(), 100)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rest)
	rest.Close()
	if !bytes.Equal(got, blob[100:]) || len(up.gets) != 1 || up.gets[0] != 100 {
		t.Fatalf("resume: %d bytes, upstream asked %v", len(got), up.gets)
	}
}
