package cache

import (
	"context"
	"io"

	"github.com/wharf-registry/wharf/oci"
)

// Coordinator shares fills between processes that share a store and an
// index (cluster mode): of the replicas missing one digest at once, one
// fetches it from the upstream and the others stream it from that one.
// Nil (one process) leaves every fill to its own upstream.
type Coordinator interface {
	// Fill says where one fill of d gets its bytes instead of up, for
	// the first request and for every resume of a broken stream. The
	// fill still hashes and verifies all it receives, whatever the source.
	Fill(d oci.Digest, up Upstream) FillSource
}

// FillSource is where one fill's bytes come from.
type FillSource interface {
	GetBlob(ctx context.Context, repo, digest string, offset int64) (io.ReadCloser, int64, error)
	// Stored is asked once the fill verified its bytes, before it
	// commits them: true when the shared store has the blob already
	// (another replica committed it), so the commit need not upload it
	// again. It may wait for the replica the fill streamed from to finish
	// its commit.
	Stored(ctx context.Context) bool
	// Done is called once, when the fill ended: committed to the store
	// and the index, or failed.
	Done()
}

// blobSource is what a fill reads from: the upstream or a FillSource.
type blobSource interface {
	GetBlob(ctx context.Context, repo, digest string, offset int64) (io.ReadCloser, int64, error)
}

// Filling returns d's fill while one runs in this proxy, once the
// upstream answered, for a peer replica to stream from (the caller
// closes it); nil when none runs. It never starts one.
func (p *Proxy) Filling(ctx context.Context, d oci.Digest) (*Blob, error) {
	p.mu.Lock()
	f, ok := p.fills[d]
	if !ok || f.failed() {
		p.mu.Unlock()
		return nil, nil
	}
	f.mu.Lock()
	f.refs++ // a peer, not a client of this replica: not counted as joined
	f.mu.Unlock()
	p.mu.Unlock()
	if err := f.waitReady(ctx); err != nil {
		f.release()
		return nil, err
	}
	return &Blob{Digest: d, Size: f.size, Source: SourceMiss, fill: f, proxy: p}, nil
}
