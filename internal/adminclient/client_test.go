package adminclient_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/e2e/officebox"
	"github.com/wharf-registry/wharf/internal/adminclient"
	"github.com/wharf-registry/wharf/server"
)

func TestDialRefusesWhatWouldGoWrong(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "not-a-ca.pem")
	os.WriteFile(ca, []byte("hello"), 0o600)
	for _, c := range []struct {
		url, user, ca, want string
	}{
		{"", "root", "", "give the address"},
		{"http://box.example.org:5000", "root", "", "unencrypted"},
		{"ftp://box:21", "root", "", "scheme must be https"},
		{"https://box:5000/v2/", "root", "", "host and port only"},
		{"https://box:5000?x=1", "root", "", "host and port only"},
		{"https://box:5000", "", "", "user name of an admin"},
		{"https://box:5000", "root", ca, "holds no PEM certificate"},
		{"https://box:5000", "root", ca + ".missing", "reading the CA"},
	} {
		_, err := adminclient.Dial(c.url, adminclient.Options{User: c.user, Password: "pw", CAFile: c.ca})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Dial(%q, %q, %q): %v, want %q", c.url, c.user, c.ca, err, c.want)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:5000", "http://localhost:5000", "http://[::1]:5000", "box.example.org:5000", "https://box:5000/"} {
		if _, err := adminclient.Dial(ok, adminclient.Options{User: "root"}); err != nil {
			t.Errorf("Dial(%q): %v", ok, err)
		}
	}
}

// TestClientManagesARemoteWharf does over HTTPS (HTTP/2) what the
// desktop app's remote window does: log in, read the dashboard's data,
// pre-warm, list, pin, evict, collect garbage and manage users.
func TestClientManagesARemoteWharf(t *testing.T) {
	box := officebox.Start(t)
	url, ca := box.URL, box.CAFile
	ctx := context.Background()
	dial := func(user, pw, caFile string) *adminclient.Client {
		t.Helper()
		c, err := adminclient.Dial(url, adminclient.Options{User: user, Password: pw, CAFile: caFile})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// What goes wrong says what to do.
	if _, err := dial("root", "root-pw", "").WhoAmI(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach wharf at "+url) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without its CA: %v", err)
	}
	if _, err := dial("root", "wrong", ca).WhoAmI(ctx); err == nil || !strings.Contains(err.Error(), "login was refused") {
		t.Errorf("wrong password: %v", err)
	}
	var ae *adminclient.Error
	if _, err := dial("carol", "carol-pw", ca).WhoAmI(ctx); !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(err.Error(), "not an admin") {
		t.Errorf("not an admin: %v", err)
	}

	c := dial("root", "root-pw", ca)
	who, err := c.WhoAmI(ctx)
	if err != nil || who.User != "root" || who.Version != "9.9.9" {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	warm, err := c.Prewarm(ctx, "app:1")
	if err != nil || warm.Layers != 2 || warm.Image != "hub/library/app:1" {
		t.Fatalf("prewarm: %+v %v", warm, err)
	}
	harness.PullImageHTTPS(t, box.Addr+"/app:1", box.CAPEM, "", "HTTP/2.0", remote.WithAuth(&authn.Basic{Username: "carol", Password: "carol-pw"}))
	rep, err := c.Report(ctx)
	if err != nil || rep.Version != "9.9.9" || rep.ServedBytes["hit"] == 0 {
		t.Errorf("report: %v %+v", err, rep.ServedBytes)
	}
	if _, err := c.Transfers(ctx); err != nil {
		t.Errorf("transfers: %v", err)
	}
	ev, err := c.Events(ctx, 0)
	if err != nil || ev.Last == 0 || ev.Events[len(ev.Events)-1].Repo != "app" || ev.Events[len(ev.Events)-1].Source != "hit" {
		t.Errorf("events: %+v %v", ev, err)
	}
	rows, err := c.CacheList(ctx, "size", "", 0)
	if err != nil || len(rows) < 4 { // manifest, config and two layers
		t.Errorf("cache ls: %d rows, %v", len(rows), err)
	}
	var tagged []string
	for _, r := range rows {
		tagged = append(tagged, r.Tags...)
	}
	if strings.Join(tagged, ",") != "hub/library/app:1" {
		t.Errorf("cached tags %v, want [hub/library/app:1]", tagged)
	}
	if st, err := c.CacheStats(ctx); err != nil || st.ProxiedBytes == 0 {
		t.Errorf("cache stats: %+v %v", st, err)
	}
	if p, err := c.PinImage(ctx, "app:1", true); err != nil || p.Digests == 0 {
		t.Errorf("pin: %+v %v", p, err)
	}
	if _, err := c.PinImage(ctx, "app:1", false); err != nil {
		t.Errorf("unpin: %v", err)
	}
	if ev, err := c.EvictImage(ctx, "app:1"); err != nil || ev.Blobs == 0 {
		t.Errorf("evict: %+v %v", ev, err)
	}
	if _, err := c.EvictImage(ctx, ""); err == nil || !strings.Contains(err.Error(), "name an image") {
		t.Errorf("evict with no image: %v", err)
	}
	if _, err := c.GC(ctx, server.GCRequest{DryRun: true}); err != nil {
		t.Errorf("gc dry run: %v", err)
	}

	if ch, err := c.SetPassword(ctx, "dave", "dave-pw"); err != nil || !ch.Added {
		t.Fatalf("add dave: %+v %v", ch, err)
	}
	if _, err := dial("dave", "dave-pw", ca).Report(ctx); err != nil {
		t.Errorf("dave reads the status: %v", err)
	}
	users, err := c.Users(ctx)
	if err != nil || strings.Join(users.Users, ",") != "carol,dave,root" {
		t.Errorf("users: %+v %v", users, err)
	}
	if err := c.RemoveUser(ctx, "dave"); err != nil {
		t.Errorf("remove dave: %v", err)
	}
	if err := c.RemoveUser(ctx, "dave"); err == nil || !strings.Contains(err.Error(), "there is no user dave") {
		t.Errorf("remove dave twice: %v", err)
	}
	if err := c.RemoveUser(ctx, "root"); err == nil || !strings.Contains(err.Error(), "you are logged in as root") {
		t.Errorf("remove yourself: %v", err)
	}
}
