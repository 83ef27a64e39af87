package registry

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

type testRegistry struct {
	*httptest.Server
	store *storage.Store
	idx   index.Index
	proto int // the HTTP major version every answer must come in
}

// newTestRegistry serves the API over plain HTTP/1.1.
func newTestRegistry(t testing.TB, o Options) *testRegistry {
	t.Helper()
	return newTestRegistryProto(t, o, 1)
}

// newTestRegistryProto serves the API over HTTP/1.1 (proto 1), or over
// TLS with HTTP/2 (proto 2), which Go clients such as crane negotiate and
// whose ResponseWriter has no ReadFrom. Requests go through r.Client().
func newTestRegistryProto(t testing.TB, o Options, proto int) *testRegistry {
	t.Helper()
	store, idx := newStoreAndIndex(t)
	o.Hosted = hosted.New(store, idx, nil)
	if o.HostedNamespaces == nil && !o.HostAll {
		o.HostedNamespaces = []string{"team", "other"}
	}
	srv := startAPIServer(t, New(o), proto)
	return &testRegistry{Server: srv, store: store, idx: idx, proto: proto}
}

// newStoreAndIndex opens a blob store and a Badger index in a temporary
// directory; the index is closed when the test ends.
func newStoreAndIndex(t testing.TB) (*storage.Store, index.Index) {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Open(filepath.Join(dir, "index"), index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return store, idx
}

// startAPIServer starts h over HTTP/1.1 (proto 1) or HTTP/2 over TLS
// (proto 2); srv.Client() speaks the same.
func startAPIServer(t testing.TB, h http.Handler, proto int) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if proto == 2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// protocols are the ways a client reaches the API, with both ways of
// copying stored blobs: on HTTP/1.1 "sendfile" goes through the server's
// ReadFrom; HTTP/2 has none.
var protocols = []struct {
	name     string
	proto    int
	blobCopy string
}{
	{"http1.1/sendfile", 1, "sendfile"},
	{"http1.1/buffer", 1, "buffer"},
	{"h2/sendfile", 2, "sendfile"},
	{"h2/buffer", 2, "buffer"},
}

// eachProtocol runs f against a fresh registry per entry of protocols.
func eachProtocol(t *testing.T, o Options, f func(t *testing.T, r *testRegistry)) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			o := o
			o.BlobCopy = p.blobCopy
			f(t, newTestRegistryProto(t, o, p.proto))
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sha512d(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(s[:])
}

// step is one request of a scenario and what it must answer.
type step struct {
	name    string
	method  string
	path    string
	headers map[string]string
	body    []byte
	status  int
	code    string            // OCI error code expected in the body
	want    map[string]string // response headers that must match exactly ("*" = present)
	bodyIs  []byte
}

func (r *testRegistry) do(t *testing.T, s step) *http.Response {
	t.Helper()
	req, err := http.NewRequest(s.method, r.URL+s.path, bytes.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	if s.body == nil {
		req.Body = http.NoBody
		req.ContentLength = 0
	}
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	resp, err := r.Client().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", s.name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Errorf("%s: %s %s: reading the body: %v", s.name, s.method, s.path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.ProtoMajor != r.proto {
		t.Errorf("%s: answered over %s, want HTTP/%d", s.name, resp.Proto, r.proto)
	}
	if resp.StatusCode != s.status {
		t.Errorf("%s: %s %s = %d, want %d; body %s", s.name, s.method, s.path, resp.StatusCode, s.status, body)
	}
	if resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("%s: missing Docker-Distribution-API-Version", s.name)
	}
	if s.code != "" {
		var env struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) == 0 {
			if s.method != http.MethodHead {
				t.Errorf("%s: body %q is not an OCI error envelope", s.name, body)
			}
		} else if env.Errors[0].Code != s.code {
			t.Errorf("%s: code %s (%s), want %s", s.name, env.Errors[0].Code, env.Errors[0].Message, s.code)
		} else if env.Errors[0].Message == "" {
			t.Errorf("%s: error has no message", s.name)
		}
	}
	for k, v := range s.want {
		got := resp.Header.Get(k)
		if (v == "*" && got == "") || (v != "*" && got != v) {
			t.Errorf("%s: header %s = %q, want %q", s.name, k, got, v)
		}
	}
	if s.bodyIs != nil && !bytes.Equal(body, s.bodyIs) {
		t.Errorf("%s: body = %q, want %q", s.name, trunc(body), trunc(s.bodyIs))
	}
	return resp
}

func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func manifestFor(config []byte, layers ...[]byte) []byte {
	type d struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        d      `json:"config"`
		Layers        []d    `json:"layers"`
	}{2, oci.MediaTypeOCIManifest, d{"application/vnd.oci.image.config.v1+json", sha(config), len(config)}, []d{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, d{"application/vnd.oci.image.layer.v1.tar+gzip", sha(l), len(l)})
	}
	b, _ := json.Marshal(m)
	return b
}

func TestAPIScenario(t *testing.T) {
	eachProtocol(t, Options{}, apiScenario)
}

func apiScenario(t *testing.T, r *testRegistry) {
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte("layer-bytes "), 1000)
	chunk1, chunk2 := layer[:5000], layer[5000:]
	dLayer, dConfig := sha(layer), sha(config)
	manifest := manifestFor(config, layer)
	dManifest := sha(manifest)
	ct := map[string]string{"Content-Type": oci.MediaTypeOCIManifest}
	bad := sha([]byte("nope"))

	// Start a chunked upload and learn its id.
	resp := r.do(t, step{name: "start upload", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202,
		want: map[string]string{"Location": "*", "Docker-Upload-UUID": "*", "Range": "0-0"}})
	loc := resp.Header.Get("Location")
	id := resp.Header.Get("Docker-Upload-UUID")

	steps := []step{
		{name: "base", method: "GET", path: "/v2/", status: 200, bodyIs: []byte("{}")},
		{name: "patch chunk 1", method: "PATCH", path: loc, body: chunk1,
			headers: map[string]string{"Content-Range": "0-4999", "Content-Type": "application/octet-stream"},
			status:  202, want: map[string]string{"Range": "0-4999", "Location": loc, "Docker-Upload-UUID": id}},
		{name: "out of order chunk", method: "PATCH", path: loc, body: chunk2,
			headers: map[string]string{"Content-Range": fmt.Sprintf("6000-%d", 6000+len(chunk2)-1)},
			status:  416, code: "RANGE_INVALID", want: map[string]string{"Range": "0-4999"}},
		{name: "range/length mismatch", method: "PATCH", path: loc, body: chunk2,
			headers: map[string]string{"Content-Range": "5000-5001"}, status: 416, code: "RANGE_INVALID"},
		{name: "upload status", method: "GET", path: loc, status: 204, want: map[string]string{"Range": "0-4999"}},
		{name: "patch chunk 2", method: "PATCH", path: loc, body: chunk2,
			headers: map[string]string{"Content-Range": fmt.Sprintf("5000-%d", len(layer)-1)}, status: 202},
		{name: "put wrong digest", method: "PUT", path: loc + "?digest=" + bad, status: 400, code: "DIGEST_INVALID"},
		{name: "blob not visible after bad put", method: "HEAD", path: "/v2/team/app/blobs/" + bad, status: 404},
		{name: "put without digest", method: "PUT", path: loc, status: 400, code: "DIGEST_INVALID"},
		{name: "put malformed digest", method: "PUT", path: loc + "?digest=sha256:xyz", status: 400, code: "DIGEST_INVALID"},
		{name: "put right digest", method: "PUT", path: loc + "?digest=" + dLayer, status: 201,
			want: map[string]string{"Location": "/v2/team/app/blobs/" + dLayer, "Docker-Content-Digest": dLayer}},
		{name: "upload gone after put", method: "GET", path: loc, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "blob head", method: "HEAD", path: "/v2/team/app/blobs/" + dLayer, status: 200,
			want: map[string]string{"Content-Length": fmt.Sprint(len(layer)), "Docker-Content-Digest": dLayer, "Accept-Ranges": "bytes"}},
		{name: "blob get", method: "GET", path: "/v2/team/app/blobs/" + dLayer, status: 200, bodyIs: layer},
		{name: "blob range", method: "GET", path: "/v2/team/app/blobs/" + dLayer, headers: map[string]string{"Range": "bytes=10-19"},
			status: 206, bodyIs: layer[10:20], want: map[string]string{"Content-Range": fmt.Sprintf("bytes 10-19/%d", len(layer)), "Content-Length": "10"}},
		{name: "blob suffix range", method: "GET", path: "/v2/team/app/blobs/" + dLayer, headers: map[string]string{"Range": "bytes=-5"},
			status: 206, bodyIs: layer[len(layer)-5:]},
		{name: "blob range outside", method: "GET", path: "/v2/team/app/blobs/" + dLayer, headers: map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(layer))},
			status: 416, code: "RANGE_INVALID", want: map[string]string{"Content-Range": fmt.Sprintf("bytes */%d", len(layer))}},
		{name: "blob multi range", method: "GET", path: "/v2/team/app/blobs/" + dLayer, headers: map[string]string{"Range": "bytes=0-1,4-5"},
			status: 416, code: "RANGE_INVALID"},
		{name: "blob not in other repo", method: "GET", path: "/v2/team/other/blobs/" + dLayer, status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob bad digest", method: "GET", path: "/v2/team/app/blobs/sha256:abc", status: 400, code: "DIGEST_INVALID"},
		{name: "blob unknown algorithm", method: "GET", path: "/v2/team/app/blobs/md5:" + strings.Repeat("a", 32), status: 400, code: "DIGEST_INVALID"},
		{name: "monolithic post", method: "POST", path: "/v2/team/app/blobs/uploads/?digest=" + dConfig, body: config, status: 201,
			want: map[string]string{"Docker-Content-Digest": dConfig}},
		{name: "monolithic post wrong digest", method: "POST", path: "/v2/team/app/blobs/uploads/?digest=" + bad, body: config, status: 400, code: "DIGEST_INVALID"},
		{name: "manifest missing blob", method: "PUT", path: "/v2/team/app2/manifests/v1", headers: ct, body: manifest, status: 404, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "manifest put", method: "PUT", path: "/v2/team/app/manifests/v1", headers: ct, body: manifest, status: 201,
			want: map[string]string{"Docker-Content-Digest": dManifest, "Location": "/v2/team/app/manifests/" + dManifest}},
		{name: "manifest get by tag", method: "GET", path: "/v2/team/app/manifests/v1", status: 200, bodyIs: manifest,
			want: map[string]string{"Content-Type": oci.MediaTypeOCIManifest, "Docker-Content-Digest": dManifest}},
		{name: "manifest head by digest", method: "HEAD", path: "/v2/team/app/manifests/" + dManifest, status: 200,
			want: map[string]string{"Content-Length": fmt.Sprint(len(manifest))}},
		{name: "manifest put by digest", method: "PUT", path: "/v2/team/app/manifests/" + dManifest, headers: ct, body: manifest, status: 201},
		{name: "manifest put digest mismatch", method: "PUT", path: "/v2/team/app/manifests/" + bad, headers: ct, body: manifest, status: 400, code: "DIGEST_INVALID"},
		{name: "manifest invalid json", method: "PUT", path: "/v2/team/app/manifests/bad", headers: ct, body: []byte("{"), status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest schema 1", method: "PUT", path: "/v2/team/app/manifests/bad", headers: ct, body: []byte(`{"schemaVersion":1}`), status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest type mismatch", method: "PUT", path: "/v2/team/app/manifests/bad", headers: map[string]string{"Content-Type": oci.MediaTypeOCIIndex}, body: manifest, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest too large", method: "PUT", path: "/v2/team/app/manifests/big", headers: ct, body: bytes.Repeat([]byte(" "), oci.MaxManifestSize+1), status: 413, code: "MANIFEST_INVALID"},
		{name: "manifest bad tag", method: "PUT", path: "/v2/team/app/manifests/-bad", headers: ct, body: manifest, status: 400, code: "TAG_INVALID"},
		{name: "manifest unknown tag", method: "GET", path: "/v2/team/app/manifests/nope", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest unknown repo", method: "GET", path: "/v2/team/nope/manifests/v1", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "tag v2", method: "PUT", path: "/v2/team/app/manifests/v2", headers: ct, body: manifest, status: 201},
		{name: "tag a", method: "PUT", path: "/v2/team/app/manifests/a", headers: ct, body: manifest, status: 201},
		{name: "tags list", method: "GET", path: "/v2/team/app/tags/list", status: 200, bodyIs: []byte(`{"name":"team/app","tags":["a","v1","v2"]}`)},
		{name: "tags page 1", method: "GET", path: "/v2/team/app/tags/list?n=2", status: 200, bodyIs: []byte(`{"name":"team/app","tags":["a","v1"]}`),
			want: map[string]string{"Link": `</v2/team/app/tags/list?last=v1&n=2>; rel="next"`}},
		{name: "tags page 2", method: "GET", path: "/v2/team/app/tags/list?n=2&last=v1", status: 200, bodyIs: []byte(`{"name":"team/app","tags":["v2"]}`)},
		{name: "tags n=0", method: "GET", path: "/v2/team/app/tags/list?n=0", status: 200, bodyIs: []byte(`{"name":"team/app","tags":[]}`)},
		{name: "tags bad n", method: "GET", path: "/v2/team/app/tags/list?n=x", status: 400, code: "PAGINATION_NUMBER_INVALID"},
		{name: "tags unknown repo", method: "GET", path: "/v2/team/nope/tags/list", status: 404, code: "NAME_UNKNOWN"},
		{name: "catalog", method: "GET", path: "/v2/_catalog", status: 200, bodyIs: []byte(`{"repositories":["team/app"]}`)},
		{name: "delete tag", method: "DELETE", path: "/v2/team/app/manifests/v2", status: 202},
		{name: "deleted tag gone", method: "GET", path: "/v2/team/app/manifests/v2", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "other tags stay", method: "GET", path: "/v2/team/app/manifests/v1", status: 200},
		{name: "outside namespaces", method: "GET", path: "/v2/elsewhere/app/manifests/v1", status: 404, code: "NAME_UNKNOWN"},
		{name: "push outside namespaces", method: "POST", path: "/v2/elsewhere/app/blobs/uploads/", status: 404, code: "NAME_UNKNOWN"},
		{name: "wrong method", method: "POST", path: "/v2/team/app/manifests/v1", status: 405, code: "UNSUPPORTED"},
		{name: "unknown upload", method: "PATCH", path: "/v2/team/app/blobs/uploads/0123456789abcdef0123", body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "traversal upload id", method: "PATCH", path: "/v2/team/app/blobs/uploads/..", body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "unknown endpoint", method: "GET", path: "/v2/team/app/nothing/here", status: 404, code: "NOT_FOUND"},
		{name: "mount", method: "POST", path: "/v2/team/copy/blobs/uploads/?mount=" + dLayer + "&from=team/app", status: 201,
			want: map[string]string{"Location": "/v2/team/copy/blobs/" + dLayer, "Docker-Content-Digest": dLayer}},
		{name: "mounted visible", method: "HEAD", path: "/v2/team/copy/blobs/" + dLayer, status: 200},
		{name: "mount from repo without blob falls back", method: "POST", path: "/v2/team/copy/blobs/uploads/?mount=" + bad + "&from=team/app", status: 202,
			want: map[string]string{"Location": "*"}},
		{name: "mount bad digest", method: "POST", path: "/v2/team/copy/blobs/uploads/?mount=x&from=team/app", status: 400, code: "DIGEST_INVALID"},
		{name: "delete blob", method: "DELETE", path: "/v2/team/copy/blobs/" + dLayer, status: 202},
		{name: "deleted blob gone", method: "HEAD", path: "/v2/team/copy/blobs/" + dLayer, status: 404},
		{name: "blob still in first repo", method: "HEAD", path: "/v2/team/app/blobs/" + dLayer, status: 200},
		{name: "delete manifest", method: "DELETE", path: "/v2/team/app/manifests/" + dManifest, status: 202},
		{name: "deleted manifest gone", method: "GET", path: "/v2/team/app/manifests/" + dManifest, status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "its tags gone", method: "GET", path: "/v2/team/app/manifests/v1", status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "delete again", method: "DELETE", path: "/v2/team/app/manifests/" + dManifest, status: 404, code: "MANIFEST_UNKNOWN"},
	}
	for _, s := range steps {
		r.do(t, s)
	}
}

func TestUploadCancel(t *testing.T) {
	r := newTestRegistry(t, Options{})
	resp := r.do(t, step{name: "start", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202})
	loc := resp.Header.Get("Location")
	r.do(t, step{name: "patch", method: "PATCH", path: loc, body: []byte("abc"), status: 202, want: map[string]string{"Range": "0-2"}})
	r.do(t, step{name: "cancel", method: "DELETE", path: loc, status: 204})
	r.do(t, step{name: "gone", method: "GET", path: loc, status: 404, code: "BLOB_UPLOAD_UNKNOWN"})
	// An upload id is bound to the repository that started it.
	resp = r.do(t, step{name: "start 2", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202})
	other := strings.Replace(resp.Header.Get("Location"), "team/app", "team/other", 1)
	r.do(t, step{name: "other repo", method: "PATCH", path: other, body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"})
}

func TestStreamedUploadAndSHA512(t *testing.T) {
	eachProtocol(t, Options{}, streamedUploadAndSHA512)
}

func streamedUploadAndSHA512(t *testing.T, r *testRegistry) {
	data := bytes.Repeat([]byte("z"), 3<<20)
	resp := r.do(t, step{name: "start", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202})
	loc := resp.Header.Get("Location")
	// A PATCH with no Content-Range (Docker's streamed upload).
	r.do(t, step{name: "stream", method: "PATCH", path: loc, body: data, status: 202, want: map[string]string{"Range": fmt.Sprintf("0-%d", len(data)-1)}})
	d := sha512d(data)
	r.do(t, step{name: "finish sha512", method: "PUT", path: loc + "?digest=" + d, status: 201, want: map[string]string{"Docker-Content-Digest": d}})
	r.do(t, step{name: "get sha512", method: "GET", path: "/v2/team/app/blobs/" + d, status: 200, bodyIs: data})
	// Final chunk carried by the PUT itself.
	resp = r.do(t, step{name: "start 2", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202})
	small := []byte("hello")
	r.do(t, step{name: "put with body", method: "PUT", path: resp.Header.Get("Location") + "?digest=" + sha(small), body: small, status: 201})
	r.do(t, step{name: "get", method: "GET", path: "/v2/team/app/blobs/" + sha(small), status: 200, bodyIs: small})
}

func TestIndexAndReferrers(t *testing.T) {
	r := newTestRegistry(t, Options{})
	config := []byte(`{}`)
	r.do(t, step{name: "config", method: "POST", path: "/v2/team/app/blobs/uploads/?digest=" + sha(config), body: config, status: 201})
	m := manifestFor(config)
	dm := sha(m)
	ct := map[string]string{"Content-Type": oci.MediaTypeOCIManifest}
	r.do(t, step{name: "child", method: "PUT", path: "/v2/team/app/manifests/" + dm, headers: ct, body: m, status: 201})
	idx := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}`,
		oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest, dm, len(m)))
	r.do(t, step{name: "index", method: "PUT", path: "/v2/team/app/manifests/multi", headers: map[string]string{"Content-Type": oci.MediaTypeOCIIndex}, body: idx, status: 201})
	missing := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":1}]}`,
		oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest, sha([]byte("missing"))))
	r.do(t, step{name: "index with missing child", method: "PUT", path: "/v2/team/app/manifests/bad", headers: map[string]string{"Content-Type": oci.MediaTypeOCIIndex}, body: missing, status: 404, code: "MANIFEST_BLOB_UNKNOWN"})

	// Two artifacts refer to the image; the subject need not exist first.
	art := func(at string) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
			oci.MediaTypeOCIManifest, at, oci.MediaTypeOCIEmptyJSON, sha(config), oci.MediaTypeOCIManifest, dm, len(m)))
	}
	sig, sbom := art("application/vnd.example.sig"), art("application/vnd.example.sbom")
	r.do(t, step{name: "sig", method: "PUT", path: "/v2/team/app/manifests/" + sha(sig), headers: ct, body: sig, status: 201, want: map[string]string{"OCI-Subject": dm}})
	r.do(t, step{name: "sbom", method: "PUT", path: "/v2/team/app/manifests/" + sha(sbom), headers: ct, body: sbom, status: 201})
	resp := r.do(t, step{name: "referrers", method: "GET", path: "/v2/team/app/referrers/" + dm, status: 200, want: map[string]string{"Content-Type": oci.MediaTypeOCIIndex}})
	var out struct {
		Manifests []oci.Descriptor
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if len(out.Manifests) != 2 {
		t.Fatalf("referrers = %+v, want 2", out.Manifests)
	}
	resp = r.do(t, step{name: "filtered", method: "GET", path: "/v2/team/app/referrers/" + dm + "?artifactType=application/vnd.example.sig", status: 200,
		want: map[string]string{"OCI-Filters-Applied": "artifactType"}})
	json.NewDecoder(resp.Body).Decode(&out)
	if len(out.Manifests) != 1 || string(out.Manifests[0].Digest) != sha(sig) || out.Manifests[0].ArtifactType != "application/vnd.example.sig" {
		t.Fatalf("filtered referrers = %+v", out.Manifests)
	}
	r.do(t, step{name: "no referrers", method: "GET", path: "/v2/team/app/referrers/" + sha([]byte("x")), status: 200,
		bodyIs: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)})
	r.do(t, step{name: "referrers bad digest", method: "GET", path: "/v2/team/app/referrers/sha256:zz", status: 400, code: "DIGEST_INVALID"})
	r.do(t, step{name: "delete sig", method: "DELETE", path: "/v2/team/app/manifests/" + sha(sig), status: 202})
	resp = r.do(t, step{name: "referrers after delete", method: "GET", path: "/v2/team/app/referrers/" + dm, status: 200})
	json.NewDecoder(resp.Body).Decode(&out)
	if len(out.Manifests) != 1 {
		t.Fatalf("after delete referrers = %+v, want 1", out.Manifests)
	}
}

func TestCatalogPagination(t *testing.T) {
	r := newTestRegistry(t, Options{HostAll: true})
	config := []byte(`{}`)
	m := manifestFor(config)
	for _, repo := range []string{"b/x", "a", "c", "b"} {
		r.do(t, step{name: "blob " + repo, method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + sha(config), body: config, status: 201})
		r.do(t, step{name: "manifest " + repo, method: "PUT", path: "/v2/" + repo + "/manifests/latest", headers: map[string]string{"Content-Type": oci.MediaTypeOCIManifest}, body: m, status: 201})
	}
	r.do(t, step{name: "all", method: "GET", path: "/v2/_catalog", status: 200, bodyIs: []byte(`{"repositories":["a","b","b/x","c"]}`)})
	r.do(t, step{name: "page", method: "GET", path: "/v2/_catalog?n=2", status: 200, bodyIs: []byte(`{"repositories":["a","b"]}`),
		want: map[string]string{"Link": `</v2/_catalog?last=b&n=2>; rel="next"`}})
	r.do(t, step{name: "page 2", method: "GET", path: "/v2/_catalog?n=2&last=b", status: 200, bodyIs: []byte(`{"repositories":["b/x","c"]}`)})
}
