package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// Proxy is a namespace that caches an upstream registry.
type Proxy struct {
	// Name is the path prefix: /v2/NAME/... reaches this upstream.
	Name string `yaml:"name"`
	// Upstream is the registry's base URL, e.g. https://registry-1.docker.io.
	Upstream string `yaml:"upstream"`
	// Default makes this proxy serve every name outside the configured
	// namespaces too (what Docker's registry-mirrors needs), and makes it
	// the one that stands for Docker Hub (docker.io, ns=docker.io).
	Default bool `yaml:"default,omitempty"`
	// Aliases are other host names for this upstream, matched against
	// containerd's ?ns= parameter.
	Aliases []string `yaml:"aliases,omitempty"`

	Username     string `yaml:"username,omitempty"`
	Password     string `yaml:"password,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty"`

	// TagTTL is how long a tag → digest answer is trusted before it is
	// revalidated with a HEAD upstream.
	TagTTL Duration `yaml:"tag_ttl"`
	// Timeout bounds connecting and waiting for response headers.
	Timeout Duration `yaml:"timeout"`
	// CAFile adds a CA bundle for the upstream's TLS certificate.
	CAFile string `yaml:"ca_file,omitempty"`
	// Insecure skips TLS verification. Only for testing.
	Insecure bool `yaml:"insecure,omitempty"`
	// AnonymousPull lets clients pull without logging in when auth is on
	// (default true: a mirror is usually open to the team).
	AnonymousPull *bool `yaml:"anonymous_pull,omitempty"`
}

// AllowsAnonymousPull reports the effective anonymous_pull.
func (p Proxy) AllowsAnonymousPull() bool { return p.AnonymousPull == nil || *p.AnonymousPull }

// DefaultTagTTL is used when a proxy sets no tag_ttl.
const DefaultTagTTL = 5 * time.Minute

// DockerHubURL is Docker Hub's registry endpoint.
const DockerHubURL = "https://registry-1.docker.io"

// DockerHubHosts are the names Docker Hub goes by.
var DockerHubHosts = []string{"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

// Duration is a time.Duration written as "5m", "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration strings.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std is the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Host is the upstream's host[:port].
func (p Proxy) Host() string {
	u, err := url.Parse(p.Upstream)
	if err != nil {
		return ""
	}
	return u.Host
}

// IsDockerHub reports whether this proxy stands for Docker Hub: the
// default proxy, or one whose upstream is Docker Hub.
func (p Proxy) IsDockerHub() bool {
	if p.Default {
		return true
	}
	h := strings.ToLower(p.Host())
	for _, n := range DockerHubHosts {
		if h == n {
			return true
		}
	}
	return false
}

// Hosts are the names containerd's ?ns= may use for this upstream.
func (p Proxy) Hosts() []string {
	out := []string{strings.ToLower(p.Host())}
	if p.IsDockerHub() {
		out = append(out, DockerHubHosts...)
	}
	for _, a := range p.Aliases {
		out = append(out, strings.ToLower(a))
	}
	return out
}

// ResolvePassword returns the password from whichever source is set.
func (p Proxy) ResolvePassword() (string, error) {
	switch {
	case p.PasswordFile != "":
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("proxy %s: reading password_file: %w", p.Name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case p.PasswordEnv != "":
		v, ok := os.LookupEnv(p.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("proxy %s: environment variable %s (password_env) is not set", p.Name, p.PasswordEnv)
		}
		return v, nil
	}
	return p.Password, nil
}

func (c *Config) validateProxies(add func(key, format string, args ...any), seen map[string]string) {
	defaults := 0
	for i, p := range c.Proxies {
		key := fmt.Sprintf("proxies[%d]", i)
		if p.Name == "" {
			add(key+".name", "a proxy needs a name (its path prefix, e.g. hub)")
		} else if strings.Contains(p.Name, "/") || !validComponent(p.Name) {
			add(key+".name", "%q is not a valid path prefix: one lower-case component like hub or ghcr", p.Name)
		} else if p.Name == "hosted" || p.Name == "recovered" {
			add(key+".name", "%q is reserved (it names stored content that is not a proxy's); pick another name", p.Name)
		} else if other, dup := seen[p.Name]; dup {
			add(key+".name", "namespace %q is already defined at %s", p.Name, other)
		} else {
			seen[p.Name] = key + ".name"
		}
		u, err := url.Parse(p.Upstream)
		switch {
		case p.Upstream == "":
			add(key+".upstream", "a proxy needs an upstream URL, e.g. https://registry-1.docker.io")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			add(key+".upstream", "%q is not an http:// or https:// URL", p.Upstream)
		case u.User != nil:
			add(key+".upstream", "put credentials in username and password, not in the URL")
		}
		if p.Default {
			defaults++
			if defaults > 1 {
				add(key+".default", "only one proxy can be the default")
			}
		}
		n := 0
		for _, s := range []string{p.Password, p.PasswordFile, p.PasswordEnv} {
			if s != "" {
				n++
			}
		}
		if n > 1 {
			add(key, "set only one of password, password_file and password_env")
		}
		if n > 0 && p.Username == "" {
			add(key+".username", "a password needs a username")
		}
		if p.TagTTL < 0 {
			add(key+".tag_ttl", "must not be negative")
		}
		if p.Timeout < 0 {
			add(key+".timeout", "must not be negative")
		}
		for j, a := range p.Aliases {
			if a == "" || strings.ContainsAny(a, "/ ") {
				add(fmt.Sprintf("%s.aliases[%d]", key, j), "%q is not a host name", a)
			}
		}
	}
}

func validComponent(s string) bool {
	return oci.ValidateName(s) == nil
}

func (c *Config) proxyDefaults() {
	for i := range c.Proxies {
		if c.Proxies[i].TagTTL == 0 {
			c.Proxies[i].TagTTL = Duration(DefaultTagTTL)
		}
		if c.Proxies[i].Timeout == 0 {
			c.Proxies[i].Timeout = Duration(30 * time.Second)
		}
	}
}

// DefaultProxy is the proxy serving the root namespace, or nil.
func (c *Config) DefaultProxy() *Proxy {
	for i := range c.Proxies {
		if c.Proxies[i].Default {
			return &c.Proxies[i]
		}
	}
	return nil
}
