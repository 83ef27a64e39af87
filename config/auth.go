package config

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
)

// Auth configures who may do what. With no auth section every request is
// allowed (a registry on a trusted workstation); with one, hosted
// namespaces need a login and proxies stay anonymous unless rules or
// anonymous_pull say otherwise.
type Auth struct {
	// Htpasswd is an Apache htpasswd file of bcrypt hashes, reloaded
	// when it changes. `wharf user add NAME` writes it.
	Htpasswd string `yaml:"htpasswd,omitempty"`
	// LDAP checks users against a directory.
	LDAP *LDAP `yaml:"ldap,omitempty"`
	// Admins may do everything, including the admin API (users, or
	// group:NAME).
	Admins []string `yaml:"admins,omitempty"`
	// Rules grant pull, push and delete per repository glob; the first
	// rule whose repository matches and that names the action decides.
	Rules []Rule `yaml:"rules,omitempty"`
	// TokenTTL is how long a bearer token from /auth/token is good for.
	TokenTTL Duration `yaml:"token_ttl,omitempty"`
	// MaxFailures is how many failed logins one address may make within
	// FailureWindow before it is answered 429 until the window passes.
	// Failures slow answers (to that address and for that user) before.
	MaxFailures   int      `yaml:"max_failures,omitempty"`
	FailureWindow Duration `yaml:"failure_window,omitempty"`
}

// Enabled reports whether any user source is configured.
func (a Auth) Enabled() bool { return a.Htpasswd != "" || a.LDAP != nil }

// LDAP configures a directory to check users against.
type LDAP struct {
	// URL is ldap://host:389 or ldaps://host:636.
	URL string `yaml:"url"`
	// StartTLS upgrades an ldap:// connection before binding.
	StartTLS bool `yaml:"start_tls,omitempty"`
	// CAFile trusts the directory's certificate (ldaps:// and StartTLS).
	CAFile string `yaml:"ca_file,omitempty"`
	// Insecure skips certificate verification. Only for testing.
	Insecure bool `yaml:"insecure,omitempty"`

	// BindDN and one of the password keys are the service account that
	// searches for users. Empty BindDN: anonymous search.
	BindDN           string `yaml:"bind_dn,omitempty"`
	BindPassword     string `yaml:"bind_password,omitempty"`
	BindPasswordFile string `yaml:"bind_password_file,omitempty"`
	BindPasswordEnv  string `yaml:"bind_password_env,omitempty"`

	// BaseDN is where users are searched, e.g. ou=people,dc=example,dc=org.
	BaseDN string `yaml:"base_dn"`
	// UserFilter finds the user; {username} is replaced by the escaped
	// login name. Default (uid={username}).
	UserFilter string `yaml:"user_filter,omitempty"`

	// GroupAttribute on the user entry lists group DNs (memberOf, the
	// default). Used when GroupBaseDN is empty.
	GroupAttribute string `yaml:"group_attribute,omitempty"`
	// GroupBaseDN, when set, finds groups by a search instead:
	// GroupFilter with {dn} (the user's DN) and {username} replaced,
	// escaped; default (|(member={dn})(uniqueMember={dn})(memberUid={username})).
	GroupBaseDN string `yaml:"group_base_dn,omitempty"`
	GroupFilter string `yaml:"group_filter,omitempty"`
	// GroupNameAttribute names a group in rules (default cn).
	GroupNameAttribute string `yaml:"group_name_attribute,omitempty"`

	// Timeout bounds connecting and each operation (default 5s).
	Timeout Duration `yaml:"timeout,omitempty"`
	// CacheTTL keeps a successful login for this long so a pull of many
	// layers does not bind once per request (default 1m).
	CacheTTL Duration `yaml:"cache_ttl,omitempty"`
}

// ResolveBindPassword returns the service account's password from
// whichever source is set.
func (l LDAP) ResolveBindPassword() (string, error) {
	switch {
	case l.BindPasswordFile != "":
		b, err := os.ReadFile(l.BindPasswordFile)
		if err != nil {
			return "", fmt.Errorf("auth.ldap: reading bind_password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case l.BindPasswordEnv != "":
		v, ok := os.LookupEnv(l.BindPasswordEnv)
		if !ok {
			return "", fmt.Errorf("auth.ldap: environment variable %s (bind_password_env) is not set", l.BindPasswordEnv)
		}
		return v, nil
	}
	return l.BindPassword, nil
}

// Rule grants actions on the repositories its glob matches. Subjects are
// user names, group:NAME, "*" (any logged-in user) and "anonymous"
// (everyone, logged in or not).
type Rule struct {
	// Repository is a glob over the full name as clients write it with
	// the namespace first: team/app, hub/library/busybox. "*" matches
	// any run of characters, "/" included; "?" one character.
	Repository string   `yaml:"repository"`
	Pull       []string `yaml:"pull,omitempty"`
	Push       []string `yaml:"push,omitempty"`
	Delete     []string `yaml:"delete,omitempty"`
}

// Subjects are the special names rules understand.
const (
	SubjectAnyUser   = "*"
	SubjectAnonymous = "anonymous"
	GroupPrefix      = "group:"
)

// Default auth settings.
const (
	DefaultTokenTTL      = 5 * time.Minute
	DefaultMaxFailures   = 10
	DefaultFailureWindow = 5 * time.Minute
	DefaultLDAPTimeout   = 5 * time.Second
	DefaultLDAPCacheTTL  = time.Minute
)

func (c *Config) authDefaults() {
	a := &c.Auth
	if a.TokenTTL == 0 {
		a.TokenTTL = Duration(DefaultTokenTTL)
	}
	if a.MaxFailures == 0 {
		a.MaxFailures = DefaultMaxFailures
	}
	if a.FailureWindow == 0 {
		a.FailureWindow = Duration(DefaultFailureWindow)
	}
	if a.LDAP != nil {
		a.LDAP.ApplyDefaults()
		if a.LDAP.CacheTTL == 0 {
			a.LDAP.CacheTTL = Duration(DefaultLDAPCacheTTL)
		}
	}
}

// ApplyDefaults fills the filter, attribute and timeout keys left empty
// (Parse does this and also defaults cache_ttl; code that builds an LDAP
// by hand calls it, where a zero CacheTTL means no cache).
func (l *LDAP) ApplyDefaults() {
	if l.UserFilter == "" {
		l.UserFilter = "(uid={username})"
	}
	if l.GroupAttribute == "" {
		l.GroupAttribute = "memberOf"
	}
	if l.GroupFilter == "" {
		l.GroupFilter = "(|(member={dn})(uniqueMember={dn})(memberUid={username}))"
	}
	if l.GroupNameAttribute == "" {
		l.GroupNameAttribute = "cn"
	}
	if l.Timeout <= 0 {
		l.Timeout = Duration(DefaultLDAPTimeout)
	}
}

func (c *Config) validateAuth(add func(key, format string, args ...any)) {
	a := c.Auth
	if !a.Enabled() && (len(a.Rules) > 0 || len(a.Admins) > 0) {
		add("auth", "rules and admins need a user source: set auth.htpasswd or auth.ldap")
	}
	if a.TokenTTL < Duration(time.Minute) {
		add("auth.token_ttl", "must be at least 1m")
	}
	if a.MaxFailures < 0 {
		add("auth.max_failures", "must not be negative")
	}
	if a.FailureWindow < 0 {
		add("auth.failure_window", "must not be negative")
	}
	if l := a.LDAP; l != nil {
		u, err := url.Parse(l.URL)
		switch {
		case l.URL == "":
			add("auth.ldap.url", "set the directory's address, e.g. ldap://ldap.example.org:389 or ldaps://ldap.example.org:636")
		case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "":
			add("auth.ldap.url", "%q is not an ldap:// or ldaps:// URL", l.URL)
		case u.Scheme == "ldaps" && l.StartTLS:
			add("auth.ldap.start_tls", "ldaps:// is already TLS; start_tls is for ldap:// URLs")
		}
		if l.BaseDN == "" {
			add("auth.ldap.base_dn", "set where users are searched, e.g. ou=people,dc=example,dc=org")
		}
		if !strings.Contains(l.UserFilter, "{username}") {
			add("auth.ldap.user_filter", "%q must contain {username}", l.UserFilter)
		}
		if !strings.HasPrefix(l.UserFilter, "(") || !strings.HasPrefix(l.GroupFilter, "(") {
			add("auth.ldap", "filters must be in parentheses, e.g. (uid={username})")
		}
		n := 0
		for _, s := range []string{l.BindPassword, l.BindPasswordFile, l.BindPasswordEnv} {
			if s != "" {
				n++
			}
		}
		if n > 1 {
			add("auth.ldap", "set only one of bind_password, bind_password_file and bind_password_env")
		}
		if n > 0 && l.BindDN == "" {
			add("auth.ldap.bind_dn", "a bind password needs a bind_dn")
		}
		if l.Timeout < 0 {
			add("auth.ldap.timeout", "must not be negative")
		}
		if l.CacheTTL < 0 {
			add("auth.ldap.cache_ttl", "must not be negative")
		}
	}
	for i, r := range a.Rules {
		key := fmt.Sprintf("auth.rules[%d]", i)
		if r.Repository == "" {
			add(key+".repository", "a rule needs a repository glob, e.g. team/* or hub/*")
		} else if _, err := path.Match(strings.ReplaceAll(r.Repository, "/", "x"), ""); err != nil {
			add(key+".repository", "%q is not a valid glob: %v", r.Repository, err)
		}
		if len(r.Pull)+len(r.Push)+len(r.Delete) == 0 {
			add(key, "a rule needs at least one of pull, push and delete")
		}
		for action, subs := range map[string][]string{"pull": r.Pull, "push": r.Push, "delete": r.Delete} {
			for j, s := range subs {
				if strings.TrimSpace(s) == "" || s == GroupPrefix {
					add(fmt.Sprintf("%s.%s[%d]", key, action, j), "empty subject; use a user name, group:NAME, \"*\" or anonymous")
				}
			}
		}
	}
	for j, s := range a.Admins {
		if s == SubjectAnonymous || s == SubjectAnyUser {
			add(fmt.Sprintf("auth.admins[%d]", j), "%q would make everyone an admin; name users or group:NAME", s)
		}
	}
}
