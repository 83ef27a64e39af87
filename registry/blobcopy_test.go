package registry

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/upstream"
)

// gatedOrigin is an upstream registry whose one blob is sent in two
// halves: the second only after release is closed, so a fill of it is
// certainly still running while clients are streamed from it.
type gatedOrigin struct {
	*httptest.Server
	blob    []byte
	digest  string
	release chan struct{}
	gets    atomic.Int32 // upstream GETs of the blob
}

func newGatedOrigin(t *testing.T, size int) *gatedOrigin {
	t.Helper()
	o := &gatedOrigin{blob: make([]byte, size), release: make(chan struct{})}
	crand.Read(o.blob)
	o.digest = sha(o.blob)
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+o.digest) {
			reg.ServeHTTP(w, r)
			return
		}
		o.gets.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Docker-Content-Digest", o.digest)
		w.Header().Set("Content-Length", fmt.Sprint(len(o.blob)))
		half := len(o.blob) / 2
		w.Write(o.blob[:half])
		http.NewResponseController(w).Flush()
		select {
		case <-o.release:
		case <-r.Context().Done():
			return
		}
		w.Write(o.blob[half:])
	}))
	t.Cleanup(o.Server.Close)
	return o
}

// proxyRegistry is the API with one default pull-through namespace "hub"
// in front of origin, served over proto.
func proxyRegistry(t *testing.T, origin string, proto int, blobCopy string) (*testRegistry, *cache.Proxy) {
	t.Helper()
	store, idx := newStoreAndIndex(t)
	up, err := upstream.New(upstream.Config{Name: "hub", URL: origin})
	if err != nil {
		t.Fatal(err)
	}
	p := cache.New(cache.Options{Name: "hub", Upstream: up, Store: store, Index: idx})
	srv := startAPIServer(t, New(Options{
		Hosted:           hosted.New(store, idx, nil),
		HostedNamespaces: []string{"team"},
		Proxies:          []ProxyNamespace{{Name: "hub", Default: true, Proxy: p}},
		BlobCopy:         blobCopy,
	}), proto)
	// Registered after the server: cleanups run last first, so the server
	// has drained before the proxy and index close.
	t.Cleanup(func() { p.Close() })
	return &testRegistry{Server: srv, store: store, idx: idx, proto: proto}, p
}

// TestProxyBlobOverProtocols pulls a proxied blob while its fill is still
// running (whole and a Range, both streamed from the fill), then again from
// disk, over HTTP/1.1 and HTTP/2.
func TestProxyBlobOverProtocols(t *testing.T) {
	for _, pr := range protocols {
		t.Run(pr.name, func(t *testing.T) {
			origin := newGatedOrigin(t, 3<<20+17)
			r, _ := proxyRegistry(t, origin.URL, pr.proto, pr.blobCopy)
			path := "/v2/library/app/blobs/" + origin.digest
			size := len(origin.blob)

			// Client.Do returns at the response headers, which the fill sends
			// with the first half: both answers below start streaming before
			// the origin sends the rest, so they can only come from the fill.
			whole := r.start(t, path, "")
			part := r.start(t, path, "bytes=100-199")
			close(origin.release)
			r.finish(t, "streamed whole", whole, http.StatusOK, origin.blob)
			r.finish(t, "streamed range", part, http.StatusPartialContent, origin.blob[100:200])

			waitLinked(t, r.idx, "hub/library/app", oci.Digest(origin.digest))
			r.do(t, step{name: "stored whole", method: "GET", path: path, status: 200, bodyIs: origin.blob,
				want: map[string]string{"Docker-Content-Digest": origin.digest, "Content-Length": fmt.Sprint(size)}})
			r.do(t, step{name: "stored range", method: "GET", path: path, headers: map[string]string{"Range": "bytes=1000-"},
				status: 206, bodyIs: origin.blob[1000:], want: map[string]string{"Content-Range": fmt.Sprintf("bytes 1000-%d/%d", size-1, size)}})
			if n := origin.gets.Load(); n != 1 {
				t.Errorf("the origin was asked for the blob %d times, want once", n)
			}
		})
	}
}

// start sends a GET and returns once the response headers are in.
func (r *testRegistry) start(t *testing.T, path, rangeHdr string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHdr != "" {
		req.Header.Set("Range", rangeHdr)
	}
	resp, err := r.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// finish reads a response started with start and checks it.
func (r *testRegistry) finish(t *testing.T, name string, resp *http.Response, status int, want []byte) {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s: reading the body: %v", name, err)
	}
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d", name, resp.StatusCode, status)
	}
	if resp.ProtoMajor != r.proto {
		t.Errorf("%s: answered over %s, want HTTP/%d", name, resp.Proto, r.proto)
	}
	if !bytes.Equal(body, want) {
		t.Errorf("%s: got %d bytes (%s), want %d (%s)", name, len(body), sha(body), len(want), sha(want))
	}
}

// waitLinked waits until the fill of d is committed and linked to repo:
// it is indexed a moment after its clients got the last byte.
func waitLinked(t *testing.T, idx index.Index, repo string, d oci.Digest) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var linked bool
		if err := idx.View(func(tx index.Txn) error {
			var err error
			linked, err = tx.BlobLinked(repo, d)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if linked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not linked to %s after 10s", d, repo)
		}
	}
}

// readFromWriter is an HTTP/1.1 response writer seen from a handler: it
// has ReadFrom (net/http's uses sendfile), and counts what reached it.
type readFromWriter struct {
	http.ResponseWriter
	calls atomic.Int32
	n     atomic.Int64
}

func (w *readFromWriter) ReadFrom(src io.Reader) (int64, error) {
	w.calls.Add(1)
	n, err := w.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	w.n.Add(n)
	return n, err
}

// TestSendfileKeptOnHTTP1 checks that a stored blob served with
// blob_copy: sendfile still reaches net/http's own ReadFrom (which is what
// calls sendfile) on HTTP/1.1, now that the recorder has a fallback.
func TestSendfileKeptOnHTTP1(t *testing.T) {
	store, idx := newStoreAndIndex(t)
	h := New(Options{Hosted: hosted.New(store, idx, nil), HostedNamespaces: []string{"team"}, BlobCopy: "sendfile"})
	var last atomic.Pointer[readFromWriter]
	srv := startAPIServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			rf := &readFromWriter{ResponseWriter: w}
			last.Store(rf)
			w = rf
		}
		h.ServeHTTP(w, r)
	}), 1)
	r := &testRegistry{Server: srv, proto: 1}
	blob := bytes.Repeat([]byte("sendfile "), 100_000)
	r.do(t, step{name: "push", method: "POST", path: "/v2/team/app/blobs/uploads/?digest=" + sha(blob), body: blob, status: 201})
	r.do(t, step{name: "get", method: "GET", path: "/v2/team/app/blobs/" + sha(blob), status: 200, bodyIs: blob})
	rf := last.Load()
	if rf == nil || rf.calls.Load() == 0 || rf.n.Load() != int64(len(blob)) {
		t.Fatalf("the server's ReadFrom was not used for the whole blob (%d bytes)", len(blob))
	}
}

// plainWriter is a ResponseWriter with nothing but the three methods, as
// HTTP/2's is as far as ReadFrom goes.
type plainWriter struct {
	h   http.Header
	buf bytes.Buffer
}

func (w *plainWriter) Header() http.Header         { return w.h }
func (w *plainWriter) WriteHeader(int)             {}
func (w *plainWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

// TestRecorderReadFromWithoutServerReadFrom: a copy into the recorder works
// when the writer below has no ReadFrom: no panic, no recursion back into
// the recorder, every byte counted.
func TestRecorderReadFromWithoutServerReadFrom(t *testing.T) {
	want := make([]byte, 3<<20+5)
	crand.Read(want)
	f, err := os.CreateTemp(t.TempDir(), "blob")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(want)
	f.Seek(0, io.SeekStart)
	pw := &plainWriter{h: http.Header{}}
	rec := newRecorder(pw)
	n, err := io.Copy(rec, io.LimitReader(f, int64(len(want))))
	if err != nil || n != int64(len(want)) {
		t.Fatalf("copy = %d, %v; want %d", n, err, len(want))
	}
	if !bytes.Equal(pw.buf.Bytes(), want) || rec.bytes != n || rec.status != http.StatusOK {
		t.Fatalf("wrote %d bytes (recorded %d, status %d), want %d", pw.buf.Len(), rec.bytes, rec.status, len(want))
	}
	rec.Flush() // nothing to flush into, and no panic
}

// recordSink is a slog.Handler that hands every record to a channel.
type recordSink chan slog.Record

func (s recordSink) Enabled(context.Context, slog.Level) bool      { return true }
func (s recordSink) Handle(_ context.Context, r slog.Record) error { s <- r.Clone(); return nil }
func (s recordSink) WithAttrs([]slog.Attr) slog.Handler            { return s }
func (s recordSink) WithGroup(string) slog.Handler                 { return s }

// waitRecord returns the next record with message msg.
func waitRecord(t *testing.T, s recordSink, msg string) slog.Record {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-s:
			if r.Message == msg {
				return r
			}
		case <-timeout:
			t.Fatalf("no %q log record within 10s", msg)
		}
	}
}

func recordAttrs(r slog.Record) map[string]slog.Value {
	m := map[string]slog.Value{}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
	return m
}

// requestCount is wharf_http_requests_total for one route, method and class.
func requestCount(t *testing.T, m *metrics.Metrics, route, method, class string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "wharf_http_requests_total" {
			continue
		}
		for _, s := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["route"] == route && l["method"] == method && l["code"] == class {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestHandlerPanicIsAFailure: a handler that panics, before or after its
// status went out, is logged and counted as a 500, never as the 200 it may
// have started; a body under way is cut off, not ended cleanly.
func TestHandlerPanicIsAFailure(t *testing.T) {
	for _, pr := range []int{1, 2} {
		for _, tc := range []struct {
			name         string
			afterHeaders bool
		}{{"before headers", false}, {"after headers", true}} {
			t.Run(fmt.Sprintf("HTTP/%d %s", pr, tc.name), func(t *testing.T) {
				sink := make(recordSink, 64)
				m := metrics.New("test")
				h := New(Options{HostAll: true, Logger: slog.New(sink), Metrics: m, AccessLog: true})
				h.table[KindBase]["GET"] = func(w http.ResponseWriter, r *http.Request, _ Route, _ target) error {
					if tc.afterHeaders {
						w.WriteHeader(http.StatusOK)
						w.Write([]byte("partial"))
						http.NewResponseController(w).Flush()
					}
					panic("boom")
				}
				srv := startAPIServer(t, h, pr)
				resp, err := srv.Client().Get(srv.URL + "/v2/")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				switch {
				case tc.afterHeaders && err == nil:
					t.Errorf("a body cut off by a panic was read as complete")
				case !tc.afterHeaders && (err != nil || resp.StatusCode != http.StatusInternalServerError):
					t.Errorf("panic before headers: %v, %+v; want a 500", err, resp)
				}

				if st := recordAttrs(waitRecord(t, sink, "handler panic"))["stack"].String(); !strings.Contains(st, "TestHandlerPanicIsAFailure") {
					t.Errorf("the panic's log line has no stack of the panicking handler: %q", st)
				}
				attrs := recordAttrs(waitRecord(t, sink, "request"))
				if st := attrs["status"]; st.Kind() != slog.KindInt64 || st.Int64() != http.StatusInternalServerError {
					t.Errorf("access log status=%v, want 500 (%v)", st, attrs)
				}
				if p := attrs["panic"]; p.Kind() != slog.KindBool || !p.Bool() {
					t.Errorf("access log does not say panic=true: %v", attrs)
				}
				if n := requestCount(t, m, "base", "GET", "5xx"); n != 1 {
					t.Errorf("5xx requests counted: %v, want 1", n)
				}
				if n := requestCount(t, m, "base", "GET", "2xx"); n != 0 {
					t.Errorf("2xx requests counted: %v, want 0", n)
				}
			})
		}
	}
}

// TestCutOffBodyIsAFailure: a body that breaks off after its 200 went out
// is logged and counted as what it was: a 5xx when the server's side
// failed (an upstream stream broke), 499 when the client went away.
func TestCutOffBodyIsAFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		class string
		want  int64
	}{
		{"upstream broke", oci.Errorf(oci.CodeUnavailable, "the upstream registry is unreachable"), "5xx", http.StatusServiceUnavailable},
		{"bad bytes", fmt.Errorf("upstream sent bad content: %w", oci.ErrDigestInvalid), "5xx", http.StatusBadGateway},
		{"disk failed", errors.New("read blob: input/output error"), "5xx", http.StatusInternalServerError},
		{"client left", context.Canceled, "4xx", 499},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := make(recordSink, 64)
			m := metrics.New("test")
			h := New(Options{HostAll: true, Logger: slog.New(sink), Metrics: m, AccessLog: true})
			h.table[KindBase]["GET"] = func(w http.ResponseWriter, r *http.Request, _ Route, _ target) error {
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("partial"))
				http.NewResponseController(w).Flush()
				return tc.err
			}
			srv := startAPIServer(t, h, 1)
			resp, err := srv.Client().Get(srv.URL + "/v2/")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Error("a body cut off mid-way was read as complete")
			}
			attrs := recordAttrs(waitRecord(t, sink, "request"))
			if st := attrs["status"]; st.Kind() != slog.KindInt64 || st.Int64() != tc.want {
				t.Errorf("access log status=%v, want %d (%v)", st, tc.want, attrs)
			}
			if a := attrs["aborted"]; a.Kind() != slog.KindBool || !a.Bool() {
				t.Errorf("access log does not say aborted=true: %v", attrs)
			}
			if n := requestCount(t, m, "base", "GET", tc.class); n != 1 {
				t.Errorf("%s requests counted: %v, want 1", tc.class, n)
			}
			if n := requestCount(t, m, "base", "GET", "2xx"); n != 0 {
				t.Errorf("2xx requests counted: %v, want 0", n)
			}
		})
	}
}
