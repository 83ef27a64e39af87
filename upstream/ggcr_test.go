package upstream

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/wharf-registry/wharf/oci"
)

// basicAuth puts go-containerregistry's in-process registry behind basic
// auth, the way a plain self-hosted registry is usually deployed.
func basicAuth(user, pass string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// push uploads blobs and a manifest with plain HTTP, as a client would.
func push(t *testing.T, base, user, pass, repo, tag string, manifest []byte, blobs ...[]byte) {
	t.Helper()
	do := func(method, url string, body []byte, ct string) *http.Response {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.SetBasicAuth(user, pass)
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, b := range blobs {
		resp := do(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, "")
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %s", resp.Status)
		}
		loc, _ := resp.Location()
		q := loc.Query()
		q.Set("digest", sha256Of(b))
		loc.RawQuery = q.Encode()
		if resp := do(http.MethodPut, loc.String(), b, "application/octet-stream"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("finish upload: %s", resp.Status)
		}
	}
	if resp := do(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, manifest, "application/vnd.oci.image.manifest.v1+json"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %s", resp.Status)
	}
}

func TestGGCRRegistryWithBasicAuth(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(basicAuth("bob", "hunter2", reg))
	t.Cleanup(srv.Close)

	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte{1, 2, 3, 4}, 4096)
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}`,
		sha256Of(config), len(config), sha256Of(layer), len(layer))
	push(t, srv.URL, "bob", "hunter2", "team/app", "v1", manifest, config, layer)
	push(t, srv.URL, "bob", "hunter2", "team/app", "v2", manifest)
	mDigest := sha256Of(manifest)
	lDigest := sha256Of(layer)

	c := newTestClient(t, Config{Name: "local", URL: srv.URL, Username: "bob", Password: "hunter2"})
	ctx := t.Context()
	if c.Name() != "local" || c.Host() != srv.Listener.Addr().String() {
		t.Errorf("Name/Host = %q %q", c.Name(), c.Host())
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	body, d, err := c.GetManifest(ctx, "team/app", "v1", nil)
	if err != nil {
		t.Fatalf("GetManifest: %v", err)
	}
	if !bytes.Equal(body, manifest) || d.Digest != oci.Digest(mDigest) || d.MediaType != "application/vnd.oci.image.manifest.v1+json" || d.Size != int64(len(manifest)) {
		t.Errorf("GetManifest = %+v", d)
	}
	if _, d2, err := c.GetManifest(ctx, "team/app", mDigest, nil); err != nil || !reflect.DeepEqual(d2, d) {
		t.Errorf("GetManifest by digest = %+v, %v", d2, err)
	}
	if hd, err := c.HeadManifest(ctx, "team/app", "v1", nil); err != nil || !reflect.DeepEqual(hd, d) {
		t.Errorf("HeadManifest = %+v, %v; want %+v", hd, err, d)
	}

	rc, size, err := c.GetBlob(ctx, "team/app", lDigest, 0)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, layer) || size != int64(len(layer)) {
		t.Errorf("GetBlob: %d bytes, size %d", len(got), size)
	}
	// This registry only understands closed ranges, so resuming goes
	// through the full-fetch fallback; the caller cannot tell.
	rc, size, err = c.GetBlob(ctx, "team/app", lDigest, 100)
	if err != nil {
		t.Fatalf("GetBlob at offset: %v", err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, layer[100:]) || size != int64(len(layer)) {
		t.Errorf("GetBlob at offset: %d bytes, size %d", len(got), size)
	}
	if n, err := c.HeadBlob(ctx, "team/app", lDigest); err != nil || n != int64(len(layer)) {
		t.Errorf("HeadBlob = %d, %v", n, err)
	}
	tags, next, err := c.Tags(ctx, "team/app", 0, "")
	if err != nil || !slices.Equal(tags, []string{"v1", "v2"}) || next != "" {
		t.Errorf("Tags = %q %q %v", tags, next, err)
	}

	if _, _, err := c.GetManifest(ctx, "team/app", "v9", nil); !IsNotFound(err) {
		t.Errorf("missing tag: %v, want NotFound", err)
	}
	if _, err := c.HeadManifest(ctx, "team/app", "v9", nil); !IsNotFound(err) {
		t.Errorf("missing tag (HEAD): %v, want NotFound", err)
	}
	if _, _, err := c.GetBlob(ctx, "team/app", sha256Of([]byte("nope")), 0); !IsNotFound(err) {
		t.Errorf("missing blob: %v, want NotFound", err)
	}
	if _, _, err := c.GetManifest(ctx, "team/other", "v1", nil); !IsNotFound(err) {
		t.Errorf("missing repo: %v, want NotFound", err)
	}

	for name, cfg := range map[string]Config{
		"wrong password": {URL: srv.URL, Username: "bob", Password: "nope"},
		"anonymous":      {URL: srv.URL},
	} {
		c := newTestClient(t, cfg)
		if _, _, err := c.GetManifest(ctx, "team/app", "v1", nil); !IsUnauthorized(err) {
			t.Errorf("%s: %v, want Unauthorized", name, err)
		}
		if err := c.Ping(ctx); !IsUnauthorized(err) {
			t.Errorf("%s Ping: %v, want Unauthorized", name, err)
		}
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := newTestClient(t, Config{URL: srv.URL, CAFile: caFile}).Ping(t.Context()); err != nil {
		t.Errorf("with ca_file: %v", err)
	}
	if err := newTestClient(t, Config{URL: srv.URL, Insecure: true}).Ping(t.Context()); err != nil {
		t.Errorf("insecure: %v", err)
	}

	c := newTestClient(t, Config{URL: srv.URL})
	_, _, err := c.GetManifest(t.Context(), "a/b", "latest", nil)
	if !IsUnavailable(err) {
		t.Errorf("untrusted certificate: %v, want Unavailable", err)
	}
	if retryable(err) {
		t.Errorf("an untrusted certificate must not be retried")
	}
}

func TestNewValidates(t *testing.T) {
	bad := map[string]Config{
		"no url":            {},
		"ftp":               {URL: "ftp://example.com"},
		"path":              {URL: "https://example.com/v2"},
		"user info":         {URL: "https://u:p@example.com"},
		"half credentials":  {URL: "https://example.com", Username: "u"},
		"negative timeout":  {URL: "https://example.com", Timeout: -1},
		"missing ca file":   {URL: "https://example.com", CAFile: "/nonexistent/ca.pem"},
		"ca with transport": {URL: "https://example.com", CAFile: "x", Transport: http.DefaultTransport},
	}
	for name, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if bytes.Contains([]byte(err.Error()), []byte(":p@")) {
			t.Errorf("%s: error leaks credentials: %v", name, err)
		}
	}
	c, err := New(Config{URL: "https://registry-1.docker.io/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "registry-1.docker.io" || c.timeout != DefaultTimeout || c.idleTimeout != DefaultIdleTimeout || c.retries != DefaultRetries {
		t.Errorf("defaults not applied: %+v", c)
	}
}
