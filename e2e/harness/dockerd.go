//go:build linux

package harness

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Dockerd is a test-owned Docker daemon (Debian's docker.io, 20.10) on its
// own socket, data root and exec root, driving a test-owned containerd.
type Dockerd struct {
	*Process
	Dir        string // short dir under /tmp holding everything below
	Host       string // DOCKER_HOST, unix:///tmp/wdNNN/docker.sock
	ConfigPath string // the daemon's --config-file
	Containerd *Containerd

	client    string
	clientCfg string // DOCKER_CONFIG: an empty one, so no credential helpers run
}

// DockerCommandTimeout bounds one Docker client command.
const DockerCommandTimeout = 5 * time.Minute

// StartDockerd starts dockerd with registry-mirrors (URLs such as
// "http://127.0.0.1:PORT", used for Docker Hub pulls) and insecure-registries
// ("127.0.0.1:PORT"), and waits until `docker info` answers. The daemon uses
// vfs storage and no bridge or iptables, so it needs no kernel features a
// sandbox may lack; run containers with --network none.
func StartDockerd(t testing.TB, mirrors, insecure []string) *Dockerd {
	t.Helper()
	bin := Tool(t, "dockerd")
	client := Tool(t, "docker")
	// An own containerd: left to itself, dockerd 20.10 would use a system
	// containerd whose socket it finds at /run/containerd/containerd.sock.
	ctrd := StartContainerd(t)
	dir := ShortTempDir(t, "wd")
	d := &Dockerd{
		Dir:        dir,
		Host:       "unix://" + filepath.Join(dir, "docker.sock"),
		ConfigPath: filepath.Join(dir, "daemon.json"),
		Containerd: ctrd,
		client:     client,
		clientCfg:  filepath.Join(dir, "client"),
	}
	if mirrors == nil {
		mirrors = []string{}
	}
	if insecure == nil {
		insecure = []string{}
	}
	cfg, err := json.MarshalIndent(map[string]any{
		"storage-driver":      "vfs",
		"iptables":            false,
		"ip6tables":           false,
		"ip-forward":          false,
		"ip-masq":             false,
		"bridge":              "none",
		"userland-proxy":      false,
		"registry-mirrors":    mirrors,
		"insecure-registries": insecure,
		"log-level":           "info",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, d.ConfigPath, string(cfg))
	writeFile(t, filepath.Join(d.clientCfg, "config.json"), "{}\n")
	d.Process = StartProcess(t, "dockerd", dir, cleanEnv([]string{"DOCKER_"}),
		bin,
		"--config-file", d.ConfigPath,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--containerd", ctrd.Address,
		"-H", d.Host,
	)
	d.WaitReady(t, ReadyTimeout, func() error {
		_, err := d.Docker("info", "--format", "{{.ServerVersion}}")
		return err
	})
	return d
}

// Docker runs the Docker client against this daemon and returns its combined
// output; a non-zero exit is an error quoting the output.
func (d *Dockerd) Docker(args ...string) (string, error) {
	env := cleanEnv([]string{"DOCKER_"}, "DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+d.clientCfg)
	out, err := runTool(DockerCommandTimeout, env, d.Dir, append([]string{d.client}, args...)...)
	return strings.TrimRight(out, "\n"), err
}
