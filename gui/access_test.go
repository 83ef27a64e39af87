package gui

import (
	"net/http"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

// login asks the running server's /v2/ with Basic credentials and returns
// the status.
func login(t *testing.T, addr, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAccessUsersLogIn turns htpasswd logins on from the Access tab,
// restarts as it offers, and adds, resets and removes a user, each
// checked by logging in over HTTP against the running server.
func TestAccessUsersLogIn(t *testing.T) {
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", "https://registry-1.docker.io"))
	a, x := f.app, &f.app.acc
	f.startOn("access")
	x.userName.SetText("alice")
	x.userPass.SetText("first-secret")
	test.Tap(x.addUser)
	expectRefused(t, f, x.out, []byte(readFile(t, f.cfg)), "htpasswd users are off")

	x.htpasswd.SetText("users.htpasswd")
	test.Tap(x.htpasswdBtn)
	if !strings.Contains(x.out.msg.Text, "auth (turning it on)") || !x.out.restart.Visible() {
		t.Fatalf("turning logins on: %q, restart offered %v", x.out.msg.Text, x.out.restart.Visible())
	}
	test.Tap(x.out.restart)
	f.ui.waitFor(t, "the restart with logins on", func() bool { return a.lastGen == 2 && strings.HasPrefix(a.state.Text, "Running on ") })
	addr := a.Lifecycle().Addr
	if code := login(t, addr, "alice", "first-secret"); code != http.StatusUnauthorized {
		t.Errorf("alice before she exists: %d", code)
	}

	x.userName.SetText("alice")
	x.userPass.SetText("first-secret")
	test.Tap(x.addUser)
	if x.out.msg.Importance == widget.DangerImportance || !strings.Contains(strings.Join(labelsIn(x.users), " "), "alice") {
		t.Fatalf("adding alice: %q, users %q", x.out.msg.Text, labelsIn(x.users))
	}
	f.ui.waitFor(t, "alice logging in", func() bool { return login(t, addr, "alice", "first-secret") == http.StatusOK })
	x.userName.SetText("bob")
	test.Tap(x.addUser)
	if !strings.Contains(x.out.msg.Text, "type a password for bob") || strings.Contains(strings.Join(labelsIn(x.users), " "), "bob") {
		t.Errorf("adding bob without a password: %q, users %q", x.out.msg.Text, labelsIn(x.users))
	}
	x.userName.SetText("alice")
	x.userPass.SetText("again")
	test.Tap(x.addUser)
	if !strings.Contains(x.out.msg.Text, "already exists") {
		t.Errorf("adding alice twice: %q", x.out.msg.Text)
	}

	x.userPass.SetText("second-secret")
	test.Tap(x.resetPass)
	f.ui.waitFor(t, "the new password working", func() bool { return login(t, addr, "alice", "second-secret") == http.StatusOK })
	if code := login(t, addr, "alice", "first-secret"); code != http.StatusUnauthorized {
		t.Errorf("the old password after a reset: %d", code)
	}

	tapRowButton(t, x.users, "alice", "Remove")
	f.ui.waitFor(t, "alice refused once removed", func() bool { return login(t, addr, "alice", "second-secret") == http.StatusUnauthorized })
	if strings.Contains(strings.Join(labelsIn(x.users), " "), "alice") {
		t.Errorf("alice still listed: %q", labelsIn(x.users))
	}
}

// The anonymous-pull switches, LDAP and TLS forms save what they say and
// refuse what is wrong inline, with the file untouched.
func TestAccessSwitchesLDAPAndTLS(t *testing.T) {
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", "https://registry-1.docker.io"))
	a, x := f.app, &f.app.acc
	if err := a.ShowTab("access"); err != nil {
		t.Fatal(err)
	}
	var local *widget.Check
	for _, o := range x.anonymous.Objects {
		if c, ok := o.(*widget.Check); ok && strings.HasPrefix(c.Text, "local (hosted)") {
			local = c
		}
	}
	if local == nil || local.Checked {
		t.Fatalf("no unchecked switch for the hosted namespace local in %v", x.anonymous.Objects)
	}
	local.SetChecked(true)
	if !strings.Contains(readFile(t, f.cfg), "anonymous_pull: true") || !strings.HasPrefix(x.out.msg.Text, "Saved") {
		t.Errorf("anonymous pull for local: %q\n%s", x.out.msg.Text, readFile(t, f.cfg))
	}

	before := []byte(readFile(t, f.cfg))
	x.ldapURL.SetText("http://ldap.example.org")
	x.ldapBaseDN.SetText("dc=example,dc=org")
	test.Tap(x.saveLDAP)
	expectRefused(t, f, x.out, before, "is not a directory address")

	x.ldapURL.SetText("ldap://127.0.0.1:1")
	x.ldapUser.SetText("alice")
	test.Tap(x.testLDAP)
	f.ui.waitFor(t, "the LDAP test's answer", func() bool { return !x.testLDAP.Disabled() && !strings.HasPrefix(x.ldapResult.Text, "Asking") })
	if x.ldapResult.Importance != widget.DangerImportance || !strings.Contains(x.ldapResult.Text, "127.0.0.1:1") {
		t.Errorf("testing a closed port: %q", x.ldapResult.Text)
	}
	test.Tap(x.saveLDAP)
	if cfg := readFile(t, f.cfg); !strings.Contains(cfg, "url: ldap://127.0.0.1:1") || x.removeLDAP.Disabled() {
		t.Errorf("LDAP not saved: %q\n%s", x.out.msg.Text, cfg)
	}
	test.Tap(x.removeLDAP)
	if strings.Contains(readFile(t, f.cfg), "ldap:") {
		t.Error("LDAP still in the file after turning it off")
	}

	x.tlsMode.SetSelected("self-signed")
	test.Tap(x.saveTLS)
	if !strings.Contains(readFile(t, f.cfg), "mode: self-signed") {
		t.Errorf("TLS mode not saved: %q", x.out.msg.Text)
	}
	if !strings.Contains(x.trustText, "update-ca-certificates") || !strings.Contains(strings.Join(labelsIn(x.trust), " "), "ca.crt") {
		t.Errorf("trust commands: %q, shown %q", x.trustText, labelsIn(x.trust))
	}
	test.Tap(findButton(x.trust, "Copy the commands"))
	if got := a.fa.Clipboard().Content(); got != x.trustText {
		t.Errorf("clipboard %q", got)
	}
	x.tlsMode.SetSelected("files")
	before = []byte(readFile(t, f.cfg))
	test.Tap(x.saveTLS)
	expectRefused(t, f, x.out, before, "not changed")
}
