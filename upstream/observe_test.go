package upstream

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu        sync.Mutex
	exchanges []string // "endpoint method status"
	failures  []string // "endpoint kind"
	received  int64
}

func (r *recorder) Exchange(endpoint, method string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, fmt.Sprintf("%s %s %d", endpoint, method, status))
}

func (r *recorder) Failed(endpoint string, k Kind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, endpoint+" "+k.String())
}

func (r *recorder) Received(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received += n
}

func (r *recorder) take() (ex, fail []string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ex, fail, n = r.exchanges, r.failures, r.received
	r.exchanges, r.failures, r.received = nil, nil, 0
	return
}

func TestObserver(t *testing.T) {
	h := newFakeHub(t)
	layer := bytes.Repeat([]byte("observed layer "), 500)
	manifest, _, layerDigest := h.addImage("library/busybox", "latest", layer)
	rec := &recorder{}
	c := hubClient(t, h, Config{Observer: rec})
	ctx := t.Context()

	// A manifest GET: challenged, a token fetched, then answered.
	if _, _, err := c.GetManifest(ctx, "busybox", "latest", nil); err != nil {
		t.Fatal(err)
	}
	ex, fail, n := rec.take()
	want := []string{"manifest GET 401", "token GET 200", "manifest GET 200"}
	if fmt.Sprint(ex) != fmt.Sprint(want) || len(fail) != 0 || n < int64(len(manifest)) {
		t.Errorf("manifest GET: exchanges %q failures %q received %d; want %q, none, >= %d", ex, fail, n, want, len(manifest))
	}

	// A blob: redirected to the CDN; every body byte is counted.
	rc, _, err := c.GetBlob(ctx, "busybox", layerDigest, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	ex, fail, n = rec.take()
	if len(ex) != 2 || ex[0] != "blob GET 307" || ex[1] != "blob GET 200" || len(fail) != 0 || n < int64(len(layer)) {
		t.Errorf("blob GET: exchanges %q failures %q received %d (layer %d)", ex, fail, n, len(layer))
	}

	// A failure is reported once per call, by kind; retries are exchanges.
	if _, _, err := c.GetManifest(ctx, "busybox", "nope", nil); !IsNotFound(err) {
		t.Fatal(err)
	}
	if _, fail, _ = rec.take(); fmt.Sprint(fail) != "[manifest not found]" {
		t.Errorf("404: failures %q", fail)
	}
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c2 := newTestClient(t, Config{URL: s.URL, Observer: rec, Retries: 2})
	if _, err := c2.HeadBlob(ctx, "x/y", testDigest); !IsUnavailable(err) {
		t.Fatal(err)
	}
	ex, fail, _ = rec.take()
	if len(ex) != 3 || ex[2] != "blob HEAD 503" || fmt.Sprint(fail) != "[blob unavailable]" {
		t.Errorf("503 with 2 retries: exchanges %q failures %q", ex, fail)
	}

	// HEAD falling back to GET is one failed call, not two.
	s3 := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "application/json") // says nothing: fall back
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
	c3 := newTestClient(t, Config{URL: s3.URL, Observer: rec})
	if _, err := c3.HeadManifest(ctx, "x/y", "latest", nil); !IsNotFound(err) {
		t.Fatal(err)
	}
	if _, fail, _ = rec.take(); fmt.Sprint(fail) != "[manifest not found]" {
		t.Errorf("HEAD fallback: failures %q", fail)
	}
	// No server at all: the exchange has no status.
	c4 := newTestClient(t, Config{URL: "http://127.0.0.1:1", Observer: rec, Retries: -1})
	if err := c4.Ping(ctx); !IsUnavailable(err) {
		t.Fatal(err)
	}
	if ex, fail, _ = rec.take(); fmt.Sprint(ex) != "[ping GET 0]" || fmt.Sprint(fail) != "[ping unavailable]" {
		t.Errorf("refused: exchanges %q failures %q", ex, fail)
	}
}

func TestEndpointOf(t *testing.T) {
	for op, want := range map[string]string{
		"GET blob library/busybox@sha256:abc":   "blob",
		"HEAD blob a/b@sha256:abc":              "blob",
		"GET manifest library/busybox:latest":   "manifest",
		"HEAD manifest a@sha256:abc":            "manifest",
		"GET tags library/busybox":              "tags",
		"token repository:library/busybox:pull": "token",
		"token":                                 "token",
		"ping":                                  "ping",
		"PUT something":                         "other",
	} {
		if got := endpointOf(op); got != want {
			t.Errorf("endpointOf(%q) = %q, want %q", op, got, want)
		}
	}
}
