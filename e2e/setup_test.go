//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestSetupDocker runs `wharf setup docker --apply` against a test-owned
// dockerd 20.10 and its own --config-file, with a Distribution playing
// Docker Hub behind wharf's default proxy: the file keeps its other keys,
// the daemon reloads on SIGHUP, and the proof pull goes through wharf. A
// broken daemon.json is refused untouched, and a dead mirror is reported
// as not used.
func TestSetupDocker(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", "dockerd", "docker", "containerd", harness.BusyboxPath)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	digest := harness.PushBusybox(t, origin.Addr+"/library/busybox:latest")
	w := startProxyWharf(t, fmt.Sprintf(contractConfig, origin.URL, unreachableUpstream))
	d := harness.StartDockerd(t, nil, nil)
	before, err := os.ReadFile(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	setup := func(extra ...string) (string, error) {
		args := []string{"setup", "docker", "--apply", "--config", w.ConfigPath,
			"--daemon-config", d.ConfigPath, "--reload-pid", strconv.Itoa(d.Pid()), "--docker-host", d.Host,
			"--test-image", "library/busybox:latest"}
		return w.Run(append(args, extra...)...)
	}

	t.Run("apply and prove", func(t *testing.T) {
		out, err := setup()
		if err != nil {
			t.Fatalf("%v\n%s\ndockerd:\n%s", err, out, d.LogTail(20))
		}
		if !strings.Contains(out, "proved") {
			t.Errorf("no proof in:\n%s", out)
		}
		var got, old map[string]any
		after, _ := os.ReadFile(d.ConfigPath)
		if err := json.Unmarshal(after, &got); err != nil {
			t.Fatalf("%v:\n%s", err, after)
		}
		json.Unmarshal(before, &old)
		for k, v := range old {
			if k != "registry-mirrors" && fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("%s: %v, was %v", k, got[k], v)
			}
		}
		if fmt.Sprint(got["registry-mirrors"]) != fmt.Sprint([]any{w.URL}) {
			t.Errorf("registry-mirrors %v, want [%s]", got["registry-mirrors"], w.URL)
		}
		backups, _ := filepath.Glob(d.ConfigPath + ".wharf-backup-*")
		if len(backups) != 1 {
			t.Fatalf("backups: %v", backups)
		}
		if b, _ := os.ReadFile(backups[0]); string(b) != string(before) {
			t.Errorf("the backup holds %q, want the old file", b)
		}
		// The proof pull went through wharf, which fetched it from the origin.
		if !served200(w, "/v2/library/busybox/manifests/") {
			t.Errorf("wharf's access log has no manifest GET of library/busybox:\n%s", w.LogTail(20))
		}
		if ls, err := d.Docker("images", "--digests", "--format", "{{.Digest}}", "busybox"); err != nil || !strings.Contains(ls, digest.String()) {
			t.Errorf("the daemon has busybox as %q (%v), want %s", ls, err, digest)
		}
	})

	t.Run("again, with the image already pulled", func(t *testing.T) {
		out, err := setup()
		if err != nil || !strings.Contains(out, "proved") {
			t.Fatalf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "already points at wharf") {
			t.Errorf("a second run rewrote the file:\n%s", out)
		}
	})

	t.Run("a broken daemon.json is refused untouched", func(t *testing.T) {
		good, _ := os.ReadFile(d.ConfigPath)
		t.Cleanup(func() { os.WriteFile(d.ConfigPath, good, 0o644) })
		broken := append(good[:len(good)/2:len(good)/2], "\n"...)
		if err := os.WriteFile(d.ConfigPath, broken, 0o644); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Dir(d.ConfigPath))
		out, err := setup()
		if err == nil || !strings.Contains(out, "does not parse") {
			t.Errorf("setup over a broken file: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(d.ConfigPath); string(b) != string(broken) {
			t.Errorf("the broken file changed to:\n%s", b)
		}
		if now, _ := os.ReadDir(filepath.Dir(d.ConfigPath)); len(now) != len(entries) {
			t.Errorf("setup left files next to the broken one: %v", now)
		}
	})

	t.Run("a dead mirror is reported as not used", func(t *testing.T) {
		dead := unreachableUpstream // nothing serves port 1: connections are refused
		out, err := setup("--mirror", dead)
		if err == nil || !strings.Contains(out, "not used") || !strings.Contains(out, "to undo the change: cp ") {
			t.Errorf("setup with a dead mirror: %v\n%s", err, out)
		}
		info, err := d.Docker("info", "--format", "{{json .RegistryConfig.Mirrors}}")
		if err != nil {
			t.Fatal(err)
		}
		var mirrors []string
		json.Unmarshal([]byte(info), &mirrors)
		if !slices.Contains(mirrors, dead+"/") {
			t.Errorf("docker info lists mirrors %v: the dead one was not even applied", mirrors)
		}
	})
}

// TestSetupContainerd writes hosts.toml with `wharf setup containerd` and
// pulls with `ctr --hosts-dir`: Docker Hub is unreachable here, so the
// pull works only through wharf, whose log shows containerd's ?ns=docker.io.
func TestSetupContainerd(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", "containerd", "ctr", harness.BusyboxPath)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	digest := harness.PushBusybox(t, origin.Addr+"/library/busybox:latest")
	w := startProxyWharf(t, fmt.Sprintf(contractConfig, origin.URL, unreachableUpstream))
	c := harness.StartContainerd(t)
	hosts := filepath.Join(t.TempDir(), "certs.d")

	out, err := w.Run("setup", "containerd", "--apply", "--config", w.ConfigPath, "--hosts-dir", hosts, "--test-image", "busybox")
	if err != nil || !strings.Contains(out, "proved") {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := c.Ctr("images", "pull", "--hosts-dir", hosts, "docker.io/library/busybox:latest"); err != nil {
		t.Fatalf("ctr pull through the written hosts.toml: %v\n%s", err, out)
	}
	ls, _ := c.Ctr("images", "ls")
	if !strings.Contains(ls, digest.String()) {
		t.Errorf("containerd's images lack %s:\n%s", digest, ls)
	}
	found := false
	for _, l := range accessLog(w, "/v2/library/busybox/manifests/") {
		found = found || strings.Contains(l.Path, "ns=docker.io") && l.Status == http.StatusOK && l.Method == http.MethodGet
	}
	if !found {
		t.Errorf("wharf's access log has no GET of library/busybox with ?ns=docker.io:\n%s", w.LogTail(20))
	}
}

// TestSetupPodman writes the registries.conf.d drop-in with `wharf setup
// podman`, then pulls with podman and copies with skopeo, each reading the
// drop-in as its registries.conf (with CONTAINERS_REGISTRIES_CONF set,
// they read no registries.conf.d, and the test must not write to /etc):
// Docker Hub is unreachable here, so each works only through wharf.
func TestSetupPodman(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry", harness.BusyboxPath)

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	digest := harness.PushBusybox(t, origin.Addr+"/library/busybox:latest")
	w := startProxyWharf(t, fmt.Sprintf(contractConfig, origin.URL, unreachableUpstream))
	dropIn := filepath.Join(t.TempDir(), "registries.conf.d", "50-wharf.conf")

	out, err := w.Run("setup", "podman", "--apply", "--config", w.ConfigPath, "--registries-conf", dropIn, "--test-image", "busybox:latest")
	if err != nil || !strings.Contains(out, "proved") {
		t.Fatalf("%v\n%s", err, out)
	}
	conf, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	manifests := func() int { return len(accessLog(w, "/v2/library/busybox/manifests/")) }

	t.Run("podman", func(t *testing.T) {
		harness.Require(t, "podman")
		p := harness.NewPodman(t, dropIn)
		before := manifests()
		if out, err := p.Pull("docker.io/library/busybox:latest"); err != nil {
			t.Fatalf("podman pull with the drop-in: %v\n%s\ndrop-in:\n%s", err, out, conf)
		}
		if manifests() == before {
			t.Errorf("podman's pull did not ask wharf:\n%s", w.LogTail(20))
		}
		if got, err := p.Run("image", "inspect", "--format", "{{.Digest}}", "docker.io/library/busybox:latest"); err != nil || strings.TrimSpace(got) != digest.String() {
			t.Errorf("podman has busybox as %q (%v), want %s", got, err, digest)
		}
	})

	t.Run("skopeo", func(t *testing.T) {
		harness.Require(t, "skopeo")
		before := manifests()
		dir := filepath.Join(t.TempDir(), "layout")
		if out, err := harness.SkopeoWithRegistries(t, string(conf), "copy", "docker://docker.io/library/busybox:latest", "oci:"+dir+":latest"); err != nil {
			t.Fatalf("skopeo copy with the drop-in: %v\n%s\ndrop-in:\n%s", err, out, conf)
		}
		if manifests() == before {
			t.Errorf("skopeo's copy did not ask wharf:\n%s", w.LogTail(20))
		}
	})
}
