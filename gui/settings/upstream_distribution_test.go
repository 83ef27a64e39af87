//go:build linux

package settings

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestUpstreamAgainstDistribution pings a real Distribution (Debian's
// docker-registry) in each of its auth modes, with the password where the
// settings put it: a password_file beside the config.
func TestUpstreamAgainstDistribution(t *testing.T) {
	for _, tc := range []struct {
		mode     harness.AuthMode
		user, pw string
		ok       bool
		want     string
	}{
		{harness.AuthNone, "", "", true, "answered 200 without asking for credentials"},
		{harness.AuthBasic, harness.DefaultUser, harness.DefaultPassword, true, "answered 401 with a Basic challenge; credentials accepted"},
		{harness.AuthBasic, harness.DefaultUser, "wrong", false, "answered 401 with a Basic challenge; credentials rejected"},
		{harness.AuthBasic, "", "", false, "answered 401 with a Basic challenge; it wants credentials"},
		{harness.AuthToken, harness.DefaultUser, harness.DefaultPassword, true, "answered 401 with a Bearer challenge; credentials accepted"},
		{harness.AuthToken, harness.DefaultUser, "wrong", false, "answered 401 with a Bearer challenge; credentials rejected"},
	} {
		t.Run(tc.mode.String()+"/"+tc.pw, func(t *testing.T) {
			d := harness.StartDistribution(t, harness.DistributionOptions{Auth: tc.mode})
			p := Proxy{Name: "origin", Upstream: d.URL, Username: tc.user, Password: tc.pw}
			doc, cfg := saved(t, func(doc *Doc) error { return doc.AddProxy(p) })
			if tc.pw != "" && filepath.Dir(cfg.Proxies[0].PasswordFile) != filepath.Dir(doc.Path()) {
				t.Fatalf("password_file %q is not beside the config", cfg.Proxies[0].PasswordFile)
			}
			got := TestUpstream(context.Background(), cfg.Proxies[0])
			if got.OK != tc.ok || !strings.HasPrefix(got.Message, d.Addr+" "+tc.want) {
				t.Errorf("got %+v, want ok=%v and %q", got, tc.ok, d.Addr+" "+tc.want)
			}
		})
	}
}
