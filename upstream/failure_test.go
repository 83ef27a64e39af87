package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// stallUntilDone blocks a handler until the client goes away or the test
// ends, whichever is first; the 10s bound turns a client that never gives
// up into a failing test rather than a hung one.
func stallUntilDone(t *testing.T) func(r *http.Request) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	return func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
}

var testDigest = sha256Of([]byte("{}"))

// sha256Of is b's digest as the string the client's methods take.
func sha256Of(b []byte) string { return string(oci.FromBytes(b)) }

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		failures  int // answered with status before succeeding
		status    int
		retries   int
		wantCalls int32
		wantKind  Kind // 0: success
	}{
		{"503 twice then success", 2, http.StatusServiceUnavailable, 0, 3, 0},
		{"500 then success", 1, http.StatusInternalServerError, 0, 2, 0},
		{"502 forever", 100, http.StatusBadGateway, 0, 4, Unavailable},
		{"503 forever, retries disabled", 100, http.StatusServiceUnavailable, -1, 1, Unavailable},
		{"503 twice, one retry", 2, http.StatusServiceUnavailable, 1, 2, Unavailable},
		{"404 not retried", 100, http.StatusNotFound, 0, 1, NotFound},
		{"403 not retried", 100, http.StatusForbidden, 0, 1, Denied},
		{"501 not retried", 100, http.StatusNotImplemented, 0, 1, Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= int32(tt.failures) {
					w.WriteHeader(tt.status)
					return
				}
				w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
				w.Write([]byte("{}"))
			})
			c := newTestClient(t, Config{URL: srv.URL, Retries: tt.retries})
			_, _, err := c.GetManifest(t.Context(), "a/b", "latest", nil)
			if got := KindOf(err); got != tt.wantKind {
				t.Errorf("kind = %v (%v), want %v", got, err, tt.wantKind)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Errorf("%d calls, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestRetryHEADAndConnectionReset(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Drop the connection without answering.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Length", "7")
		w.WriteHeader(http.StatusOK)
	})
	c := newTestClient(t, Config{URL: srv.URL})
	n, err := c.HeadBlob(t.Context(), "a/b", testDigest)
	if err != nil || n != 7 {
		t.Fatalf("HeadBlob = %d, %v", n, err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
}

func TestOnlyGETAndHEADAreRetried(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := newTestClient(t, Config{URL: srv.URL})
	_, err := c.do(t.Context(), request{op: "post", method: http.MethodPost, path: "/v2/a/b/blobs/uploads/", ok: []int{202}})
	if !IsUnavailable(err) {
		t.Errorf("got %v, want Unavailable", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("POST sent %d times, want 1", n)
	}
}

func TestRetryWaitRespectsDeadline(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := newTestClient(t, Config{URL: srv.URL})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := c.GetManifest(ctx, "a/b", "latest", nil)
	if !IsUnavailable(err) || time.Since(start) > 500*time.Millisecond {
		t.Errorf("got %v after %v; want Unavailable at once (the wait would pass the deadline)", err, time.Since(start))
	}
	if e, _ := errors.AsType[*Error](err); e == nil || e.RetryAfter != 5*time.Second {
		t.Errorf("RetryAfter not reported: %+v", e)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestStalledBodyTimesOut(t *testing.T) {
	stall := stallUntilDone(t)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("first bytes"))
		http.NewResponseController(w).Flush()
		stall(r)
	})
	c := newTestClient(t, Config{URL: srv.URL, IdleTimeout: 200 * time.Millisecond})

	start := time.Now()
	rc, size, err := c.GetBlob(t.Context(), "a/b", testDigest, 0)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	defer rc.Close()
	if size != 1000000 {
		t.Errorf("size = %d", size)
	}
	got, err := io.ReadAll(rc)
	el := time.Since(start)
	if !IsTimeout(err) {
		t.Fatalf("read error = %v, want Timeout", err)
	}
	if string(got) != "first bytes" {
		t.Errorf("read %q before the stall", got)
	}
	if el < 200*time.Millisecond || el > 2*time.Second {
		t.Errorf("stall detected after %v, want about 200ms", el)
	}

	// The same for a manifest, whose body is read inside GetManifest.
	start = time.Now()
	if _, _, err := c.GetManifest(t.Context(), "a/b", "latest", nil); !IsTimeout(err) {
		t.Errorf("GetManifest on stalled body: %v, want Timeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("GetManifest took %v", el)
	}
}

func TestSlowConsumerIsNotAStall(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 10)))
	})
	c := newTestClient(t, Config{URL: srv.URL, IdleTimeout: 50 * time.Millisecond})
	rc, _, err := c.GetBlob(t.Context(), "a/b", testDigest, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // the consumer dawdles, not the upstream
	if _, err := io.ReadFull(rc, buf); err != nil {
		t.Errorf("read after a slow consumer: %v", err)
	}
}

func TestSlowHeadersTimeOut(t *testing.T) {
	stall := stallUntilDone(t)
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		stall(r)
	})
	c := newTestClient(t, Config{URL: srv.URL, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, _, err := c.GetManifest(t.Context(), "a/b", "latest", nil)
	el := time.Since(start)
	if !IsTimeout(err) {
		t.Fatalf("got %v, want Timeout", err)
	}
	if el < 200*time.Millisecond || el > 2*time.Second {
		t.Errorf("timed out after %v, want about 200ms", el)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d calls; a timeout is not retried", n)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, Config{URL: "http://" + addr})
	start := time.Now()
	_, _, err = c.GetManifest(t.Context(), "a/b", "latest", nil)
	if !IsUnavailable(err) {
		t.Fatalf("got %v, want Unavailable", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("took %v", el)
	}
	if err := c.Ping(t.Context()); !IsUnavailable(err) {
		t.Errorf("Ping: %v, want Unavailable", err)
	}
}

func TestContextCancellation(t *testing.T) {
	stall := stallUntilDone(t)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { stall(r) })
	c := newTestClient(t, Config{URL: srv.URL, Timeout: time.Minute})

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := c.GetManifest(ctx, "a/b", "latest", nil)
	if !errors.Is(err, context.Canceled) || KindOf(err) != 0 {
		t.Errorf("got %v, want wrapped context.Canceled", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("cancellation took %v", el)
	}

	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, _, err = c.GetManifest(ctx, "a/b", "latest", nil)
	if !errors.Is(err, context.DeadlineExceeded) || !IsTimeout(err) {
		t.Errorf("got %v, want Timeout wrapping DeadlineExceeded", err)
	}
}

func TestContextCancelDuringBackoff(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := newTestClient(t, Config{URL: srv.URL})
	c.backoffBase, c.backoffMax = time.Minute, time.Minute
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := c.GetManifest(ctx, "a/b", "latest", nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("got %v after %v", err, time.Since(start))
	}
}

func TestManifestVerification(t *testing.T) {
	good := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	goodDigest := sha256Of(good)
	big := make([]byte, oci.MaxManifestSize+1)
	tests := []struct {
		name     string
		ref      string
		body     []byte
		header   map[string]string
		wantKind Kind
		want     oci.Descriptor
	}{
		{name: "tag, digest header", ref: "latest", body: good,
			header: map[string]string{"Docker-Content-Digest": goodDigest, "Content-Type": "application/vnd.oci.image.manifest.v1+json"},
			want:   oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: oci.Digest(goodDigest), Size: int64(len(good))}},
		{name: "tag, no digest header: computed", ref: "latest", body: good,
			header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json; charset=utf-8"},
			want:   oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: oci.Digest(goodDigest), Size: int64(len(good))}},
		{name: "generic content type: media type from body", ref: goodDigest, body: good,
			header: map[string]string{"Content-Type": "application/json"},
			want:   oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: oci.Digest(goodDigest), Size: int64(len(good))}},
		{name: "digest ref, wrong body", ref: goodDigest, body: []byte(`{"tampered":true}`),
			header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, wantKind: BadResponse},
		{name: "digest ref, wrong body, lying header", ref: goodDigest, body: []byte(`{"tampered":true}`),
			header: map[string]string{"Docker-Content-Digest": goodDigest}, wantKind: BadResponse},
		{name: "tag, header disagrees with body", ref: "latest", body: good,
			header: map[string]string{"Docker-Content-Digest": sha256Of([]byte("other"))}, wantKind: BadResponse},
		{name: "oversize with Content-Length", ref: "latest", body: big, wantKind: BadResponse},
		{name: "oversize chunked", ref: "latest", body: big, header: map[string]string{"X-Chunked": "1"}, wantKind: BadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				if tt.header["X-Chunked"] == "" {
					w.Header().Set("Content-Length", fmt.Sprint(len(tt.body)))
				}
				w.Write(tt.body)
			})
			c := newTestClient(t, Config{URL: srv.URL})
			body, d, err := c.GetManifest(t.Context(), "a/b", tt.ref, nil)
			if got := KindOf(err); got != tt.wantKind {
				t.Fatalf("kind = %v (%v), want %v", got, err, tt.wantKind)
			}
			if tt.wantKind == 0 && (!reflect.DeepEqual(d, tt.want) || string(body) != string(tt.body)) {
				t.Errorf("descriptor = %+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestHeadManifestFallsBackToGet(t *testing.T) {
	body := []byte(`{"schemaVersion":2}`)
	var gets atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method == http.MethodGet {
			gets.Add(1)
			w.Write(body)
		}
	})
	c := newTestClient(t, Config{URL: srv.URL})
	d, err := c.HeadManifest(t.Context(), "a/b", "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := oci.Descriptor{MediaType: oci.MediaTypeDockerManifest, Digest: oci.FromBytes(body), Size: int64(len(body))}
	if !reflect.DeepEqual(d, want) || gets.Load() != 1 {
		t.Errorf("descriptor = %+v after %d GETs, want %+v after 1", d, gets.Load(), want)
	}
}

func TestInvalidInputNeverSent(t *testing.T) {
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	c := newTestClient(t, Config{URL: srv.URL})
	ctx := t.Context()
	checks := map[string]error{}
	_, _, checks["repo with .."] = c.GetManifest(ctx, "a/../../v2", "latest", nil)
	_, _, checks["upper-case repo"] = c.GetManifest(ctx, "Library/busybox", "latest", nil)
	_, _, checks["tag with slash"] = c.GetManifest(ctx, "a/b", "x/y", nil)
	_, checks["short digest"] = c.HeadBlob(ctx, "a/b", "sha256:abc")
	_, _, checks["unknown algorithm"] = c.GetBlob(ctx, "a/b", "md5:d41d8cd98f00b204e9800998ecf8427e", 0)
	_, _, checks["negative offset"] = c.GetBlob(ctx, "a/b", testDigest, -1)
	_, _, checks["query in repo"] = c.Tags(ctx, "a/b?x=1", 0, "")
	for name, err := range checks {
		if !IsInvalid(err) {
			t.Errorf("%s: %v, want Invalid", name, err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

func TestRangeRefusedFallsBackToFullFetch(t *testing.T) {
	blob := []byte("0123456789")
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Write(blob)
	})
	c := newTestClient(t, Config{URL: srv.URL})
	rc, size, err := c.GetBlob(t.Context(), "a/b", testDigest, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if string(got) != "456789" || size != 10 {
		t.Errorf("got %q, size %d", got, size)
	}
	if _, _, err := c.GetBlob(t.Context(), "a/b", testDigest, 11); !IsBadResponse(err) {
		t.Errorf("offset past the end: %v, want BadResponse", err)
	}
}
