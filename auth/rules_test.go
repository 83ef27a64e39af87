package auth

import (
	"testing"

	"github.com/wharf-registry/wharf/config"
)

func TestPolicyTable(t *testing.T) {
	cfg := config.Auth{
		Htpasswd: "x",
		Admins:   []string{"root", "group:ops"},
		Rules: []config.Rule{
			{Repository: "team/secret/*", Pull: []string{"group:secops"}, Push: []string{"group:secops"}, Delete: []string{"group:secops"}},
			{Repository: "team/*", Push: []string{"group:devs", "carol"}, Delete: []string{"alice"}},
			{Repository: "public/*", Pull: []string{"anonymous"}},
			{Repository: "hub/library/private-*", Pull: []string{"*"}},
			{Repository: "ghcr/?rg/*", Pull: []string{"group:devs"}},
		},
	}
	p := NewPolicy(cfg)
	var (
		anon  = Identity{}
		alice = Identity{User: "alice", Groups: []string{"devs"}}
		bob   = Identity{User: "bob", Groups: []string{"devs", "secops"}}
		carol = Identity{User: "carol"}
		dave  = Identity{User: "dave"}
		root  = Identity{User: "root"}
		oper  = Identity{User: "olga", Groups: []string{"ops"}}
	)
	team := Namespace{Name: "team"}
	public := Namespace{Name: "public", AnonymousPull: false}
	openHosted := Namespace{Name: "open", AnonymousPull: true}
	hub := Namespace{Name: "hub", Proxy: true, AnonymousPull: true}
	closedHub := Namespace{Name: "ghcr", Proxy: true, AnonymousPull: false}

	cases := []struct {
		who    Identity
		repo   string
		ns     Namespace
		action Action
		want   bool
	}{
		// Hosted defaults: any logged-in user pulls; anonymous does not.
		{anon, "team/app", team, Pull, false},
		{dave, "team/app", team, Pull, true},
		// team/* push rule: devs and carol, not dave.
		{alice, "team/app", team, Push, true},
		{carol, "team/app", team, Push, true},
		{dave, "team/app", team, Push, false},
		{anon, "team/app", team, Push, false},
		{alice, "team/app", team, Delete, true},
		{bob, "team/app", team, Delete, false},
		// The first matching rule decides: team/secret/* before team/*.
		{alice, "team/secret/db", team, Pull, false},
		{alice, "team/secret/db", team, Push, false},
		{bob, "team/secret/db", team, Push, true},
		// "*" in a glob crosses "/".
		{bob, "team/secret/a/b/c", team, Pull, true},
		// anonymous subject, and the namespace's anonymous_pull.
		{anon, "public/x", public, Pull, true},
		{anon, "public/x", public, Push, false},
		{anon, "open/x", openHosted, Pull, true},
		// Proxies: anonymous pulls by default, never writes, rules narrow.
		{anon, "hub/library/busybox", hub, Pull, true},
		{dave, "hub/library/busybox", hub, Push, false},
		{root, "hub/library/busybox", hub, Push, false},
		{anon, "hub/library/private-x", hub, Pull, false},
		{dave, "hub/library/private-x", hub, Pull, true},
		{anon, "ghcr/org/x", closedHub, Pull, false},
		{dave, "ghcr/org/x", closedHub, Pull, false}, // ?rg matches "org": devs only
		{alice, "ghcr/org/x", closedHub, Pull, true},
		{dave, "ghcr/someone/x", closedHub, Pull, true}, // no rule: logged in is enough
		// Admins by name and by group do everything except write proxies.
		{root, "team/secret/db", team, Delete, true},
		{oper, "team/secret/db", team, Push, true},
	}
	for _, c := range cases {
		if got := p.Allowed(c.who, c.repo, c.ns, c.action); got != c.want {
			t.Errorf("Allowed(%q %v, %s, %s) = %v, want %v", c.who.User, c.who.Groups, c.repo, c.action, got, c.want)
		}
	}
	if p.IsAdmin(anon) || p.IsAdmin(dave) || !p.IsAdmin(root) || !p.IsAdmin(oper) {
		t.Error("IsAdmin is wrong")
	}
	if got := p.Granted(carol, "team/app", team, []Action{Pull, Push, Delete}); len(got) != 2 || got[0] != Pull || got[1] != Push {
		t.Errorf("Granted = %v, want [pull push]", got)
	}
}

func TestPolicyOff(t *testing.T) {
	var nilPolicy *Policy
	off := NewPolicy(config.Auth{})
	for _, p := range []*Policy{nilPolicy, off} {
		if p.Enabled() || !p.Allowed(Identity{}, "team/x", Namespace{Name: "team"}, Delete) || !p.IsAdmin(Identity{}) {
			t.Errorf("a policy without users must allow everything")
		}
	}
}

func TestGlobIsLiteralExceptWildcards(t *testing.T) {
	re := globRegexp("a.b+c/*")
	for s, want := range map[string]bool{"a.b+c/x": true, "axb+c/x": false, "a.bbc/x": false, "a.b+c/": true} {
		if re.MatchString(s) != want {
			t.Errorf("%q: got %v", s, !want)
		}
	}
}
