package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// ociCode is the first code of an OCI error envelope, "" when b is none.
func ociCode(b []byte) string {
	var env struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(b, &env) != nil || len(env.Errors) == 0 || env.Errors[0].Message == "" {
		return ""
	}
	return env.Errors[0].Code
}

// A path that names no endpoint gets the OCI NOT_FOUND envelope, on the
// distribution API and beside it.
func TestUnknownPathsNotFound(t *testing.T) {
	s := start(t, testConfig(t, ""))
	for _, p := range []string{"/nope", "/", "/v3/team/app/tags/list", "/v2/team/app/bogus", "/v2/team/app/manifests/", "/auth/token"} {
		for _, method := range []string{"GET", "HEAD", "POST"} {
			req, _ := http.NewRequest(method, "http://"+s.Addr()+p, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s %s: %d %q", method, p, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if method == "HEAD" {
				if len(b) != 0 {
					t.Errorf("HEAD %s: body %q", p, b)
				}
			} else if ociCode(b) != "NOT_FOUND" {
				t.Errorf("%s %s: body %s, want a NOT_FOUND envelope", method, p, b)
			}
		}
	}
}
