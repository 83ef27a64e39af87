package server

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"slices"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/oci"
)

// UsersReport is GET /-/admin/users: the htpasswd file and its users.
type UsersReport struct {
	File  string   `json:"file"`
	Users []string `json:"users"`
}

// UserChange is the answer to PUT /-/admin/users/NAME.
type UserChange struct {
	User  string `json:"user"`
	Added bool   `json:"added"` // false: an existing user's password was reset
}

// SetPasswordRequest is the body of PUT /-/admin/users/NAME.
type SetPasswordRequest struct {
	Password string `json:"password"`
}

// maxUserBody bounds the body of PUT /-/admin/users/NAME: a password
// (bcrypt takes at most 72 bytes) in a small JSON object.
const maxUserBody = 4 << 10

// htpasswd is the user file the admin API changes, or the error saying
// why there is none.
func (s *Server) htpasswd() (*auth.Htpasswd, error) {
	h := s.auth.Users()
	if h == nil {
		return nil, oci.Errorf(oci.CodeNotFound, "htpasswd users are off on this server: set auth.htpasswd in its config (LDAP users are managed in the directory)")
	}
	return h, nil
}

// Users lists the htpasswd users, sorted.
func (s *Server) Users() (UsersReport, error) {
	h, err := s.htpasswd()
	if err != nil {
		return UsersReport{}, err
	}
	h.Reread()
	names := h.Users()
	slices.Sort(names)
	return UsersReport{File: h.Path(), Users: names}, nil
}

// SetUserPassword adds a user or resets their password (bcrypt, written
// atomically with mode 0600); the user can log in with the next request.
func (s *Server) SetUserPassword(name, password string) (UserChange, error) {
	h, err := s.htpasswd()
	if err != nil {
		return UserChange{}, err
	}
	if err := auth.ValidUserName(name); err != nil {
		return UserChange{}, oci.Errorf(oci.CodeParameterInvalid, "%v", err)
	}
	if password == "" || len(password) > 72 {
		return UserChange{}, oci.Errorf(oci.CodeParameterInvalid, "password: give 1 to 72 bytes (bcrypt checks no more)")
	}
	added, err := auth.SetPassword(h.Path(), name, password)
	if err != nil {
		return UserChange{}, err
	}
	h.Reread()
	if added {
		s.log.Info("user added through the admin API", "user", name, "file", h.Path())
	} else {
		s.log.Info("password reset through the admin API", "user", name, "file", h.Path())
	}
	return UserChange{User: name, Added: added}, nil
}

// RemoveUser removes a user from the htpasswd file; their tokens stop
// working at once.
func (s *Server) RemoveUser(name string) error {
	h, err := s.htpasswd()
	if err != nil {
		return err
	}
	ok, err := auth.DeleteUser(h.Path(), name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // no file: no users
		return err
	}
	if !ok {
		return oci.Errorf(oci.CodeNotFound, "there is no user %s in %s", name, h.Path())
	}
	h.Reread()
	s.log.Info("user removed through the admin API", "user", name, "file", h.Path())
	return nil
}

// userRoute serves /users/NAME: PUT sets a password, DELETE removes.
func (s *Server) userRoute(r *http.Request, name string) (any, error) {
	switch r.Method {
	case http.MethodPut:
		var req SetPasswordRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, maxUserBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, oci.Errorf(oci.CodeParameterInvalid, `body: want {"password": "…"} as JSON (%v)`, err)
		}
		return s.SetUserPassword(name, req.Password)
	default: // DELETE: the route table allows nothing else
		if id, err := s.identify(r); err == nil && id.User == name && id.Source == "htpasswd" {
			return nil, oci.Errorf(oci.CodeDenied, "you are logged in as %s: remove yourself with another admin's login, or with `wharf user rm %s` on the server", name, name)
		}
		if err := s.RemoveUser(name); err != nil {
			return nil, err
		}
		return UserChange{User: name}, nil
	}
}

// WhoAmI is GET /-/admin/whoami: who the admin API sees, so a client can
// check a login before it shows anything.
type WhoAmI struct {
	User    string `json:"user"`
	Source  string `json:"source"` // htpasswd or ldap; empty on the admin socket
	Version string `json:"version"`
}

func (s *Server) whoami(r *http.Request) (WhoAmI, error) {
	w := WhoAmI{Version: s.version}
	if id, err := s.identify(r); err == nil {
		w.User, w.Source = id.User, id.Source
	}
	return w, nil
}

// identify is who sent r; nobody on the admin socket, which has no login.
func (s *Server) identify(r *http.Request) (auth.Identity, error) {
	if s.auth == nil {
		return auth.Identity{}, nil
	}
	return s.auth.Identify(r)
}
