// Package cluster makes the replicas of a cluster fetch each blob from
// the upstream once between them (issue #13). A replica that misses a
// digest takes its fill lease (a row in PostgreSQL, by the database's
// clock) and fetches it; a replica that misses it while another holds a
// live lease streams the bytes from that one's internal endpoint instead,
// still hashing and verifying all it gets. Every resume of a broken
// stream decides again, so when the filling replica dies its followers'
// resumes take the expired lease and go on from the upstream where they
// stopped.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// Leases is the fill-lease table (*pgindex.Index).
type Leases interface {
	ClaimFill(ctx context.Context, digest, owner, addr string, ttl time.Duration) (pgindex.Lease, bool, error)
	RenewFill(ctx context.Context, digest, owner string, ttl time.Duration) (bool, error)
	ReleaseFill(ctx context.Context, digest, owner string) error
}

var _ Leases = (*pgindex.Index)(nil)

// Options configure a Coordinator.
type Options struct {
	Leases Leases
	// Index and Store are the shared ones: a blob committed there is
	// read from there, not fetched.
	Index index.Index
	Store storage.BlobStore
	// Token is the secret replicas show each other (pgindex.ClusterToken).
	Token  string
	Logger *slog.Logger
	// TTL is how long a lease lasts unless renewed (0: 10 s); it is
	// renewed every TTL/5. A replica that died loses it within TTL.
	TTL time.Duration
	// Poll is how often a replica waiting for a lease asks again (0: 250 ms).
	Poll time.Duration
	// Metrics counts fill sources, peer bytes, takeovers and forwarded
	// uploads (nil: none).
	Metrics *metrics.Cluster
}

// TokenHeader carries the cluster token on requests between replicas.
const TokenHeader = "Wharf-Cluster-Token"

// sizeHeader carries the blob's whole size on the internal endpoint,
// whatever the offset.
const sizeHeader = "Wharf-Blob-Size"

// BlobPath is the internal endpoint's prefix, on the main listener:
// GET BlobPath + digest + "?offset=N".
const BlobPath = "/-/cluster/blobs/"

// Coordinator is a replica's side of the shared fills: a cache.Coordinator
// and the internal endpoint other replicas stream from.
type Coordinator struct {
	o      Options
	log    *slog.Logger
	id     string // this replica, in lease owners
	seq    atomic.Uint64
	addr   atomic.Pointer[string]
	client *http.Client
}

var _ cache.Coordinator = (*Coordinator)(nil)

// New makes a Coordinator; SetAddr must follow before it serves fills.
func New(o Options) *Coordinator {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	b := make([]byte, 8)
	rand.Read(b)
	tr := &http.Transport{
		Proxy:                 nil, // replicas reach each other directly
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       time.Minute,
		ExpectContinueTimeout: time.Second,
		// Replicas serving TLS each have their own certificate, often
		// self-signed: this hop does not verify it. That is safe only
		// with what else guards it: the request carries the cluster
		// token, and the follower's fill hashes every byte it receives
		// against the digest, so a peer (or a man in the middle) can at
		// worst fail a fill, never get wrong bytes served.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	}
	return &Coordinator{o: o, log: o.Logger.With("component", "cluster"), id: hex.EncodeToString(b), client: &http.Client{Transport: tr}}
}

// SetAddr is the base URL other replicas reach this one at.
func (c *Coordinator) SetAddr(a string) { c.addr.Store(&a) }

// Addr is the base URL registered with this replica's leases.
func (c *Coordinator) Addr() string {
	if a := c.addr.Load(); a != nil {
		return *a
	}
	return ""
}

// Close drops the idle connections to other replicas.
func (c *Coordinator) Close() { c.client.CloseIdleConnections() }

// Fill implements cache.Coordinator.
func (c *Coordinator) Fill(d oci.Digest, up cache.Upstream) cache.FillSource {
	return &source{c: c, d: d, up: up, owner: c.id + "-" + strconv.FormatUint(c.seq.Add(1), 10)}
}

// source is one fill's: each GetBlob decides where the bytes come from.
type source struct {
	c     *Coordinator
	d     oci.Digest
	up    cache.Upstream
	owner string

	mu       sync.Mutex
	held     bool // this fill holds the lease
	followed bool // this fill streamed from another replica
	stop     chan struct{}
	renewing sync.WaitGroup
}

// GetBlob implements cache.FillSource: with the lease, from the upstream;
// with another replica's live lease, from that replica; with the blob
// committed, from the store.
func (s *source) GetBlob(ctx context.Context, repo, digest string, offset int64) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held {
		// A resume after taking over from a peer: it may have committed
		// the blob meanwhile.
		if body, size, ok := s.committed(ctx, offset); ok {
			return body, size, nil
		}
		s.c.o.Metrics.FillStream("upstream")
		return s.up.GetBlob(ctx, repo, digest, offset)
	}
	c := s.c
	waiting := false
	for {
		l, won, err := c.o.Leases.ClaimFill(ctx, digest, s.owner, c.Addr(), c.o.TTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			// Without the database no replica can say who fills: fetch
			// rather than fail the pull; the digest check still holds.
			c.log.Warn("cannot take the fill lease; fetching from the upstream anyway", "digest", digest, "err", err)
			c.o.Metrics.FillStream("upstream")
			return s.up.GetBlob(ctx, repo, digest, offset)
		}
		if won {
			s.hold()
			if body, size, ok := s.committed(ctx, offset); ok {
				return body, size, nil
			}
			c.log.Debug("filling from the upstream for the cluster", "digest", digest, "offset", offset, "owner", s.owner)
			c.o.Metrics.FillStream("upstream")
			return s.up.GetBlob(ctx, repo, digest, offset)
		}
		pctx, cancel := context.WithCancel(ctx)
		body, size, perr := c.fromPeer(pctx, l.Addr, digest, offset)
		if perr == nil {
			s.mu.Lock()
			s.followed = true
			s.mu.Unlock()
			c.log.Info("streaming a blob from the replica filling it", "digest", digest, "offset", offset, "peer", l.Addr)
			c.o.Metrics.FillStream("peer")
			return s.watch(body, cancel), size, nil
		}
		cancel()
		if body, size, ok := s.committed(ctx, offset); ok {
			return body, size, nil
		}
		if !waiting {
			c.log.Info("waiting for the fill lease of another replica", "digest", digest, "peer", l.Addr, "err", perr)
			waiting = true
		}
		t := time.NewTimer(c.o.Poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, 0, ctx.Err()
		}
	}
}

// watch follows the lease while this fill streams from the replica
// holding it. A replica that dies drops its connection and the stream
// breaks; one that hangs without dying stalls the stream, and stops
// renewing its lease too. So a stream is never cut for being slow (an
// upstream may be), only once the lease can be taken: then this fill
// holds it and cuts the stream, and the fill's resume continues from the
// upstream where the stream stopped.
func (s *source) watch(b io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	c := s.c
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(c.o.TTL / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, stop := context.WithTimeout(context.Background(), c.o.TTL/2)
			_, won, err := c.o.Leases.ClaimFill(ctx, string(s.d), s.owner, c.Addr(), c.o.TTL)
			stop()
			if err == nil && won {
				s.hold()
				c.log.Warn("the replica this fill streams from stopped renewing its lease; taking the fill over", "digest", s.d)
				c.o.Metrics.Takeover()
				cancel()
				return
			}
		}
	}()
	var once sync.Once
	return &watchedBody{ReadCloser: b, stop: func() { once.Do(func() { close(done); cancel() }) }}
}

// watchedBody stops its lease watch when the fill closes it.
type watchedBody struct {
	io.ReadCloser
	stop func()
}

func (b *watchedBody) Close() error {
	b.stop()
	return b.ReadCloser.Close()
}

// Stored implements cache.FillSource. A fill that streamed from another
// replica waits for that one to commit (it releases the lease then, or
// dies and the lease expires), taking the lease meanwhile so that no
// third replica fetches, then asks the store: the blob is uploaded once.
// A fill that held the lease throughout commits without asking.
func (s *source) Stored(ctx context.Context) bool {
	s.mu.Lock()
	followed, held := s.followed, s.held
	s.mu.Unlock()
	if !followed {
		return false
	}
	c := s.c
	for !held {
		_, won, err := c.o.Leases.ClaimFill(ctx, string(s.d), s.owner, c.Addr(), c.o.TTL)
		if err != nil {
			break // ask the store anyway
		}
		if won {
			s.hold()
			break
		}
		t := time.NewTimer(c.o.Poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	_, err := c.o.Store.Stat(s.d)
	return err == nil
}

// hold marks the lease this fill's and renews it until Done.
func (s *source) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		return
	}
	s.held, s.stop = true, make(chan struct{})
	s.renewing.Add(1)
	go s.renew(s.stop)
}

func (s *source) renew(stop chan struct{}) {
	defer s.renewing.Done()
	c := s.c
	t := time.NewTicker(c.o.TTL / 5)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.o.TTL/2)
		ok, err := c.o.Leases.RenewFill(ctx, string(s.d), s.owner, c.o.TTL)
		cancel()
		switch {
		case err != nil:
			c.log.Warn("cannot renew the fill lease", "digest", s.d, "err", err)
		case !ok:
			// Another replica took it (this one stalled past the TTL):
			// both fetch now; the digest check keeps either correct.
			c.log.Warn("lost the fill lease to another replica", "digest", s.d)
			return
		}
	}
}

// Done implements cache.FillSource: the fill was committed (or failed);
// the lease goes.
func (s *source) Done() {
	s.mu.Lock()
	held, stop := s.held, s.stop
	s.held = false
	s.mu.Unlock()
	if !held {
		return
	}
	close(stop)
	s.renewing.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.c.o.Leases.ReleaseFill(ctx, string(s.d), s.owner); err != nil {
		s.c.log.Warn("cannot release the fill lease; it expires on its own", "digest", s.d, "err", err)
	}
}

// committed opens d from the shared store at offset when it is there
// and indexed: another replica finished it.
func (s *source) committed(ctx context.Context, offset int64) (io.ReadCloser, int64, bool) {
	var known bool
	err := s.c.o.Index.View(func(tx index.Txn) error {
		_, err := tx.Blob(s.d)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		known = err == nil
		return err
	})
	if err != nil || !known {
		return nil, 0, false
	}
	b, size, err := s.c.o.Store.Open(s.d)
	if err != nil {
		return nil, 0, false
	}
	if offset > 0 {
		if _, err := b.Seek(offset, io.SeekStart); err != nil {
			b.Close()
			return nil, 0, false
		}
	}
	s.c.log.Debug("blob committed by another replica; reading it from the store", "digest", s.d, "offset", offset)
	s.c.o.Metrics.FillStream("store")
	return b, size, true
}

// fromPeer asks the replica at addr for d's bytes from offset.
func (c *Coordinator) fromPeer(ctx context.Context, addr, digest string, offset int64) (io.ReadCloser, int64, error) {
	if addr == "" {
		return nil, 0, errors.New("the lease names no address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(addr, "/")+BlobPath+digest+"?offset="+strconv.FormatInt(offset, 10), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set(TokenHeader, c.o.Token)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("replica %s answered %s", addr, resp.Status)
	}
	size := int64(-1)
	if v := resp.Header.Get(sizeHeader); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			size = n
		}
	}
	return &peerBody{ReadCloser: resp.Body, addr: addr, digest: digest, m: c.o.Metrics}, size, nil
}

// peerBody makes a stream from a replica that breaks (the replica died)
// an unavailable upstream, which the fill resumes: from another source.
type peerBody struct {
	io.ReadCloser
	addr, digest string
	m            *metrics.Cluster
}

func (b *peerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.m.PeerBytes(n)
	if err != nil && err != io.EOF {
		err = &upstream.Error{Kind: upstream.Unavailable, Op: "GET blob " + b.digest + " from replica " + b.addr, Message: err.Error(), Err: err}
	}
	return n, err
}
