// Package auth decides who a request comes from and what they may do:
// users from an htpasswd file and LDAP, rules per repository glob, a small
// token service for Docker's login flow, and a limit on failed logins.
// Rules are evaluated in one place (Rules.Allowed); the registry asks it
// for every request.
package auth

import (
	"errors"
)

// Identity is an authenticated user.
type Identity struct {
	User   string
	Groups []string
	// Source is where the user was found: htpasswd or ldap.
	Source string
}

// Anonymous reports whether no user is logged in.
func (id Identity) Anonymous() bool { return id.User == "" }

// ErrInvalidCredentials means the user is unknown or the password is
// wrong; callers cannot and should not tell which.
var ErrInvalidCredentials = errors.New("invalid user name or password")

// ErrUnavailable wraps failures of a user source (the directory is down):
// the login may be right but cannot be checked now.
var ErrUnavailable = errors.New("user directory unavailable")
