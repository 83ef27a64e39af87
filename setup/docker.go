package setup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// DaemonJSON is where the Docker daemon reads its config: rootless
// daemons (run by a user, found by their socket in $XDG_RUNTIME_DIR) read
// $XDG_CONFIG_HOME/docker/daemon.json, rootful ones /etc/docker/daemon.json.
func DaemonJSON(rootless bool, getenv func(string) string) string {
	if !rootless {
		return "/etc/docker/daemon.json"
	}
	cfg := getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		cfg = filepath.Join(getenv("HOME"), ".config")
	}
	return filepath.Join(cfg, "docker", "daemon.json")
}

// ErrUnparsable means an existing config file is not what its client
// would read; setup leaves it alone rather than overwrite it.
var ErrUnparsable = errors.New("does not parse; fix or remove it first, wharf setup will not overwrite it")

// DockerPlan is the daemon.json change for a mirror.
type DockerPlan struct {
	Change
	Mirror   string // as written to registry-mirrors
	Insecure string // HOST:PORT added to insecure-registries, or ""
	// Already lists what the file had already.
	AlreadyMirror, AlreadyInsecure bool
}

// PlanDocker merges mirror into daemon.json's registry-mirrors (first, so
// the daemon tries it first) and, for a plain-HTTP mirror that is not
// loopback, HOST:PORT into insecure-registries, keeping every other key.
// current is the file's bytes, nil when there is none.
func PlanDocker(path string, current []byte, mirror string) (DockerPlan, error) {
	u, err := ParseMirror(mirror)
	if err != nil {
		return DockerPlan{}, err
	}
	p := DockerPlan{Change: Change{Path: path, Before: current}, Mirror: u.String()}
	doc := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(current)) > 0 {
		d := json.NewDecoder(bytes.NewReader(current))
		if err := d.Decode(&doc); err != nil {
			return DockerPlan{}, fmt.Errorf("%s %w (%v)", path, ErrUnparsable, err)
		}
		if d.More() {
			return DockerPlan{}, fmt.Errorf("%s %w (more than one JSON value)", path, ErrUnparsable)
		}
	}
	mirrors, err := stringList(doc, "registry-mirrors", path)
	if err != nil {
		return DockerPlan{}, err
	}
	if slices.ContainsFunc(mirrors, func(m string) bool { return strings.TrimRight(m, "/") == p.Mirror }) {
		p.AlreadyMirror = true
	} else {
		mirrors = append([]string{p.Mirror}, mirrors...)
	}
	doc["registry-mirrors"], _ = json.Marshal(mirrors)
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		p.Insecure = u.Host
		insecure, err := stringList(doc, "insecure-registries", path)
		if err != nil {
			return DockerPlan{}, err
		}
		if slices.Contains(insecure, u.Host) {
			p.AlreadyInsecure = true
		} else {
			insecure = append(insecure, u.Host)
		}
		doc["insecure-registries"], _ = json.Marshal(insecure)
	}
	if p.AlreadyMirror && (p.Insecure == "" || p.AlreadyInsecure) {
		p.After = current
		return p, nil
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return DockerPlan{}, err
	}
	p.After = append(out, '\n')
	return p, nil
}

func stringList(doc map[string]json.RawMessage, key, path string) ([]string, error) {
	raw, ok := doc[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("%s: %q is not a list of strings; fix it first: %w", path, key, err)
	}
	return l, nil
}

// CmdlineConflicts returns the dockerd flags in args that set what
// daemon.json's registry-mirrors or insecure-registries set: with both,
// dockerd refuses to start or reload.
func CmdlineConflicts(args []string) []string {
	var out []string
	for i, a := range args {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || name != "registry-mirror" && name != "insecure-registry" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			a += " " + args[i+1]
		}
		out = append(out, a)
	}
	return out
}
