//go:build linux

package harness

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"strings"
	"testing"
)

func TestPebbleStarts(t *testing.T) {
	skipShort(t)
	p := StartPebble(t, PebbleOptions{})

	b, err := p.get(p.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	var dir struct {
		NewNonce, NewAccount, NewOrder string
	}
	if err := json.Unmarshal(b, &dir); err != nil || dir.NewOrder == "" {
		t.Fatalf("directory %s: %v %q", p.DirectoryURL, err, b)
	}

	blk, _ := pem.Decode(p.RootPEM(t))
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA {
		t.Errorf("root %s is not a CA", root.Subject)
	}
}

func TestPebbleAlwaysValid(t *testing.T) {
	skipShort(t)
	p := StartPebble(t, PebbleOptions{AlwaysValid: true})
	if !strings.Contains(p.Logs(), "VA always returns valid") {
		t.Errorf("PEBBLE_VA_ALWAYS_VALID not in effect:\n%s", p.LogTail(LogTailLines))
	}
}

func TestDNSStub(t *testing.T) {
	addr := startDNSStub(t, net.IPv4(127, 0, 0, 1))
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	ips, err := r.LookupIP(t.Context(), "ip4", PebbleDomain)
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != 1 || !ips[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("A %s = %v, want 127.0.0.1", PebbleDomain, ips)
	}
	if ips, err := r.LookupIP(t.Context(), "ip6", PebbleDomain); err == nil && len(ips) > 0 {
		t.Errorf("AAAA %s = %v, want none", PebbleDomain, ips)
	}
}
