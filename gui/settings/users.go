package settings

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/wharf-registry/wharf/auth"
)

// Users are the htpasswd users of the config's auth.htpasswd file. Changes
// are written at once (bcrypt, atomically, mode 0600), not at Save: the
// running server rereads the file within a second.
type Users struct {
	// Path is the htpasswd file, as the config names it.
	Path string
}

// Users is the htpasswd file of the config as edited so far.
func (d *Doc) Users() (Users, error) {
	if d.cfg.Auth.Htpasswd == "" {
		return Users{}, errors.New("htpasswd users are off: turn them on (auth.htpasswd) and save first")
	}
	return Users{Path: d.cfg.Auth.Htpasswd}, nil
}

// List names the users, sorted. A file that does not exist yet has none.
func (u Users) List() ([]string, error) {
	h, err := auth.NewHtpasswd(u.Path, nil)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u.Path, err)
	}
	names := h.Users()
	slices.Sort(names)
	return names, nil
}

func (u Users) has(name string) (bool, error) {
	names, err := u.List()
	return slices.Contains(names, name), err
}

// Add adds a user; the name must be new.
func (u Users) Add(name, password string) error {
	if ok, err := u.has(name); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("user %s already exists; reset their password instead", name)
		}
		return err
	}
	_, err := auth.SetPassword(u.Path, name, password)
	return err
}

// ResetPassword gives an existing user a new password.
func (u Users) ResetPassword(name, password string) error {
	if ok, err := u.has(name); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("there is no user %s", name)
		}
		return err
	}
	_, err := auth.SetPassword(u.Path, name, password)
	return err
}

// Remove removes a user.
func (u Users) Remove(name string) error {
	ok, err := auth.DeleteUser(u.Path, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("there is no user %s", name)
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("there is no user %s", name)
	}
	return nil
}
