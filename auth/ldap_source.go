package auth

import (
	"log/slog"

	"github.com/wharf-registry/wharf/config"
)

func newLDAPSource(cfg config.LDAP, log *slog.Logger) (Source, error) {
	return NewLDAP(cfg, log)
}
