package server

import (
	"errors"

	"github.com/wharf-registry/wharf/config"
)

// Reload applies a config read again while the server runs (SIGHUP,
// `systemctl reload wharf`). The auth section takes effect at once:
// rules and admins, the htpasswd path, the LDAP settings, token_ttl and
// the failed-login limits. The other sections (listeners, TLS, proxies,
// hosted namespaces, cache budgets, metrics, logging) are compared and
// named in needRestart when they changed; they apply at the next start.
// An error leaves everything as it was.
func (s *Server) Reload(cfg *config.Config) (applied, needRestart []string, err error) {
	if cfg == nil {
		return nil, nil, errors.New("server: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateRunning {
		return nil, nil, errors.New("server is not running")
	}
	old := s.cfg
	needRestart = config.RestartSections(old, cfg)
	switch {
	case s.auth == nil && cfg.Auth.Enabled():
		needRestart = append(needRestart, "auth (turning it on)")
	case s.auth != nil:
		if applied, err = s.auth.Reload(cfg.Auth); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case len(applied) == 0 && len(needRestart) == 0:
		s.log.Info("configuration reloaded: nothing changed")
	case len(applied) > 0:
		s.log.Info("configuration reloaded", "applied", applied)
	}
	if len(needRestart) > 0 {
		s.log.Warn("configuration changed in sections that apply only at the next start; restart wharf to apply them", "sections", needRestart)
	}
	return applied, needRestart, nil
}
