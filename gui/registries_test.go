package gui

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// expectRefused checks an edit the tab refused: the reason inline, the
// file's bytes as they were.
func expectRefused(t *testing.T, f *fixture, out *outcome, before []byte, want string) {
	t.Helper()
	if out.msg.Importance != widget.DangerImportance || !strings.Contains(out.msg.Text, want) {
		t.Errorf("refused edit: message %q (importance %v), want an error containing %q", out.msg.Text, out.msg.Importance, want)
	}
	if after, _ := os.ReadFile(f.cfg); !bytes.Equal(before, after) {
		t.Errorf("a refused edit changed the config file:\n%s", after)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRegistriesTab adds a proxy from a preset edited to point at a local
// Distribution, tests its upstream, restarts as the tab offers and pulls
// through the new proxy; a bad URL and a taken name are refused inline
// with the file untouched; hosted namespaces come and go.
func TestRegistriesTab(t *testing.T) {
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	harness.PushRandomImage(t, origin.Addr+"/library/demo:1", harness.ImageSpec{Layers: 1, LayerSize: 64 << 10})
	f := newFixture(t, configFor(t.TempDir(), "127.0.0.1:0", "https://registry-1.docker.io"))
	a, r := f.app, &f.app.reg
	f.startOn("registries")
	if got := proxyRows(a); len(got) != 1 || !strings.Contains(got[0], "hub  →  https://registry-1.docker.io  (default)") {
		t.Errorf("proxies listed: %q", got)
	}

	r.preset.SetSelected("GitHub Container Registry")
	if r.name.Text != "ghcr" || r.upstream.Text != "https://ghcr.io" {
		t.Errorf("the ghcr preset filled name %q, upstream %q", r.name.Text, r.upstream.Text)
	}
	r.name.SetText("origin")
	r.upstream.SetText(origin.URL)
	test.Tap(r.testBtn)
	f.ui.waitFor(t, "the upstream test's answer", func() bool {
		return !r.testBtn.Disabled() && r.testResult.Text != "" && !strings.HasPrefix(r.testResult.Text, "Testing")
	})
	if r.testResult.Importance != widget.SuccessImportance {
		t.Errorf("testing a live Distribution: %q", r.testResult.Text)
	}

	test.Tap(r.addBtn)
	if !strings.Contains(r.out.msg.Text, "after a restart (proxies)") || !r.out.restart.Visible() {
		t.Errorf("after adding a proxy: %q, restart offered %v", r.out.msg.Text, r.out.restart.Visible())
	}
	if got := proxyRows(a); len(got) != 2 || !strings.Contains(got[1], "origin  →  "+origin.URL) {
		t.Errorf("proxies listed after the add: %q", got)
	}
	saved := readFile(t, f.cfg)
	if !strings.Contains(saved, "name: origin") || !strings.Contains(saved, "upstream: "+origin.URL) || !strings.Contains(saved, "# my own comment") {
		t.Errorf("saved file:\n%s", saved)
	}
	if r.name.Text != "" {
		t.Errorf("the form kept %q after a successful add", r.name.Text)
	}
	test.Tap(r.out.restart)
	f.ui.waitFor(t, "the restart the tab offered", func() bool { return a.lastGen == 2 && strings.HasPrefix(a.state.Text, "Running on ") })
	harness.PullImage(t, a.Lifecycle().Addr+"/origin/library/demo:1")

	before := []byte(saved)
	r.name.SetText("bad")
	r.upstream.SetText("ftp//nowhere")
	test.Tap(r.addBtn)
	expectRefused(t, f, r.out, before, "is not a registry URL")
	if r.upstream.Text != "ftp//nowhere" {
		t.Error("a refused add cleared the form")
	}
	r.name.SetText("hub")
	r.upstream.SetText("https://quay.io")
	test.Tap(r.addBtn)
	expectRefused(t, f, r.out, before, `a proxy named "hub" already exists`)
	r.name.SetText("local")
	test.Tap(r.addBtn)
	expectRefused(t, f, r.out, before, `hosted namespace named "local" already exists`)

	r.hostedName.SetText("team")
	test.Tap(r.addHosted)
	if !strings.Contains(readFile(t, f.cfg), "- name: team") || !strings.Contains(strings.Join(hostedRows(a), "\n"), "team") {
		t.Errorf("hosted team not saved or listed: %q", hostedRows(a))
	}
	r.hostedName.SetText("team")
	test.Tap(r.addHosted)
	expectRefused(t, f, r.out, []byte(readFile(t, f.cfg)), "already exists")

	tapRowButton(t, r.proxies, "origin", "Remove")
	if strings.Contains(readFile(t, f.cfg), "name: origin") || len(proxyRows(a)) != 1 {
		t.Errorf("origin not removed: %q", proxyRows(a))
	}
	tapRowButton(t, r.hosted, "team", "Remove")
	if strings.Contains(readFile(t, f.cfg), "name: team") {
		t.Error("hosted team not removed")
	}
	if !strings.Contains(readFile(t, f.cfg), "# my own comment") {
		t.Error("the user's comment was lost")
	}
}

func proxyRows(a *App) []string  { return labelsIn(a.reg.proxies) }
func hostedRows(a *App) []string { return labelsIn(a.reg.hosted) }

// A config file that does not parse is reported on the tab, and an edit
// leaves it byte for byte as it was.
func TestRegistriesBrokenConfig(t *testing.T) {
	f := newFixture(t, "listen: [127.0.0.1:0\nproxies: {\n")
	a, r := f.app, &f.app.reg
	before := []byte(readFile(t, f.cfg))
	if err := a.ShowTab("registries"); err != nil {
		t.Fatal(err)
	}
	if !r.out.box.Visible() || !strings.Contains(r.out.msg.Text, "wharf.yml") {
		t.Errorf("a broken config: %q", r.out.msg.Text)
	}
	r.preset.SetSelected("Quay")
	test.Tap(r.addBtn)
	expectRefused(t, f, r.out, before, "the file was left as it is")
	r.hostedName.SetText("team")
	test.Tap(r.addHosted)
	expectRefused(t, f, r.out, before, "the file was left as it is")
}
