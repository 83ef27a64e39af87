package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/upstream"
)

// fakeCoordinator hands every fill a source serving blob, whose first
// stream breaks at breakAt, and records what the fill asked of it.
type fakeCoordinator struct {
	blob    []byte
	breakAt int
	stored  bool
	idx     index.Index

	mu       sync.Mutex
	offsets  []int64
	indexed  bool // the index had the blob when Done was called
	done     chan struct{}
	upstream Upstream // what Fill was given
}

func (c *fakeCoordinator) Fill(d oci.Digest, up Upstream) FillSource {
	c.upstream = up
	return &fakeSource{c: c, d: d}
}

type fakeSource struct {
	c *fakeCoordinator
	d oci.Digest
}

// brokenReader ends with an unavailable upstream after its bytes.
type brokenReader struct{ r io.Reader }

func (b brokenReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		err = &upstream.Error{Kind: upstream.Unavailable, Message: "connection reset"}
	}
	return n, err
}

func (s *fakeSource) GetBlob(_ context.Context, _, _ string, offset int64) (io.ReadCloser, int64, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.offsets = append(s.c.offsets, offset)
	if offset == 0 {
		return io.NopCloser(brokenReader{bytes.NewReader(s.c.blob[:s.c.breakAt])}), int64(len(s.c.blob)), nil
	}
	return io.NopCloser(bytes.NewReader(s.c.blob[offset:])), int64(len(s.c.blob)), nil
}

func (s *fakeSource) Stored(context.Context) bool { return s.c.stored }

func (s *fakeSource) Done() {
	known := false
	s.c.idx.View(func(tx index.Txn) error {
		_, err := tx.Blob(s.d)
		known = err == nil
		return nil
	})
	s.c.mu.Lock()
	s.c.indexed = known
	s.c.mu.Unlock()
	close(s.c.done)
}

// A Coordinator's source feeds the fill, resumes included; Done comes
// after the commit to the store and the index; a fill whose blob the
// shared store already has is indexed without being stored again.
func TestCoordinatorFeedsTheFill(t *testing.T) {
	for _, stored := range []bool{false, true} {
		name := "commits"
		if stored {
			name = "stored elsewhere"
		}
		t.Run(name, func(t *testing.T) {
			st, err := storage.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			idx, err := index.Open("", index.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			defer idx.Close()
			blob := bytes.Repeat([]byte("wharf cluster "), 300_000) // > 4 MiB: several chunks
			d := oci.FromBytes(blob)
			co := &fakeCoordinator{blob: blob, breakAt: 3 << 20, stored: stored, idx: idx, done: make(chan struct{})}
			var up Upstream = struct{ Upstream }{} // never asked: the source is
			p := New(Options{Name: "hub", Upstream: up, Store: st, Index: idx, Coordinator: co})
			defer p.Close()

			b, err := p.OpenBlob(context.Background(), "lib/x", d)
			if err != nil {
				t.Fatal(err)
			}
			if peer, err := p.Filling(context.Background(), d); err != nil || peer == nil {
				t.Errorf("Filling while the fill runs: %v, %v", peer, err)
			} else {
				peer.Close()
			}
			var got bytes.Buffer
			if _, err := b.StreamTo(context.Background(), &got, 0, -1); err != nil {
				t.Fatal(err)
			}
			b.Close()
			if !bytes.Equal(got.Bytes(), blob) {
				t.Fatalf("client got %d bytes, want the %d of the blob", got.Len(), len(blob))
			}
			<-co.done
			co.mu.Lock()
			defer co.mu.Unlock()
			if len(co.offsets) != 2 || co.offsets[0] != 0 || co.offsets[1] != int64(co.breakAt) {
				t.Errorf("source asked for offsets %v, want [0 %d]", co.offsets, co.breakAt)
			}
			if co.upstream != up {
				t.Errorf("Fill was not given the proxy's upstream")
			}
			if !co.indexed {
				t.Error("Done came before the blob was indexed")
			}
			_, serr := st.Stat(d)
			if stored && !errors.Is(serr, oci.ErrBlobUnknown) {
				t.Errorf("a blob the shared store had was stored again: %v", serr)
			}
			if !stored && serr != nil {
				t.Errorf("the filled blob is not in the store: %v", serr)
			}
			// The fill leaves the proxy's table just after Done.
			deadline := time.Now().Add(time.Minute)
			for {
				peer, err := p.Filling(context.Background(), d)
				if err == nil && peer == nil {
					break
				}
				if peer != nil {
					peer.Close()
				}
				if time.Now().After(deadline) {
					t.Fatalf("Filling a minute after the fill: %v, %v", peer, err)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
