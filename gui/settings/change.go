package settings

import (
	"reflect"
	"strings"

	"github.com/wharf-registry/wharf/config"
)

// Change says how a saved edit reaches a running server.
type Change struct {
	// Live are the sections server.Reload applies at once.
	Live []string
	// Restart are the sections that apply at the server's next start.
	Restart []string
}

// NeedsRestart reports whether some of the change waits for a restart.
func (c Change) NeedsRestart() bool { return len(c.Restart) > 0 }

// String is a sentence for the app's status line.
func (c Change) String() string {
	switch {
	case len(c.Live) == 0 && len(c.Restart) == 0:
		return "nothing changed"
	case len(c.Restart) == 0:
		return "applies now (" + strings.Join(c.Live, ", ") + ")"
	case len(c.Live) == 0:
		return "applies after a restart (" + strings.Join(c.Restart, ", ") + ")"
	}
	return strings.Join(c.Live, ", ") + " applies now; " + strings.Join(c.Restart, ", ") + " after a restart"
}

// classify is server.Reload's verdict without a server: the auth section
// is applied live unless auth is turned on or off.
func classify(old, next *config.Config) Change {
	c := Change{Restart: config.RestartSections(old, next)}
	switch was, is := old.Auth.Enabled(), next.Auth.Enabled(); {
	case !was && is:
		c.Restart = append(c.Restart, "auth (turning it on)")
	case was && !is:
		c.Restart = append(c.Restart, "auth (turning it off)")
	case !reflect.DeepEqual(old.Auth, next.Auth):
		c.Live = append(c.Live, "auth")
	}
	return c
}
