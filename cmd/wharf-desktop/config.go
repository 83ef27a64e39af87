package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wharf-registry/wharf/config"
)

// xdgDir is $name (an absolute path) or ~/fallback, as the XDG base
// directory spec says.
func xdgDir(getenv func(string) string, name, fallback string) (string, error) {
	if d := getenv(name); filepath.IsAbs(d) {
		return d, nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("neither $%s nor $HOME is set: pass --config FILE", name)
	}
	return filepath.Join(home, fallback), nil
}

// defaultConfigPath is $XDG_CONFIG_HOME/wharf/wharf.yml.
func defaultConfigPath(getenv func(string) string) (string, error) {
	dir, err := xdgDir(getenv, "XDG_CONFIG_HOME", ".config")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "wharf", "wharf.yml"), nil
}

// defaultDataDir is $XDG_DATA_HOME/wharf.
func defaultDataDir(getenv func(string) string) (string, error) {
	dir, err := xdgDir(getenv, "XDG_DATA_HOME", filepath.Join(".local", "share"))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "wharf"), nil
}

// firstConfig is the file written on the first start: the embedded
// default of `wharf serve`, with the data under the user's data dir and
// comments that say how to use and change it.
func firstConfig(dataDir string) string {
	e := config.Embedded()
	var b strings.Builder
	fmt.Fprintf(&b, `# wharf configuration, written by wharf-desktop on its first start.
# wharf-desktop and 'wharf serve --config THIS_FILE' run the same setup.
# After an edit, 'wharf config check THIS_FILE' validates it and Restart
# in the app (or in the tray) applies it.

# Every address of this machine, port 5000: Docker's registry-mirrors
# entry is http://THIS_HOST:5000.
listen: %q
# Blobs and the index.
data_dir: %q
`, e.Listen, dataDir)
	b.WriteString("# Pushes go to these namespaces: docker push THIS_HOST:5000/local/app\nhosted:\n")
	for _, h := range e.Hosted {
		fmt.Fprintf(&b, "  - name: %s\n", h.Name)
	}
	b.WriteString("# Pull-through caches; the default one serves every other name.\nproxies:\n")
	for _, p := range e.Proxies {
		fmt.Fprintf(&b, "  - name: %s\n    upstream: %s\n", p.Name, p.Upstream)
		if p.Default {
			b.WriteString("    default: true\n")
		}
	}
	return b.String()
}

// ensureConfig returns the config file to run with. With no --config it
// is the default path, written from firstConfig when it does not exist
// yet; an existing file is never touched. created says whether it was
// written now.
func ensureConfig(flagPath string, getenv func(string) string) (path string, created bool, err error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", false, fmt.Errorf("config %s: %w (leave out --config to use and create %s)", flagPath, err, orDefault(getenv))
		}
		return flagPath, false, nil
	}
	if path, err = defaultConfigPath(getenv); err != nil {
		return "", false, err
	}
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("config %s: %w", path, err)
	}
	data, err := defaultDataDir(getenv)
	if err != nil {
		return "", false, err
	}
	text := firstConfig(data)
	if _, err := config.Parse([]byte(text)); err != nil { // a bug, not the user's
		return "", false, fmt.Errorf("the first-start config does not validate: %w", err)
	}
	if err := writeNew(path, []byte(text)); err != nil {
		return "", false, fmt.Errorf("writing the first-start config: %w (pass --config FILE to use another place)", err)
	}
	return path, true, nil
}

func orDefault(getenv func(string) string) string {
	p, err := defaultConfigPath(getenv)
	if err != nil {
		return "$XDG_CONFIG_HOME/wharf/wharf.yml"
	}
	return p
}

// writeNew writes path atomically and only if it does not exist: a temp
// file in the same dir, fsynced, then hard-linked into place (a link,
// unlike a rename, fails when the name is taken).
func writeNew(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".wharf.yml-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
