// Package config is wharf's configuration as immutable data: Parse reads
// YAML strictly, applies defaults and validates; Sanitize masks secrets for
// printing and logging. Nothing here is shared mutable state: a reload is a
// new *Config.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/wharf-registry/wharf/oci"
)

// Config is the whole configuration. Treat a *Config as read-only once
// Parse or Default returned it.
type Config struct {
	Listen  string   `yaml:"listen"`
	DataDir string   `yaml:"data_dir"`
	Log     Log      `yaml:"log"`
	Hosted  []Hosted `yaml:"hosted"`
	Proxies []Proxy  `yaml:"proxies"`
	Cache   Cache    `yaml:"cache,omitempty"`
	Metrics Metrics  `yaml:"metrics,omitempty"`
	GC      GC       `yaml:"gc"`
	Auth    Auth     `yaml:"auth,omitempty"`
	TLS     TLS      `yaml:"tls,omitempty"`
	// Storage and Index move blobs to S3 and metadata to PostgreSQL
	// (cluster mode: docs/cluster.md). Unset: both under data_dir.
	Storage Storage `yaml:"storage,omitempty"`
	Index   Index   `yaml:"index,omitempty"`
	// Cluster tunes how replicas in cluster mode reach each other.
	Cluster Cluster `yaml:"cluster,omitempty"`

	// HostAll makes every repository name hosted (tests and embedders;
	// not settable from YAML).
	HostAll bool `yaml:"-"`

	lines map[string]int
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// AccessLog turns the one-line-per-request log on or off.
	AccessLog *bool `yaml:"access_log"`
}

// Hosted is a namespace that accepts pushes.
type Hosted struct {
	Name string `yaml:"name"`
	// AnonymousPull lets anyone pull without logging in when auth is on
	// (default false: hosted content needs a login).
	AnonymousPull bool `yaml:"anonymous_pull,omitempty"`
}

// DefaultListen is where wharf listens with no config: the port Docker's
// registry image has always used.
const DefaultListen = ":5000"

// DefaultDataDir is used when neither config, flag nor WHARF_DATA_DIR set one.
const DefaultDataDir = "./data"

// Embedded is the configuration `wharf serve` runs with when given no file.
// It caches Docker Hub for every name (so it works as Docker's
// registry-mirrors entry) and hosts pushes under local/.
func Embedded() *Config {
	c := &Config{
		Hosted:  []Hosted{{Name: "local"}},
		Proxies: []Proxy{{Name: "hub", Upstream: DockerHubURL, Default: true}},
	}
	c.applyDefaults()
	return c
}

// Load reads and parses a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly (unknown keys and wrong types are errors
// naming the line), applies defaults and validates.
func Parse(b []byte) (*Config, error) {
	c := &Config{}
	if len(bytes.TrimSpace(b)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		// io.EOF: a file of only comments is an empty config, not an error.
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, cleanYAMLError(err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(b, &root); err == nil {
			c.lines = map[string]int{}
			indexLines(&root, "", c.lines)
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			// yaml says "field x not found in type config.Config"; say it plainly.
			if i := strings.Index(e, " not found in type "); i >= 0 {
				e = strings.Replace(e[:i], "field ", "unknown key ", 1)
			}
			msgs = append(msgs, e)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

// indexLines records the line of every key path (a.b[0].c) for messages.
func indexLines(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexLines(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			out[p] = k.Line
			indexLines(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			out[p] = c.Line
			indexLines(c, p, out)
		}
	}
}

// line finds key's line, or its nearest parent's when the key itself is
// absent (a hosted entry without a name is reported at the entry).
func (c *Config) line(key string) (int, bool) {
	for {
		if l, ok := c.lines[key]; ok {
			return l, true
		}
		i := strings.LastIndexAny(key, ".[")
		if i <= 0 {
			return 0, false
		}
		key = key[:i]
	}
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	c.proxyDefaults()
	c.gcDefaults()
	c.authDefaults()
	c.tlsDefaults()
	c.clusterDefaults()
	if c.Log.AccessLog == nil {
		t := true
		c.Log.AccessLog = &t
	}
}

// ValidationError lists every problem found, each with its key and line.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid config: " + e.Problems[0]
	}
	return "invalid config:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// Validate checks the whole config and reports every problem at once.
func (c *Config) Validate() error {
	var probs []string
	add := func(key, format string, args ...any) {
		msg := key + ": " + fmt.Sprintf(format, args...)
		if l, ok := c.line(key); ok {
			msg = fmt.Sprintf("line %d: %s", l, msg)
		}
		probs = append(probs, msg)
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		add("listen", "%q is not host:port (for example :5000 or 127.0.0.1:5000)", c.Listen)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		add("listen", "%q has no valid port (0-65535)", c.Listen)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format", "%q is not text or json", c.Log.Format)
	}
	seen := map[string]string{}
	for i, h := range c.Hosted {
		key := fmt.Sprintf("hosted[%d].name", i)
		if h.Name == "" {
			add(key, "a hosted namespace needs a name (its path prefix, e.g. team)")
			continue
		}
		if err := oci.ValidateName(h.Name); err != nil {
			add(key, "%q is not a valid repository path prefix", h.Name)
			continue
		}
		if other, dup := seen[h.Name]; dup {
			add(key, "namespace %q is already defined at %s", h.Name, other)
		}
		seen[h.Name] = key
	}
	c.validateProxies(add, seen)
	c.validateCache(add)
	c.validateMetrics(add)
	c.validateGC(add)
	c.validateAuth(add)
	c.validateTLS(add)
	c.validateCluster(add)
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, a := range names {
		for _, b := range names {
			if a != b && strings.HasPrefix(b, a+"/") {
				add(seen[b], "namespace %q is nested inside %q; namespaces must not overlap", b, a)
			}
		}
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// Sanitize returns a copy safe to print or log: secrets are masked.
func (c *Config) Sanitize() *Config {
	cp := *c
	cp.Hosted = append([]Hosted(nil), c.Hosted...)
	cp.Proxies = append([]Proxy(nil), c.Proxies...)
	cp.Cache.Pin = append([]string(nil), c.Cache.Pin...)
	for i := range cp.Proxies {
		if cp.Proxies[i].Password != "" {
			cp.Proxies[i].Password = "******"
		}
	}
	if l := c.Auth.LDAP; l != nil {
		lc := *l
		if lc.BindPassword != "" {
			lc.BindPassword = "******"
		}
		cp.Auth.LDAP = &lc
	}
	c.sanitizeCluster(&cp)
	return &cp
}

// YAML renders the config (call Sanitize first when it will be shown).
func (c *Config) YAML() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Sprintf("# cannot render config: %v\n", err)
	}
	return string(b)
}

// WithOverrides returns a copy with command-line overrides applied and
// validated again.
func (c *Config) WithOverrides(listen, dataDir string) (*Config, error) {
	cp := *c
	// Overridden values did not come from the file: do not blame its lines.
	cp.lines = make(map[string]int, len(c.lines))
	for k, l := range c.lines {
		cp.lines[k] = l
	}
	if listen != "" {
		cp.Listen = listen
		delete(cp.lines, "listen")
	}
	if dataDir != "" {
		cp.DataDir = dataDir
		delete(cp.lines, "data_dir")
	}
	if err := cp.Validate(); err != nil {
		return nil, err
	}
	return &cp, nil
}
