//go:build linux

package harness

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd is a test-owned containerd with its own root, state and socket.
type Containerd struct {
	*Process
	Dir     string // short dir under /tmp holding everything below
	Address string // unix socket path, for `ctr -a` and dockerd --containerd
	Root    string
	State   string

	ctr string
}

// StartContainerd starts containerd with a config of its own (the CRI plugin
// off, nothing under /etc, /var/lib or /opt) and waits until `ctr version`
// answers.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	bin := Tool(t, "containerd")
	ctr := Tool(t, "ctr")
	Require(t, "runc", "containerd-shim-runc-v2")
	dir := ShortTempDir(t, "wc")
	c := &Containerd{
		Dir:     dir,
		Address: filepath.Join(dir, "containerd.sock"),
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		ctr:     ctr,
	}
	cfgPath := filepath.Join(dir, "config.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, c.Root, c.State, c.Address, c.Address+".ttrpc", filepath.Join(dir, "opt")))
	c.Process = StartProcess(t, "containerd", dir, nil,
		bin, "--config", cfgPath, "--root", c.Root, "--state", c.State, "--address", c.Address)
	c.WaitReady(t, ReadyTimeout, func() error {
		_, err := c.Ctr("version")
		return err
	})
	return c
}

// Ctr runs `ctr -a ADDRESS ARGS...` and returns its combined output.
func (c *Containerd) Ctr(args ...string) (string, error) {
	out, err := runTool(5*time.Minute, nil, c.Dir, append([]string{c.ctr, "-a", c.Address}, args...)...)
	return out, err
}

// CtrResolving is Ctr with names resolving to 127.0.0.1 for this run
// (see LoopbackNames). ctr fetches what it pulls itself, so the names need
// not resolve for containerd.
func (c *Containerd) CtrResolving(t testing.TB, names []string, args ...string) (string, error) {
	t.Helper()
	argv := append(LoopbackNames(t, names...), c.ctr, "-a", c.Address)
	return runTool(5*time.Minute, nil, c.Dir, append(argv, args...)...)
}

// HostsDir writes DIR/HOST/hosts.toml entries that send pulls for each host
// (e.g. "docker.io") to the mirror URLs, for `ctr images pull --hosts-dir`,
// and returns DIR.
func (c *Containerd) HostsDir(t testing.TB, mirrors map[string][]string) string {
	t.Helper()
	return c.HostsDirCA(t, mirrors, "")
}

// HostsDirCA is HostsDir for https mirrors whose certificates caFile (a
// PEM file) signs: each entry gets `ca = caFile`.
func (c *Containerd) HostsDirCA(t testing.TB, mirrors map[string][]string, caFile string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hosts.d")
	for host, urls := range mirrors {
		var b strings.Builder
		for _, u := range urls {
			fmt.Fprintf(&b, "[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", u)
			if caFile != "" {
				fmt.Fprintf(&b, "  ca = %q\n", caFile)
			}
		}
		writeFile(t, filepath.Join(dir, host, "hosts.toml"), b.String())
	}
	return dir
}
