package wharf_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/wharf-registry/wharf"

// layers lists wharf's packages from the bottom up. A package may import
// only packages on lower layers: the architecture of STYLE.md, enforced.
// A new package must be added here, which forces a decision about where
// it sits.
var layers = [][]string{
	{"oci", "internal/atomicfile", "internal/sdnotify", "internal/procnet"},
	{"config", "metrics"},
	{"storage"},
	{"storage/s3"},
	{"cache/index"},
	{"cache/index/pgindex"},
	{"upstream"},
	{"cache"},
	{"hosted", "cluster"},
	{"auth", "certs"},
	{"registry"},
	{"server", "setup"},
	{"gui/model", "gui/settings", "internal/adminclient"},
	{"gui"},
	{"cmd/wharf", "cmd/wharf-desktop", "packaging/image", "packaging/kubernetes", "packaging/systemd", "scripts/coldfloor"},
}

// fyneAllowed are the packages that may import Fyne (fyne.io/...): the
// widgets and the desktop command. The view model (gui/model) may not, so
// it is tested without a display, and the server binary stays cgo-free.
var fyneAllowed = map[string]bool{"gui": true, "cmd/wharf-desktop": true}

// Test-support packages may import anything; nothing may import them.
var testOnly = map[string]bool{"e2e": true, "e2e/harness": true, "e2e/officebox": true, "storage/storagetest": true, "cache/index/indextest": true, "internal/testclock": true}

func TestImportDirection(t *testing.T) {
	level := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			level[p] = i
		}
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if pkg == "" || testOnly[pkg] {
			continue
		}
		from, ok := level[pkg]
		if !ok {
			t.Errorf("package %s is not in the layer table of arch_test.go; add it where it belongs", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "fyne.io/") && !fyneAllowed[pkg] {
				t.Errorf("%s imports %s: only gui and cmd/wharf-desktop may import Fyne; move the code there or keep it Fyne-free", pkg, imp)
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if testOnly[dep] {
				t.Errorf("%s imports test-only package %s", pkg, dep)
				continue
			}
			to, ok := level[dep]
			if !ok {
				continue // reported on its own line
			}
			if to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down the layer table", pkg, from, dep, to)
			}
		}
	}
}

// TestServerBinaryIsCgoFree: `go build ./cmd/wharf` must not need cgo;
// only the desktop app links GL and X11.
func TestServerBinaryIsCgoFree(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/wharf")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/wharf with CGO_ENABLED=0: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "fyne.io/") || strings.HasPrefix(dep, "github.com/go-gl/") || dep == module+"/gui" {
			t.Errorf("cmd/wharf depends on %s: the server binary must build without cgo", dep)
		}
	}
}
