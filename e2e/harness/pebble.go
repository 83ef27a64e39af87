//go:build linux

package harness

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// PebbleDomain is a name that works as an ACME identifier against StartPebble:
// pebble resolves every name through the harness's DNS stub to 127.0.0.1.
// autocert refuses names without a dot (so not "localhost"), and /etc/hosts
// on the test machines holds no dotted name, hence the stub. .test is
// reserved (RFC 2606), so the name can never reach a real server.
const PebbleDomain = "registry.wharf.test"

// PebbleOptions configures StartPebble.
type PebbleOptions struct {
	// HTTPPort and TLSPort are where pebble's validation authority connects
	// on 127.0.0.1 for HTTP-01 and TLS-ALPN-01 challenges: the ports of the
	// server under test. Zero means pebble's defaults (5002, 5001).
	HTTPPort, TLSPort int
	// AlwaysValid (PEBBLE_VA_ALWAYS_VALID=1) accepts every challenge
	// without connecting.
	AlwaysValid bool
}

// Pebble is a running Let's Encrypt test CA (Debian's pebble 2.4).
type Pebble struct {
	*Process
	DirectoryURL string // https://127.0.0.1:PORT/dir, the ACME directory
	MgmtURL      string // https://127.0.0.1:PORT, the management interface
	// CAFile is the PEM CA of pebble's own HTTPS listeners, for
	// tls.acme_ca_file; it does not sign issued certificates (RootPEM does).
	CAFile  string
	DNSAddr string // 127.0.0.1:PORT, the UDP DNS stub pebble resolves with
	Dir     string

	caPool *x509.CertPool
}

// StartPebble runs pebble with a fresh CA for its listeners and a DNS stub
// that answers 127.0.0.1 for every name, and waits until the directory
// answers. Validation sleeps and bad-nonce injection are off, so issuance
// takes well under a second.
func StartPebble(t testing.TB, opts PebbleOptions) *Pebble {
	t.Helper()
	bin := Tool(t, "pebble")
	dir := t.TempDir()
	p := &Pebble{Dir: dir}

	caPEM, certPEM, keyPEM, err := LoopbackCert("wharf e2e pebble listener CA")
	if err != nil {
		t.Fatalf("pebble: listener certificate: %v", err)
	}
	p.CAFile = filepath.Join(dir, "ca.pem")
	writeFile(t, p.CAFile, string(caPEM))
	writeFile(t, filepath.Join(dir, "cert.pem"), string(certPEM))
	writeFile(t, filepath.Join(dir, "key.pem"), string(keyPEM))
	p.caPool = x509.NewCertPool()
	p.caPool.AppendCertsFromPEM(caPEM)

	p.DNSAddr = startDNSStub(t, net.IPv4(127, 0, 0, 1))

	httpPort, tlsPort := opts.HTTPPort, opts.TLSPort
	if httpPort == 0 {
		httpPort = 5002
	}
	if tlsPort == 0 {
		tlsPort = 5001
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  AnyLoopback,
		"managementListenAddress":        AnyLoopback,
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pebble-config.json")
	writeFile(t, cfgPath, string(b))

	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}
	if opts.AlwaysValid {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	p.Process = StartProcess(t, "pebble", dir, cleanEnv([]string{"PEBBLE_"}, env...),
		bin, "-config", cfgPath, "-dnsserver", p.DNSAddr)
	// Both listeners are on port 0 and pebble opens them in goroutines of
	// their own, so which is which is asked of them: only the ACME one
	// serves the directory.
	addrs := p.WaitListening(t, 2, ReadyTimeout)
	p.WaitReady(t, ReadyTimeout, func() error {
		var errs []error
		for i, a := range addrs[:2] {
			_, err := p.get("https://" + a + "/dir")
			if err == nil {
				p.DirectoryURL = "https://" + a + "/dir"
				p.MgmtURL = "https://" + addrs[1-i]
				return nil
			}
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	return p
}

// RootPEM returns the root that signs issued certificates. Pebble makes a new
// one at every start, so it is fetched from the management interface.
func (p *Pebble) RootPEM(t testing.TB) []byte {
	t.Helper()
	b, err := p.get(p.MgmtURL + "/roots/0")
	if err != nil {
		t.Fatalf("pebble: root: %v", err)
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("pebble: /roots/0 is not a PEM certificate: %q", b)
	}
	return b
}

// HTTPClient trusts pebble's listener CA, for talking to the ACME API.
func (p *Pebble) HTTPClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.caPool}},
	}
}

func (p *Pebble) get(url string) ([]byte, error) {
	c := p.HTTPClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, trimOutput(string(b)))
	}
	return b, nil
}

// startDNSStub serves DNS over UDP on 127.0.0.1, answering every A query
// with ip and everything else with an empty NOERROR, until cleanup. Pebble
// asks AAAA first and dials the first address, so answering AAAA would send
// it to ::1, where the server under test does not listen.
func startDNSStub(t testing.TB, ip net.IP) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("dns stub: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := dnsAnswer(buf[:n], ip.To4()); err == nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// dnsAnswer builds the reply to a one-question query (RFC 1035 §4.1).
func dnsAnswer(q []byte, ipv4 net.IP) ([]byte, error) {
	const headerLen = 12
	if len(q) < headerLen || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil, errors.New("not a one-question query")
	}
	// Walk the question name: labels up to a zero byte.
	i := headerLen
	for {
		if i >= len(q) {
			return nil, errors.New("truncated name")
		}
		l := int(q[i])
		if l == 0 {
			i++
			break
		}
		if l&0xc0 != 0 {
			return nil, errors.New("compressed question name")
		}
		i += 1 + l
	}
	if i+4 > len(q) {
		return nil, errors.New("truncated question")
	}
	qtype, qclass := binary.BigEndian.Uint16(q[i:]), binary.BigEndian.Uint16(q[i+2:])
	question := q[headerLen : i+4]

	flags := binary.BigEndian.Uint16(q[2:4])
	const qr, aa, ra = 0x8000, 0x0400, 0x0080
	respFlags := qr | aa | ra | flags&0x7800 | flags&0x0100 // opcode and RD copied
	answer := qtype == 1 && qclass == 1                     // A, IN

	out := make([]byte, headerLen, headerLen+len(question)+16)
	copy(out[0:2], q[0:2])
	binary.BigEndian.PutUint16(out[2:], uint16(respFlags))
	binary.BigEndian.PutUint16(out[4:], 1)
	if answer {
		binary.BigEndian.PutUint16(out[6:], 1)
	}
	out = append(out, question...)
	if answer {
		out = append(out, 0xc0, headerLen) // name: pointer to the question's
		out = binary.BigEndian.AppendUint16(out, 1)
		out = binary.BigEndian.AppendUint16(out, 1)
		out = binary.BigEndian.AppendUint32(out, 0) // TTL
		out = binary.BigEndian.AppendUint16(out, 4)
		out = append(out, ipv4...)
	}
	return out, nil
}
