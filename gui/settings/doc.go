// Package settings is the logic behind the desktop app's Registries and
// Access screens, with no Fyne import: it edits wharf's YAML config file
// in place keeping the user's comments, validates every edit as
// `wharf config check` does, writes the file atomically, and tests
// upstreams and LDAP directories the way the server would use them.
//
// A Doc is the file being edited. Each edit method either leaves a Doc
// holding a valid config or returns an error and changes nothing; Save
// writes the result (and any password files) and says which changes a
// running server applies live and which need a restart. A Doc is not safe
// for concurrent use.
package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/internal/atomicfile"
)

// Doc is a wharf config file loaded for editing.
type Doc struct {
	path string
	mode fs.FileMode

	disk  []byte         // the file as Load read it (or Save wrote it)
	saved *config.Config // what disk parses to

	root   *yaml.Node      // the document with every edit applied
	spaced map[string]bool // top-level keys with a blank line above them on disk
	text   []byte          // root rendered
	cfg    *config.Config  // text parsed: always valid

	secrets map[string]string // password files Save writes, by path
	stale   map[string]bool   // password files Save removes
}

// Load reads the config file at path. A file that does not parse or does
// not validate is reported as `wharf config check` reports it (with line
// numbers) and is not touched.
func Load(path string) (*Doc, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// Save renames over the file: keep a symlinked config a symlink.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the file was left as it is; fix it by hand or with `wharf config check`)", abs, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", abs, err)
	}
	if root.Kind == 0 { // empty or only comments
		root = yaml.Node{Kind: yaml.DocumentNode, HeadComment: root.HeadComment, FootComment: root.FootComment}
	}
	if len(root.Content) == 0 {
		root.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	if top := root.Content[0]; top.Kind != yaml.MappingNode {
		// "~", "null" or a bare "---": an empty config that edits must
		// be able to add keys to. Anything else failed config.Parse.
		root.Content[0] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map",
			HeadComment: top.HeadComment, LineComment: top.LineComment, FootComment: top.FootComment}
	}
	return &Doc{
		path: abs, mode: fi.Mode().Perm(),
		disk: b, saved: cfg,
		root: &root, spaced: spacedKeys(b), text: b, cfg: cfg,
		secrets: map[string]string{}, stale: map[string]bool{},
	}, nil
}

// Path is the config file's absolute path.
func (d *Doc) Path() string { return d.path }

// Config is the config with every edit so far applied (defaults filled
// in). Treat it as read-only; the screens prefill their forms from it.
func (d *Doc) Config() *config.Config { return d.cfg }

// Changed reports whether there are edits Save has not written.
func (d *Doc) Changed() bool {
	return !bytes.Equal(d.text, d.disk) || len(d.secrets) > 0 || len(d.stale) > 0
}

// edit applies fn to a copy of the document's top mapping, renders and
// validates the result; only a valid result replaces the document.
func (d *Doc) edit(fn func(top *yaml.Node) error) error {
	root := clone(d.root)
	if err := fn(root.Content[0]); err != nil {
		return err
	}
	text, err := render(root)
	if err != nil {
		return err
	}
	text = respace(text, d.spaced)
	cfg, err := config.Parse(text)
	if err != nil {
		return editError(err)
	}
	d.root, d.text, d.cfg = root, text, cfg
	return nil
}

// lineRef is the "line N: " validation puts before a problem; the lines
// of a document not written yet mean nothing to the person editing it.
var lineRef = regexp.MustCompile(`^line \d+: `)

// editError says why an edit was refused, each problem by its key.
func editError(err error) error {
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("not changed: %w", err)
	}
	probs := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		probs[i] = lineRef.ReplaceAllString(p, "")
	}
	return fmt.Errorf("not changed: %s", strings.Join(probs, "; "))
}

func render(root *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("rendering the config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering the config: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrChangedOnDisk is returned by Save when someone else changed the file
// since it was loaded: Save does not overwrite their edit.
var ErrChangedOnDisk = errors.New("the config file changed on disk since it was loaded; load it again and redo the change")

// Save writes the edited config: password files first (mode 0600), then
// the config through a temporary file in the same directory, fsynced and
// renamed over the old one with its mode kept. It reports which of the
// changes since the last Save a running server applies live.
func (d *Doc) Save() (Change, error) {
	if !d.Changed() {
		return Change{}, nil
	}
	now, err := os.ReadFile(d.path)
	if err != nil {
		return Change{}, fmt.Errorf("reading config before saving: %w", err)
	}
	if !bytes.Equal(now, d.disk) {
		return Change{}, fmt.Errorf("%s: %w", d.path, ErrChangedOnDisk)
	}
	for p, pw := range d.secrets {
		if err := atomicfile.Write(p, []byte(pw+"\n"), 0o600); err != nil {
			return Change{}, fmt.Errorf("writing password file: %w", err)
		}
	}
	if err := atomicfile.Write(d.path, d.text, d.mode); err != nil {
		return Change{}, fmt.Errorf("writing config: %w", err)
	}
	for p := range d.stale {
		if _, used := d.secrets[p]; !used {
			os.Remove(p) // a leftover password file is harmless; its removal failing is not worth failing Save for
		}
	}
	ch := classify(d.saved, d.cfg)
	d.disk, d.saved = d.text, d.cfg
	d.secrets, d.stale = map[string]string{}, map[string]bool{}
	return ch, nil
}
