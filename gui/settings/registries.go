package settings

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-registry/wharf/config"
)

// Preset is a well-known registry the Registries screen offers.
type Preset struct {
	Label    string // what the app shows: "Docker Hub"
	Name     string // the proxy name it suggests: "hub"
	Upstream string // the URL wharf's config expects
}

// Presets are the registries offered with one click. Docker Hub is
// registry-1.docker.io: the API host behind docker.io, which wharf's
// config recognises as Docker Hub (library/ names, ?ns=docker.io).
func Presets() []Preset {
	return []Preset{
		{"Docker Hub", "hub", config.DockerHubURL},
		{"GitHub Container Registry", "ghcr", "https://ghcr.io"},
		{"Quay", "quay", "https://quay.io"},
		{"Kubernetes", "k8s", "https://registry.k8s.io"},
		{"Google Container Registry", "gcr", "https://gcr.io"},
		{"Microsoft Container Registry", "mcr", "https://mcr.microsoft.com"},
	}
}

// Proxy is a proxy as the Registries screen edits it.
type Proxy struct {
	Name     string
	Upstream string
	// Default serves every name outside the namespaces (Docker's
	// registry-mirrors needs one).
	Default  bool
	Username string
	// Password, when set, is written to a password_file beside the config
	// (mode 0600) and referenced from it; the YAML never holds it. Empty
	// keeps whatever password the proxy has; an empty Username removes
	// the credentials.
	Password string
}

// errNotPlain: the config names the entry, but not as a plain "name:" key
// of a list item (an anchor or merge key), so it cannot be edited here.
var errNotPlain = errors.New("this entry is written in a way the app cannot edit (anchors or merge keys); edit the file by hand")

// Proxies are the configured proxies (defaults filled in).
func (d *Doc) Proxies() []config.Proxy { return d.cfg.Proxies }

// Hosted are the configured hosted namespaces.
func (d *Doc) Hosted() []config.Hosted { return d.cfg.Hosted }

// AddProxy adds a proxy; its name must be new.
func (d *Doc) AddProxy(p Proxy) error {
	if err := d.checkProxy(p, ""); err != nil {
		return err
	}
	return d.applyProxy(p, func(top *yaml.Node) *yaml.Node {
		seq := list(top, "proxies")
		it := newItem(seq)
		seq.Content = append(seq.Content, it)
		return it
	})
}

// EditProxy changes the proxy called name (p.Name may rename it).
func (d *Doc) EditProxy(name string, p Proxy) error {
	if _, ok := d.proxy(name); !ok {
		return fmt.Errorf("there is no proxy %q", name)
	}
	if err := d.checkProxy(p, name); err != nil {
		return err
	}
	return d.applyProxy(p, func(top *yaml.Node) *yaml.Node {
		_, it := named(value(top, "proxies"), name)
		return it
	})
}

// RemoveProxy removes the proxy called name (and, at Save, the password
// file this package wrote for it).
func (d *Doc) RemoveProxy(name string) error {
	old, ok := d.proxy(name)
	if !ok {
		return fmt.Errorf("there is no proxy %q", name)
	}
	err := d.edit(func(top *yaml.Node) error {
		seq := value(top, "proxies")
		i, _ := named(seq, name)
		if i < 0 {
			return errNotPlain
		}
		seq.Content = append(seq.Content[:i], seq.Content[i+1:]...)
		return nil
	})
	if err == nil {
		d.forget(old.PasswordFile, d.secretPath("proxy-"+name))
	}
	return err
}

func (d *Doc) proxy(name string) (config.Proxy, bool) {
	for _, p := range d.cfg.Proxies {
		if p.Name == name {
			return p, true
		}
	}
	return config.Proxy{}, false
}

// checkProxy catches the mistakes a person makes with words better than
// the generic validation does; oldName is the proxy being edited.
func (d *Doc) checkProxy(p Proxy, oldName string) error {
	if strings.TrimSpace(p.Name) == "" {
		return errors.New("a proxy needs a name: the path prefix clients use, e.g. hub or ghcr")
	}
	if p.Name != oldName {
		if err := d.nameFree(p.Name); err != nil {
			return err
		}
	}
	u, err := url.Parse(p.Upstream)
	if p.Upstream == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not a registry URL: write it as https://HOST (for example https://ghcr.io)", p.Upstream)
	}
	if p.Password != "" && p.Username == "" {
		return errors.New("a password needs a user name")
	}
	return nil
}

// nameFree reports a namespace name already taken by a proxy or a hosted
// namespace.
func (d *Doc) nameFree(name string) error {
	for _, p := range d.cfg.Proxies {
		if p.Name == name {
			return fmt.Errorf("a proxy named %q already exists; pick another name", name)
		}
	}
	for _, h := range d.cfg.Hosted {
		if h.Name == name {
			return fmt.Errorf("a hosted namespace named %q already exists; pick another name", name)
		}
	}
	return nil
}

func (d *Doc) applyProxy(p Proxy, item func(top *yaml.Node) *yaml.Node) error {
	pwFile := d.secretPath("proxy-" + p.Name)
	err := d.edit(func(top *yaml.Node) error {
		if p.Default {
			for _, it := range list(top, "proxies").Content {
				del(it, "default") // only one default
			}
		}
		it := item(top)
		if it == nil {
			return errNotPlain
		}
		setFields(it, field{"name", p.Name}, field{"upstream", p.Upstream}, field{"default", p.Default}, field{"username", p.Username})
		setCredentials(it, "password", p.Username, p.Password, pwFile)
		return nil
	})
	if err == nil {
		d.keepSecret(pwFile, p.Username, p.Password)
	}
	return err
}

// setCredentials points the password keys (password, password_file,
// password_env after prefix) at file when there is a new password, and
// removes them all when there is no user.
func setCredentials(m *yaml.Node, prefix, user, password, file string) {
	switch {
	case user == "":
		setFields(m, field{prefix, ""}, field{prefix + "_file", ""}, field{prefix + "_env", ""})
	case password != "":
		setFields(m, field{prefix, ""}, field{prefix + "_env", ""}, field{prefix + "_file", file})
	}
}

// keepSecret tells Save what to do with the password file at path after
// setCredentials: write password to it, or remove it with the user.
func (d *Doc) keepSecret(path, user, password string) {
	switch {
	case user == "":
		d.forget(path)
	case password != "":
		d.secrets[path] = password
		delete(d.stale, path)
	}
}

// secretPath is where a password file of this config goes: beside it,
// named after it, absolute because wharf reads paths from where it runs.
func (d *Doc) secretPath(what string) string {
	base := strings.TrimSuffix(filepath.Base(d.path), filepath.Ext(d.path))
	return filepath.Join(filepath.Dir(d.path), base+"."+what+".password")
}

// forget drops the password files among paths that this package writes,
// so Save removes them instead of leaving a secret nobody references.
func (d *Doc) forget(paths ...string) {
	for _, p := range paths {
		if p == "" || !strings.HasPrefix(p, strings.TrimSuffix(d.path, filepath.Ext(d.path))+".") || !strings.HasSuffix(p, ".password") {
			continue
		}
		delete(d.secrets, p)
		d.stale[p] = true
	}
}

// AddHosted adds a hosted namespace that takes pushes.
func (d *Doc) AddHosted(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("a hosted namespace needs a name: the path prefix pushes go under, e.g. team")
	}
	if err := d.nameFree(name); err != nil {
		return err
	}
	return d.edit(func(top *yaml.Node) error {
		seq := list(top, "hosted")
		it := newItem(seq)
		setFields(it, field{"name", name})
		seq.Content = append(seq.Content, it)
		return nil
	})
}

// RemoveHosted removes a hosted namespace from the config; what was
// pushed there stays on disk.
func (d *Doc) RemoveHosted(name string) error {
	return d.edit(func(top *yaml.Node) error {
		seq := value(top, "hosted")
		i, _ := named(seq, name)
		if i < 0 {
			return fmt.Errorf("there is no hosted namespace %q", name)
		}
		seq.Content = append(seq.Content[:i], seq.Content[i+1:]...)
		return nil
	})
}
