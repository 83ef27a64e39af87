package registry

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/hosted"
)

// TestUploadHeldElsewhere: in cluster mode an upload session's requests
// that reach a replica other than the one holding its bytes are handed to
// ForwardUpload with the body unread; a request already forwarded once
// is never forwarded again.
func TestUploadHeldElsewhere(t *testing.T) {
	store, idx := newStoreAndIndex(t)
	// Two replicas over one index: a holds the session, b does not.
	ha, hb := hosted.New(store, idx, nil), hosted.New(store, idx, nil)
	ha.SetOwner("replica-a")
	hb.SetOwner("replica-b")
	a := startAPIServer(t, New(Options{Hosted: ha, HostedNamespaces: []string{"team"}}), 1)
	var forwarded []string
	b := startAPIServer(t, New(Options{
		Hosted: hb, HostedNamespaces: []string{"team"},
		ForwardUpload: func(w http.ResponseWriter, r *http.Request, owner string) error {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return err
			}
			forwarded = append(forwarded, r.Method+" "+owner+" "+string(body))
			w.WriteHeader(http.StatusAccepted)
			return nil
		},
		Internal: func(r *http.Request) bool { return r.Header.Get("Test-Internal") == "yes" },
	}), 1)

	ra := &testRegistry{Server: a, proto: 1}
	rb := &testRegistry{Server: b, proto: 1}
	loc := ra.do(t, step{name: "start on a", method: "POST", path: "/v2/team/app/blobs/uploads/", status: 202}).Header.Get("Location")
	rb.do(t, step{name: "patch on b", method: "PATCH", path: loc, body: []byte("abc"), status: 202})
	rb.do(t, step{name: "status on b", method: "GET", path: loc, status: 202})
	if got := strings.Join(forwarded, "; "); got != "PATCH replica-a abc; GET replica-a " {
		t.Errorf("forwarded %q", got)
	}
	rb.do(t, step{name: "forwarded twice", method: "PATCH", path: loc, body: []byte("abc"), headers: map[string]string{"Test-Internal": "yes"},
		status: 404, code: "BLOB_UPLOAD_UNKNOWN"})
	// The session itself is untouched on a.
	ra.do(t, step{name: "status on a", method: "GET", path: loc, status: 204, want: map[string]string{"Range": "0-0"}})
	// Without ForwardUpload (a replica of an older version), the session
	// is unknown there, not a 500.
	c := &testRegistry{Server: startAPIServer(t, New(Options{Hosted: hb, HostedNamespaces: []string{"team"}}), 1), proto: 1}
	c.do(t, step{name: "no forwarding", method: "PATCH", path: loc, body: []byte("abc"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"})
}
