package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswdRecheck is how often the file's mtime and size are looked at.
const htpasswdRecheck = time.Second

// Htpasswd is a user source backed by an Apache htpasswd file of bcrypt
// hashes. It notices when the file changes and reloads it; a file that
// no longer parses keeps the last good users and logs why.
type Htpasswd struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	users   map[string][]byte
	stamp   fileStamp
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// bcryptCost is the cost of new hashes (tests lower it: bcrypt under the
// race detector takes a second a hash).
var bcryptCost = bcrypt.DefaultCost

// dummyHash is compared against when the user is unknown, so an unknown
// user costs the same bcrypt time as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("wharf-no-such-user"), bcryptCost)
	return h
})

// NewHtpasswd loads path. A missing file means no users yet (a warning
// names the command that creates it; the file is read when it appears).
// A line with a hash other than bcrypt is refused: logged as an error
// naming the line, the user and the command that fixes it, and that user
// cannot log in while the others can.
func NewHtpasswd(path string, log *slog.Logger) (*Htpasswd, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Htpasswd{path: path, log: log}
	users, st, problems, err := loadHtpasswd(path)
	for _, p := range problems {
		log.Error(p)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		log.Warn("htpasswd file does not exist yet: nobody can log in until it does; create it with `wharf user add NAME --htpasswd FILE`", "file", path)
		users = map[string][]byte{}
	case err != nil:
		return nil, err
	case len(users) == 0:
		log.Warn("htpasswd file has no users; add one with `wharf user add NAME`", "file", path)
	}
	h.users, h.stamp, h.checked = users, st, time.Now()
	return h, nil
}

// Users lists the user names (sorted by the caller when needed).
func (h *Htpasswd) Users() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.users))
	for u := range h.users {
		out = append(out, u)
	}
	return out
}

// Has reports whether user is in the file.
func (h *Htpasswd) Has(user string) bool {
	h.refresh()
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.users[user]
	return ok
}

// Fingerprint identifies user's current entry (its bcrypt hash) without
// revealing it: it changes when the password does. ok is false for a
// user who is not in the file.
func (h *Htpasswd) Fingerprint(user string) (fp string, ok bool) {
	h.refresh()
	h.mu.Lock()
	hash, ok := h.users[user]
	h.mu.Unlock()
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(append([]byte("wharf htpasswd entry\x00"), hash...))
	return base64.RawURLEncoding.EncodeToString(sum[:12]), true
}

// Authenticate checks user and password in constant time with respect to
// whether the user exists.
func (h *Htpasswd) Authenticate(_ context.Context, user, password string) (Identity, error) {
	h.refresh()
	h.mu.Lock()
	hash, ok := h.users[user]
	h.mu.Unlock()
	if !ok {
		hash = dummyHash()
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !ok {
		return Identity{}, ErrInvalidCredentials
	}
	return Identity{User: user, Source: "htpasswd"}, nil
}

// Generation changes whenever the users were reloaded; login caches key
// on it so a removed user or changed password takes effect at once.
func (h *Htpasswd) Generation() fileStamp {
	h.refresh()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stamp
}

func (h *Htpasswd) refresh() {
	h.mu.Lock()
	if time.Since(h.checked) < htpasswdRecheck {
		h.mu.Unlock()
		return
	}
	h.checked = time.Now()
	old := h.stamp
	h.mu.Unlock()

	fi, err := os.Stat(h.path)
	if err != nil {
		if len(h.users) > 0 || !errors.Is(err, os.ErrNotExist) {
			h.log.Warn("htpasswd file unreadable; keeping the users loaded before", "file", h.path, "err", err)
		}
		return
	}
	if (fileStamp{fi.ModTime(), fi.Size()}) == old {
		return
	}
	users, st, problems, err := loadHtpasswd(h.path)
	for _, p := range problems {
		h.log.Error(p)
	}
	if err != nil {
		h.log.Error("htpasswd file changed but cannot be loaded; keeping the users loaded before", "file", h.path, "err", err)
		h.mu.Lock()
		h.stamp = fileStamp{fi.ModTime(), fi.Size()} // do not retry until it changes again
		h.mu.Unlock()
		return
	}
	h.mu.Lock()
	h.users, h.stamp = users, st
	h.mu.Unlock()
	h.log.Info("htpasswd file reloaded", "file", h.path, "users", len(users))
}

// loadHtpasswd reads the file. A line it cannot use (another hash type,
// a malformed line) is skipped and described in problems: that user
// cannot log in, everyone else can.
func loadHtpasswd(path string) (map[string][]byte, fileStamp, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, nil, err
	}
	var problems []string
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		if !ok || user == "" {
			problems = append(problems, fmt.Sprintf("%s line %d: not NAME:HASH; line ignored", path, line))
			continue
		}
		if kind := hashKind(hash); kind != "bcrypt" {
			problems = append(problems, fmt.Sprintf("%s line %d: user %s has a %s hash and cannot log in; wharf accepts only bcrypt ($2y$). Set the password again with `wharf user add %s --htpasswd %s` (or `htpasswd -B`)", path, line, user, kind, user, path))
			continue
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			problems = append(problems, fmt.Sprintf("%s line %d: user %s has a malformed bcrypt hash and cannot log in; set the password again with `wharf user add %s`", path, line, user, user))
			continue
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fileStamp{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return users, fileStamp{fi.ModTime(), fi.Size()}, problems, nil
}

// hashKind names the scheme of an htpasswd hash.
func hashKind(h string) string {
	switch {
	case strings.HasPrefix(h, "$2y$"), strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"):
		return "bcrypt"
	case strings.HasPrefix(h, "$apr1$"):
		return "MD5 ($apr1$)"
	case strings.HasPrefix(h, "{SHA}"):
		return "SHA-1 ({SHA})"
	case strings.HasPrefix(h, "$5$"), strings.HasPrefix(h, "$6$"):
		return "SHA-crypt"
	case strings.HasPrefix(h, "$"):
		return "unsupported"
	default:
		return "crypt or plain-text"
	}
}

// ValidUserName reports whether name can be stored in an htpasswd file and
// used as a Docker login.
func ValidUserName(name string) error {
	switch {
	case name == "":
		return errors.New("user name is empty")
	case len(name) > 256:
		return errors.New("user name is longer than 256 characters")
	case strings.ContainsAny(name, ": \t\r\n\x00"):
		return fmt.Errorf("user name %q must not contain ':', spaces or control characters", name)
	}
	return nil
}

// SetPassword adds user to the htpasswd file at path, or replaces their
// hash, with a bcrypt hash of password. The file is written atomically
// with mode 0600 (created with its directory when missing); other lines
// are kept as they are. It reports whether the user was new.
func SetPassword(path, user, password string) (added bool, err error) {
	if err := ValidUserName(user); err != nil {
		return false, err
	}
	if password == "" {
		return false, errors.New("password is empty")
	}
	if len(password) > 72 {
		return false, errors.New("password is longer than 72 bytes, the most bcrypt can check")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return false, err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	var out bytes.Buffer
	added = true
	for _, l := range strings.SplitAfter(string(old), "\n") {
		if l == "" {
			continue
		}
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && name == user {
			if !added {
				continue // a duplicate line: drop it
			}
			added = false
			fmt.Fprintf(&out, "%s:%s\n", user, hash)
			continue
		}
		out.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			out.WriteByte('\n')
		}
	}
	if added {
		fmt.Fprintf(&out, "%s:%s\n", user, hash)
	}
	return added, writeFileAtomic(path, out.Bytes(), 0o600)
}

// DeleteUser removes user from the file; it reports whether they were there.
func DeleteUser(path, user string) (bool, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	var out bytes.Buffer
	found := false
	for _, l := range strings.SplitAfter(string(old), "\n") {
		if name, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && name == user {
			found = true
			continue
		}
		out.WriteString(l)
	}
	if !found {
		return false, nil
	}
	return true, writeFileAtomic(path, out.Bytes(), 0o600)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	// Keep the owner of the file it replaces: `sudo wharf user add` must
	// not leave a file the service's own user can no longer read.
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			tmp.Chown(int(st.Uid), int(st.Gid))
		}
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Path is the file the users are read from.
func (h *Htpasswd) Path() string { return h.path }

// Reread reads the file again now instead of within htpasswdRecheck: the
// admin API calls it after changing the file, so a user added there can
// log in with the very next request.
func (h *Htpasswd) Reread() {
	h.mu.Lock()
	h.checked = time.Time{}
	h.mu.Unlock()
	h.refresh()
}
