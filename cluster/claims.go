package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// ClaimTable is where replicas claim digests for writing or deleting
// (*pgindex.Index's blob_claims).
type ClaimTable interface {
	ClaimWrite(ctx context.Context, digest, holder string, ttl time.Duration) error
	ClaimCollect(ctx context.Context, digest, holder string, ttl time.Duration) (bool, error)
	ReleaseClaim(ctx context.Context, digest, holder string) error
}

var _ ClaimTable = (*pgindex.Index)(nil)

// BlobClaims is storage.SharedClaims across the replicas: a write of a
// digest to the bucket (a fill, an upload, a manifest) and garbage
// collection's or eviction's delete of it never interleave, whichever
// replicas run them.
type BlobClaims struct {
	table ClaimTable
	log   *slog.Logger
	id    string
	seq   atomic.Uint64

	// WriteTTL bounds a write claim of a replica that died (0: 1 h): the
	// digest is not collected meanwhile, which only delays its deletion.
	WriteTTL time.Duration
	// CollectTTL bounds a collect claim of a replica that died (0: 1
	// min): writers of that digest wait that long at most.
	CollectTTL time.Duration
	// Poll is how often a writer waiting for a collection asks again
	// (0: 100 ms).
	Poll time.Duration
}

var _ storage.SharedClaims = (*BlobClaims)(nil)

// claimTimeout bounds each call to the table.
const claimTimeout = 10 * time.Second

// NewBlobClaims claims in table, logging what fails to log.
func NewBlobClaims(table ClaimTable, log *slog.Logger) *BlobClaims {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := make([]byte, 6)
	rand.Read(b)
	return &BlobClaims{table: table, log: log.With("component", "cluster"), id: hex.EncodeToString(b)}
}

func (c *BlobClaims) holder(kind string) string {
	return c.id + "-" + kind + strconv.FormatUint(c.seq.Add(1), 10)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// HoldWrite waits while another replica deletes d, then claims it for a
// write. If the table cannot be reached, the write goes ahead without the
// claim (the write's own index update then fails the same way) and the
// failure is logged.
func (c *BlobClaims) HoldWrite(d oci.Digest) (release func()) {
	h := c.holder("w")
	ttl := orDefault(c.WriteTTL, time.Hour)
	deadline := time.Now().Add(2 * orDefault(c.CollectTTL, time.Minute))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		err := c.table.ClaimWrite(ctx, string(d), h, ttl)
		cancel()
		switch {
		case err == nil:
			return func() { c.release(d, h) }
		case errors.Is(err, pgindex.ErrCollecting) && time.Now().Before(deadline):
			time.Sleep(orDefault(c.Poll, 100*time.Millisecond))
		default:
			c.log.Warn("cannot claim a blob for writing across the replicas; writing it without the claim", "digest", d, "err", err)
			return func() {}
		}
	}
}

// TryCollect claims d for deletion unless a replica writes or deletes it,
// or the table cannot be reached: then d is kept, and collected another
// time.
func (c *BlobClaims) TryCollect(d oci.Digest) (release func(), ok bool) {
	h := c.holder("c")
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	ok, err := c.table.ClaimCollect(ctx, string(d), h, orDefault(c.CollectTTL, time.Minute))
	if err != nil {
		c.log.Warn("cannot claim a blob for deletion across the replicas; keeping it for now", "digest", d, "err", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	return func() { c.release(d, h) }, true
}

func (c *BlobClaims) release(d oci.Digest, holder string) {
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	if err := c.table.ReleaseClaim(ctx, string(d), holder); err != nil {
		c.log.Warn("cannot release a blob claim; it expires by itself", "digest", d, "err", err)
	}
}
