package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/server"
)

func TestGCCommand(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "hosted:\n  - name: team\n")
	push := func(tag string) string {
		img, _ := random.Image(16<<10, 2)
		r, _ := name.ParseReference(s.Addr()+"/team/app:"+tag, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return d.String()
	}
	gone := push("old")
	push("new")
	r, _ := name.ParseReference(s.Addr()+"/team/app@"+gone, name.Insecure)
	if err := remote.Delete(r); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCmd(append(append([]string{"gc"}, args...), "--data-dir", dir)...)
		if code != 0 {
			t.Fatalf("wharf gc %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	// The configured grace (1h) keeps what was just pushed.
	if out := run(); !strings.Contains(out, "freed 0 blobs (0 B); removed 0 unreferenced links") || !strings.Contains(out, "grace 1h0m0s") {
		t.Errorf("within the grace period:\n%s", out)
	}
	// The deleted image: its manifest, config and two layers.
	out := run("--dry-run", "--grace", "0s")
	if !strings.Contains(out, "would free 4 blobs") || !strings.Contains(out, "would remove 4 unreferenced links") ||
		!strings.Contains(out, gone) || !strings.Contains(out, "dry run: nothing was changed") {
		t.Errorf("dry run:\n%s", out)
	}
	if again := run("--dry-run", "--grace", "0s"); !strings.Contains(again, "would free 4 blobs") {
		t.Errorf("a dry run changed something; the second says:\n%s", again)
	}
	var rep server.GCReport
	if err := json.Unmarshal([]byte(run("--grace", "0", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.DryRun || rep.BlobsFreed != 4 || rep.LinksRemoved != 4 || rep.BytesFreed < 32<<10 || rep.Manifests != 1 || len(rep.Freed) != 4 {
		t.Errorf("report: %+v", rep)
	}
	if out := run("--grace", "0s"); !strings.Contains(out, "freed 0 blobs") || !strings.Contains(out, "checked 1 manifests in 1 hosted repositories") {
		t.Errorf("nothing left:\n%s", out)
	}
	// Mistakes.
	if code, _, errOut := runCmd("gc", "--grace", "soon", "--data-dir", dir); code != 2 || !strings.Contains(errOut, "not a duration") {
		t.Errorf("bad grace: %d %s", code, errOut)
	}
	if code, _, errOut := runCmd("gc", "now", "--data-dir", dir); code != 2 || !strings.Contains(errOut, "no arguments") {
		t.Errorf("argument: %d %s", code, errOut)
	}
	if code, _, errOut := runCmd("gc", "--data-dir", t.TempDir()); code != 1 || !strings.Contains(errOut, "no running wharf") {
		t.Errorf("no server: %d %s", code, errOut)
	}
	if code, out, errOut := runCmd("gc", "--help"); code != 0 || !strings.Contains(out+errOut, "--dry-run") {
		t.Errorf("help: %d %s", code, out+errOut)
	}
}
