package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

func TestSetupDockerRefusesBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	broken := []byte("{\"storage-driver\": \"vfs\",\n")
	if err := os.WriteFile(path, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"setup", "docker", "--apply", "--daemon-config", path, "--mirror", "http://127.0.0.1:1", "--docker-host", "unix:///nonexistent"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "does not parse") {
		t.Errorf("exit %d, stderr %q; want 1 and 'does not parse'", code, errb.String())
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, broken) {
		t.Errorf("the broken file was changed to %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("files next to it: %v", ents)
	}
}

func TestSetupPrintsWithoutApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "daemon.json")
	var out, errb bytes.Buffer
	if code := run([]string{"setup", "docker", "--daemon-config", path, "--mirror", "http://10.9.8.7:5000"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, s := range []string{path, `"http://10.9.8.7:5000"`, `"10.9.8.7:5000"`, "--apply"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %s:\n%s", s, out.String())
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("wrote the file without --apply")
	}
	if code := run([]string{"setup", "kubernetes"}, &out, &errb); code != 2 {
		t.Errorf("unknown client: exit %d, want 2", code)
	}
}

// TestSetupContainerdAndPodmanProve: --apply writes the files and the proof
// asks wharf for the test image as docker.io's; a wharf that cannot serve
// it fails the proof.
func TestSetupContainerdAndPodmanProve(t *testing.T) {
	img, _ := random.Image(512, 1)
	origin := startOrigin(t, "library/tiny:1", img)
	s := startServer(t, t.TempDir(), "proxies:\n  - name: hub\n    upstream: "+origin.URL+"\n    default: true\n")
	mirror := "http://" + s.Addr()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"containerd", "--hosts-dir", filepath.Join(dir, "hosts.d")},
		{"podman", "--registries-conf", filepath.Join(dir, "50-wharf.conf")},
	} {
		var out, errb bytes.Buffer
		argv := append([]string{"setup"}, args...)
		if code := run(append(argv, "--apply", "--mirror", mirror, "--test-image", "tiny:1"), &out, &errb); code != 0 {
			t.Errorf("%s: exit %d: %s%s", args[0], code, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), "proved") {
			t.Errorf("%s: no proof:\n%s", args[0], out.String())
		}
		if code := run(append(argv, "--apply", "--mirror", mirror, "--test-image", "missing:1"), &out, &errb); code != 1 || !strings.Contains(errb.String(), "not used") {
			t.Errorf("%s with an image wharf cannot serve: exit %d: %s", args[0], code, errb.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hosts.d", "docker.io", "hosts.toml")); !strings.Contains(string(b), `[host."`+mirror+`"]`) {
		t.Errorf("hosts.toml:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "50-wharf.conf")); !strings.Contains(string(b), `location = "`+s.Addr()+`"`) {
		t.Errorf("drop-in:\n%s", b)
	}
}

// TestSetupDockerWarnsAboutFlag: a daemon started with --registry-mirror
// (here a stand-in process with that command line) gets a warning, since
// dockerd refuses the flag and the daemon.json key together.
func TestSetupDockerWarnsAboutFlag(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "read x", "dockerd", "--registry-mirror", "https://mirror.example")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() }) // EOF ends `read`
	// The stand-in must be the shell with that command line before setup reads it.
	cmdline := fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b, _ := os.ReadFile(cmdline); bytes.Contains(b, []byte("--registry-mirror")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed the stand-in's command line", cmdline)
		}
		time.Sleep(time.Millisecond)
	}
	var out, errb bytes.Buffer
	code := run([]string{"setup", "docker", "--daemon-config", filepath.Join(t.TempDir(), "daemon.json"),
		"--mirror", "http://127.0.0.1:5000", "--reload-pid", strconv.Itoa(cmd.Process.Pid)}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "warning: dockerd (pid ") || !strings.Contains(errb.String(), "--registry-mirror https://mirror.example") {
		t.Errorf("no warning about the flag: %q", errb.String())
	}
}
