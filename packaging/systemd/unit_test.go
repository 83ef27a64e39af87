package systemd_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// maxExposure is the highest `systemd-analyze security` exposure the unit
// may have (issue #12): 2.0, "OK" on systemd's scale of 0 to 10.
const maxExposure = 2.0

// The settings the rest of wharf relies on: sd_notify, reload by SIGHUP,
// the watchdog, the data dir, and no capabilities unless the drop-in.
func TestUnitSettings(t *testing.T) {
	unit := readUnit(t, "wharf.service")
	for _, want := range []string{
		"Type=notify", "NotifyAccess=main", "WatchdogSec=30",
		"ExecStart=/usr/bin/wharf serve --config /etc/wharf/wharf.yml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"User=wharf", "Group=wharf", "StateDirectory=wharf", "Environment=WHARF_DATA_DIR=/var/lib/wharf",
		"Restart=on-failure", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"NoNewPrivileges=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
		"CapabilityBoundingSet=", "AmbientCapabilities=", "MemoryDenyWriteExecute=yes", "UMask=0077",
	} {
		if !unit[want] {
			t.Errorf("wharf.service lacks the line %q", want)
		}
	}
	dropIn := readUnit(t, "wharf-low-port.conf")
	for _, want := range []string{"[Service]", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"} {
		if !dropIn[want] {
			t.Errorf("wharf-low-port.conf lacks the line %q", want)
		}
	}
	if len(dropIn) != 3 {
		t.Errorf("wharf-low-port.conf sets more than the capability: %v", dropIn)
	}
}

// readUnit returns the set of a unit file's lines, comments left out.
func readUnit(t *testing.T, name string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines[l] = true
		}
	}
	return lines
}

// TestSystemdAnalyze runs `systemd-analyze verify` (it must print nothing)
// and `systemd-analyze security --offline=yes` (exposure at most 2.0) on
// the unit, then on the unit with the low-port drop-in.
//
// verify checks that every Exec command exists, and the machine running
// the tests has no /usr/bin/wharf, so both run with --root on a temporary
// root holding the unit in etc/systemd/system, a wharf built from this
// tree at usr/bin/wharf, kill at bin/kill (ExecReload), and a copy of the
// host's own units (sysinit.target and the rest every service depends on).
func TestSystemdAnalyze(t *testing.T) {
	analyze := harness.Tool(t, "systemd-analyze")
	hostUnits := ""
	for _, d := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(d, "sysinit.target")); err == nil {
			hostUnits = d
			break
		}
	}
	if hostUnits == "" {
		t.Fatal("systemd-analyze is installed but the host's units (sysinit.target) are not in /usr/lib/systemd/system")
	}
	kill := harness.Tool(t, "kill")

	root := t.TempDir()
	run(t, "cp", "-a", hostUnits, mkdir(t, root, "usr/lib/systemd")+"/")
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(mkdir(t, root, "usr/bin"), "wharf"), "../../cmd/wharf")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wharf: %v\n%s", err, out)
	}
	run(t, "cp", kill, filepath.Join(mkdir(t, root, "bin"), "kill"))
	units := mkdir(t, root, "etc/systemd/system")
	run(t, "cp", "wharf.service", filepath.Join(units, "wharf.service"))

	check := func(t *testing.T) float64 {
		out, err := exec.Command(analyze, "verify", "--man=no", "--root="+root, "wharf.service").CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		out, err = exec.Command(analyze, "security", "--offline=yes", "--root="+root,
			"--threshold="+strconv.Itoa(int(maxExposure*10)), "wharf.service").CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for wharf\.service: (\d+\.\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security gave no exposure level (%v):\n%s", err, out)
		}
		exposure, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("systemd-analyze security: exposure %.1f (at most %.1f)", exposure, maxExposure)
		if err != nil || exposure > maxExposure {
			t.Errorf("exposure %.1f, at most %.1f allowed (%v); the settings still open:\n%s", exposure, maxExposure, err, open(out))
		}
		return exposure
	}
	var plain float64
	t.Run("unit", func(t *testing.T) { plain = check(t) })
	t.Run("unit+low-port", func(t *testing.T) {
		run(t, "cp", "wharf-low-port.conf", filepath.Join(mkdir(t, units, "wharf.service.d"), "low-port.conf"))
		withDropIn := check(t)
		// The drop-in was read: granting a capability costs exposure.
		if withDropIn <= plain {
			t.Errorf("exposure with the drop-in %.1f, without %.1f: was the drop-in read?", withDropIn, plain)
		}
	})
}

// open keeps the ✗ lines of systemd-analyze security: what adds exposure.
func open(out []byte) string {
	var b strings.Builder
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, "✗") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	d := filepath.Join(parts...)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
