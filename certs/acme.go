package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/wharf-registry/wharf/config"
)

// acmeManager gets certificates for tls.hosts from an ACME CA on the first
// handshake that names them, and renews them, through autocert. Accounts
// and certificates are cached in DATA/tls/acme so a restart does not ask
// the CA again.
type acmeManager struct {
	auto       *autocert.Manager
	hosts      []string
	directory  string
	cacheDir   string
	httpListen string
}

func newACME(cfg config.TLS, cacheDir string) (*acmeManager, error) {
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("certs: mode acme needs tls.hosts")
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := os.Chmod(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	httpClient, err := acmeHTTPClient(cfg.ACMECAFile)
	if err != nil {
		return nil, err
	}
	directory := cfg.ACMEDirectory
	if directory == "" {
		directory = config.LetsEncryptURL
	}
	hosts := append([]string(nil), cfg.Hosts...)
	allowed := autocert.HostWhitelist(hosts...)
	a := &acmeManager{
		hosts:      hosts,
		directory:  directory,
		cacheDir:   cacheDir,
		httpListen: cfg.HTTPListen,
	}
	a.auto = &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache:  autocert.DirCache(cacheDir),
		HostPolicy: func(ctx context.Context, host string) error {
			// The HTTP-01 handler passes the Host header, which has a
			// port when http_listen is not on 80.
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if allowed(ctx, host) != nil {
				// Said plainly, since it ends up in the log of every
				// refused handshake.
				return fmt.Errorf("certs: %q is not in tls.hosts [%s]", host, strings.Join(hosts, " "))
			}
			return nil
		},
		Email: cfg.Email,
		Client: &acme.Client{
			DirectoryURL: directory,
			HTTPClient:   httpClient,
			UserAgent:    "wharf",
		},
	}
	return a, nil
}

// acmeHTTPClient trusts the system roots plus caFile, the CA of a private
// ACME server's own HTTPS certificate.
func acmeHTTPClient(caFile string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("certs: acme_ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("certs: acme_ca_file %s: no PEM certificate", caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	// Every request also carries a context from autocert; the timeout only
	// stops a CA that accepts a connection and never answers.
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

func (a *acmeManager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.auto.GetCertificate(hello)
}

func (a *acmeManager) describe() string {
	var have []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range a.hosts {
		if leaf := a.cachedLeaf(ctx, h); leaf != nil {
			have = append(have, fmt.Sprintf("%s expires %s", h, leaf.NotAfter.UTC().Format(time.DateOnly)))
		} else {
			have = append(have, h+" on first request")
		}
	}
	challenges := "TLS-ALPN-01 on the main listener and HTTP-01 on " + a.httpListen
	if a.httpListen == "off" {
		challenges = "TLS-ALPN-01 on the main listener only"
	}
	return fmt.Sprintf("certificates from %s for %s; challenges %s; cache %s",
		a.directory, strings.Join(have, ", "), challenges, a.cacheDir)
}

// cachedLeaf reads the certificate autocert keeps for host (its ECDSA one,
// under the bare name: the key, then the chain, in PEM), or nil.
func (a *acmeManager) cachedLeaf(ctx context.Context, host string) *x509.Certificate {
	b, err := a.auto.Cache.Get(ctx, host)
	if err != nil {
		return nil
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil
			}
			return c
		}
	}
}
