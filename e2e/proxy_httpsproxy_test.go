//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// corpHost is the upstream's name as wharf knows it. It resolves nowhere:
// only the corporate proxy, which does the name resolution, can reach it.
const corpHost = "registry.corp.test"

// connectProxy is a corporate forward proxy in miniature: it answers
// CONNECT HOST:443 by tunnelling to the address it maps HOST to, and
// records every tunnel asked for.
type connectProxy struct {
	*httptest.Server
	routes map[string]string // host:port asked for → 127.0.0.1:port

	mu      sync.Mutex
	tunnels []string
}

func startConnectProxy(t *testing.T, routes map[string]string) *connectProxy {
	p := &connectProxy{routes: routes}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "only CONNECT here", http.StatusMethodNotAllowed)
			return
		}
		p.mu.Lock()
		p.tunnels = append(p.tunnels, r.Host)
		p.mu.Unlock()
		to, ok := p.routes[r.Host]
		if !ok {
			http.Error(w, "no route to "+r.Host, http.StatusBadGateway)
			return
		}
		up, err := net.DialTimeout("tcp", to, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		rw.Flush()
		go func() { io.Copy(up, rw); up.Close() }()
		io.Copy(conn, up)
		conn.Close()
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *connectProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.tunnels)
}

const corpProxyConfig = `listen: {{.Listen}}
data_dir: ./data
proxies:
  - name: hub
    upstream: https://%s
    ca_file: %s
    default: true
    timeout: 3s
`

// TestProxyThroughHTTPSProxy: on a network where the upstream is reached
// only through a corporate proxy, wharf honours HTTPS_PROXY (a CONNECT
// tunnel, TLS to the upstream inside it, verified with ca_file) and
// NO_PROXY (then it goes direct, which here cannot resolve the name, and
// says so with an OCI error instead of hanging).
func TestProxyThroughHTTPSProxy(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	img := harness.PushRandomImage(t, origin.Addr+"/library/app:1", harness.ImageSpec{Layers: 2, LayerSize: 64 << 10})

	// The upstream as the outside world sees it: TLS for corpHost in
	// front of Distribution.
	caPEM, certPEM, keyPEM, err := harness.LoopbackCert("corp test CA", corpHost)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	originURL, _ := url.Parse(origin.URL)
	front := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(originURL))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	front.StartTLS()
	t.Cleanup(front.Close)
	caFile := filepath.Join(t.TempDir(), "corp-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	proxy := startConnectProxy(t, map[string]string{corpHost + ":443": front.Listener.Addr().String()})

	// The variables go to the server alone; a lower-case one the test
	// machine may have would win over upper case in Go, so set both.
	env := []string{"HTTPS_PROXY=" + proxy.URL, "https_proxy=" + proxy.URL, "NO_PROXY=", "no_proxy="}
	cfg := fmt.Sprintf(corpProxyConfig, corpHost, caFile)
	bin := harness.BuildWharf(t)
	w := harness.StartWharfEnv(t, bin, env, cfg)
	got := harness.PullImage(t, w.Addr+"/library/app:1")
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	if proxy.count() == 0 {
		t.Fatal("wharf reached the upstream without the proxy in HTTPS_PROXY")
	}
	for _, h := range proxy.tunnels {
		if h != corpHost+":443" {
			t.Errorf("tunnel to %q, want only %s:443", h, corpHost)
		}
	}
	w.Stop()

	// NO_PROXY names the upstream: wharf goes direct, the name does not
	// resolve here, and the pull fails quickly with an OCI error.
	env = append(env, "NO_PROXY="+corpHost, "no_proxy="+corpHost)
	before := proxy.count()
	w2 := harness.StartWharfEnv(t, bin, env, cfg)
	res := fetch(context.Background(), manifestURL(w2, "library/other", "1"), 60*time.Second)
	if res.Err != nil || res.Status < 500 || ociCode(res.Body) == "" {
		t.Fatalf("direct to an unresolvable upstream: status %d, code %q, err %v, after %s", res.Status, ociCode(res.Body), res.Err, res.Elapsed)
	}
	if proxy.count() != before {
		t.Errorf("the proxy saw %d more tunnels although NO_PROXY names the upstream", proxy.count()-before)
	}
	t.Logf("NO_PROXY: %d %s in %s", res.Status, ociCode(res.Body), res.Elapsed.Round(time.Millisecond))
}
