package settings

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/config"
)

const sample = `# wharf on the office box
listen: 127.0.0.1:5000 # loopback only for now
data_dir: ./data

# pushes
hosted:
  - name: team # the team's images

proxies:
  # Docker Hub for every name
  - name: hub
    upstream: https://registry-1.docker.io
    default: true
`

// writeConfig puts text in a config file of mode 0640 in a new directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wharf.yml")
	if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, text string) *Doc {
	t.Helper()
	d, err := Load(writeConfig(t, text))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// saved applies edit to an empty config file, saves it and returns the
// Doc and what wharf reads back from the file.
func saved(t *testing.T, edit func(d *Doc) error) (*Doc, *config.Config) {
	t.Helper()
	d := load(t, "")
	if err := edit(d); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	return d, cfg
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadRefusesWhatCheckRefuses(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"not YAML", "listen: [\n", "did not find expected"},
		{"unknown key", "listen: :5000\nnmae: x\n", "line 2: unknown key nmae"},
		{"invalid", "listen: nope\n", `line 1: listen: "nope" is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.text)
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tc.want)
			}
			if got := read(t, p); got != tc.text {
				t.Errorf("the file changed:\n%s", got)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load of a missing file = %v", err)
	}
}

func TestSaveKeepsCommentsAndMode(t *testing.T) {
	d := load(t, sample)
	if err := d.AddHosted("ci"); err != nil {
		t.Fatal(err)
	}
	ch, err := d.Save()
	if err != nil {
		t.Fatal(err)
	}
	// Comments and the blank lines between sections stay; only the new
	// entry is added.
	want := strings.Replace(sample, "  - name: team # the team's images\n", "  - name: team # the team's images\n  - name: ci\n", 1)
	if got := read(t, d.Path()); got != want {
		t.Errorf("saved:\n%s\nwant:\n%s", got, want)
	}
	if fi, _ := os.Stat(d.Path()); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640 kept", fi.Mode().Perm())
	}
	if !ch.NeedsRestart() || ch.String() != "applies after a restart (hosted)" {
		t.Errorf("change = %+v (%s)", ch, ch)
	}
	if d.Changed() {
		t.Error("Changed after Save")
	}
	if ch, err := d.Save(); err != nil || ch.String() != "nothing changed" {
		t.Errorf("second Save = %v, %v", ch, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(d.Path()))
	if len(entries) != 1 {
		t.Errorf("left files behind: %v", entries)
	}
}

func TestSaveKeepsASymlinkedConfigASymlink(t *testing.T) {
	target := writeConfig(t, sample)
	link := filepath.Join(t.TempDir(), "wharf.yml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	d, err := Load(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddHosted("ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	if !strings.Contains(read(t, target), "- name: ci") {
		t.Error("the target was not changed")
	}
}

func TestSaveRefusesAFileChangedOnDisk(t *testing.T) {
	d := load(t, sample)
	if err := d.AddHosted("ci"); err != nil {
		t.Fatal(err)
	}
	theirs := sample + "# edited by hand\n"
	os.WriteFile(d.Path(), []byte(theirs), 0o640)
	if _, err := d.Save(); !errors.Is(err, ErrChangedOnDisk) {
		t.Fatalf("Save = %v, want ErrChangedOnDisk", err)
	}
	if read(t, d.Path()) != theirs {
		t.Error("Save overwrote an edit made on disk")
	}
}

func TestChangeClassification(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           string
	}{
		{"auth edited", "auth: {htpasswd: ./a}\n", "auth: {htpasswd: ./b}\n", "applies now (auth)"},
		{"auth on", "", "auth: {htpasswd: ./a}\n", "applies after a restart (auth (turning it on))"},
		{"auth off", "auth: {htpasswd: ./a}\n", "", "applies after a restart (auth (turning it off))"},
		{"both", "auth: {htpasswd: ./a}\n", "listen: :6000\nauth: {htpasswd: ./b}\n", "auth applies now; listen after a restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := load(t, tc.from), load(t, tc.to)
			if got := classify(from.cfg, to.cfg).String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// failing runs edit on a Doc of sample and checks it fails with want in
// the message, and that neither the Doc nor the file changed.
func failing(t *testing.T, want string, edit func(d *Doc) error) {
	t.Helper()
	d := load(t, sample)
	before := append([]byte(nil), d.text...)
	err := edit(d)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("edit = %v, want an error containing %q", err, want)
	} else if strings.Contains(err.Error(), "line ") {
		t.Errorf("edit = %v: names a line of a document not written yet", err)
	}
	if !bytes.Equal(d.text, before) || d.Changed() {
		t.Errorf("a failed edit changed the document:\n%s", d.text)
	}
	if _, err := d.Save(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d.Path()); got != sample {
		t.Errorf("the file changed after a failed edit:\n%s", got)
	}
}

// An edit and its undo give back the shipped configs byte for byte:
// comments, blank lines, quoting and indentation survive the node tree.
func TestEditAndUndoRoundTrip(t *testing.T) {
	for _, f := range []string{"../../packaging/wharf.yml", "../../testdata/minimal.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := load(t, string(b))
		if err := d.AddHosted("zz-roundtrip"); err != nil {
			t.Fatal(err)
		}
		if err := d.RemoveHosted("zz-roundtrip"); err != nil {
			t.Fatal(err)
		}
		if string(d.text) != string(b) {
			t.Errorf("%s after an edit and its undo:\n%s", f, d.text)
		}
	}
}
