package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/internal/atomicfile"
)

// Lifetimes of the self-signed pair. 397 days is the most browsers and
// Apple's TLS stack accept for a server certificate.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 397 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
	// renewRetry spaces attempts to renew a running server's certificate
	// when writing the new one fails.
	renewRetry = time.Hour
)

// File names under DATA/tls.
const (
	caCertName     = "ca.crt"
	caKeyName      = "ca.key"
	serverCertName = "server.crt"
	serverKeyName  = "server.key"
)

// SelfSignedCAPath is where mode self-signed keeps the CA certificate that
// clients must trust.
func SelfSignedCAPath(dataDir string) string {
	return filepath.Join(tlsDir(dataDir), caCertName)
}

// selfSigned keeps a local CA and a server certificate signed by it in dir.
// The CA lives for ten years so that clients trust it once; the server
// certificate is reissued when it nears expiry or misses a wanted name.
type selfSigned struct {
	dir      string
	dnsNames []string
	ips      []net.IP
	log      *slog.Logger
	now      func() time.Time

	ca    *x509.Certificate
	caKey crypto.Signer

	mu           sync.Mutex
	cert         *tls.Certificate
	lastRenewTry time.Time
}

func newSelfSigned(dir string, hosts []string, log *slog.Logger, now func() time.Time) (*selfSigned, error) {
	hostname, _ := os.Hostname()
	s := &selfSigned{dir: dir, log: log, now: now}
	s.dnsNames, s.ips = wantedNames(hostname, hosts)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	// The directory holds private keys: tighten it even if it existed.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := s.loadOrCreateCA(hostname); err != nil {
		return nil, err
	}
	if err := s.loadOrCreateServer(); err != nil {
		return nil, err
	}
	return s, nil
}

// wantedNames are the SANs: the loopback names, this machine's name and
// tls.hosts, IPs apart from DNS names, without duplicates.
func wantedNames(hostname string, hosts []string) (dnsNames []string, ips []net.IP) {
	all := append([]string{"localhost", "127.0.0.1", "::1", hostname}, hosts...)
	for _, h := range all {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host // tolerate host:port in tls.hosts
		}
		h = strings.Trim(h, "[]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if !slices.Contains(dnsNames, h) {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

func (s *selfSigned) path(name string) string { return filepath.Join(s.dir, name) }

func (s *selfSigned) caFile() string { return s.path(caCertName) }

// loadOrCreateCA reuses ca.crt and ca.key. It creates a CA only when either
// file is missing or the CA has expired: a CA that is there but does not
// load is an error, since replacing it would silently break every client
// that trusts it.
func (s *selfSigned) loadOrCreateCA(hostname string) error {
	cert, key, err := loadPair(s.path(caCertName), s.path(caKeyName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.log.Info("creating a self-signed CA", "file", s.path(caCertName))
	case err != nil:
		return fmt.Errorf("certs: self-signed CA (delete %s and %s to make a new one): %w",
			s.path(caCertName), s.path(caKeyName), err)
	case !cert.IsCA:
		return fmt.Errorf("certs: %s is not a CA certificate", s.path(caCertName))
	case !s.now().Before(cert.NotAfter):
		s.log.Warn("self-signed CA has expired; creating a new one, which clients must trust again",
			"file", s.path(caCertName), "not_after", cert.NotAfter)
	default:
		s.ca, s.caKey = cert, key
		return nil
	}

	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	name := "wharf local CA"
	if hostname != "" {
		name += " (" + hostname + ")"
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"wharf"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("certs: creating CA: %w", err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	// Key first: a crash in between leaves no certificate without its key.
	if err := writeKey(s.path(caKeyName), key); err != nil {
		return err
	}
	if err := writeCert(s.path(caCertName), der); err != nil {
		return err
	}
	s.ca, s.caKey = cert, key
	return nil
}

// loadOrCreateServer reuses server.crt unless a reason to reissue it is
// found (and logged).
func (s *selfSigned) loadOrCreateServer() error {
	cert, key, err := loadPair(s.path(serverCertName), s.path(serverKeyName))
	reason := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "none yet"
	case err != nil:
		reason = err.Error()
	default:
		reason = s.reissueReason(cert)
	}
	if reason == "" {
		s.cert = &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
		return nil
	}
	s.log.Info("issuing the self-signed server certificate", "reason", reason, "file", s.path(serverCertName))
	return s.issueServer()
}

// reissueReason says why cert will not do, or "" when it will.
func (s *selfSigned) reissueReason(cert *x509.Certificate) string {
	if err := cert.CheckSignatureFrom(s.ca); err != nil {
		return "not signed by the current CA"
	}
	if left := cert.NotAfter.Sub(s.now()); left < renewBefore {
		return fmt.Sprintf("expires %s", cert.NotAfter.UTC().Format(time.DateOnly))
	}
	var missing []string
	for _, n := range s.dnsNames {
		if !slices.ContainsFunc(cert.DNSNames, func(have string) bool { return strings.EqualFold(have, n) }) {
			missing = append(missing, n)
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			missing = append(missing, ip.String())
		}
	}
	if len(missing) > 0 {
		return "new names " + strings.Join(missing, ", ")
	}
	return ""
}

func (s *selfSigned) issueServer() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := s.now()
	cn := "localhost"
	if len(s.dnsNames) > 1 {
		cn = s.dnsNames[1] // the machine's name, after localhost
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"wharf"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     s.dnsNames,
		IPAddresses:  s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, key.Public(), s.caKey)
	if err != nil {
		return fmt.Errorf("certs: issuing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := writeKey(s.path(serverKeyName), key); err != nil {
		return err
	}
	if err := writeCert(s.path(serverCertName), der); err != nil {
		return err
	}
	s.mu.Lock()
	s.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	s.mu.Unlock()
	return nil
}

// getCertificate also renews the certificate of a server that has been
// running for a year.
func (s *selfSigned) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	cert := s.cert
	now := s.now()
	due := cert.Leaf.NotAfter.Sub(now) < renewBefore && now.Sub(s.lastRenewTry) >= renewRetry
	if due {
		s.lastRenewTry = now
	}
	s.mu.Unlock()
	if due {
		if err := s.issueServer(); err != nil {
			s.log.Warn("renewing the self-signed server certificate failed", "err", err)
		} else {
			s.log.Info("renewed the self-signed server certificate", "file", s.path(serverCertName))
		}
		s.mu.Lock()
		cert = s.cert
		s.mu.Unlock()
	}
	return cert, nil
}

func (s *selfSigned) describe() string {
	s.mu.Lock()
	leaf := s.cert.Leaf
	s.mu.Unlock()
	return fmt.Sprintf("certificate %s signed by %q (expires %s); clients must trust %s; keys in %s",
		certSummary(leaf), s.ca.Subject.CommonName, s.ca.NotAfter.UTC().Format(time.DateOnly), s.caFile(), s.dir)
}

// loadPair reads a PEM certificate and its PKCS #8 key as written by
// writeCert and writeKey. A missing file yields an fs.ErrNotExist error.
func loadPair(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: unsupported key type %T", keyFile, pair.PrivateKey)
	}
	return leaf, key, nil
}

func writeCert(path string, der []byte) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// writeFileAtomic writes one of the pair's files; readers see the old file
// or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := atomicfile.Write(path, data, perm); err != nil {
		return fmt.Errorf("certs: writing %s: %w", path, err)
	}
	return nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
