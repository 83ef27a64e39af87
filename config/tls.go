package config

import (
	"net"
	"strings"
)

// TLS modes.
const (
	TLSOff        = "off"
	TLSFiles      = "files"
	TLSSelfSigned = "self-signed"
	TLSACME       = "acme"
)

// LetsEncryptURL is the ACME directory used when acme_directory is empty.
const LetsEncryptURL = "https://acme-v02.api.letsencrypt.org/directory"

// TLS configures HTTPS on the main listener.
type TLS struct {
	// Mode is off (plain HTTP, the default), files, self-signed or acme.
	Mode string `yaml:"mode"`
	// CertFile and KeyFile (mode files) are PEM files, reloaded when
	// they change on disk.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// Hosts are the names the certificate is for: extra SANs for
	// self-signed (localhost, 127.0.0.1, ::1 and this machine's name
	// are always in), the allow-list for acme (required).
	Hosts []string `yaml:"hosts,omitempty"`
	// Email is the ACME account contact.
	Email string `yaml:"email,omitempty"`
	// ACMEDirectory is the ACME server (default Let's Encrypt); point it
	// at step-ca, Pebble or another private CA.
	ACMEDirectory string `yaml:"acme_directory,omitempty"`
	// ACMECAFile trusts a private ACME server's own HTTPS certificate.
	ACMECAFile string `yaml:"acme_ca_file,omitempty"`
	// HTTPListen (mode acme) answers HTTP-01 challenges and redirects
	// everything else to HTTPS. Default :80; "off" disables it (then
	// only TLS-ALPN-01 on the main listener is used).
	HTTPListen string `yaml:"http_listen,omitempty"`
}

// Enabled reports whether the main listener speaks TLS.
func (t TLS) Enabled() bool { return t.Mode != "" && t.Mode != TLSOff }

func (c *Config) tlsDefaults() {
	t := &c.TLS
	if t.Mode == "" {
		t.Mode = TLSOff
	}
	if t.Mode == TLSACME {
		if t.ACMEDirectory == "" {
			t.ACMEDirectory = LetsEncryptURL
		}
		if t.HTTPListen == "" {
			t.HTTPListen = ":80"
		}
	}
}

func (c *Config) validateTLS(add func(key, format string, args ...any)) {
	t := c.TLS
	switch t.Mode {
	case TLSOff:
	case TLSFiles:
		if t.CertFile == "" || t.KeyFile == "" {
			add("tls", "mode files needs cert_file and key_file (PEM)")
		}
	case TLSSelfSigned:
	case TLSACME:
		if len(t.Hosts) == 0 {
			add("tls.hosts", "mode acme needs the host names to get certificates for, e.g. [registry.example.org]")
		}
		for i, h := range t.Hosts {
			if h == "" || strings.ContainsAny(h, "/: ") {
				add("tls.hosts", "entry %d (%q) is not a host name", i, h)
			}
		}
		if t.HTTPListen != "off" {
			if _, _, err := net.SplitHostPort(t.HTTPListen); err != nil {
				add("tls.http_listen", "%q is not host:port (for example :80) or off", t.HTTPListen)
			}
		}
	default:
		add("tls.mode", "%q is not one of off, files, self-signed, acme", t.Mode)
	}
}
