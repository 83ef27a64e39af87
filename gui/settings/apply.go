package settings

import (
	"errors"

	"github.com/wharf-registry/wharf/config"
)

// Reloader is what Apply needs of a running server; *server.Server has it.
type Reloader interface {
	Reload(*config.Config) (applied, needRestart []string, err error)
}

// Apply hands the saved config to a running server and reports what it
// applied at once and what waits for a restart, in the server's words.
// Unsaved edits are refused: the server must run what the file says.
func (d *Doc) Apply(r Reloader) (Change, error) {
	if d.Changed() {
		return Change{}, errors.New("save the changes before applying them")
	}
	applied, restart, err := r.Reload(d.saved)
	if err != nil {
		return Change{}, err
	}
	return Change{Live: applied, Restart: restart}, nil
}
