//go:build linux

package harness

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/crypto/bcrypt"
)

// AuthMode selects how a test Distribution authenticates clients.
type AuthMode int

const (
	AuthNone  AuthMode = iota // anonymous read and write
	AuthBasic                 // auth.htpasswd with one bcrypt user
	AuthToken                 // auth.token with an in-process TokenServer, Docker Hub style
)

func (m AuthMode) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthBasic:
		return "basic"
	case AuthToken:
		return "token"
	}
	return fmt.Sprintf("AuthMode(%d)", int(m))
}

// DistributionOptions configures StartDistribution; the zero value is an
// anonymous, writable registry.
type DistributionOptions struct {
	Auth AuthMode
	// Username and Password are the one user that basic auth and the token
	// server accept; they default to DefaultUser / DefaultPassword.
	Username, Password string
	// TokenService is the token auth service name; default "registry.e2e.test".
	TokenService string
	// ProxyRemoteURL turns Distribution into its own pull-through cache of
	// that registry (proxy.remoteurl), with optional upstream credentials.
	ProxyRemoteURL               string
	ProxyUsername, ProxyPassword string
}

// Credentials used when DistributionOptions leaves them empty.
const (
	DefaultUser     = "e2e-user"
	DefaultPassword = "e2e-password"
)

// Distribution is a running Debian `docker-registry serve` (Distribution 2.8).
type Distribution struct {
	*Process
	Addr    string // 127.0.0.1:PORT
	URL     string // http://127.0.0.1:PORT
	Dir     string
	RootDir string // storage.filesystem.rootdirectory

	Username, Password string       // empty with AuthNone
	Token              *TokenServer // set with AuthToken
}

// StartDistribution starts docker-registry on a loopback port the kernel
// picks and waits until /v2/ answers (200, or 401 behind auth).
func StartDistribution(t testing.TB, opts DistributionOptions) *Distribution {
	t.Helper()
	bin := Tool(t, "docker-registry")
	dir := t.TempDir()
	d := &Distribution{Dir: dir, RootDir: filepath.Join(dir, "storage")}

	var cfg strings.Builder
	fmt.Fprintf(&cfg, `version: 0.1
log:
  level: warn
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: wharf-e2e-secret
`, d.RootDir, AnyLoopback)

	if opts.Auth != AuthNone {
		d.Username, d.Password = opts.Username, opts.Password
		if d.Username == "" {
			d.Username, d.Password = DefaultUser, DefaultPassword
		}
	}
	switch opts.Auth {
	case AuthNone:
	case AuthBasic:
		hash, err := bcrypt.GenerateFromPassword([]byte(d.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		writeFile(t, htpasswd, d.Username+":"+string(hash)+"\n")
		fmt.Fprintf(&cfg, "auth:\n  htpasswd:\n    realm: wharf-e2e\n    path: %s\n", htpasswd)
	case AuthToken:
		service := opts.TokenService
		if service == "" {
			service = "registry.e2e.test"
		}
		d.Token = StartTokenServer(t, service, map[string]string{d.Username: d.Password})
		fmt.Fprintf(&cfg, "auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			d.Token.Realm, d.Token.Service, d.Token.Issuer, d.Token.CertPath)
	default:
		t.Fatalf("unknown auth mode %v", opts.Auth)
	}
	if opts.ProxyRemoteURL != "" {
		fmt.Fprintf(&cfg, "proxy:\n  remoteurl: %s\n", opts.ProxyRemoteURL)
		if opts.ProxyUsername != "" {
			fmt.Fprintf(&cfg, "  username: %s\n  password: %s\n", opts.ProxyUsername, opts.ProxyPassword)
		}
	}

	cfgPath := filepath.Join(dir, "config.yml")
	writeFile(t, cfgPath, cfg.String())
	// Distribution reads REGISTRY_* variables as config overrides. It
	// listens on port 0 without saying which port it got: the kernel does.
	d.Process = StartProcess(t, "docker-registry", dir, cleanEnv([]string{"REGISTRY_"}), bin, "serve", cfgPath)
	d.Addr = d.WaitListening(t, 1, ReadyTimeout)[0]
	d.URL = "http://" + d.Addr
	d.WaitReady(t, ReadyTimeout, func() error { return pingV2(d.URL, "", http.StatusOK, http.StatusUnauthorized) })
	// Restart comes back on the same address.
	writeFile(t, cfgPath, strings.Replace(cfg.String(), "addr: "+AnyLoopback+"\n", "addr: "+d.Addr+"\n", 1))
	return d
}

// Auth returns credentials for go-containerregistry: basic credentials, which
// its transport also trades for a bearer token, or anonymous.
func (d *Distribution) Auth() authn.Authenticator {
	if d.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: d.Username, Password: d.Password}
}
