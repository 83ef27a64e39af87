package auth

import (
	"context"
	"log/slog"

	"errors"
	"golang.org/x/crypto/bcrypt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHtpasswdAddCheckReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "htpasswd")
	// A missing file: nobody logs in until it appears.
	h, err := NewHtpasswd(path, nil)
	if err != nil {
		t.Fatalf("missing file: %v", err)
	}
	ctx := context.Background()
	if _, err := h.Authenticate(ctx, "alice", "s3cret"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("login without a file: %v", err)
	}
	if added, err := SetPassword(path, "alice", "s3cret"); err != nil || !added {
		t.Fatalf("SetPassword: %v %v", added, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	h.mu.Lock()
	h.checked = time.Time{}
	h.mu.Unlock()
	if id, err := h.Authenticate(ctx, "alice", "s3cret"); err != nil || id.User != "alice" || id.Source != "htpasswd" {
		t.Fatalf("good login: %+v %v", id, err)
	}
	for _, c := range [][2]string{{"alice", "wrong"}, {"alice", ""}, {"nobody", "s3cret"}, {"", ""}} {
		if _, err := h.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%q/%q: %v", c[0], c[1], err)
		}
	}

	// Change the password and add bob: picked up without a restart.
	if added, err := SetPassword(path, "alice", "n3w"); err != nil || added {
		t.Fatalf("update: %v %v", added, err)
	}
	if _, err := SetPassword(path, "bob", "b0b"); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.checked = time.Time{}
	h.mu.Unlock()
	if _, err := h.Authenticate(ctx, "alice", "n3w"); err != nil {
		t.Errorf("after update: %v", err)
	}
	if _, err := h.Authenticate(ctx, "alice", "s3cret"); err == nil {
		t.Error("old password still works")
	}
	if _, err := h.Authenticate(ctx, "bob", "b0b"); err != nil {
		t.Errorf("new user: %v", err)
	}
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "alice:") != 1 || !strings.Contains(string(b), "$2a$") {
		t.Errorf("file content:\n%s", b)
	}

	// The file now holds only a user with an unusable hash: nobody is
	// left who can log in (bob was removed from the file).
	os.WriteFile(path, []byte("carol:{SHA}abc=\n"), 0o600)
	h.mu.Lock()
	h.checked = time.Time{}
	h.mu.Unlock()
	if _, err := h.Authenticate(ctx, "bob", "b0b"); err == nil {
		t.Errorf("bob still logs in after being removed from the file")
	}

	if ok, err := DeleteUser(path, "carol"); err != nil || !ok {
		t.Errorf("DeleteUser: %v %v", ok, err)
	}
}

func TestHtpasswdRefusesOtherHashes(t *testing.T) {
	good, _ := bcrypt.GenerateFromPassword([]byte("ok-pw"), bcrypt.MinCost)
	for _, line := range []string{
		"u:$apr1$abc$def",
		"u:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
		"u:plaintext",
		"u:$6$salt$hash",
		"u:$2y$broken",
		"nocolon",
	} {
		path := filepath.Join(t.TempDir(), "htpasswd")
		os.WriteFile(path, []byte("# comment\n\n"+line+"\nok:"+string(good)+"\n"), 0o600)
		var logs strings.Builder
		h, err := NewHtpasswd(path, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if !strings.Contains(logs.String(), "line 3") || !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("%q: no error naming the line: %s", line, logs.String())
		}
		if h.Has("u") {
			t.Errorf("%q: the user was loaded", line)
		}
		if _, err := h.Authenticate(context.Background(), "ok", "ok-pw"); err != nil {
			t.Errorf("%q: the other user cannot log in: %v", line, err)
		}
	}
}

func TestSetPasswordRefusesBadInput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	for _, c := range [][2]string{{"a:b", "x"}, {"a b", "x"}, {"", "x"}, {"ok", ""}, {"ok", strings.Repeat("x", 73)}} {
		if _, err := SetPassword(path, c[0], c[1]); err == nil {
			t.Errorf("SetPassword(%q, %d bytes) succeeded", c[0], len(c[1]))
		}
	}
}
