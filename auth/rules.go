package auth

import (
	"regexp"
	"slices"
	"strings"

	"github.com/wharf-registry/wharf/config"
)

// Action is what a request does to a repository.
type Action string

// The actions rules grant; Docker's token scopes use the same words.
const (
	Pull   Action = "pull"
	Push   Action = "push"
	Delete Action = "delete"
)

// Namespace describes where a repository lives, for the default rules.
type Namespace struct {
	Name  string
	Proxy bool
	// AnonymousPull: anyone may pull without logging in.
	AnonymousPull bool
}

// Policy evaluates the configured rules. The zero Policy (or a nil one)
// allows everything: that is a registry with no auth section.
type Policy struct {
	enabled bool
	admins  []string
	rules   []rule
}

type rule struct {
	glob    string
	re      *regexp.Regexp
	actions map[Action][]string
}

// NewPolicy compiles the auth section's rules.
func NewPolicy(a config.Auth) *Policy {
	p := &Policy{enabled: a.Enabled(), admins: a.Admins}
	for _, r := range a.Rules {
		p.rules = append(p.rules, rule{
			glob: r.Repository,
			re:   globRegexp(r.Repository),
			actions: map[Action][]string{
				Pull: r.Pull, Push: r.Push, Delete: r.Delete,
			},
		})
	}
	return p
}

// globRegexp turns a rule glob into an anchored regexp: "*" is any run of
// characters ("/" included), "?" one character, everything else literal.
func globRegexp(g string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for _, c := range g {
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// Enabled reports whether requests need checking at all.
func (p *Policy) Enabled() bool { return p != nil && p.enabled }

// IsAdmin reports whether id has the admin role.
func (p *Policy) IsAdmin(id Identity) bool {
	if !p.Enabled() {
		return true
	}
	return !id.Anonymous() && matchesAny(id, p.admins)
}

// Allowed decides whether id may do action on repo (the full name with
// its namespace first, as clients write it: team/app, hub/library/busybox).
//
// Admins may do everything. Otherwise the first rule whose glob matches
// repo and that lists the action decides. With no such rule: pulls are
// open to everyone where the namespace allows anonymous pulls and to any
// logged-in user elsewhere; pushes and deletes on hosted namespaces are
// open to any logged-in user; nothing may be written to a proxy.
func (p *Policy) Allowed(id Identity, repo string, ns Namespace, action Action) bool {
	if !p.Enabled() {
		return true
	}
	if ns.Proxy && action != Pull {
		return false
	}
	if p.IsAdmin(id) {
		return true
	}
	for _, r := range p.rules {
		subjects, listed := r.actions[action]
		if !listed || len(subjects) == 0 || !r.re.MatchString(repo) {
			continue
		}
		return matchesAny(id, subjects)
	}
	if action == Pull && ns.AnonymousPull {
		return true
	}
	return !id.Anonymous()
}

// Granted returns which of the wanted actions id may do on repo, in the
// order asked: what a token for Docker's scope repository:repo:pull,push
// carries.
func (p *Policy) Granted(id Identity, repo string, ns Namespace, wanted []Action) []Action {
	var out []Action
	for _, a := range wanted {
		if p.Allowed(id, repo, ns, a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func matchesAny(id Identity, subjects []string) bool {
	for _, s := range subjects {
		switch {
		case s == config.SubjectAnonymous:
			return true
		case id.Anonymous():
			continue
		case s == config.SubjectAnyUser:
			return true
		case strings.HasPrefix(s, config.GroupPrefix):
			if slices.Contains(id.Groups, strings.TrimPrefix(s, config.GroupPrefix)) {
				return true
			}
		case s == id.User:
			return true
		}
	}
	return false
}
