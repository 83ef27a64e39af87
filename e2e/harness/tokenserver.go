//go:build linux

package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TokenServer is an in-process bearer token issuer shaped like
// auth.docker.io: GET /token?service=S&scope=repository:NAME:pull answers
// {"token", "access_token", "expires_in", "issued_at"}, and POST /token takes
// the OAuth2 password grant that containerd tries first. Anonymous callers get
// pull only; callers with a known user's basic credentials get what they ask
// for; wrong credentials get 401. Tokens are ES256 JWTs with the `access`
// claim and `kid` and `x5c` headers, which Distribution 2.8 verifies against
// CertPath (its auth.token.rootcertbundle).
type TokenServer struct {
	URL      string // http://127.0.0.1:PORT
	Realm    string // http://localhost:PORT/token
	Service  string
	Issuer   string
	CertPath string // PEM of the self-signed signing certificate

	// ExpiresIn is the token lifetime; set it before the first request.
	ExpiresIn time.Duration

	key   *ecdsa.PrivateKey
	der   []byte
	kid   string
	users map[string]string

	mu       sync.Mutex
	requests []TokenRequest
}

// TokenRequest records one token request, for assertions on how often and
// for what scopes clients asked.
type TokenRequest struct {
	Method    string
	Service   string
	Scopes    []string
	Account   string // the basic-auth user, "" when anonymous
	Status    int
	GrantType string // POST only
}

// StartTokenServer starts a token server for service, accepting the given
// users (name → password). It stops at cleanup.
func StartTokenServer(t testing.TB, service string, users map[string]string) *TokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wharf e2e token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ts := &TokenServer{
		Service:   service,
		Issuer:    "wharf-e2e-token-issuer",
		CertPath:  filepath.Join(t.TempDir(), "token-signer.pem"),
		ExpiresIn: 300 * time.Second,
		key:       key,
		der:       der,
		kid:       libtrustKeyID(&key.PublicKey),
		users:     users,
	}
	writeFile(t, ts.CertPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	srv := httptest.NewServer(http.HandlerFunc(ts.serveToken))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	// The realm names the host "localhost", not 127.0.0.1: go-containerregistry
	// v0.22 refuses a realm that is a loopback or private IP literal on another
	// host:port than the registry (SSRF guard), and so would any client built on
	// its transport. A name passes, and Docker Hub's realm is a name too.
	ts.Realm = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/token"
	return ts
}

// Requests returns the token requests seen so far.
func (ts *TokenServer) Requests() []TokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.requests)
}

func (ts *TokenServer) record(r TokenRequest) {
	ts.mu.Lock()
	ts.requests = append(ts.requests, r)
	ts.mu.Unlock()
}

func (ts *TokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	req := TokenRequest{Method: r.Method}
	var scopes []string
	var user, pass string
	var hasCreds bool
	switch r.Method {
	case http.MethodGet:
		req.Service = r.URL.Query().Get("service")
		scopes = r.URL.Query()["scope"]
		user, pass, hasCreds = r.BasicAuth()
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			ts.fail(w, req, http.StatusBadRequest, err.Error())
			return
		}
		req.Service = r.PostForm.Get("service")
		req.GrantType = r.PostForm.Get("grant_type")
		scopes = r.PostForm["scope"]
		if req.GrantType != "password" {
			ts.fail(w, req, http.StatusBadRequest, "unsupported grant_type "+req.GrantType)
			return
		}
		user, pass, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
	default:
		ts.fail(w, req, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	// A scope parameter may itself hold several scopes separated by spaces.
	for _, s := range scopes {
		req.Scopes = append(req.Scopes, strings.Fields(s)...)
	}
	if req.Service != ts.Service {
		ts.fail(w, req, http.StatusBadRequest, fmt.Sprintf("unknown service %q", req.Service))
		return
	}
	if hasCreds {
		if want, ok := ts.users[user]; !ok || want != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="wharf-e2e"`)
			ts.fail(w, req, http.StatusUnauthorized, "incorrect username or password")
			return
		}
		req.Account = user
	}

	var access []tokenAccess
	for _, s := range req.Scopes {
		a, ok := parseScope(s)
		if !ok {
			ts.fail(w, req, http.StatusBadRequest, fmt.Sprintf("invalid scope %q", s))
			return
		}
		if req.Account == "" {
			a.Actions = slices.DeleteFunc(a.Actions, func(act string) bool { return act != "pull" })
		}
		access = append(access, a)
	}

	now := time.Now()
	token, err := ts.sign(req.Account, access, now)
	if err != nil {
		ts.fail(w, req, http.StatusInternalServerError, err.Error())
		return
	}
	req.Status = http.StatusOK
	ts.record(req)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(ts.ExpiresIn / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339Nano),
	})
}

func (ts *TokenServer) fail(w http.ResponseWriter, req TokenRequest, status int, msg string) {
	req.Status = status
	ts.record(req)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"details": msg})
}

type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// parseScope splits "repository:NAME:pull,push"; NAME may itself hold a colon
// (a registry host with a port), so type is before the first and actions after
// the last.
func parseScope(s string) (tokenAccess, bool) {
	first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
	if first < 0 || last == first {
		return tokenAccess{}, false
	}
	return tokenAccess{Type: s[:first], Name: s[first+1 : last], Actions: strings.Split(s[last+1:], ",")}, true
}

// sign makes a compact JWS, ES256, as Distribution 2.8's token package reads it.
func (ts *TokenServer) sign(subject string, access []tokenAccess, now time.Time) (string, error) {
	if access == nil {
		access = []tokenAccess{}
	}
	header, err := json.Marshal(map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"kid": ts.kid,
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.der)},
	})
	if err != nil {
		return "", err
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	claims, err := json.Marshal(map[string]any{
		"iss":    ts.Issuer,
		"sub":    subject,
		"aud":    ts.Service,
		"exp":    now.Add(ts.ExpiresIn).Unix(),
		"nbf":    now.Add(-time.Second).Unix(),
		"iat":    now.Unix(),
		"jti":    hex.EncodeToString(jti),
		"access": access,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signingInput))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	// JWS wants r||s, each padded to the curve size, not ASN.1.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signingInput + "." + enc.EncodeToString(sig), nil
}

// libtrustKeyID is docker/libtrust's key fingerprint: the first 240 bits of
// the SHA-256 of the DER public key, base32, in twelve colon-separated groups
// of four. Distribution looks `kid` up among its root bundle's keys by it.
func libtrustKeyID(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var groups []string
	for i := 0; i+4 <= len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":")
}
