//go:build linux

package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// TestClientsDocker pushes a runnable busybox through a real dockerd into
// wharf, removes it locally, pulls it back and runs it.
func TestClientsDocker(t *testing.T) {
	w := startWharf(t)
	d := harness.StartDockerd(t, nil, []string{w.Addr})
	docker := func(args ...string) string {
		t.Helper()
		out, err := d.Docker(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	const local = "wharf-e2e/busybox:latest"
	image := w.Addr + "/team/busybox:1"

	docker("load", "-i", harness.WriteDockerTarball(t, harness.BusyboxImage(t), local))
	docker("tag", local, image)
	out := docker("push", image)
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64}) size: \d+`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("docker push printed no digest:\n%s", out)
	}
	pushed := m[1]
	desc, err := remote.Head(harness.Ref(t, image), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("HEAD %s after docker push: %v", image, err)
	}
	if desc.Digest.String() != pushed {
		t.Errorf("wharf has %s for %s, docker pushed %s", desc.Digest, image, pushed)
	}

	// Remove every local name so the pull has to fetch the layer again.
	docker("rmi", image, local)
	out = docker("pull", image)
	if !strings.Contains(out, "Digest: "+pushed) {
		t.Errorf("docker pull output does not name %s:\n%s", pushed, out)
	}
	if got := docker("run", "--rm", "--network", "none", image, "echo", "hello"); got != "hello" {
		t.Errorf("docker run printed %q, want \"hello\"", got)
	}

	// By digest, from a clean slate again.
	byDigest := w.Addr + "/team/busybox@" + pushed
	docker("rmi", image)
	docker("pull", byDigest)
	if got := docker("run", "--rm", "--network", "none", byDigest, "sh", "-c", "echo $((6*7))"); got != "42" {
		t.Errorf("docker run by digest printed %q, want \"42\"", got)
	}
}
