package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Tokens are what /auth/token hands out after a login: short-lived,
// HMAC-SHA256 signed with a key kept in the data dir (so a restart does
// not log every client out), carrying who logged in and the access they
// were granted for the scopes they asked. Requests are still checked
// against the rules with the token's identity, so a rule change applies
// at once. A token of an htpasswd user also carries a fingerprint of
// that user's htpasswd entry: removing the user or changing the password
// ends their tokens at once rather than when they expire.
type tokenSigner struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// TokenAccess is one granted scope, as in Docker's token format.
type TokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type tokenClaims struct {
	Sub    string        `json:"sub,omitempty"`
	Groups []string      `json:"grp,omitempty"`
	Src    string        `json:"src,omitempty"`
	Cred   string        `json:"crd,omitempty"` // htpasswd entry fingerprint
	Iat    int64         `json:"iat"`
	Exp    int64         `json:"exp"`
	Access []TokenAccess `json:"access,omitempty"`
}

const tokenPrefix = "wharf1."

// ErrInvalidToken means a bearer token is malformed, forged or expired.
var ErrInvalidToken = errors.New("invalid or expired token")

// loadTokenKey reads DATA/auth/token.key, creating it on first use. An
// empty dataDir gives a key that lives as long as the process.
func loadTokenKey(dataDir string) ([]byte, error) {
	key := make([]byte, 32)
	if dataDir == "" {
		_, err := rand.Read(key)
		return key, err
	}
	p := filepath.Join(dataDir, "auth", "token.key")
	if b, err := os.ReadFile(p); err == nil && len(b) >= 32 {
		return b, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(p, key, 0o600); err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	return key, nil
}

func (s *tokenSigner) issue(id Identity, cred string, access []TokenAccess) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(s.ttl)
	c := tokenClaims{Sub: id.User, Groups: id.Groups, Src: id.Source, Cred: cred, Iat: now.Unix(), Exp: exp.Unix(), Access: access}
	body, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, err
	}
	payload := tokenPrefix + base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), exp, nil
}

func (s *tokenSigner) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// verify checks the signature (in constant time) and the expiry, and
// returns the identity and credential fingerprint the token was issued to.
func (s *tokenSigner) verify(tok string) (Identity, string, error) {
	if !strings.HasPrefix(tok, tokenPrefix) || len(tok) > 16<<10 {
		return Identity{}, "", ErrInvalidToken
	}
	i := strings.LastIndexByte(tok, '.')
	if i <= len(tokenPrefix) {
		return Identity{}, "", ErrInvalidToken
	}
	payload, sig := tok[:i], tok[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return Identity{}, "", ErrInvalidToken
	}
	body, err := base64.RawURLEncoding.DecodeString(payload[len(tokenPrefix):])
	if err != nil {
		return Identity{}, "", ErrInvalidToken
	}
	var c tokenClaims
	if err := json.Unmarshal(body, &c); err != nil {
		return Identity{}, "", ErrInvalidToken
	}
	if s.now().Unix() >= c.Exp {
		return Identity{}, "", ErrInvalidToken
	}
	return Identity{User: c.Sub, Groups: c.Groups, Source: c.Src}, c.Cred, nil
}
