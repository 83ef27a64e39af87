package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// TestBlobRedirect: with BlobRedirect, a GET of a stored blob answers 307
// to the URL it gives, after the blob's visibility was checked; HEAD and
// unknown blobs answer as always, and a failing redirect is an error, not
// a 500.
func TestBlobRedirect(t *testing.T) {
	var fail bool
	r := newTestRegistry(t, Options{BlobRedirect: func(ctx context.Context, d oci.Digest) (string, error) {
		if fail {
			return "", errors.New("store down")
		}
		return "https://store.example/bucket/" + string(d) + "?X-Amz-Signature=abc", nil
	}})
	blob := []byte("a blob the store serves")
	d := sha(blob)
	r.do(t, step{name: "push", method: "POST", path: "/v2/team/app/blobs/uploads/?digest=" + d, body: blob, status: http.StatusCreated})

	noFollow := *r.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Get(r.URL + "/v2/team/app/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "https://store.example/bucket/"+d+"?X-Amz-Signature=abc" ||
		resp.Header.Get("Docker-Content-Digest") != d {
		t.Errorf("GET = %d, Location %q, digest %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Docker-Content-Digest"))
	}
	r.do(t, step{name: "HEAD is answered here", method: "HEAD", path: "/v2/team/app/blobs/" + d, status: http.StatusOK,
		want: map[string]string{"Content-Length": "23"}})
	r.do(t, step{name: "not visible in another repository", method: "GET", path: "/v2/team/other/blobs/" + d, status: http.StatusNotFound, code: "BLOB_UNKNOWN"})
	fail = true
	resp, err = noFollow.Get(r.URL + "/v2/team/app/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a failing redirect answered %d, want 503", resp.StatusCode)
	}
}
