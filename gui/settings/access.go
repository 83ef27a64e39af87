package settings

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.yaml.in/yaml/v3"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/config"
)

// SetHtpasswd turns htpasswd users on with the file at path (relative to
// the config's directory; it need not exist yet), or off with "".
func (d *Doc) SetHtpasswd(path string) error {
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.path), path)
	}
	return d.edit(func(top *yaml.Node) error {
		setFields(section(top, "auth"), field{"htpasswd", path})
		dropIfEmpty(top, "auth")
		return nil
	})
}

// dropIfEmpty removes the mapping under key when nothing is left in it.
func dropIfEmpty(m *yaml.Node, key string) {
	if v := value(m, key); v != nil && v.Kind == yaml.MappingNode && len(v.Content) == 0 {
		del(m, key)
	}
}

// SetAnonymousPull lets anyone pull from the namespace (a hosted namespace
// or a proxy) without logging in, or not. It matters only with auth on;
// auth.rules naming "anonymous" can grant more.
func (d *Doc) SetAnonymousPull(namespace string, allow bool) error {
	for _, sec := range []struct {
		key  string
		dflt bool // what an absent anonymous_pull means there
	}{{"hosted", false}, {"proxies", true}} {
		if i, _ := named(value(d.root.Content[0], sec.key), namespace); i < 0 {
			continue
		}
		return d.edit(func(top *yaml.Node) error {
			_, it := named(value(top, sec.key), namespace)
			if allow == sec.dflt {
				del(it, "anonymous_pull")
			} else {
				set(it, "anonymous_pull", allow)
			}
			return nil
		})
	}
	return fmt.Errorf("there is no hosted namespace or proxy %q", namespace)
}

// LDAP is the directory settings as the Access screen edits them. Empty
// fields take wharf's defaults.
type LDAP struct {
	URL      string // ldap://host:389 or ldaps://host:636
	StartTLS bool
	CAFile   string
	Insecure bool
	// BindDN is the service account; empty searches anonymously.
	BindDN string
	// BindPassword, when set, is written to a bind_password_file beside
	// the config (mode 0600); empty keeps the configured one.
	BindPassword string
	BaseDN       string
	UserFilter   string // default (uid={username})
	GroupBaseDN  string // set to find groups by a search instead of memberOf
}

// SetLDAP turns LDAP on with l, or changes its settings.
func (d *Doc) SetLDAP(l LDAP) error {
	if u, err := url.Parse(l.URL); l.URL == "" || err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" {
		return fmt.Errorf("%q is not a directory address: write it as ldap://HOST:389 or ldaps://HOST:636", l.URL)
	}
	if strings.TrimSpace(l.BaseDN) == "" {
		return errors.New("set where users are searched (base DN), e.g. ou=people,dc=example,dc=org")
	}
	if l.BindPassword != "" && l.BindDN == "" {
		return errors.New("a bind password needs a bind DN")
	}
	pwFile := d.secretPath("ldap-bind")
	err := d.edit(func(top *yaml.Node) error {
		m := section(section(top, "auth"), "ldap")
		setFields(m, field{"url", l.URL}, field{"start_tls", l.StartTLS}, field{"ca_file", l.CAFile}, field{"insecure", l.Insecure},
			field{"bind_dn", l.BindDN}, field{"base_dn", l.BaseDN}, field{"user_filter", l.UserFilter}, field{"group_base_dn", l.GroupBaseDN})
		setCredentials(m, "bind_password", l.BindDN, l.BindPassword, pwFile)
		return nil
	})
	if err == nil {
		d.keepSecret(pwFile, l.BindDN, l.BindPassword)
	}
	return err
}

// RemoveLDAP turns LDAP logins off.
func (d *Doc) RemoveLDAP() error {
	err := d.edit(func(top *yaml.Node) error {
		if a := value(top, "auth"); a != nil {
			del(a, "ldap")
		}
		dropIfEmpty(top, "auth")
		return nil
	})
	if err == nil {
		d.forget(d.secretPath("ldap-bind"))
	}
	return err
}

// TestLDAP connects to the directory of l as a login would, binds as the
// service account and looks up user, and says what happened in a sentence.
func TestLDAP(ctx context.Context, l config.LDAP, user string) Result {
	if strings.TrimSpace(user) == "" {
		return fail("name a user to look up")
	}
	l.ApplyDefaults()
	src, err := auth.NewLDAP(l, nil)
	if err != nil {
		return fail("%s", strings.TrimPrefix(err.Error(), "auth.ldap: "))
	}
	defer src.Close()
	u, _ := url.Parse(l.URL)
	who := "anonymously"
	if l.BindDN != "" {
		who = "as " + l.BindDN
	}
	// The directory's own timeout, for the whole test: a server that
	// accepts the connection and then says nothing is "no answer".
	// go-ldap's own per-operation timer starts later, so whichever gave
	// up first, the deadline has passed when it did.
	deadline := time.Now().Add(l.Timeout.Std())
	tctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	e, err := src.Lookup(tctx, user)
	switch {
	case err != nil && !time.Now().Before(deadline) && ctx.Err() == nil:
		return fail("no answer from %s within %s", u.Host, l.Timeout.Std())
	case err == nil:
		msg := fmt.Sprintf("%s: bound %s; found %s with DN %s", u.Host, who, user, e.DN)
		if len(e.Groups) > 0 {
			msg += " in groups " + strings.Join(e.Groups, ", ")
		}
		return Result{OK: true, Message: msg}
	case errors.Is(err, auth.ErrLDAPNoUser):
		return fail("%s: bound %s, but user %s was not found under %s with filter %s", u.Host, who, user, l.BaseDN, l.UserFilter)
	case errors.Is(err, auth.ErrLDAPAmbiguousUser):
		return fail("%s: bound %s, but several entries match %s; make the user filter %s narrower", u.Host, who, user, l.UserFilter)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		return fail("%s refused the service account %s: wrong bind DN or password", u.Host, l.BindDN)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return fail("%s: bound %s, but the base DN %s does not exist", u.Host, who, l.BaseDN)
	case ldap.IsErrorWithCode(err, ldap.ErrorNetwork), ldap.IsErrorWithCode(err, ldap.LDAPResultTimeout):
		return fail("%s", unreachable(u.Host, err))
	}
	return fail("%s: %v", u.Host, err)
}
