package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUserAddRmLs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	defer func(r any) { stdin = os.Stdin }(stdin)

	stdin = strings.NewReader("pw-one\n")
	if code, out, errOut := runCmd("user", "add", "alice", "--htpasswd", path); code != 0 || !strings.Contains(out, "added user alice") {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	stdin = strings.NewReader("pw-two")
	if code, out, _ := runCmd("user", "add", "--htpasswd", path, "alice"); code != 0 || !strings.Contains(out, "changed the password") {
		t.Fatalf("change: %d %q", code, out)
	}
	stdin = strings.NewReader("bob-pw\n")
	runCmd("user", "add", "bob", "--htpasswd", path)
	if code, out, _ := runCmd("user", "ls", "--htpasswd", path); code != 0 || out != "alice\nbob\n" {
		t.Fatalf("ls: %d %q", code, out)
	}
	if code, _, _ := runCmd("user", "rm", "bob", "--htpasswd", path); code != 0 {
		t.Fatal("rm")
	}
	if code, _, errOut := runCmd("user", "rm", "bob", "--htpasswd", path); code != 1 || !strings.Contains(errOut, "no user bob") {
		t.Errorf("rm twice: %d %q", code, errOut)
	}
	stdin = strings.NewReader("")
	if code, _, errOut := runCmd("user", "add", "carol", "--htpasswd", path); code != 1 || !strings.Contains(errOut, "no password on stdin") {
		t.Errorf("empty stdin: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd("user", "add", "a:b", "--htpasswd", path); code != 2 || !strings.Contains(errOut, "must not contain") {
		t.Errorf("bad name: %d %q", code, errOut)
	}
	// The file comes from the config's auth.htpasswd.
	cfg := filepath.Join(dir, "wharf.yml")
	os.WriteFile(cfg, []byte("auth:\n  htpasswd: "+path+"\n"), 0o600)
	if code, out, _ := runCmd("user", "ls", "--config", cfg); code != 0 || out != "alice\n" {
		t.Errorf("ls via config: %d %q", code, out)
	}
	os.WriteFile(cfg, []byte("hosted:\n  - name: team\n"), 0o600)
	if code, _, errOut := runCmd("user", "ls", "--config", cfg); code != 1 || !strings.Contains(errOut, "sets no auth.htpasswd") {
		t.Errorf("config without htpasswd: %d %q", code, errOut)
	}
}

func TestTLSCAWithoutCA(t *testing.T) {
	code, _, errOut := runCmd("tls", "ca", "--data-dir", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "tls.mode: self-signed") {
		t.Errorf("%d %q", code, errOut)
	}
	if code, _, _ := runCmd("tls", "--help"); code != 0 {
		t.Error("tls --help")
	}
}
