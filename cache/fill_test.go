package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// newTestFill makes a fill whose "download" the test drives by hand.
func newTestFill(t *testing.T, size int64) (*fill, *os.File) {
	t.Helper()
	w, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(w.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); r.Close() })
	f := newFill(oci.Digest("sha256:x"), "p/r")
	f.size, f.file = size, r
	close(f.ready)
	return f, w
}

func write(t *testing.T, f *fill, w *os.File, b []byte) {
	t.Helper()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	f.progress(int64(len(b)))
}

type result struct {
	n   int64
	err error
}

func TestFillHoldsBackLastByteUntilVerified(t *testing.T) {
	f, w := newTestFill(t, 10)
	var out bytes.Buffer
	done := make(chan result, 1)
	go func() {
		n, err := f.copyTo(context.Background(), &syncBuf{b: &out}, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	write(t, f, w, []byte("0123456789"))
	select {
	case r := <-done:
		t.Fatalf("copy finished before verification: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	f.verify()
	r := <-done
	if r.err != nil || r.n != 10 {
		t.Fatalf("after verify: %+v", r)
	}
}

func TestFillFailureNeverDeliversLastByte(t *testing.T) {
	f, w := newTestFill(t, 10)
	buf := &syncBuf{b: &bytes.Buffer{}}
	done := make(chan result, 1)
	go func() {
		n, err := f.copyTo(context.Background(), buf, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	write(t, f, w, []byte("0123456789"))
	bad := errors.New("digest mismatch")
	f.finish(bad)
	r := <-done
	if !errors.Is(r.err, bad) || r.n != 9 {
		t.Fatalf("got %+v, want 9 bytes and the failure", r)
	}
}

func TestFillRangeAndLateJoiner(t *testing.T) {
	f, w := newTestFill(t, 10)
	write(t, f, w, []byte("01234"))
	done := make(chan result, 1)
	out := &syncBuf{b: &bytes.Buffer{}}
	go func() {
		n, err := f.copyTo(context.Background(), out, 2, 6, make([]byte, 64))
		done <- result{n, err}
	}()
	write(t, f, w, []byte("56789"))
	f.finish(nil)
	r := <-done
	if r.err != nil || out.String() != "23456" {
		t.Fatalf("range: %+v %q", r, out.String())
	}
}

func TestFillReaderCancel(t *testing.T) {
	f, _ := newTestFill(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		n, err := f.copyTo(ctx, &syncBuf{b: &bytes.Buffer{}}, 0, -1, make([]byte, 4))
		done <- result{n, err}
	}()
	cancel()
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %+v", r)
	}
}

func TestBodyCacheBudget(t *testing.T) {
	c := newBodyCache(80)
	for i := 0; i < 20; i++ {
		c.put(oci.Digest(string(rune('a'+i))), make([]byte, 10))
	}
	if c.used > 80 {
		t.Fatalf("used %d over budget", c.used)
	}
	c.put("big", make([]byte, 11)) // over budget/8: not kept
	if _, ok := c.get("big"); ok {
		t.Fatal("oversized body cached")
	}
}

type syncBuf struct{ b *bytes.Buffer }

func (s *syncBuf) Write(p []byte) (int, error) { return s.b.Write(p) }
func (s *syncBuf) String() string              { return s.b.String() }
