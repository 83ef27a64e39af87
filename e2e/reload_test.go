//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/e2e/harness"
)

const reloadConfig = `listen: {{.Listen}}
data_dir: ./data
hosted:
  - name: team
auth:
  htpasswd: ./htpasswd
  rules:
    - repository: team/*
      push: [alice]
`

// TestAuthReloadOnSIGHUP: the wharf binary, sent SIGHUP as `systemctl
// reload` does, applies a changed rule at once, names a change that needs
// a restart, and keeps serving with the old config when the new file is
// broken.
func TestAuthReloadOnSIGHUP(t *testing.T) {
	skipShortE2E(t)
	w := harness.StartWharf(t, harness.BuildWharf(t), reloadConfig)
	htp := filepath.Join(w.Dir, "htpasswd")
	w.AddUser(t, htp, "alice", "alice-secret")
	w.AddUser(t, htp, "bob", "bob-secret")
	ref := func(repo string) name.Reference { return harness.Ref(t, w.Addr+"/"+repo) }
	as := func(user, pw string) remote.Option {
		return remote.WithAuth(&authn.Basic{Username: user, Password: pw})
	}
	img := harness.RandomImage(t, harness.ImageSpec{Layers: 1, LayerSize: 4096})
	// The users file is looked at once a second: wait until bob is known.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		err := remote.Write(ref("team/app:1"), img, as("bob", "bob-secret"))
		if harness.Denied(err) {
			break
		}
		if !harness.Unauthorized(err) || time.Now().After(deadline) {
			t.Fatalf("bob before the reload: %v, want DENIED", err)
		}
	}

	cfg, err := os.ReadFile(w.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	hup := func(newConfig, wantLog string) {
		t.Helper()
		if err := os.WriteFile(w.ConfigPath, []byte(newConfig), 0o600); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(logText(t, w), wantLog)
		if err := syscall.Kill(w.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for strings.Count(logText(t, w), wantLog) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP:\n%s", wantLog, w.LogTail(20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// bob may push now; a new cache budget is reported as needing a restart.
	hup(strings.Replace(string(cfg), "push: [alice]", "push: [alice, bob]", 1)+"cache:\n  max_size: 1GiB\n",
		"configuration changed in sections that apply only at the next start")
	if !strings.Contains(logText(t, w), "applied=[auth.rules]") {
		t.Fatalf("the log does not name the applied change:\n%s", w.LogTail(20))
	}
	if err := remote.Write(ref("team/app:1"), img, as("bob", "bob-secret")); err != nil {
		t.Fatalf("bob after the reload: %v", err)
	}

	// A broken file: logged, and the server keeps the rules it had.
	hup("listen: [this is not\n", "config not reloaded; still running with the previous one")
	if err := remote.Write(ref("team/app:2"), img, as("bob", "bob-secret")); err != nil {
		t.Fatalf("bob after a broken config was refused: %v", err)
	}
	if !w.Running() {
		t.Fatal("wharf exited on a broken config reload")
	}
}
