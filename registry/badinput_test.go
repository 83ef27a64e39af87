package registry

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput sends malformed requests of every kind: each must get a 4xx
// with an OCI error body (never a 500, a hang or a crash), and nothing may
// be written outside the data dir.
func TestBadInput(t *testing.T) {
	r := newTestRegistry(t, Options{})
	outside := t.TempDir()
	long := strings.Repeat("a", 300)
	dg := sha([]byte("x"))
	resp := r.do(t, step{name: "start", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202})
	loc := resp.Header.Get("Location")
	cases := []struct {
		method, path string
		headers      map[string]string
		body         string
	}{
		{"GET", "/v2/TEAM/app/manifests/latest", nil, ""},
		{"GET", "/v2/team/../../etc/manifests/latest", nil, ""},
		{"GET", "/v2/team/%2e%2e/%2e%2e/manifests/latest", nil, ""},
		{"GET", "/v2/team%2fapp/manifests/latest", nil, ""},
		{"GET", "/v2/" + long + "/manifests/latest", nil, ""},
		{"GET", "/v2/team/app/manifests/" + long, nil, ""},
		{"GET", "/v2/team/app/manifests/sha256:../../x", nil, ""},
		{"GET", "/v2/team/app/manifests/sha256:" + strings.Repeat("A", 64), nil, ""},
		{"GET", "/v2/team/app/blobs/sha256:" + strings.Repeat("0", 63), nil, ""},
		{"GET", "/v2/team/app/blobs/sha999:" + strings.Repeat("0", 64), nil, ""},
		{"GET", "/v2/team/app/blobs/" + dg, map[string]string{"Range": "bytes=oops"}, ""},
		{"HEAD", "/v2/team/app/blobs/notadigest", nil, ""},
		{"DELETE", "/v2/team/app/blobs/" + dg, nil, ""},
		{"PUT", "/v2/team/app/manifests/latest", map[string]string{"Content-Type": "text/plain"}, "hello"},
		{"PUT", "/v2/team/app/manifests/latest", map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, `{"schemaVersion":2,"config":{"digest":"nope","size":1}}`},
		{"PUT", "/v2/team/app/manifests/latest", map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, `{"schemaVersion":2,"config":{"digest":"` + dg + `","size":-5}}`},
		{"PUT", "/v2/team/app/manifests/latest", nil, `{"schemaVersion":2,"mediaType":"application/x-evil"}`},
		{"PUT", "/v2/team/app/manifests/latest", nil, `null`},
		{"PUT", "/v2/team/app/manifests/latest", nil, `[]`},
		{"PUT", "/v2/team/app/manifests/latest?tag=..%2F..", nil, `{}`},
		{"PATCH", loc, map[string]string{"Content-Range": "garbage"}, "abc"},
		{"PATCH", loc, map[string]string{"Content-Range": "5-1"}, "abc"},
		{"PATCH", loc, map[string]string{"Content-Range": "99999999999999999999-1"}, "abc"},
		{"PATCH", "/v2/team/app/blobs/uploads/../../../tmp", nil, "abc"},
		{"PATCH", "/v2/team/app/blobs/uploads/" + long, nil, "abc"},
		{"PUT", loc + "?digest=sha256:short", nil, ""},
		{"PUT", loc + "?digest=" + dg, nil, "not the content"},
		{"PUT", "/v2/team/app/blobs/uploads/ffffffffffffffffffffffffffffffff?digest=" + dg, nil, ""},
		{"DELETE", "/v2/team/app/blobs/uploads/ffffffffffffffffffffffffffffffff", nil, ""},
		{"GET", "/v2/team/app/blobs/uploads/ffffffffffffffffffffffffffffffff", nil, ""},
		{"POST", "/v2/team/app/blobs/uploads/?digest=" + dg, nil, "wrong bytes"},
		{"POST", "/v2/team/app/blobs/uploads/?mount=" + dg + "&from=../../x", nil, ""},
		{"GET", "/v2/team/app/tags/list?n=-1", nil, ""},
		{"GET", "/v2/team/app/tags/list?n=99999999999999999999", nil, ""},
		{"GET", "/v2/_catalog?n=abc", nil, ""},
		{"GET", "/v2/team/app/referrers/nope", nil, ""},
		{"OPTIONS", "/v2/team/app/manifests/latest", nil, ""},
		{"TRACE", "/v2/team/app/blobs/" + dg, nil, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, r.URL+c.path, strings.NewReader(c.body))
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.path, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %s = %d, want a 4xx; body %s", c.method, c.path, resp.StatusCode, trunc(body))
			continue
		}
		if c.method == "HEAD" {
			continue
		}
		var env struct {
			Errors []struct{ Code, Message string }
		}
		if json.Unmarshal(body, &env) != nil || len(env.Errors) != 1 || env.Errors[0].Code == "" || env.Errors[0].Message == "" {
			t.Errorf("%s %s: body %q is not an OCI error", c.method, c.path, trunc(body))
		}
	}
	// Nothing escaped the store's root.
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Errorf("files appeared outside the data dir: %v", entries)
	}
	filepath.WalkDir(filepath.Dir(r.store.Root()), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(p, r.store.Root()) {
			t.Errorf("file outside the store: %s", p)
		}
		return nil
	})
	// The valid upload survived all of that.
	r.do(t, step{name: "upload still usable", method: "PATCH", path: loc, body: []byte("ok"), status: 202, want: map[string]string{"Range": "0-1"}})
}
