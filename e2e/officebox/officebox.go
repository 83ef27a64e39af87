// Package officebox runs wharf in a test's process as the small office
// box the desktop app and the admin client manage from afar. It is for
// tests only, like package harness, which cannot import the server
// (the server's own packages' tests import harness).
package officebox

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/crypto/bcrypt"

	"github.com/wharf-registry/wharf/certs"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/server"
)

// Box is a wharf run in the test's process as the small office box
// the desktop app manages from afar: TLS self-signed, htpasswd logins
// (root, an admin, and carol, who is not; each password is NAME-pw), and
// a proxy "hub", the default, of an in-process registry that holds
// library/app:1 (two random layers).
type Box struct {
	URL    string // https://127.0.0.1:PORT
	Addr   string // 127.0.0.1:PORT
	CAFile string // the self-signed CA, as `wharf tls ca` names it
	CAPEM  []byte
	Server *server.Server
}

// Start starts a Box; it stops with the test.
func Start(t testing.TB) *Box {
	t.Helper()
	origin := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(origin.Close)
	harness.PushRandomImage(t, strings.TrimPrefix(origin.URL, "http://")+"/library/app:1", harness.ImageSpec{Layers: 2, LayerSize: 64 << 10})
	dir := t.TempDir()
	var users strings.Builder
	for _, u := range []string{"root", "carol"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "%s:%s\n", u, h)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	cfg, err := config.Parse(fmt.Appendf(nil, `listen: 127.0.0.1:0
data_dir: %s
tls:
  mode: self-signed
  hosts: [127.0.0.1]
log:
  access_log: false
auth:
  htpasswd: %s
  admins: [root]
proxies:
  - name: hub
    upstream: %s
    default: true
`, data, htpasswd, origin.URL))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, server.WithVersion("9.9.9"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	b := &Box{URL: "https://" + s.Addr(), Addr: s.Addr(), CAFile: certs.SelfSignedCAPath(data), Server: s}
	if b.CAPEM, err = os.ReadFile(b.CAFile); err != nil {
		t.Fatal(err)
	}
	return b
}
