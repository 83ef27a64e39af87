package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestCompletionSpecFromFlagSets(t *testing.T) {
	c, err := completionSpec()
	if err != nil {
		t.Fatal(err)
	}
	has := func(key, name, value string) {
		t.Helper()
		for _, f := range c.flags[key] {
			if f.name == name {
				if f.value != value {
					t.Errorf("%s --%s takes %q, want %q", key, name, f.value, value)
				}
				return
			}
		}
		t.Errorf("%s: no --%s in %v", key, name, c.flags[key])
	}
	has("serve", "config", "file")
	has("serve", "data-dir", "directory")
	has("serve", "listen", "value")
	has("healthcheck", "url", "value")
	has("healthcheck", "timeout", "value")
	has("status", "json", "")
	has("cache ls", "sort", "value")
	has("setup podman", "registries-conf", "file")
	has("user add", "htpasswd", "file")
	for _, f := range c.flags["cache stats"] {
		if f.name == "sort" {
			t.Error("cache stats offers --sort, a flag of cache ls only")
		}
	}
	// Every command of the table is in the zsh script with its summary
	// (TestBashCompletion runs the bash one).
	zsh := c.zsh()
	for _, cmd := range commands() {
		if !strings.Contains(zsh, "'"+cmd.name+":") {
			t.Errorf("zsh script lacks %s", cmd.name)
		}
	}
}

func TestCompletionCommand(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		code, out, errOut := runCmd("completion", sh)
		if code != 0 || !strings.Contains(out, "_wharf") {
			t.Errorf("completion %s: exit %d, %q", sh, code, errOut)
		}
	}
	if code, _, errOut := runCmd("completion", "fish"); code != 2 || !strings.Contains(errOut, "fish") {
		t.Errorf("fish: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("completion"); code != 2 || !strings.Contains(errOut, "bash or zsh") {
		t.Errorf("no shell: exit %d, %q", code, errOut)
	}
}

// TestBashCompletion runs the script in bash, as bash runs it on TAB.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	_, script, _ := runCmd("completion", "bash")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "wharf.yml"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "wharf-data"), 0o755)
	complete := func(line string) []string {
		t.Helper()
		// The word under the cursor is the last one; an empty one when
		// the line ends with a space.
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, shellQuote(w))
		}
		prog := script + "\ncd " + shellQuote(dir) + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\n" +
			"COMP_CWORD=" + strconv.Itoa(len(words)-1) + "\n_wharf\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, out)
		}
		got := strings.Fields(string(out))
		slices.Sort(got) // compgen -f lists in directory order
		return got
	}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"wharf ", []string{"serve", "config", "fsck", "migrate", "status", "healthcheck", "cache", "gc", "warm", "user", "tls", "setup", "completion", "version", "help"}},
		{"wharf he", []string{"healthcheck", "help"}},
		{"wharf healthcheck --", []string{"--config", "--timeout", "--url"}},
		{"wharf healthcheck --config ", []string{"wharf-data", "wharf.yml"}},
		{"wharf serve --data-dir wh", []string{"wharf-data"}},
		{"wharf serve --listen ", nil},
		{"wharf migrate --", []string{"--data-dir", "--to-config"}},
		{"wharf migrate --to-config ", []string{"wharf-data", "wharf.yml"}},
		{"wharf cache ", []string{"stats", "ls", "evict", "pin", "unpin"}},
		{"wharf cache ls --s", []string{"--sort"}},
		{"wharf cache --data-dir wharf-data stats --j", []string{"--json"}},
		{"wharf completion ", []string{"bash", "zsh"}},
		{"wharf config check ", []string{"wharf-data", "wharf.yml"}},
		{"wharf user --htpasswd wharf.yml a", []string{"add"}},
	} {
		got := complete(tc.line)
		slices.Sort(tc.want)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q completes to %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestZshCompletion checks the script's syntax and runs its function
// with zsh's completion builtins replaced by ones that print what they
// were given (compadd, _describe, _files, _message), when zsh is here.
func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh not installed; the zsh script is not checked")
	}
	_, script, _ := runCmd("completion", "zsh")
	f := filepath.Join(t.TempDir(), "_wharf")
	os.WriteFile(f, []byte(script), 0o644)
	if out, err := exec.Command(zsh, "-n", f).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	stubs := `compadd() { shift; print -l -- "$@"; }
_describe() { print -l -- "${(@P)4}"; }
_files() { print "FILES $*"; }
_message() { print "MSG $*"; }
`
	for _, tc := range []struct{ line, want string }{
		{"wharf ", "serve:run the registry\nconfig:validate"},
		{"wharf cache ", "stats\nls\nevict\npin\nunpin\n"},
		{"wharf healthcheck --", "--config\n--timeout\n--url\n"},
		{"wharf healthcheck --config ", "FILES \n"},
		{"wharf serve --data-dir ", "FILES -/\n"},
		{"wharf serve --listen ", "MSG listen value\n"},
		{"wharf completion ", "bash\nzsh\n"},
	} {
		// Sourcing the script runs _wharf once, as autoloading it does.
		prog := stubs + "words=(${=1}); [[ $1 == *' ' ]] && words+=('')\nCURRENT=${#words}\nsource " + shellQuote(f) + "\n"
		out, err := exec.Command(zsh, "-f", "-c", prog, "zsh", tc.line).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), tc.want) || strings.Count(string(out), "serve:") > 1 {
			t.Errorf("%q: %v, got %q, want it to start with %q", tc.line, err, out, tc.want)
		}
	}
}
