package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/oci"
)

// ServeToken is the token service of Docker's login flow (TokenPath).
//
// GET with optional Basic credentials (what docker, skopeo and podman
// send) or POST with an OAuth2 password grant (what containerd tries
// first) answers a signed token for the scopes asked, granting what the
// rules allow. Anonymous requests get an anonymous token: with it a
// client may do what anonymous clients may, which is how Docker pulls
// through an open mirror after seeing a challenge. Wrong credentials get
// 401, an address that failed too often 429.
func (h *Handler) ServeToken(w http.ResponseWriter, r *http.Request) {
	rw := newRecorder(w)
	start := time.Now()
	var err error
	defer func() { h.finish(rw, r, Route{}, start, err) }()
	if err = h.serveToken(rw, r); err != nil {
		h.writeError(rw, r, err)
	}
}

func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request) error {
	if !h.o.Auth.Policy().Enabled() {
		return oci.Errorf(oci.CodeUnsupported, "authentication is not configured on this registry; no token is needed")
	}
	var (
		id     auth.Identity
		err    error
		scopes []string
	)
	switch r.Method {
	case http.MethodGet:
		scopes = r.URL.Query()["scope"]
		id, err = h.o.Auth.Identify(r)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return oci.Errorf(oci.CodeUnsupported, "malformed token request form").WithStatus(http.StatusBadRequest)
		}
		scopes = r.PostForm["scope"]
		switch r.PostForm.Get("grant_type") {
		case "password":
			user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
			if user == "" && pass == "" {
				break
			}
			id, err = h.o.Auth.Login(r.Context(), user, pass, r.RemoteAddr)
		default:
			// refresh_token and others: wharf issues no refresh tokens.
			return oci.Errorf(oci.CodeUnsupported, "grant_type %q is not supported; use password, or GET with Basic credentials", r.PostForm.Get("grant_type")).WithStatus(http.StatusBadRequest)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		return oci.Errorf(oci.CodeUnsupported, "%s is not supported on the token endpoint", r.Method)
	}
	if err != nil && h.anonymousSuffices(scopes) {
		// Docker sends its Docker Hub login to a registry-mirrors entry
		// too, and falls back to Docker Hub when the mirror refuses it.
		// For a pull anyone may do, answer with an anonymous token. The
		// failure still counts against the address (Login), and an
		// anonymous token tells nothing about the password.
		h.log.Info("credentials refused for pulls that need none; answering with an anonymous token", "remote", r.RemoteAddr, "err", err)
		id, err = auth.Identity{}, nil
	}
	if err != nil {
		if errorsIsToken(err) {
			err = auth.ErrInvalidCredentials // a bearer token is no login
		}
		e := h.authError(w, r, err, "")
		if w.Header().Get("WWW-Authenticate") != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="wharf"`)
		}
		return e
	}
	access := h.grant(id, scopes)
	tok, exp, err := h.o.Auth.IssueToken(id, access)
	if errors.Is(err, auth.ErrInvalidCredentials) { // the user was removed a moment ago
		return h.authError(w, r, err, "")
	}
	if err != nil {
		return err
	}
	now := time.Now()
	b, _ := json.Marshal(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   int(exp.Sub(now).Seconds()),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return err
}

func errorsIsToken(err error) bool { return errors.Is(err, auth.ErrInvalidToken) }

func emptyURL() *url.URL { return &url.URL{} }

// anonymousSuffices reports whether every scope asked for is a pull that
// anonymous clients may do (and at least one is asked for).
func (h *Handler) anonymousSuffices(scopes []string) bool {
	n := 0
	for _, s := range scopes {
		for _, one := range strings.Fields(s) {
			typ, rest, _ := strings.Cut(one, ":")
			i := strings.LastIndexByte(rest, ':')
			if typ != "repository" || i < 0 || rest[i+1:] != "pull" {
				return false
			}
			n++
		}
	}
	if n == 0 {
		return false
	}
	for _, a := range h.grant(auth.Identity{}, scopes) {
		if len(a.Actions) != 1 || a.Actions[0] != string(auth.Pull) {
			return false
		}
	}
	return true
}

// grant maps Docker scopes (repository:NAME:pull,push, space-separated,
// repeatable) onto the rules.
func (h *Handler) grant(id auth.Identity, scopes []string) []auth.TokenAccess {
	var out []auth.TokenAccess
	pol := h.o.Auth.Policy()
	for _, s := range scopes {
		for _, one := range strings.Fields(s) {
			typ, rest, ok := strings.Cut(one, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok || i < 0 {
				continue
			}
			name, acts := rest[:i], strings.Split(rest[i+1:], ",")
			if j := strings.IndexByte(typ, '('); j >= 0 {
				typ = typ[:j] // repository(plugin)
			}
			var granted []string
			switch typ {
			case "repository":
				if oci.ValidateName(name) != nil {
					continue
				}
				tg, err := h.resolve(&http.Request{URL: emptyURL()}, name)
				if err != nil {
					continue
				}
				rn, ns := h.ruleName(tg, name)
				var want []auth.Action
				for _, a := range acts {
					if a == "*" {
						want = append(want, auth.Pull, auth.Push, auth.Delete)
					} else {
						want = append(want, auth.Action(a))
					}
				}
				for _, a := range pol.Granted(id, rn, ns, want) {
					granted = append(granted, string(a))
				}
			case "registry":
				if name == "catalog" && !id.Anonymous() {
					granted = []string{"*"}
				}
			}
			out = append(out, auth.TokenAccess{Type: typ, Name: name, Actions: granted})
		}
	}
	return out
}
