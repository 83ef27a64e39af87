package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// TestForwardUpload: a forwarded upload request reaches the owner with
// its path, query, body and headers, the cluster token instead of the
// user's credentials, and the owner's answer comes back as it was; a
// stopped or unreachable owner is a clear OCI error.
func TestForwardUpload(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	owner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Location", r.URL.Path)
		w.Header().Set("Range", "0-4")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer owner.Close()
	c := New(Options{Token: "tok"})
	defer c.Close()
	lookup := func(_ context.Context, id string) (string, bool, error) {
		switch id {
		case "a":
			return owner.URL, true, nil
		case "dead":
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			return "http://" + addr, true, nil
		}
		return "", false, nil
	}
	forward := func(owner string) (*httptest.ResponseRecorder, error) {
		req := httptest.NewRequest("PATCH", "/v2/team/app/blobs/uploads/0123456789abcdef?x=1", bytes.NewReader([]byte("hello")))
		req.Header.Set("Authorization", "Basic YWxpY2U6c2VjcmV0")
		req.Header.Set("Content-Range", "0-4")
		w := httptest.NewRecorder()
		return w, c.ForwardUpload(w, req, owner, lookup)
	}

	w, err := forward("a")
	if err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusAccepted || w.Header().Get("Range") != "0-4" || w.Header().Get("Location") != "/v2/team/app/blobs/uploads/0123456789abcdef" {
		t.Errorf("answer %d %v", w.Code, w.Header())
	}
	if got.URL.RequestURI() != "/v2/team/app/blobs/uploads/0123456789abcdef?x=1" || string(gotBody) != "hello" || got.Header.Get("Content-Range") != "0-4" {
		t.Errorf("owner got %s %q %v", got.URL.RequestURI(), gotBody, got.Header)
	}
	if got.Header.Get("Authorization") != "" || got.Header.Get(TokenHeader) != "tok" || !c.Internal(got) {
		t.Errorf("owner got credentials %q, token %q", got.Header.Get("Authorization"), got.Header.Get(TokenHeader))
	}

	for _, tc := range []struct {
		owner string
		code  oci.Code
	}{
		{"gone", oci.CodeBlobUploadUnknown},
		{"dead", oci.CodeUnavailable},
	} {
		w, err := forward(tc.owner)
		var e *oci.Error
		if !errors.As(err, &e) || e.Code != tc.code || w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("owner %s: %v (written %d %q), want %s unwritten", tc.owner, err, w.Code, w.Body, tc.code.Name)
		} else if !strings.Contains(e.Message, "start the push again") {
			t.Errorf("owner %s: %q does not say what to do", tc.owner, e.Message)
		}
	}

	if c.Internal(httptest.NewRequest("GET", "/", nil)) {
		t.Error("a request without the token is internal")
	}
	k := TokenSigningKey("tok")
	if len(k) != 32 || !bytes.Equal(k, TokenSigningKey("tok")) || bytes.Equal(k, TokenSigningKey("other")) || bytes.Contains(k, []byte("tok")) {
		t.Errorf("TokenSigningKey = %x", k)
	}
}
