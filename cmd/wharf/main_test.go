package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"fsck", "--help"}, {"config", "--help"}, {"config", "check", "--help"}, {"status", "--help"}, {"healthcheck", "--help"}, {"completion", "--help"}, {"cache", "--help"}, {"setup", "--help"}} {
		code, out, errOut := runCmd(args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		if !strings.Contains(out+errOut, "Usage") {
			t.Errorf("%v: no usage in %q", args, out+errOut)
		}
	}
	if code, _, errOut := runCmd(); code != 2 || !strings.Contains(errOut, "wharf serve") {
		t.Errorf("no args: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("serve", "--bogus"); code != 2 || !strings.Contains(errOut, "bogus") {
		t.Errorf("bad flag: exit %d, %q", code, errOut)
	}
	if code, out, _ := runCmd("version"); code != 0 || !strings.HasPrefix(out, "wharf ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte("listen: 127.0.0.1:5000\ndata_dir: ./data\nhosted:\n  - name: team\n"), 0o600)
	code, out, errOut := runCmd("config", "check", good)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"is valid", "listen: 127.0.0.1:5000", "name: team", "format: text"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:5000\nhosted:\n  - name: team\n    nmae: x\n"), 0o600)
	code, _, errOut = runCmd("config", "check", bad)
	if code != 1 || !strings.Contains(errOut, "line 4") || !strings.Contains(errOut, "nmae") {
		t.Errorf("unknown key: exit %d, %q", code, errOut)
	}
	typ := filepath.Join(dir, "type.yml")
	os.WriteFile(typ, []byte("listen: [1, 2]\n"), 0o600)
	code, _, errOut = runCmd("config", "check", typ)
	if code != 1 || !strings.Contains(errOut, "line 1") {
		t.Errorf("wrong type: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCmd("config", "check", filepath.Join(dir, "missing.yml"))
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func TestServeRejectsBadConfigBeforeListening(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yml")
	os.WriteFile(cfg, []byte("listen: nope\n"), 0o600)
	code, _, errOut := runCmd("serve", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "listen") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	code, _, errOut = runCmd("serve", cfg)
	if code != 2 || !strings.Contains(errOut, "--config") {
		t.Errorf("positional config: exit %d, %q", code, errOut)
	}
}

func TestFsckEmptyDataDir(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCmd("fsck", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "no problems found") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	code, _, errOut = runCmd("fsck", "--data-dir", filepath.Join(dir, "absent"))
	if code != 1 || !strings.Contains(errOut, "absent") {
		t.Fatalf("missing dir: exit %d %s", code, errOut)
	}
}

// The shipped and documented configs must stay valid.
func TestShippedConfigsAreValid(t *testing.T) {
	for _, f := range []string{"../../packaging/wharf.yml", "../../testdata/minimal.yml"} {
		if code, _, errOut := runCmd("config", "check", f); code != 0 {
			t.Errorf("%s: %s", f, errOut)
		}
	}
}
