package upstream

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHub is shaped like Docker Hub: a registry host that challenges with
// Bearer and a realm on a separate auth host, scoped tokens with expiry,
// rate-limit headers on manifests, and blobs redirected to a CDN host.
type fakeHub struct {
	reg, auth, cdn *httptest.Server

	mu           sync.Mutex
	user, pass   string // accepted credentials; anonymous is always allowed
	private      map[string]bool
	expiresIn    int
	tokens       map[string]string // token -> granted repository ("" for none)
	tokenQueries []string          // raw scope params received, in order
	tokenAuth    []string          // "user" or "" per token request
	services     []string
	cdnAuth      []string // Authorization headers the CDN saw
	requests     map[string]int
	manifests    map[string][]byte // "repo/ref" -> body (by tag and by digest)
	blobs        map[string][]byte // digest -> content
	tags         []string
	throttle     int    // answer this many manifest requests with 429
	retryAfter   string // Retry-After on those
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	h := &fakeHub{
		private:   map[string]bool{},
		expiresIn: 300,
		tokens:    map[string]string{},
		requests:  map[string]int{},
		manifests: map[string][]byte{},
		blobs:     map[string][]byte{},
	}
	h.auth = httptest.NewServer(http.HandlerFunc(h.serveToken))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	h.reg = httptest.NewServer(http.HandlerFunc(h.serveRegistry))
	t.Cleanup(h.reg.Close)
	t.Cleanup(h.cdn.Close)
	t.Cleanup(h.auth.Close)
	return h
}

// addImage stores a manifest under repo:tag and by digest, with one layer.
func (h *fakeHub) addImage(repo, tag string, layer []byte) (manifest []byte, digest, layerDigest string) {
	layerDigest = sha256Of(layer)
	manifest = fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}`,
		sha256Of([]byte("{}")), layerDigest, len(layer))
	digest = sha256Of(manifest)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.manifests[repo+"/"+tag] = manifest
	h.manifests[repo+"/"+digest] = manifest
	h.blobs[layerDigest] = layer
	return manifest, digest, layerDigest
}

// set changes the fake's behaviour under its lock.
func (h *fakeHub) set(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f()
}

func (h *fakeHub) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests[key]
}

func (h *fakeHub) scopes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.tokenQueries)
}

func (h *fakeHub) revokeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.tokens)
}

func (h *fakeHub) issued() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for t := range h.tokens {
		out = append(out, t)
	}
	return out
}

func (h *fakeHub) serveToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tokenQueries = append(h.tokenQueries, strings.Join(q["scope"], " "))
	h.services = append(h.services, q.Get("service"))
	user, pass, hasAuth := r.BasicAuth()
	h.tokenAuth = append(h.tokenAuth, user)
	if q.Get("service") != "registry.docker.io" {
		http.Error(w, `{"details":"unknown service"}`, http.StatusBadRequest)
		return
	}
	if hasAuth && (user != h.user || pass != h.pass || h.user == "") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"details":"incorrect username or password"}`)
		return
	}
	granted := ""
	if scope := q.Get("scope"); scope != "" {
		parts := strings.Split(scope, ":")
		if len(parts) == 3 && parts[0] == "repository" && parts[2] == "pull" && (!h.private[parts[1]] || hasAuth) {
			granted = parts[1]
		}
	}
	buf := make([]byte, 16)
	rand.Read(buf)
	tok := "tok-" + hex.EncodeToString(buf)
	h.tokens[tok] = granted
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   h.expiresIn,
		"issued_at":    time.Now().UTC().Format(time.RFC3339),
	})
}

func (h *fakeHub) challenge(w http.ResponseWriter, scope, errCode string) {
	v := fmt.Sprintf(`Bearer realm="%s/token",service="registry.docker.io"`, h.auth.URL)
	if scope != "" {
		v += fmt.Sprintf(`,scope="%s"`, scope)
	}
	if errCode != "" {
		v += fmt.Sprintf(`,error="%s"`, errCode)
	}
	w.Header().Set("WWW-Authenticate", v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}`)
}

func (h *fakeHub) serveRegistry(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests[r.Method+" "+r.URL.Path]++
	h.mu.Unlock()

	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	h.mu.Lock()
	granted, valid := h.tokens[tok]
	h.mu.Unlock()

	if r.URL.Path == "/v2/" {
		if !hasTok || !valid {
			h.challenge(w, "", "")
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	var repo, kind, ref string
	for _, k := range []string{"/manifests/", "/blobs/", "/tags/list"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			repo, kind, ref = rest[:i], k, rest[i+len(k):]
			break
		}
	}
	scope := "repository:" + repo + ":pull"
	switch {
	case !hasTok:
		h.challenge(w, scope, "")
		return
	case !valid:
		h.challenge(w, scope, "invalid_token")
		return
	case granted != repo:
		h.challenge(w, scope, "insufficient_scope")
		return
	}

	switch kind {
	case "/manifests/":
		h.mu.Lock()
		throttled := h.throttle > 0
		if throttled {
			h.throttle--
		}
		body, found := h.manifests[repo+"/"+ref]
		retryAfter := h.retryAfter
		h.mu.Unlock()
		w.Header().Set("docker-ratelimit-source", "192.0.2.7")
		if throttled {
			w.Header().Set("ratelimit-limit", "100;w=21600")
			w.Header().Set("ratelimit-remaining", "0;w=21600")
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]}`)
			return
		}
		w.Header().Set("ratelimit-limit", "100;w=21600")
		w.Header().Set("ratelimit-remaining", "76;w=21600")
		if !found {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"`+ref+`"}}]}`)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", sha256Of(body))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	case "/blobs/":
		h.mu.Lock()
		_, found := h.blobs[ref]
		h.mu.Unlock()
		if !found {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
			return
		}
		http.Redirect(w, r, h.cdn.URL+"/registry-v2/docker/registry/v2/blobs/sha256/"+ref+"/data?verify=1", http.StatusTemporaryRedirect)
	case "/tags/list":
		h.mu.Lock()
		tags := slices.Clone(h.tags)
		h.mu.Unlock()
		if last := r.URL.Query().Get("last"); last != "" {
			i := slices.Index(tags, last)
			tags = tags[i+1:]
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && n < len(tags) {
			tags = tags[:n]
			w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?last=%s&n=%d>; rel="next"`, repo, tags[len(tags)-1], n))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
	}
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.cdnAuth = append(h.cdnAuth, r.Header.Get("Authorization"))
	h.requests["CDN "+r.Method]++
	parts := strings.Split(r.URL.Path, "/")
	digest := parts[len(parts)-2]
	blob, ok := h.blobs[digest]
	h.mu.Unlock()
	if !ok || r.URL.Query().Get("verify") != "1" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
}
