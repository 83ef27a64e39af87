package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/wharf-registry/wharf/certs"
	"github.com/wharf-registry/wharf/config"
)

// serverClient finds a running server from --url or --config and returns
// its base URL and a client that trusts its certificate: https when the
// config turns TLS on, with the self-signed CA from the data dir, and the
// ACME host name as the TLS server name when dialing 127.0.0.1.
func serverClient(urlFlag, cfgPath string) (string, *http.Client, error) {
	hc := &http.Client{}
	if urlFlag != "" {
		if !strings.Contains(urlFlag, "://") {
			urlFlag = "http://" + urlFlag
		}
		return strings.TrimRight(urlFlag, "/"), hc, nil
	}
	if cfgPath == "" {
		return "http://127.0.0.1:5000", hc, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", nil, err
	}
	addr := dialable(cfg.Listen)
	if !cfg.TLS.Enabled() {
		return "http://" + addr, hc, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch cfg.TLS.Mode {
	case config.TLSSelfSigned:
		// `wharf serve` puts $WHARF_DATA_DIR before the config's data_dir;
		// so must its clients, or a unit that sets it finds no CA.
		dir := cfg.DataDir
		if d := defaultDataDir(); d != "" {
			dir = d
		}
		pem, err := os.ReadFile(certs.SelfSignedCAPath(dir))
		if err != nil {
			return "", nil, fmt.Errorf("reading the server's CA (has it started once?): %w", err)
		}
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		tc.RootCAs = pool
	case config.TLSACME:
		tc.ServerName = cfg.TLS.Hosts[0]
	}
	hc.Transport = &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}
	return "https://" + addr, hc, nil
}
