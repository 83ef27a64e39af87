package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// reloadInterval is how often at most a handshake looks at the files.
const reloadInterval = 2 * time.Second

// fileSource serves tls.cert_file and tls.key_file and picks up new ones
// (a renewal by certbot, say) when either file's mtime or size changes. The
// check rides on handshakes, at most once per interval, so there is no
// goroutine to stop and an idle server touches no files.
type fileSource struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamps    [2]fileStamp // of the files the last load attempt read
	lastCheck time.Time
}

// fileStamp is what tells a replaced file from the old one.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func newFileSource(certFile, keyFile string, log *slog.Logger) (*fileSource, error) {
	f := &fileSource{certFile: certFile, keyFile: keyFile, log: log, interval: reloadInterval, now: time.Now}
	stamps, err := f.stat()
	if err != nil {
		return nil, err
	}
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	f.cert, f.stamps, f.lastCheck = cert, stamps, f.now()
	warnExpiry(log, cert.Leaf, certFile)
	return f, nil
}

func (f *fileSource) stat() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, p := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return s, fmt.Errorf("certs: %s: %w", [...]string{"cert_file", "key_file"}[i], err)
		}
		s[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return s, nil
}

func (f *fileSource) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.lastCheck) >= f.interval {
		f.lastCheck = now
		f.reloadLocked()
	}
	return f.cert, nil
}

// reloadLocked loads the files if they changed since the last attempt. A
// failed attempt keeps the old certificate and is not retried until the
// files change again, so a half-written renewal is logged once and the
// finished one is picked up.
func (f *fileSource) reloadLocked() {
	stamps, err := f.stat()
	if err != nil {
		if f.stamps != ([2]fileStamp{}) {
			f.log.Warn("TLS certificate files unreadable; keeping the loaded certificate", "err", err)
			f.stamps = [2]fileStamp{}
		}
		return
	}
	if stamps == f.stamps {
		return
	}
	f.stamps = stamps
	cert, err := loadKeyPair(f.certFile, f.keyFile)
	if err != nil {
		f.log.Warn("TLS certificate files changed but do not load; keeping the loaded certificate", "err", err)
		return
	}
	f.cert = cert
	f.log.Info("TLS certificate reloaded", "cert", certSummary(cert.Leaf), "file", f.certFile)
	warnExpiry(f.log, cert.Leaf, f.certFile)
}

func (f *fileSource) describe() string {
	f.mu.Lock()
	leaf := f.cert.Leaf
	f.mu.Unlock()
	return fmt.Sprintf("certificate %s from %s, key %s; reloaded when the files change",
		certSummary(leaf), f.certFile, f.keyFile)
}

// loadKeyPair reads a PEM certificate chain and its key, with errors that
// say which file is wrong.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certs: cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: key_file: %w", err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return nil, fmt.Errorf("certs: cert_file %s: %w", certFile, err)
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("certs: key_file %s: %w", keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: key_file %s does not belong to the certificate in cert_file %s: %w", keyFile, certFile, err)
	}
	if cert.Leaf == nil { // filled in since Go 1.23 unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: cert_file %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

func checkCertPEM(b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block")
	}
	return nil
}

func checkKeyPEM(b []byte) error {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return errors.New("no PEM private key block")
		}
		switch blk.Type {
		case "PRIVATE KEY":
			_, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			return err
		case "EC PRIVATE KEY":
			_, err := x509.ParseECPrivateKey(blk.Bytes)
			return err
		case "RSA PRIVATE KEY":
			_, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			return err
		}
	}
}

// warnExpiry logs when a certificate someone else manages is about to stop
// working, since wharf cannot renew it.
func warnExpiry(log *slog.Logger, leaf *x509.Certificate, file string) {
	left := time.Until(leaf.NotAfter)
	switch {
	case left <= 0:
		log.Warn("TLS certificate has expired", "file", file, "not_after", leaf.NotAfter)
	case left < 14*24*time.Hour:
		log.Warn("TLS certificate expires soon", "file", file, "not_after", leaf.NotAfter)
	}
}
