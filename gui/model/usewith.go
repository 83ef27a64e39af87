package model

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// SetupClient is one container client the app can point at wharf with
// `wharf setup CLIENT`, the same command a terminal user runs.
type SetupClient struct {
	Name   string // docker, containerd, podman
	Title  string // "Docker", …
	Flag   string // the flag naming the file or directory it writes
	Target string // that file or directory
}

// SetupClients are the clients `wharf setup` knows, with the files they
// write by default (rootful installs; docker finds a rootless daemon's).
func SetupClients(dockerConfig, hostsDir, registriesConf string) []SetupClient {
	return []SetupClient{
		{Name: "docker", Title: "Docker", Flag: "--daemon-config", Target: dockerConfig},
		{Name: "containerd", Title: "containerd", Flag: "--hosts-dir", Target: hostsDir},
		{Name: "podman", Title: "podman, skopeo, buildah", Flag: "--registries-conf", Target: registriesConf},
	}
}

// SetupPlan is how the app runs `wharf setup` for one client.
type SetupPlan struct {
	// Preview prints the change without writing it (argv).
	Preview []string
	// Apply writes it and proves a pull goes through wharf (argv); nil
	// when the app cannot (the file is root's and there is no pkexec).
	Apply []string
	// Via says how Apply runs: "" (as you), "pkexec" (asks for an
	// administrator's password), or "terminal" when it cannot run.
	Via string
	// Terminal is the command to paste into a terminal instead.
	Terminal string
}

// PlanSetup plans `wharf setup` for c: wharf is the wharf binary, mirror
// the URL clients should use, configPath the server's config. The app
// runs as the user: a target the user can write is changed directly, one
// only root can write goes through pkexec (polkit action org.wharf.setup,
// packaging/polkit), and without pkexec the user gets the command to run
// with sudo.
func PlanSetup(c SetupClient, wharf, mirror, configPath string, canWrite bool, pkexec string) SetupPlan {
	args := []string{wharf, "setup", c.Name}
	if mirror != "" {
		args = append(args, "--mirror", mirror)
	}
	args = append(args, c.Flag, c.Target)
	if configPath != "" {
		args = append(args, "--config", configPath)
	}
	p := SetupPlan{Preview: args}
	apply := append(append([]string(nil), args...), "--apply")
	switch {
	case canWrite:
		p.Apply = apply
	case pkexec != "":
		p.Apply = append([]string{pkexec}, apply...)
		p.Via = "pkexec"
	default:
		p.Via = "terminal"
	}
	p.Terminal = shellJoin(apply)
	if !canWrite {
		p.Terminal = "sudo " + p.Terminal
	}
	return p
}

// Writable reports whether the user can change path: the file itself
// when it exists, else the nearest directory above it that exists.
func Writable(path string) bool {
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return access(p)
		}
		if parent := filepath.Dir(p); parent == p {
			return false
		}
	}
}

// shellJoin quotes argv for a POSIX shell, leaving plain words bare.
func shellJoin(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func access(path string) bool { return unix.Access(path, unix.W_OK) == nil }
