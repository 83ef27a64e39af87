//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// authConfig is issue 3's contract config with issue 5's auth contract
// added, and TLS from the self-signed CA.
const authConfig = `listen: {{.Listen}}
data_dir: ./data
proxies:
  - name: hub
    upstream: %s
    default: true
hosted:
  - name: team
auth:
  htpasswd: ./htpasswd
tls:
  mode: self-signed
`

// TestAuthDockerLoginOverTLS: a test-owned Docker daemon trusts wharf's
// self-signed CA through certs.d, pulls through the mirror anonymously,
// is refused a push to the hosted namespace until `docker login`, then
// pushes and pulls; skopeo does the same with --creds.
func TestAuthDockerLoginOverTLS(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", "dockerd", "docker", "containerd", "ctr", "skopeo", harness.BusyboxPath)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	busybox := harness.BusyboxImage(t)
	harness.Push(t, origin.Addr+"/library/busybox:latest", busybox)

	w := harness.StartWharf(t, harness.BuildWharf(t), fmt.Sprintf(authConfig, origin.URL))
	// The file does not exist at start: wharf picks it up when it appears.
	w.AddUser(t, filepath.Join(w.Dir, "htpasswd"), "alice", "alice-secret")
	ca := filepath.Join(w.DataDir, "tls", "ca.crt")
	if out, err := w.Run("tls", "ca", "--config", w.ConfigPath, "--host", w.Addr); err != nil || !strings.Contains(out, "/etc/docker/certs.d/"+w.Addr+"/ca.crt") {
		t.Fatalf("wharf tls ca: %v\n%s", err, out)
	}

	// Docker reads /etc/docker/certs.d/HOST:PORT/ca.crt, the place `wharf
	// tls ca` names; the port is this test's own.
	certsDir := filepath.Join("/etc/docker/certs.d", w.Addr)
	if err := os.MkdirAll(certsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(certsDir) })
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certsDir, "ca.crt"), pem, 0o644); err != nil {
		t.Fatal(err)
	}

	d := harness.StartDockerd(t, []string{"https://" + w.Addr}, nil)
	docker := func(args ...string) (string, error) { return d.Docker(args...) }
	must := func(args ...string) string {
		t.Helper()
		out, err := docker(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Anonymous pulls through the mirror keep working with auth on.
	must("pull", "busybox:latest")
	if got := must("run", "--rm", "--network", "none", "busybox:latest", "echo", "hello"); got != "hello" {
		t.Errorf("docker run printed %q", got)
	}

	image := w.Addr + "/team/busybox:1"
	must("tag", "busybox:latest", image)
	if out, err := docker("push", image); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(out, "authentication required") {
		t.Fatalf("push without login: %v\n%s", err, out)
	}
	if out, err := docker("login", w.Addr, "-u", "alice", "-p", "wrong"); err == nil || !strings.Contains(strings.ToLower(out), "unauthorized") {
		t.Fatalf("login with a wrong password: %v\n%s", err, out)
	}
	if out := must("login", w.Addr, "-u", "alice", "-p", "alice-secret"); !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login: %s", out)
	}
	must("push", image)
	must("rmi", image)
	must("pull", image)
	must("logout", w.Addr)
	if out, err := docker("pull", image); err == nil {
		t.Fatalf("pull of hosted content after logout succeeded:\n%s", out)
	}

	// skopeo with credentials, trusting the CA through --cert-dir.
	certDir := t.TempDir()
	os.WriteFile(filepath.Join(certDir, "ca.crt"), pem, 0o644)
	if out, err := harness.Skopeo(t, "inspect", "--cert-dir", certDir, "--creds", "alice:alice-secret", "docker://"+image); err != nil {
		t.Fatalf("skopeo inspect with creds: %v\n%s", err, out)
	}
	if out, err := harness.Skopeo(t, "copy", "--src-cert-dir", certDir, "--dest-cert-dir", certDir,
		"--src-creds", "alice:alice-secret", "--dest-creds", "alice:alice-secret",
		"docker://"+image, "docker://"+w.Addr+"/team/copied:1"); err != nil {
		t.Fatalf("skopeo copy with creds: %v\n%s", err, out)
	}
	if out, err := harness.Skopeo(t, "inspect", "--cert-dir", certDir, "docker://"+image); err == nil {
		t.Fatalf("skopeo inspect of hosted content without creds succeeded:\n%s", out)
	}
	if out, err := harness.Skopeo(t, "inspect", "--cert-dir", certDir, "docker://"+w.Addr+"/hub/library/busybox:latest"); err != nil {
		t.Fatalf("skopeo anonymous inspect through the proxy: %v\n%s", err, out)
	}

	// Every layer over HTTPS with each kind of client, compared by digest:
	// go-containerregistry negotiates HTTP/2 as crane does, skopeo and ctr
	// stay on HTTP/1.1. Hosted content, proxied misses (streamed from the
	// fill) and a proxied hit (busybox, cached by docker's pull above).
	alice := remote.WithAuth(&authn.Basic{Username: "alice", Password: "alice-secret"})
	hostedImg := withRandomLayer(t, busybox, 256<<10)
	harness.Push(t, w.Addr+"/team/tls:1", hostedImg, alice, remote.WithTransport(harness.HTTPSTransport(t, pem, "")))
	miss := map[string]v1.Image{}
	for _, client := range []string{"ggcr", "skopeo", "ctr"} {
		miss[client] = withRandomLayer(t, busybox, 256<<10)
		harness.Push(t, origin.Addr+"/library/tls-"+client+":1", miss[client])
	}

	got := harness.PullImageHTTPS(t, w.Addr+"/team/tls:1", pem, "", "HTTP/2.0", alice)
	harness.RequireSameImage(t, "hosted, go-containerregistry over HTTP/2", hostedImg, got)
	got = harness.PullImageHTTPS(t, w.Addr+"/hub/library/tls-ggcr:1", pem, "", "HTTP/2.0")
	harness.RequireSameImage(t, "proxy miss, go-containerregistry over HTTP/2", miss["ggcr"], got)
	got = harness.PullImageHTTPS(t, w.Addr+"/hub/library/busybox:latest", pem, "", "HTTP/2.0")
	harness.RequireSameImage(t, "proxy hit, go-containerregistry over HTTP/2", busybox, got)

	asAlice, anonymous := httpsClients{caPEM: pem, creds: "alice:alice-secret"}, httpsClients{caPEM: pem}
	asAlice.skopeoPull(t, w.Addr+"/team/tls:1", hostedImg)
	anonymous.skopeoPull(t, w.Addr+"/hub/library/tls-skopeo:1", miss["skopeo"])

	c := harness.StartContainerd(t)
	asAlice.ctrPull(t, c, w.Addr+"/team/tls:1", w.Addr, "https://"+w.Addr, hostedImg)
	anonymous.ctrPull(t, c, "docker.io/library/tls-ctr:1", "docker.io", "https://"+w.Addr, miss["ctr"])
}

const ldapConfig = `listen: {{.Listen}}
data_dir: ./data
hosted:
  - name: team
auth:
  htpasswd: ./htpasswd
  ldap:
    url: %s
    bind_dn: %s
    bind_password: %s
    base_dn: %s
    timeout: 2s
    cache_ttl: 1s
  rules:
    - repository: team/*
      push: [group:devs, local]
`

// TestAuthLDAP runs wharf against a real OpenLDAP: logins by group, a
// user outside the push group refused with 403, a filter injection
// refused, and LDAP stopped mid-test: its users get 503 while htpasswd
// users still work.
func TestAuthLDAP(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "slapd", "slapadd")
	dir := harness.StartSlapd(t, harness.SlapdOptions{})
	w := harness.StartWharf(t, harness.BuildWharf(t), fmt.Sprintf(ldapConfig, dir.URL, dir.BindDN, dir.BindPassword, dir.BaseDN))
	w.AddUser(t, filepath.Join(w.Dir, "htpasswd"), "local", "local-secret")

	ref := func(repo string) name.Reference { return harness.Ref(t, w.Addr+"/"+repo) }
	as := func(user, pw string) remote.Option {
		return remote.WithAuth(&authn.Basic{Username: user, Password: pw})
	}
	img := harness.RandomImage(t, harness.ImageSpec{Layers: 1, LayerSize: 4096})

	if err := remote.Write(ref("team/app:1"), img, as("alice", "alice-secret")); err != nil {
		t.Fatalf("alice (group devs) push: %v", err)
	}
	if err := remote.Write(ref("team/app:2"), img, as("carol", "carol-secret")); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Fatalf("carol (no groups) push: %v, want DENIED", err)
	}
	if _, err := remote.Image(ref("team/app:1"), as("carol", "carol-secret")); err != nil {
		t.Fatalf("carol pull: %v", err)
	}
	if err := remote.Write(ref("team/app:3"), img, as("bob", "wrong")); !harness.Unauthorized(err) {
		t.Fatalf("bob with a wrong password: %v", err)
	}
	for _, user := range []string{"*)(uid=*", "*", "alice)(|(uid=*"} {
		if _, err := remote.Image(ref("team/app:1"), as(user, "alice-secret")); !harness.Unauthorized(err) {
			t.Fatalf("filter injection as %q: %v", user, err)
		}
	}

	// LDAP goes away: LDAP users get 503 (after the 1s login cache), the
	// htpasswd user keeps working; then LDAP comes back.
	dir.Stop()
	time.Sleep(1500 * time.Millisecond)
	status := tokenStatus(t, w, "alice", "alice-secret")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("LDAP user while LDAP is down: %d, want 503", status)
	}
	if err := remote.Write(ref("team/app:4"), img, as("local", "local-secret")); err != nil {
		t.Fatalf("htpasswd user while LDAP is down: %v", err)
	}
	if !strings.Contains(logText(t, w), "user directory is unavailable") {
		t.Error("the log does not say the directory is unavailable")
	}
	dir.Start()
	if status := tokenStatus(t, w, "alice", "alice-secret"); status != 200 {
		t.Fatalf("LDAP user after LDAP came back: %d", status)
	}
	if strings.Contains(logText(t, w), "alice-secret") {
		t.Error("a password is in the log")
	}
}

func tokenStatus(t *testing.T, w *harness.Wharf, user, pw string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", w.URL+"/auth/token?service=wharf&scope=repository:team/app:pull", nil)
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func logText(t *testing.T, w *harness.Wharf) string {
	b, err := os.ReadFile(w.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const acmeConfig = `listen: {{.Listen}}
data_dir: ./data
hosted:
  - name: team
tls:
  mode: acme
  hosts: [%s]
  email: ops@wharf.test
  acme_directory: %s
  acme_ca_file: %s
  http_listen: "off"
`

// TestAuthACME: wharf gets its certificate from a real Pebble (TLS-ALPN-01
// on its own listener), serves it, and clients trusting Pebble's root push
// and pull every layer over it (go-containerregistry over HTTP/2, skopeo and
// ctr); after a restart the cached certificate is served without asking
// Pebble again.
func TestAuthACME(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "pebble", "skopeo", "containerd", "ctr", "unshare", harness.BusyboxPath)
	// Pebble must know wharf's port before it starts, and wharf Pebble's
	// directory URL: wharf cannot listen on port 0 here, so the harness
	// picks a port below the range the kernel hands to port-0 listeners.
	listen := harness.PickAddr(t)
	_, portStr, _ := net.SplitHostPort(listen)
	var port int
	fmt.Sscan(portStr, &port)
	pebble := harness.StartPebble(t, harness.PebbleOptions{TLSPort: port, HTTPPort: deadPort(t)})
	host := harness.PebbleDomain
	w := harness.StartWharfOn(t, harness.BuildWharf(t), listen, fmt.Sprintf(acmeConfig, host, pebble.DirectoryURL, pebble.CAFile))

	rootPEM := pebble.RootPEM(t)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		// registry.wharf.test resolves nowhere but here.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, listen)
		},
		ForceAttemptHTTP2: true,
	}
	base := fmt.Sprintf("https://%s:%d", host, port)
	resp, err := (&http.Client{Transport: tr}).Get(base + "/v2/")
	if err != nil {
		t.Fatalf("GET /v2/ over the ACME certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || !strings.Contains(resp.TLS.PeerCertificates[0].Issuer.CommonName, "Pebble") || resp.ProtoMajor != 2 {
		t.Fatalf("status %d, proto %s, issuer %v", resp.StatusCode, resp.Proto, resp.TLS.PeerCertificates[0].Issuer)
	}
	hostPort := fmt.Sprintf("%s:%d", host, port)
	ref := hostPort + "/team/app:1"
	img := withRandomLayer(t, harness.BusyboxImage(t), 256<<10)
	harness.Push(t, ref, img, remote.WithTransport(tr))
	got := harness.PullImageHTTPS(t, ref, rootPEM, listen, "HTTP/2.0")
	harness.RequireSameImage(t, "go-containerregistry over HTTP/2", img, got)
	// skopeo and ctr cannot be told where the name resolves: they run with
	// an /etc/hosts of their own.
	acme := httpsClients{caPEM: rootPEM, names: []string{host}}
	acme.skopeoPull(t, ref, img)
	acme.ctrPull(t, harness.StartContainerd(t), ref, hostPort, "https://"+hostPort, img)
	first := resp.TLS.PeerCertificates[0].SerialNumber

	// The certificate is cached in the data dir: a restart with Pebble
	// gone still serves it.
	w.Stop()
	pebble.Stop()
	w = w.Restart(t)
	tr.CloseIdleConnections()
	resp, err = (&http.Client{Transport: tr}).Get(base + "/v2/")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	resp.Body.Close()
	if resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first) != 0 {
		t.Error("a new certificate after restart; the cached one was not used")
	}
	got = harness.PullImageHTTPS(t, ref, rootPEM, listen, "HTTP/2.0")
	harness.RequireSameImage(t, "after restart, go-containerregistry over HTTP/2", img, got)
}

// deadPort is a port the test holds and hangs up on at once: Pebble's
// HTTP-01 attempts there fail, as with nothing listening, and no other
// process can be given it meanwhile.
func deadPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}
