//go:build linux

package harness

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/wharf-registry/wharf/config"
)

// WharfBinEnv names a prebuilt wharf binary to test instead of building one.
const WharfBinEnv = "WHARF_BIN"

// ReadyTimeout bounds how long a started server may take to answer.
const ReadyTimeout = 30 * time.Second

// HostedTeamConfig is a config template with one hosted namespace, "team".
const HostedTeamConfig = `listen: {{.Listen}}
data_dir: {{.DataDir}}
hosted:
  - name: team
`

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

// BuildWharf builds ./cmd/wharf once per test binary (without cgo) and returns
// its path; $WHARF_BIN, when set, is used as is.
func BuildWharf(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(WharfBinEnv); bin != "" {
		if !isExecutable(bin) {
			t.Fatalf("%s=%s is not an executable file", WharfBinEnv, bin)
		}
		return bin
	}
	root := ModuleRoot(t)
	buildOnce.Do(func() {
		// Shared by every test in the binary, so not a t.TempDir; CleanupBuild
		// (called from TestMain) removes it.
		buildDir, buildErr = os.MkdirTemp("", "wharf-e2e-bin-")
		if buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "wharf")
		goTool, err := LookTool("go")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/wharf")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/wharf: %v\n%s", err, out)
			return
		}
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatalf("building wharf: %v", buildErr)
	}
	return buildBin
}

// CleanupBuild removes the binary BuildWharf built; call it from TestMain
// after m.Run.
func CleanupBuild() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Wharf is a running `wharf serve` process.
type Wharf struct {
	*Process
	Addr       string // 127.0.0.1:PORT
	URL        string // http://127.0.0.1:PORT
	Dir        string // the test's directory for this server (config, log)
	DataDir    string
	ConfigPath string // empty when started without a config file

	env     []string // "K=V" added to the server's environment
	bin     string
	args    []string // everything after the binary
	tlsName string   // server name for the readiness check over TLS
}

// WharfConfigData is what a config template may refer to.
type WharfConfigData struct {
	Listen  string // 127.0.0.1:PORT
	DataDir string
	Dir     string // a temp dir for other files the config names (htpasswd, certs)
}

// StartWharf runs `BIN serve --config FILE EXTRA...`, where FILE is
// configTemplate (text/template over WharfConfigData) filled in, and waits
// until GET /v2/ answers. An empty configTemplate runs
// `BIN serve --listen ADDR --data-dir DIR EXTRA...` instead.
func StartWharf(t testing.TB, bin, configTemplate string, extraArgs ...string) *Wharf {
	t.Helper()
	return StartWharfOn(t, bin, FreeAddr(t), configTemplate, extraArgs...)
}

// StartWharfOn is StartWharf on a listen address the test picked (an ACME
// test must tell Pebble the port first). A config that turns TLS on gives
// an https URL; readiness is then checked without verifying the
// certificate, with the first tls.hosts name as server name.
func StartWharfOn(t testing.TB, bin, listen, configTemplate string, extraArgs ...string) *Wharf {
	t.Helper()
	return startWharf(t, bin, listen, nil, configTemplate, extraArgs...)
}

// StartWharfEnv is StartWharf with env ("K=V", e.g. HTTPS_PROXY) set for
// the server alone, not for the test process.
func StartWharfEnv(t testing.TB, bin string, env []string, configTemplate string, extraArgs ...string) *Wharf {
	t.Helper()
	return startWharf(t, bin, FreeAddr(t), env, configTemplate, extraArgs...)
}

func startWharf(t testing.TB, bin, listen string, env []string, configTemplate string, extraArgs ...string) *Wharf {
	t.Helper()
	dir := t.TempDir()
	data := WharfConfigData{Listen: listen, DataDir: filepath.Join(dir, "data"), Dir: dir}
	w := &Wharf{Addr: data.Listen, URL: "http://" + data.Listen, Dir: dir, DataDir: data.DataDir, bin: bin, env: env}
	if configTemplate == "" {
		w.args = []string{"serve", "--listen", data.Listen, "--data-dir", data.DataDir}
	} else {
		w.ConfigPath = filepath.Join(dir, "wharf.yaml")
		rendered := RenderTemplate(t, configTemplate, data)
		writeFile(t, w.ConfigPath, rendered)
		w.args = []string{"serve", "--config", w.ConfigPath}
		if cfg, err := config.Parse([]byte(rendered)); err == nil && cfg.TLS.Enabled() {
			w.URL = "https://" + data.Listen
			if len(cfg.TLS.Hosts) > 0 {
				w.tlsName = cfg.TLS.Hosts[0]
			}
		}
	}
	w.args = append(w.args, extraArgs...)
	w.start(t)
	return w
}

// Restart starts wharf again with the same arguments, address and data dir,
// after Stop or Kill. It returns a new Wharf; the old one stays stopped.
func (w *Wharf) Restart(t testing.TB) *Wharf {
	t.Helper()
	if w.Running() {
		t.Fatalf("wharf restart: pid %d still running", w.Pid())
	}
	nw := *w
	nw.Process = nil
	nw.start(t)
	return &nw
}

func (w *Wharf) start(t testing.TB) {
	t.Helper()
	// WHARF_CONFIG, WHARF_DATA_DIR and friends from the test's environment
	// must not reach the server under test.
	env := cleanEnv([]string{"WHARF_"}, w.env...)
	w.Process = StartProcess(t, "wharf", w.Dir, env, append([]string{w.bin}, w.args...)...)
	w.WaitReady(t, ReadyTimeout, func() error { return pingV2(w.URL, w.tlsName, http.StatusOK, http.StatusUnauthorized) })
}

// Run runs another wharf subcommand (fsck, ...) with the same binary and
// returns its combined output; a non-zero exit is an error.
func (w *Wharf) Run(args ...string) (string, error) {
	return runTool(2*time.Minute, cleanEnv([]string{"WHARF_"}), w.Dir, append([]string{w.bin}, args...)...)
}

// pingV2 succeeds when GET URL/v2/ answers with one of the statuses: 401 means
// up but behind auth.
func pingV2(baseURL, tlsName string, ok ...int) error {
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// Readiness only: the tests check the certificate themselves.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: tlsName},
	}}
	resp, err := c.Get(baseURL + "/v2/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	for _, s := range ok {
		if resp.StatusCode == s {
			return nil
		}
	}
	return fmt.Errorf("GET /v2/: %s", resp.Status)
}

// RenderTemplate fills a text/template, failing the test on error.
func RenderTemplate(t testing.TB, text string, data any) string {
	t.Helper()
	tmpl, err := template.New("config").Option("missingkey=error").Parse(text)
	if err != nil {
		t.Fatalf("config template: %v", err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatalf("config template: %v", err)
	}
	return b.String()
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// trimOutput keeps error messages readable when a tool prints a lot.
func trimOutput(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// AddUser runs `wharf user add NAME --htpasswd FILE` with the password on
// stdin, as a script would.
func (w *Wharf) AddUser(t testing.TB, htpasswd, name, password string) {
	t.Helper()
	if out, err := runToolInput(time.Minute, password+"\n", w.bin, "user", "add", name, "--htpasswd", htpasswd); err != nil {
		t.Fatalf("wharf user add %s: %v\n%s", name, err, out)
	}
}
