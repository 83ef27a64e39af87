//go:build linux

package harness

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// HTTPSTransport is a Go client's transport that trusts only caPEM and
// negotiates HTTP/2 when the server offers it, as crane does with
// SSL_CERT_FILE. dialAddr, when set, is where every connection goes,
// whatever the name (an ACME name that resolves nowhere but the test).
func HTTPSTransport(t testing.TB, caPEM []byte, dialAddr string) *http.Transport {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("HTTPSTransport: no certificate in the CA PEM")
	}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	if dialAddr != "" {
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, dialAddr)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// Answer is one response a ProtocolRecorder saw.
type Answer struct {
	Method, Path, Proto string
	Status              int
}

// ProtocolRecorder is an http.RoundTripper that notes the protocol of
// every answer, so a test can prove which one a client negotiated.
type ProtocolRecorder struct {
	Next http.RoundTripper

	mu   sync.Mutex
	seen []Answer
}

// RoundTrip implements http.RoundTripper.
func (p *ProtocolRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.Next.RoundTrip(req)
	if err == nil {
		p.mu.Lock()
		p.seen = append(p.seen, Answer{Method: req.Method, Path: req.URL.Path, Proto: resp.Proto, Status: resp.StatusCode})
		p.mu.Unlock()
	}
	return resp, err
}

// Answers returns the answers to requests whose path contains substr.
func (p *ProtocolRecorder) Answers(substr string) []Answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Answer
	for _, a := range p.seen {
		if strings.Contains(a.Path, substr) {
			out = append(out, a)
		}
	}
	return out
}

// PullImageHTTPS is PullImage over HTTPS with a client trusting only caPEM
// (dialling dialAddr, when set): manifest, config and every layer read to
// the end, each digest checked by go-containerregistry. It fails the test
// unless every blob GET was answered 200 over wantProto ("HTTP/2.0" for a
// Go client against wharf's TLS listener) and returns the image pulled.
func PullImageHTTPS(t testing.TB, ref string, caPEM []byte, dialAddr, wantProto string, opts ...remote.Option) v1.Image {
	t.Helper()
	rec := &ProtocolRecorder{Next: HTTPSTransport(t, caPEM, dialAddr)}
	img := PullImage(t, ref, append([]remote.Option{remote.WithTransport(rec), remote.WithContext(t.Context())}, opts...)...)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blobs := rec.Answers("/blobs/")
	var gets int
	for _, a := range blobs {
		if a.Method != http.MethodGet {
			continue
		}
		gets++
		if a.Proto != wantProto || a.Status != http.StatusOK {
			t.Errorf("pull %s: GET %s answered %d over %s, want 200 over %s", ref, a.Path, a.Status, a.Proto, wantProto)
		}
	}
	if want := len(m.Layers) + 1; gets < want {
		t.Errorf("pull %s: %d blob GETs, want at least %d (config and every layer)", ref, gets, want)
	}
	return img
}

// RequireSameImage fails the test unless got has want's manifest digest and
// the same layer digests, in order.
func RequireSameImage(t testing.TB, what string, want, got v1.Image) {
	t.Helper()
	wd, err := want.Digest()
	if err != nil {
		t.Fatal(err)
	}
	gd, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if wd != gd {
		t.Errorf("%s: manifest digest %s, want %s", what, gd, wd)
	}
	if w, g := layerDigests(t, want), layerDigests(t, got); fmt.Sprint(w) != fmt.Sprint(g) {
		t.Errorf("%s: layers %v, want %v", what, g, w)
	}
}

func layerDigests(t testing.TB, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// LoopbackNames returns an argv prefix that runs a command in a mount
// namespace of its own whose /etc/hosts also maps names to 127.0.0.1, for
// clients with no way to override name resolution (skopeo, ctr) that must
// reach a server by a name only the test knows, such as an ACME
// certificate's. The machine's /etc/hosts is not touched.
func LoopbackNames(t testing.TB, names ...string) []string {
	t.Helper()
	if len(names) == 0 {
		return nil
	}
	unshare := Tool(t, "unshare")
	hosts := filepath.Join(t.TempDir(), "hosts")
	writeFile(t, hosts, "127.0.0.1 localhost "+strings.Join(names, " ")+"\n::1 localhost ip6-localhost ip6-loopback\n")
	// unshare makes the new namespace's mounts private, so the bind mount
	// is seen by this command and its children only.
	return []string{unshare, "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$1" /etc/hosts && shift && exec "$@"`, "sh", hosts}
}
