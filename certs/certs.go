// Package certs provides the certificates of wharf's HTTPS listener: PEM
// files that are reloaded when they change, a self-signed CA and server
// certificate kept in the data directory, or certificates from an ACME CA
// (Let's Encrypt, step-ca, Pebble) through autocert.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/wharf-registry/wharf/config"
)

// source is one way of getting certificates, picked by tls.mode.
type source interface {
	getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	describe() string
}

// Manager hands the main listener its certificates.
type Manager struct {
	mode string
	log  *slog.Logger
	src  source

	self *selfSigned  // mode self-signed
	acme *acmeManager // mode acme
}

// New prepares certificates for cfg.Mode: it loads the files, creates or
// reuses the self-signed CA and certificate under dataDir/tls, or sets up
// the ACME cache in dataDir/tls/acme. It returns nil, nil when TLS is off.
func New(cfg config.TLS, dataDir string, log *slog.Logger) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "tls")
	m := &Manager{mode: cfg.Mode, log: log}
	switch cfg.Mode {
	case "", config.TLSOff:
		return nil, nil
	case config.TLSFiles:
		f, err := newFileSource(cfg.CertFile, cfg.KeyFile, log)
		if err != nil {
			return nil, err
		}
		m.src = f
	case config.TLSSelfSigned:
		s, err := newSelfSigned(tlsDir(dataDir), cfg.Hosts, log, time.Now)
		if err != nil {
			return nil, err
		}
		m.src, m.self = s, s
	case config.TLSACME:
		a, err := newACME(cfg, filepath.Join(tlsDir(dataDir), "acme"))
		if err != nil {
			return nil, err
		}
		m.src, m.acme = a, a
	default:
		return nil, fmt.Errorf("certs: unknown tls mode %q", cfg.Mode)
	}
	return m, nil
}

func tlsDir(dataDir string) string { return filepath.Join(dataDir, "tls") }

// TLSConfig is the configuration of the main listener: TLS 1.2 or later,
// HTTP/2, and (mode acme) the acme-tls/1 protocol of TLS-ALPN-01 challenges.
// Each call returns a new value; nil when TLS is off.
func (m *Manager) TLSConfig() *tls.Config {
	if m == nil {
		return nil
	}
	protos := []string{"h2", "http/1.1"}
	if m.acme != nil {
		protos = append(protos, acme.ALPNProto)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: m.getCertificate,
	}
}

func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := m.src.getCertificate(hello)
	if err != nil {
		remote := ""
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		m.log.Warn("TLS handshake refused: no certificate", "server_name", hello.ServerName, "remote", remote, "err", err)
	}
	return cert, err
}

// HTTPHandler is the handler of tls.http_listen in mode acme: it answers
// HTTP-01 challenges and redirects everything else to https on the port of
// httpsAddr, the main listener's address (":443" or "0.0.0.0:8443"). It is
// nil in other modes and when http_listen is "off"; calling it is what
// enables HTTP-01 next to TLS-ALPN-01, so call it only when the handler
// will really be served.
func (m *Manager) HTTPHandler(httpsAddr string) http.Handler {
	if m == nil || m.acme == nil || m.acme.httpListen == "off" {
		return nil
	}
	_, port, err := net.SplitHostPort(httpsAddr)
	if err != nil {
		port = "443"
	}
	return m.acme.auto.HTTPHandler(redirectHandler(port))
}

// redirectHandler sends GET and HEAD to the same host and path over https
// on port; other methods get 400, since replaying a body the client already
// sent in clear text would hide the mistake.
func redirectHandler(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else {
			host = strings.Trim(host, "[]")
		}
		if port != "443" {
			host = net.JoinHostPort(host, port)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		target := "https://" + host + r.URL.RequestURI()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "use "+target, http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, target, http.StatusFound)
	})
}

// CAFile is the path of the self-signed CA certificate clients must trust;
// "" in the other modes.
func (m *Manager) CAFile() string {
	if m == nil || m.self == nil {
		return ""
	}
	return m.self.caFile()
}

// Describe is one line for the startup log: the mode, the certificate's
// names and expiry, and where the files are.
func (m *Manager) Describe() string {
	if m == nil {
		return "tls off (plain HTTP)"
	}
	return "tls " + m.mode + ": " + m.src.describe()
}

// certSummary names a leaf certificate for logs: its subject, names and
// expiry.
func certSummary(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return fmt.Sprintf("%q for [%s], expires %s", c.Subject.CommonName, strings.Join(names, " "),
		c.NotAfter.UTC().Format(time.DateOnly))
}
