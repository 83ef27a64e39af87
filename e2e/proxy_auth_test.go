//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestProxyOriginAuth pulls anonymously from wharf what its proxies fetch
// from origins that want credentials: a Distribution behind basic auth
// (username + password in the config) and one behind Docker-Hub-style
// bearer tokens from the harness token server (username + password_env).
// Wrong credentials (password, password_file) must give the client a clear
// OCI error at once, not a hang.
func TestProxyOriginAuth(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")

	basic := harness.StartDistribution(t, harness.DistributionOptions{Auth: harness.AuthBasic})
	token := harness.StartDistribution(t, harness.DistributionOptions{Auth: harness.AuthToken})
	basicImg := harness.PushRandomImage(t, basic.Addr+"/private/app:1", harness.ImageSpec{Layers: 2}, remote.WithAuth(basic.Auth()))
	tokenImg := harness.PushRandomImage(t, token.Addr+"/library/app:1", harness.ImageSpec{Layers: 2}, remote.WithAuth(token.Auth()))

	// Not WHARF_-prefixed: the harness keeps those away from wharf.
	const pwEnv = "E2E_TOKEN_ORIGIN_PASSWORD"
	t.Setenv(pwEnv, token.Password)
	wrongFile := filepath.Join(t.TempDir(), "wrong-password")
	if err := os.WriteFile(wrongFile, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	w := startProxyWharf(t, fmt.Sprintf(`listen: {{.Listen}}
data_dir: ./data
proxies:
  - name: hub
    upstream: %[1]s
    default: true
    username: %[3]s
    password: %[4]s
    timeout: 5s
  - name: tok
    upstream: %[2]s
    username: %[3]s
    password_env: %[5]s
    timeout: 5s
  - name: badbasic
    upstream: %[1]s
    username: %[3]s
    password: not-the-password
    timeout: 5s
  - name: badtoken
    upstream: %[2]s
    username: %[3]s
    password_file: %[6]s
    timeout: 5s
hosted:
  - name: team
`, basic.URL, token.URL, basic.Username, basic.Password, pwEnv, wrongFile))

	if strings.Contains(w.Logs(), basic.Password) {
		t.Errorf("wharf logged the upstream password:\n%s", w.Logs())
	}

	for _, tc := range []struct{ name, ref string }{
		{"basic", "/private/app:1"}, // through the default proxy
		{"basic by prefix", "/hub/private/app:1"},
		{"token", "/tok/library/app:1"},
		{"token short name", "/tok/app:1"}, // Docker Hub's library/ rule does not apply: tok is not the default
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := basicImg
			if strings.HasPrefix(tc.ref, "/tok/") {
				want = tokenImg
			}
			img, err := remote.Image(harness.Ref(t, w.Addr+tc.ref), remote.WithContext(t.Context()))
			if tc.name == "token short name" {
				// tok is not Docker Hub, so app stays app; the origin has
				// no such repository.
				if err == nil {
					t.Errorf("pull %s succeeded; a non-default proxy must not add library/", tc.ref)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Fatal(err)
			}
			if digest(t, img) != digest(t, want) {
				t.Errorf("pulled %s, origin has %s", digest(t, img), digest(t, want))
			}
		})
	}

	// A cached private blob is not served under another repository name
	// that the origin does not hold it in: wharf asks the origin first.
	leak := fetch(t.Context(), blobURL(w, "private/elsewhere", layerDigest(t, basicImg)), time.Minute)
	if leak.Status != http.StatusNotFound || ociCode(leak.Body) != "BLOB_UNKNOWN" {
		t.Errorf("cached blob of private/app asked for as private/elsewhere: %d %s; want 404 BLOB_UNKNOWN", leak.Status, leak.Body)
	}

	// wharf traded its configured credentials for tokens, not anonymous ones.
	sawUser := false
	for _, r := range token.Token.Requests() {
		if r.Account == token.Username && r.Status == http.StatusOK && strings.Contains(strings.Join(r.Scopes, " "), "repository:library/app:pull") {
			sawUser = true
		}
	}
	if !sawUser {
		t.Errorf("the token server issued no token to %s for library/app: %+v", token.Username, token.Token.Requests())
	}

	for _, tc := range []struct{ name, path string }{
		{"basic wrong password", "/v2/badbasic/private/app/manifests/1"},
		{"token wrong password", "/v2/badtoken/library/app/manifests/1"},
		{"basic wrong password blob", "/v2/badbasic/private/app/blobs/" + layerDigest(t, basicImg).String()},
		{"token wrong password blob", "/v2/badtoken/library/app/blobs/" + layerDigest(t, tokenImg).String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := fetch(t.Context(), w.URL+tc.path, time.Minute, "Accept", manifestAccept)
			t.Logf("GET %s: %d in %s: %s", tc.path, res.Status, res.Elapsed.Round(time.Millisecond), res.Body)
			if res.Err != nil {
				t.Fatalf("GET %s: %v after %s", tc.path, res.Err, res.Elapsed)
			}
			if res.Status < 400 {
				t.Fatalf("GET %s with wrong upstream credentials: %d", tc.path, res.Status)
			}
			if ociCode(res.Body) == "" || !strings.Contains(string(res.Body), "credentials") {
				t.Errorf("GET %s: %d without an OCI error that names the credentials: %q", tc.path, res.Status, res.Body)
			}
			if res.Elapsed > 10*time.Second {
				t.Errorf("GET %s took %s to fail", tc.path, res.Elapsed)
			}
		})
	}
}
