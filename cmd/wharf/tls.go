package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/wharf-registry/wharf/certs"
	"github.com/wharf-registry/wharf/config"
)

func cmdTLS(args []string, stdout, stderr io.Writer) error {
	const synopsis = `wharf tls ca [--config FILE] [--data-dir DIR] [--host HOST:PORT]

With tls.mode: self-signed, wharf makes a local CA in DATA/tls/ca.crt on its
first start. Clients must trust it; this prints the file and where Docker,
containerd and podman/skopeo look for it for HOST:PORT (the name clients
use for this registry; default this machine's name and the listen port).`
	fs := newFlags("tls", synopsis, stderr)
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` (for data_dir and listen)")
	dataDir := fs.String("data-dir", defaultDataDir(), "data `directory`, overriding the config")
	host := fs.String("host", "", "the `HOST:PORT` clients use for this registry")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "ca" {
		fs.Usage()
		return usageError{errors.New("usage: wharf tls ca")}
	}
	cfg := config.Embedded()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	dir := cfg.DataDir
	if *dataDir != "" {
		dir = *dataDir
	}
	ca := certs.SelfSignedCAPath(dir)
	if _, err := os.Stat(ca); err != nil {
		return fmt.Errorf("no CA at %s: set tls.mode: self-signed and start wharf once to create it", ca)
	}
	hp := *host
	if hp == "" {
		name, _ := os.Hostname()
		if name == "" {
			name = "localhost"
		}
		_, port, _ := net.SplitHostPort(cfg.Listen)
		hp = net.JoinHostPort(name, port)
	}
	fmt.Fprintln(stdout, certs.ClientInstructions(ca, hp))
	return nil
}
