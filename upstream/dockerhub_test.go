package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// newTestClient builds a client with fast retry pacing.
func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Second
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.backoffBase = 5 * time.Millisecond
	c.backoffMax = 20 * time.Millisecond
	t.Cleanup(c.Close)
	return c
}

func hubClient(t *testing.T, h *fakeHub, cfg Config) *Client {
	cfg.URL = h.reg.URL
	cfg.DockerHub = true
	if cfg.Name == "" {
		cfg.Name = "docker-hub"
	}
	return newTestClient(t, cfg)
}

func TestDockerHubAnonymousPull(t *testing.T) {
	h := newFakeHub(t)
	layer := bytes.Repeat([]byte("busybox layer "), 1000)
	manifest, digest, layerDigest := h.addImage("library/busybox", "latest", layer)
	c := hubClient(t, h, Config{})
	ctx := t.Context()

	body, d, err := c.GetManifest(ctx, "busybox", "latest", nil)
	if err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	if !bytes.Equal(body, manifest) {
		t.Errorf("manifest body differs")
	}
	want := oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: oci.Digest(digest), Size: int64(len(manifest))}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("descriptor = %+v, want %+v", d, want)
	}
	if got := h.scopes(); !slices.Equal(got, []string{"repository:library/busybox:pull"}) {
		t.Errorf("token scopes requested = %q", got)
	}
	h.set(func() {
		if h.services[0] != "registry.docker.io" || h.tokenAuth[0] != "" {
			t.Errorf("token request service %q user %q", h.services[0], h.tokenAuth[0])
		}
	})

	rl, ok := c.RateLimit()
	if !ok {
		t.Fatal("no rate limit recorded")
	}
	if rl.Limit != 100 || rl.Remaining != 76 || rl.Window != 6*time.Hour || rl.Source != "192.0.2.7" || time.Since(rl.Seen) > time.Minute {
		t.Errorf("rate limit = %+v", rl)
	}

	// Same scope again: the cached token is reused, by tag, digest and HEAD.
	if _, _, err := c.GetManifest(ctx, "library/busybox", digest, nil); err != nil {
		t.Fatalf("GetManifest by digest: %v", err)
	}
	hd, err := c.HeadManifest(ctx, "busybox", "latest", nil)
	if err != nil {
		t.Fatalf("HeadManifest: %v", err)
	}
	if !reflect.DeepEqual(hd, want) {
		t.Errorf("HEAD descriptor = %+v, want %+v", hd, want)
	}
	if n := len(h.scopes()); n != 1 {
		t.Errorf("%d token requests, want 1 (cached)", n)
	}

	// Blob: redirected to the CDN, which must not see our token.
	rc, size, err := c.GetBlob(ctx, "busybox", layerDigest, 0)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, layer) || size != int64(len(layer)) {
		t.Errorf("GetBlob: err %v, %d bytes, size %d; want %d", err, len(got), size, len(layer))
	}
	// Resume from an offset: Range reaches the CDN, answered 206.
	rc, size, err = c.GetBlob(ctx, "busybox", layerDigest, 1000)
	if err != nil {
		t.Fatalf("GetBlob offset: %v", err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, layer[1000:]) || size != int64(len(layer)) {
		t.Errorf("GetBlob offset: %d bytes, size %d", len(got), size)
	}
	n, err := c.HeadBlob(ctx, "busybox", layerDigest)
	if err != nil || n != int64(len(layer)) {
		t.Errorf("HeadBlob = %d, %v", n, err)
	}
	h.mu.Lock()
	cdnAuth := slices.Clone(h.cdnAuth)
	h.mu.Unlock()
	if len(cdnAuth) != 3 {
		t.Errorf("CDN saw %d requests, want 3", len(cdnAuth))
	}
	for _, a := range cdnAuth {
		if a != "" {
			t.Errorf("CDN received Authorization %q", a)
		}
	}

	if _, _, err := c.GetManifest(ctx, "busybox", "nope", nil); !IsNotFound(err) {
		t.Errorf("unknown tag: %v, want NotFound", err)
	} else if e, _ := errors.AsType[*Error](err); e.Code != "MANIFEST_UNKNOWN" || e.Status != 404 {
		t.Errorf("unknown tag error = %+v", e)
	}
	if _, _, err := c.GetBlob(ctx, "busybox", sha256Of([]byte("x")), 0); !IsNotFound(err) {
		t.Errorf("unknown blob: %v, want NotFound", err)
	}
}

func TestDockerHubPing(t *testing.T) {
	h := newFakeHub(t)
	c := hubClient(t, h, Config{})
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if got := h.scopes(); !slices.Equal(got, []string{""}) {
		t.Errorf("ping token scopes = %q, want one request without scope", got)
	}

	h.set(func() { h.user, h.pass = "alice", "s3cret" })
	bad := hubClient(t, h, Config{Username: "alice", Password: "wrong"})
	if err := bad.Ping(t.Context()); !IsUnauthorized(err) {
		t.Errorf("Ping with wrong password: %v, want Unauthorized", err)
	}
}

func TestDockerHubCredentials(t *testing.T) {
	h := newFakeHub(t)
	h.set(func() {
		h.user, h.pass = "alice", "s3cret"
		h.private["alice/private"] = true
	})
	h.addImage("alice/private", "v1", []byte("secret layer"))

	anon := hubClient(t, h, Config{})
	if _, _, err := anon.GetManifest(t.Context(), "alice/private", "v1", nil); !IsDenied(err) {
		t.Errorf("anonymous pull of private repo: %v, want Denied", err)
	}

	c := hubClient(t, h, Config{Username: "alice", Password: "s3cret"})
	if _, _, err := c.GetManifest(t.Context(), "alice/private", "v1", nil); err != nil {
		t.Fatalf("authenticated pull: %v", err)
	}
	h.mu.Lock()
	last := h.tokenAuth[len(h.tokenAuth)-1]
	h.mu.Unlock()
	if last != "alice" {
		t.Errorf("token request user = %q, want alice", last)
	}

	wrong := hubClient(t, h, Config{Username: "alice", Password: "wrong"})
	_, _, err := wrong.GetManifest(t.Context(), "alice/private", "v1", nil)
	if !IsUnauthorized(err) {
		t.Fatalf("wrong password: %v, want Unauthorized", err)
	}
}

func TestDockerHubInsufficientScope(t *testing.T) {
	h := newFakeHub(t)
	h.addImage("library/busybox", "latest", []byte("a"))
	h.addImage("library/alpine", "latest", []byte("b"))
	c := hubClient(t, h, Config{})
	for _, repo := range []string{"busybox", "alpine", "busybox"} {
		if _, _, err := c.GetManifest(t.Context(), repo, "latest", nil); err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
	}
	want := []string{"repository:library/busybox:pull", "repository:library/alpine:pull"}
	if got := h.scopes(); !slices.Equal(got, want) {
		t.Errorf("token scopes = %q, want %q", got, want)
	}

	// A repository the token service grants nothing for: the registry says
	// insufficient_scope, the client refreshes once, then reports Denied.
	h.set(func() { h.private["library/secret"] = true })
	_, _, err := c.GetManifest(t.Context(), "secret", "latest", nil)
	if !IsDenied(err) {
		t.Fatalf("got %v, want Denied", err)
	}
	if n := h.count("GET /v2/library/secret/manifests/latest"); n != 2 {
		t.Errorf("%d registry requests, want 2 (one refresh)", n)
	}
}

func TestDockerHubTokenExpiry(t *testing.T) {
	h := newFakeHub(t)
	h.addImage("library/busybox", "latest", []byte("a"))
	c := hubClient(t, h, Config{})
	var mu sync.Mutex
	now := time.Now()
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	get := func() {
		t.Helper()
		if _, _, err := c.GetManifest(t.Context(), "busybox", "latest", nil); err != nil {
			t.Fatalf("GetManifest: %v", err)
		}
	}

	get()
	get()
	if n := len(h.scopes()); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
	// Past expires_in (less the safety margin) the client fetches a new
	// token before sending anything.
	mu.Lock()
	now = now.Add(295 * time.Second)
	mu.Unlock()
	get()
	if n := len(h.scopes()); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2", n)
	}
	before := h.count("GET /v2/library/busybox/manifests/latest")

	// The registry stops honouring the token early (invalid_token): the
	// client refreshes on the 401 and the call still succeeds.
	h.revokeAll()
	get()
	if n := len(h.scopes()); n != 3 {
		t.Errorf("%d token requests after revocation, want 3", n)
	}
	if n := h.count("GET /v2/library/busybox/manifests/latest") - before; n != 2 {
		t.Errorf("%d registry requests after revocation, want 2", n)
	}
}

func TestDockerHubTooManyRequests(t *testing.T) {
	h := newFakeHub(t)
	h.addImage("library/busybox", "latest", []byte("a"))
	c := hubClient(t, h, Config{})
	if _, _, err := c.GetManifest(t.Context(), "busybox", "latest", nil); err != nil {
		t.Fatal(err)
	}
	key := "GET /v2/library/busybox/manifests/latest"

	// A short Retry-After is honoured: one wait, then success.
	h.set(func() { h.throttle, h.retryAfter = 1, "1" })
	before := h.count(key)
	start := time.Now()
	if _, _, err := c.GetManifest(t.Context(), "busybox", "latest", nil); err != nil {
		t.Fatalf("after short Retry-After: %v", err)
	}
	if el := time.Since(start); el < 900*time.Millisecond || el > 5*time.Second {
		t.Errorf("waited %v, want about 1s", el)
	}
	if n := h.count(key) - before; n != 2 {
		t.Errorf("%d requests, want 2", n)
	}

	// A Retry-After beyond the cap fails at once, carrying the delay.
	h.set(func() { h.throttle, h.retryAfter = 5, "3600" })
	before = h.count(key)
	_, _, err := c.GetManifest(t.Context(), "busybox", "latest", nil)
	var e *Error
	if !errors.As(err, &e) || e.Kind != TooManyRequests {
		t.Fatalf("got %v, want TooManyRequests", err)
	}
	if e.RetryAfter != time.Hour || e.Code != "TOOMANYREQUESTS" || e.Status != 429 || !strings.Contains(e.Message, "pull rate limit") {
		t.Errorf("error = %+v", e)
	}
	if n := h.count(key) - before; n != 1 {
		t.Errorf("%d requests, want 1 (no retry past the cap)", n)
	}
	if rl, _ := c.RateLimit(); rl.Remaining != 0 {
		t.Errorf("rate limit remaining = %d, want 0", rl.Remaining)
	}

	// No Retry-After, but the quota says 0 remaining: retrying is pointless.
	h.set(func() { h.throttle, h.retryAfter = 5, "" })
	before = h.count(key)
	if _, _, err := c.GetManifest(t.Context(), "busybox", "latest", nil); !IsTooManyRequests(err) {
		t.Fatalf("got %v, want TooManyRequests", err)
	}
	if n := h.count(key) - before; n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestDockerHubTags(t *testing.T) {
	h := newFakeHub(t)
	want := []string{"1.35", "1.36", "1.37", "latest"}
	h.set(func() { h.tags = want })
	c := hubClient(t, h, Config{})
	var all []string
	last := ""
	for range 10 {
		tags, next, err := c.Tags(t.Context(), "busybox", 3, last)
		if err != nil {
			t.Fatalf("Tags: %v", err)
		}
		all = append(all, tags...)
		if next == "" {
			break
		}
		last = next
	}
	if !slices.Equal(all, want) {
		t.Errorf("tags = %q, want %q", all, want)
	}
}

func TestDockerHubConcurrentTokenFetch(t *testing.T) {
	h := newFakeHub(t)
	h.addImage("library/busybox", "latest", []byte("a"))
	c := hubClient(t, h, Config{})
	// Learn the challenge first, then race many callers on a cold scope.
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := c.GetManifest(context.Background(), "busybox", "latest", nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	for _, s := range h.scopes() {
		if s == "repository:library/busybox:pull" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d token requests for one scope, want 1", n)
	}
}

func TestCrossHostRedirectNeverCarriesCredentials(t *testing.T) {
	// A basic-auth registry redirecting to another port on the same IP:
	// Go's own redirect policy would forward Authorization there.
	var cdnAuth []string
	var mu sync.Mutex
	cdn := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnAuth = append(cdnAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write([]byte("blob"))
	})
	reg := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, cdn.URL+"/data", http.StatusFound)
	})
	c := newTestClient(t, Config{URL: reg.URL, Username: "u", Password: "p"})
	rc, _, err := c.GetBlob(t.Context(), "a/b", sha256Of([]byte("blob")), 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(cdnAuth) != 1 || cdnAuth[0] != "" {
		t.Errorf("CDN saw Authorization %q", cdnAuth)
	}
}
