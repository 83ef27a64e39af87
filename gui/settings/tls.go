package settings

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-registry/wharf/certs"
	"github.com/wharf-registry/wharf/config"
)

// TLS is the HTTPS setting of the main listener as the Access screen
// edits it.
type TLS struct {
	Mode              string // off, self-signed, files or acme
	CertFile, KeyFile string // mode files
	Hosts             []string
	Email             string // mode acme
}

// TLSModes are the modes SetTLS accepts, in the order the app offers them.
func TLSModes() []string {
	return []string{config.TLSOff, config.TLSSelfSigned, config.TLSFiles, config.TLSACME}
}

// SetTLS switches the TLS mode. Keys it does not set (acme_directory,
// http_listen) are kept.
func (d *Doc) SetTLS(t TLS) error {
	if modes := TLSModes(); !slices.Contains(modes, t.Mode) {
		return fmt.Errorf("%q is not a TLS mode: use one of %s", t.Mode, strings.Join(modes, ", "))
	}
	return d.edit(func(top *yaml.Node) error {
		setFields(section(top, "tls"), field{"mode", t.Mode}, field{"cert_file", t.CertFile}, field{"key_file", t.KeyFile},
			field{"hosts", t.Hosts}, field{"email", t.Email})
		return nil
	})
}

// CATrust is the self-signed CA clients must trust, and how.
type CATrust struct {
	// File is DATA/tls/ca.crt, absolute; Exists is false until wharf
	// started once in mode self-signed.
	File   string
	Exists bool
	// HostPort is the name clients use for this registry.
	HostPort string
	Steps    []TrustStep
}

// TrustStep is the commands that make one system trust the CA.
type TrustStep struct {
	System   string
	Commands []string
}

// CATrust says where the self-signed CA is and how to trust it on
// Debian/Ubuntu, Fedora, macOS and in Docker for hostPort (the name
// clients use; "" for this machine's name and the listen port). A
// relative data_dir is taken from the current directory, as wharf does.
func (d *Doc) CATrust(hostPort string) CATrust {
	file, err := filepath.Abs(certs.SelfSignedCAPath(d.cfg.DataDir))
	if err != nil {
		file = certs.SelfSignedCAPath(d.cfg.DataDir)
	}
	if hostPort == "" {
		name, _ := os.Hostname()
		if name == "" {
			name = "localhost"
		}
		_, port, _ := net.SplitHostPort(d.cfg.Listen)
		hostPort = net.JoinHostPort(name, port)
	}
	// Docker looks up certs.d by the registry part of the image name,
	// which has no port when it is 443.
	dockerDir := hostPort
	if host, port, err := net.SplitHostPort(hostPort); err == nil && port == "443" {
		dockerDir = host
	}
	q := shellQuote(file)
	_, statErr := os.Stat(file)
	return CATrust{
		File: file, Exists: statErr == nil, HostPort: hostPort,
		Steps: []TrustStep{
			{"Debian, Ubuntu", []string{"sudo cp " + q + " /usr/local/share/ca-certificates/wharf.crt", "sudo update-ca-certificates"}},
			{"Fedora, RHEL", []string{"sudo cp " + q + " /etc/pki/ca-trust/source/anchors/wharf.crt", "sudo update-ca-trust"}},
			{"macOS", []string{"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain " + q}},
			{"Docker", []string{"sudo mkdir -p /etc/docker/certs.d/" + dockerDir, "sudo cp " + q + " /etc/docker/certs.d/" + dockerDir + "/ca.crt"}},
		},
	}
}

// shellQuote quotes s for sh unless it is plain path characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
