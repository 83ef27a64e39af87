//go:build linux

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PodmanTimeout bounds one podman command.
const PodmanTimeout = 5 * time.Minute

// Podman is podman (Debian's, 4.3) with everything of its own under a temp
// dir: root, runroot and vfs storage, containers.conf, storage.conf, a
// trust policy that accepts anything, an empty auth file, and the
// registries.conf the test names; nothing under /etc/containers,
// /var/lib/containers or $HOME is read or written.
type Podman struct {
	Dir string
	bin string
	env []string
}

// NewPodman prepares a podman reading registriesConf (a file the test
// wrote, e.g. a registries.conf.d drop-in) as its only registries.conf.
func NewPodman(t testing.TB, registriesConf string) *Podman {
	t.Helper()
	bin := Tool(t, "podman")
	dir := ShortTempDir(t, "wp")
	// As root in this sandbox (no CAP_SYS_RESOURCE) podman would give
	// containers nofile/nproc limits above the hard limits, and runc fails
	// with "error setting rlimit": ask for what we have.
	var nofile, nproc syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	const rlimitNproc = 6
	syscall.Getrlimit(rlimitNproc, &nproc)
	procs := nproc.Max
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if pm, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && pm < procs {
			procs = pm
		}
	}
	writeFile(t, filepath.Join(dir, "containers.conf"), fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=%d:%d"]
ipcns = "private"

[engine]
lock_type = "file"
events_logger = "file"
events_logfile_path = %q
cgroup_manager = "cgroupfs"
tmp_dir = %q
volume_path = %q

[network]
network_config_dir = %q
`, nofile.Max, nofile.Max, procs, procs, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"),
		filepath.Join(dir, "volumes"), filepath.Join(dir, "net")))
	writeFile(t, filepath.Join(dir, "storage.conf"), fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %q\ngraphroot = %q\n",
		filepath.Join(dir, "runroot"), filepath.Join(dir, "root")))
	writeFile(t, filepath.Join(dir, "policy.json"), `{"default":[{"type":"insecureAcceptAnything"}]}`+"\n")
	writeFile(t, filepath.Join(dir, "auth.json"), `{"auths":{}}`+"\n")
	for _, d := range []string{"tmp", "run", "home"} {
		writeFile(t, filepath.Join(dir, d, ".keep"), "")
	}
	p := &Podman{Dir: dir, bin: bin, env: cleanEnv([]string{"CONTAINERS_", "REGISTRY_AUTH_FILE=", "XDG_", "HOME=", "DOCKER_", "TMPDIR="},
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+registriesConf,
		"REGISTRY_AUTH_FILE="+filepath.Join(dir, "auth.json"),
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"HOME="+filepath.Join(dir, "home"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
	)}
	t.Cleanup(func() { p.Run("rm", "-a", "-f") })
	return p
}

// Run runs `podman --root ... ARGS...` and returns its combined output.
func (p *Podman) Run(args ...string) (string, error) {
	argv := append([]string{p.bin,
		"--root", filepath.Join(p.Dir, "root"), "--runroot", filepath.Join(p.Dir, "runroot"),
		"--storage-driver", "vfs", "--tmpdir", filepath.Join(p.Dir, "tmp"),
	}, args...)
	return runTool(PodmanTimeout, p.env, p.Dir, argv...)
}

// Pull runs `podman pull` with the test's trust policy.
func (p *Podman) Pull(ref string) (string, error) {
	return p.Run("pull", "--signature-policy", filepath.Join(p.Dir, "policy.json"), ref)
}
