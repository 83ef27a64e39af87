package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/server"
)

// writeHtpasswd writes users with cheap bcrypt hashes (the cost is in
// each hash; the race detector makes the default cost take a second).
func writeHtpasswd(t testing.TB, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startAuthServer(t *testing.T) (*server.Server, *origin) {
	t.Helper()
	o := newOrigin(t)
	img, _ := random.Image(4096, 2)
	o.push(t, "library/busybox:latest", img)
	hp := writeHtpasswd(t, map[string]string{"alice": "alice-pw", "carol": "carol-pw", "root": "root-pw"})
	cfg := proxyConfig(t, o.URL, fmt.Sprintf(`auth:
  htpasswd: %s
  admins: [root]
  max_failures: 5
  rules:
    - repository: team/restricted/*
      push: [alice]
`, hp))
	return startWith(t, cfg), o
}

func basic(user, pw string) remote.Option {
	return remote.WithAuth(&authn.Basic{Username: user, Password: pw})
}

func TestAuthFlows(t *testing.T) {
	s, _ := startAuthServer(t)
	base := "http://" + s.Addr()

	// /v2/ challenges anonymous clients towards the token service.
	resp, body, err := get(t, base+"/v2/")
	if err != nil || resp.StatusCode != 401 || !strings.Contains(string(body), `"UNAUTHORIZED"`) {
		t.Fatalf("anonymous /v2/: %v %v %s", err, resp, body)
	}
	want := fmt.Sprintf(`Bearer realm="%s/auth/token",service="wharf"`, base)
	if got := resp.Header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("challenge %q, want %q", got, want)
	}

	// Proxy pulls stay anonymous; the client follows the challenge to an
	// anonymous token.
	if _, err := remote.Image(ref(t, s, "library/busybox:latest")); err != nil {
		t.Fatalf("anonymous pull through the mirror: %v", err)
	}
	if _, err := remote.Image(ref(t, s, "hub/library/busybox:latest")); err != nil {
		t.Fatalf("anonymous pull by prefix: %v", err)
	}

	img, _ := random.Image(2048, 1)
	if err := remote.Write(ref(t, s, "team/app:1"), img); !harness.Unauthorized(err) {
		t.Fatalf("anonymous push: %v", err)
	}
	if err := remote.Write(ref(t, s, "team/app:1"), img, basic("alice", "alice-pw")); err != nil {
		t.Fatalf("push as alice: %v", err)
	}
	if _, err := remote.Image(ref(t, s, "team/app:1"), basic("carol", "carol-pw")); err != nil {
		t.Fatalf("pull as carol: %v", err)
	}
	if _, err := remote.Image(ref(t, s, "team/app:1")); !harness.Unauthorized(err) {
		t.Fatalf("anonymous pull of hosted content: %v", err)
	}
	if err := remote.Write(ref(t, s, "team/restricted/x:1"), img, basic("carol", "carol-pw")); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("carol pushing where only alice may: %v", err)
	}
	if err := remote.Write(ref(t, s, "team/restricted/x:1"), img, basic("alice", "alice-pw")); err != nil {
		t.Fatalf("alice pushing to restricted: %v", err)
	}
	if err := remote.Write(ref(t, s, "team/app:2"), img, basic("alice", "wrong")); !harness.Unauthorized(err) {
		t.Fatalf("wrong password: %v", err)
	}

	// Basic credentials on a request work without the token dance (curl).
	req, _ := http.NewRequest("GET", base+"/v2/team/app/manifests/1", nil)
	req.SetBasicAuth("carol", "carol-pw")
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("basic GET: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	// containerd asks with an OAuth2 password grant first.
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"}, "service": {"wharf"}, "scope": {"repository:team/app:pull,push"}, "client_id": {"containerd-client"}}
	resp, err = http.PostForm(base+"/auth/token", form)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST token: %v %v", err, resp)
	}
	var tok struct {
		Token     string `json:"access_token"`
		ExpiresIn int    `json:"expires_in"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Token == "" || tok.ExpiresIn < 60 {
		t.Fatalf("token answer %+v", tok)
	}
	req, _ = http.NewRequest("GET", base+"/v2/team/app/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("bearer GET: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	// Docker sends its Docker Hub login to a mirror too: wrong
	// credentials for a pull anyone may do get an anonymous token, not a
	// 401 that would send Docker back to Docker Hub.
	other := clientFrom("127.0.0.3") // its own failure count
	for _, scope := range []string{"repository:library/busybox:pull", "repository:hub/library/busybox:pull"} {
		req, _ = http.NewRequest("GET", base+"/auth/token?service=wharf&scope="+scope, nil)
		req.SetBasicAuth("dockerhub-user", "dockerhub-pw")
		resp, err = other.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("Docker Hub credentials on a mirror pull (%s): %v %v", scope, err, resp)
		}
		resp.Body.Close()
	}
	for _, scope := range []string{"repository:team/app:pull", "repository:library/busybox:pull,push", ""} {
		req, _ = http.NewRequest("GET", base+"/auth/token?service=wharf&scope="+scope, nil)
		req.SetBasicAuth("dockerhub-user", "dockerhub-pw")
		if resp, err := other.Do(req); err != nil || resp.StatusCode != 401 {
			t.Fatalf("wrong credentials for %q: %v %v, want 401", scope, err, resp)
		} else {
			resp.Body.Close()
		}
	}

	// The catalog needs a login.
	if resp, _, _ := get(t, base+"/v2/_catalog"); resp.StatusCode != 401 {
		t.Errorf("anonymous catalog: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", base+"/v2/_catalog", nil)
	req.SetBasicAuth("carol", "carol-pw")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("catalog: %v %v", err, resp)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "team/app") {
			t.Errorf("catalog %s", b)
		}
	}

	// Proxies stay read-only for everyone, admins included.
	req, _ = http.NewRequest("POST", base+"/v2/hub/x/blobs/uploads/", nil)
	req.SetBasicAuth("root", "root-pw")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Fatalf("push to a proxy: %v %v", err, resp)
	}

	// The admin API: admins only.
	for user, want := range map[string]int{"": 401, "carol": 403, "root": 200} {
		req, _ := http.NewRequest("GET", base+"/-/admin/cache/stats", nil)
		if user != "" {
			req.SetBasicAuth(user, user+"-pw")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != want {
			t.Errorf("admin API as %q: %v %v, want %d", user, err, resp, want)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

// clientFrom dials from a loopback address of its own, which the failed
// login limit counts separately.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func TestAuthBruteForce(t *testing.T) {
	s, _ := startAuthServer(t)
	from := clientFrom
	login := func(c *http.Client, pw string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/auth/token?service=wharf", nil)
		req.SetBasicAuth("alice", pw)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	attacker := from("127.0.0.1")
	var last *http.Response
	for i := 0; i < 8 && (last == nil || last.StatusCode != 429); i++ {
		last = login(attacker, fmt.Sprintf("guess-%d", i))
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("no 429 after repeated failures: %d", last.StatusCode)
	}
	if r := login(attacker, "alice-pw"); r.StatusCode != 429 {
		t.Errorf("the blocked address got %d with the right password", r.StatusCode)
	}
	if r := login(from("127.0.0.2"), "alice-pw"); r.StatusCode != 200 {
		t.Errorf("the right password from another address: %d", r.StatusCode)
	}
}

func TestAuthOffLeavesEverythingOpen(t *testing.T) {
	s := start(t, testConfig(t, ""))
	resp, _, err := get(t, "http://"+s.Addr()+"/v2/")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("/v2/ without auth: %v %v", err, resp)
	}
	if resp, _, _ := get(t, "http://"+s.Addr()+"/auth/token"); resp.StatusCode != 404 {
		t.Errorf("token endpoint without auth: %d", resp.StatusCode)
	}
}

// Malformed input to the token service and to authenticated endpoints
// gets an OCI error with the right status, never a 500.
var rootAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte("root:root-pw"))

func TestAuthBadInput(t *testing.T) {
	s, _ := startAuthServer(t)
	base := "http://" + s.Addr()
	cases := []struct {
		method, path, auth, body string
		status                   int
		code                     string
	}{
		{"PUT", "/auth/token", "", "", 405, "UNSUPPORTED"},
		{"DELETE", "/auth/token", "", "", 405, "UNSUPPORTED"},
		{"POST", "/auth/token", "", "grant_type=refresh_token&refresh_token=x", 400, "UNSUPPORTED"},
		{"POST", "/auth/token", "", "grant_type=password&username=alice&password=nope", 401, "UNAUTHORIZED"},
		{"POST", "/auth/token", "", "%zz=%", 400, "UNSUPPORTED"},
		{"GET", "/auth/token?scope=" + strings.Repeat("repository:a:pull+", 2000), "", "", 200, ""},
		{"GET", "/auth/token?scope=repository::pull&scope=::&scope=repository:UPPER:pull&scope=registry:catalog:*", "", "", 200, ""},
		{"GET", "/auth/token", "Basic !!!notbase64", "", 401, "UNAUTHORIZED"},
		{"GET", "/auth/token", "Bearer wharf1.x.y", "", 401, "UNAUTHORIZED"},
		{"GET", "/v2/", "Bearer " + strings.Repeat("A", 20000), "", 401, "UNAUTHORIZED"},
		{"GET", "/v2/", "Bearer", "", 401, "UNAUTHORIZED"},
		{"GET", "/v2/", "Negotiate abc", "", 401, "UNAUTHORIZED"},
		{"GET", "/v2/team/app/tags/list", "Basic " + "Og==", "", 401, "UNAUTHORIZED"}, // empty user and password: anonymous
		{"GET", "/v2/team/app/tags/list", "Bearer wharf1.eyJ9.sig", "", 401, "UNAUTHORIZED"},
		// The admin API over the network answers in the same envelope.
		{"GET", "/-/admin/cache/stats", "", "", 401, "UNAUTHORIZED"},
		{"GET", "/-/admin/cache/stats", "Basic " + base64.StdEncoding.EncodeToString([]byte("carol:carol-pw")), "", 403, "DENIED"},
		{"GET", "/-/admin/nope", "Basic " + base64.StdEncoding.EncodeToString([]byte("root:root-pw")), "", 404, "NOT_FOUND"},
		{"POST", "/-/admin/cache/evict?unused_for=soon", "Basic " + base64.StdEncoding.EncodeToString([]byte("root:root-pw")), "", 400, "PARAMETER_INVALID"},
		{"GET", "/-/admin/events?after=-1", rootAuth, "", 400, "PARAMETER_INVALID"},
		{"POST", "/-/admin/events", rootAuth, "", 405, "UNSUPPORTED"},
		{"POST", "/-/admin/cache/warm", rootAuth, "", 400, "PARAMETER_INVALID"},
		{"POST", "/-/admin/cache/warm?image=nope/x/y:1", rootAuth, "", 404, ""},
		{"GET", "/-/admin/users", "Basic " + base64.StdEncoding.EncodeToString([]byte("carol:carol-pw")), "", 403, "DENIED"},
		{"PUT", "/-/admin/users/dave", rootAuth, "not json", 400, "PARAMETER_INVALID"},
		{"PUT", "/-/admin/users/dave", rootAuth, `{"password": ""}`, 400, "PARAMETER_INVALID"},
		{"PUT", "/-/admin/users/dave", rootAuth, `{"password": "` + strings.Repeat("x", 73) + `"}`, 400, "PARAMETER_INVALID"},
		{"PUT", "/-/admin/users/dave", rootAuth, `{"password": "pw", "admin": true}`, 400, "PARAMETER_INVALID"},
		{"PUT", "/-/admin/users/dave", rootAuth, strings.Repeat(" ", 8<<10), 400, "PARAMETER_INVALID"},
		{"PUT", "/-/admin/users/da:ve", rootAuth, `{"password": "pw"}`, 400, "PARAMETER_INVALID"},
		{"PUT", "/-/admin/users/", rootAuth, `{"password": "pw"}`, 404, "NOT_FOUND"},
		{"PUT", "/-/admin/users/a/b", rootAuth, `{"password": "pw"}`, 404, "NOT_FOUND"},
		{"POST", "/-/admin/users/dave", rootAuth, `{"password": "pw"}`, 405, "UNSUPPORTED"},
		{"DELETE", "/-/admin/users/nobody", rootAuth, "", 404, "NOT_FOUND"},
		{"DELETE", "/-/admin/users/root", rootAuth, "", 403, "DENIED"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		if c.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || (c.code != "" && !strings.Contains(string(b), `"`+c.code+`"`)) {
			t.Errorf("%s %.60s (%.20s): %d %s, want %d %s", c.method, c.path, c.auth, resp.StatusCode, b, c.status, c.code)
		}
		if resp.StatusCode == 401 && !strings.Contains(c.path, "/auth/token") && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without a challenge", c.method, c.path)
		}
	}
}
