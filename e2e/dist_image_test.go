//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestDistImage loads the container image scripts/dist.sh builds into a
// test-owned dockerd and runs it as documented: read-only, its config
// mounted in, /data the only writable path. It pushes an image through it,
// pulls every layer back, waits for the image's own HEALTHCHECK to report
// healthy, stops it and checks it drained and exited 0.
func TestDistImage(t *testing.T) {
	dir := buildDist(t, distVersion, "")
	d := harness.StartDockerd(t, nil, nil)
	docker := func(args ...string) string {
		t.Helper()
		out, err := d.Docker(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	docker("load", "-i", filepath.Join(dir, "wharf-image_1.0.0.tar"))
	const image = "wharf-registry/wharf:v1.0.0"
	if got := docker("inspect", "-f", "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.ExposedPorts}} {{index .Config.Labels \"org.opencontainers.image.version\"}}", image); got != `65532:65532 {"/data":{}} {"5000/tcp":{}} v1.0.0` {
		t.Errorf("image config: %s", got)
	}

	// The config is mounted read-only over the image's default; the data
	// dir belongs to the image's user, as a fresh named volume would.
	work := harness.ShortTempDir(t, "wimg")
	data := filepath.Join(work, "data")
	if err := os.Mkdir(data, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "wharf.yml")

	// The container shares the host's network, so wharf needs a free port
	// picked beforehand (it cannot report one it picked to the
	// HEALTHCHECK); another test may take it first, then try another.
	var id, addr string
	for attempt := 0; ; attempt++ {
		addr = harness.PickAddr(t)
		writeTestFile(t, cfg, fmt.Sprintf("listen: %s\ndata_dir: /data\nlog:\n  level: info\nhosted:\n  - name: team\n", addr))
		id = docker("run", "-d", "--read-only", "--network", "host",
			"-v", cfg+":/etc/wharf/wharf.yml:ro", "-v", data+":/data",
			"--health-interval", "1s", "--health-start-period", "30s", image)
		var state string
		waitState(t, harness.ReadyTimeout, "wharf in its container to listen on "+addr, func() (bool, error) {
			state = docker("inspect", "-f", "{{.State.Status}}", id)
			if state != "running" {
				return true, nil
			}
			return strings.Contains(docker("logs", id), addr), nil
		})
		if state == "running" {
			break
		}
		logs, _ := d.Docker("logs", id)
		docker("rm", "-f", id)
		if attempt < 5 && strings.Contains(logs, "address already in use") {
			continue
		}
		t.Fatalf("wharf's container %s before listening:\n%s", state, logs)
	}
	t.Cleanup(func() { d.Docker("rm", "-f", id) })

	// Push through it and pull every layer back.
	ref := addr + "/team/app:1"
	pushed := harness.PushRandomImage(t, ref, harness.ImageSpec{Layers: 3, LayerSize: 64 << 10})
	pulled := harness.PullImage(t, ref)
	want, _ := pushed.Layers()
	got, _ := pulled.Layers()
	if len(got) != len(want) {
		t.Fatalf("pulled %d layers, pushed %d", len(got), len(want))
	}
	for i := range want {
		wd, _ := want[i].Digest()
		gd, _ := got[i].Digest()
		if wd != gd {
			t.Errorf("layer %d: pulled %s, pushed %s", i, gd, wd)
		}
	}

	// The image's HEALTHCHECK (wharf healthcheck, run by dockerd inside the
	// container) turns healthy.
	waitState(t, time.Minute, "the HEALTHCHECK to report healthy", func() (bool, error) {
		switch h := docker("inspect", "-f", "{{.State.Health.Status}}", id); h {
		case "healthy":
			return true, nil
		case "unhealthy":
			return false, fmt.Errorf("unhealthy: %s", docker("inspect", "-f", "{{json .State.Health}}", id))
		default:
			return false, nil
		}
	})

	// docker stop sends SIGTERM: wharf drains and exits 0.
	docker("stop", "-t", "60", id)
	if code := docker("inspect", "-f", "{{.State.ExitCode}} {{.State.OOMKilled}}", id); code != "0 false" {
		t.Errorf("exit code and OOM: %s", code)
	}
	logs := docker("logs", id)
	if !strings.Contains(logs, "shutting down") {
		t.Errorf("no clean shutdown in the log:\n%s", logs)
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("errors in the log:\n%s", logs)
	}
}
