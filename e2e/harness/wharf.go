//go:build linux

package harness

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	Addr string // 127.0.0.1:PORT, the port wharf bound
	URL  string // http://127.0.0.1:PORT
	// MetricsAddr is where /metrics is served when metrics.listen is set
	// (as wharf logged it), else "".
	MetricsAddr string
	Dir         string // the test's directory for this server (config, log)
	DataDir     string
	ConfigPath  string // empty when started without a config file

	env     []string // "K=V" added to the server's environment
	bin     string
	args    []string // everything after the binary
	extra   []string // the caller's arguments at the end of args
	tlsName string   // server name for the readiness check over TLS
	scheme  string   // http or https
	// tmpl and data render ConfigPath: first with Listen 127.0.0.1:0,
	// then again with the address wharf bound.
	tmpl string
	data WharfConfigData
}

// WharfConfigData is what a config template may refer to.
type WharfConfigData struct {
	Listen  string // 127.0.0.1:PORT
	DataDir string
	Dir     string // a temp dir for other files the config names (htpasswd, certs)
}

// AnyLoopback is the listen address the harness gives wharf: port 0, so
// the kernel picks a free port as wharf binds it, and wharf's "wharf is
// serving" log line says which.
const AnyLoopback = "127.0.0.1:0"

// StartWharf runs `BIN serve --config FILE EXTRA...`, where FILE is
// configTemplate (text/template over WharfConfigData) filled in with
// Listen 127.0.0.1:0, reads the address wharf bound from its log, and
// waits until GET /v2/ answers. An empty configTemplate runs
// `BIN serve --listen 127.0.0.1:0 --data-dir DIR EXTRA...` instead.
func StartWharf(t testing.TB, bin, configTemplate string, extraArgs ...string) *Wharf {
	t.Helper()
	return StartWharfOn(t, bin, AnyLoopback, configTemplate, extraArgs...)
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
	return startWharf(t, bin, AnyLoopback, env, configTemplate, extraArgs...)
}

func startWharf(t testing.TB, bin, listen string, env []string, configTemplate string, extraArgs ...string) *Wharf {
	t.Helper()
	dir := t.TempDir()
	data := WharfConfigData{Listen: listen, DataDir: filepath.Join(dir, "data"), Dir: dir}
	w := &Wharf{Addr: listen, Dir: dir, DataDir: data.DataDir, bin: bin, env: env, scheme: "http", tmpl: configTemplate, data: data, extra: extraArgs}
	w.args = append(w.serveArgs(t), extraArgs...)
	attempts := 1 // port 0 cannot be taken
	if !strings.HasSuffix(listen, ":0") {
		attempts = rebindAttempts
	}
	w.start(t, attempts)
	if w.data.Listen != w.Addr {
		// From now on the config file (and the arguments of a restart)
		// name the port wharf bound, as a user's config names a fixed
		// one: commands given --config (wharf status, wharf setup) find
		// the server, and a restart comes back where clients expect it.
		w.data.Listen = w.Addr
		w.args = append(w.serveArgs(t), w.extra...)
	}
	return w
}

// serveArgs renders the config (when there is a template) and returns
// the serve arguments before the caller's extra ones.
func (w *Wharf) serveArgs(t testing.TB) []string {
	t.Helper()
	if w.tmpl == "" {
		return []string{"serve", "--listen", w.data.Listen, "--data-dir", w.data.DataDir}
	}
	w.ConfigPath = filepath.Join(w.Dir, "wharf.yaml")
	rendered := RenderTemplate(t, w.tmpl, w.data)
	writeFile(t, w.ConfigPath, rendered)
	if cfg, err := config.Parse([]byte(rendered)); err == nil && cfg.TLS.Enabled() {
		w.scheme = "https"
		if len(cfg.TLS.Hosts) > 0 {
			w.tlsName = cfg.TLS.Hosts[0]
		}
	}
	return []string{"serve", "--config", w.ConfigPath}
}

// Restart starts wharf again with the same arguments, address and data dir,
// after Stop or Kill. It returns a new Wharf; the old one stays stopped.
// The address is the port the first start bound, taken again (the config
// names it since): the port was free when the old process exited.
func (w *Wharf) Restart(t testing.TB) *Wharf {
	t.Helper()
	if w.Running() {
		t.Fatalf("wharf restart: pid %d still running", w.Pid())
	}
	nw := *w
	nw.Process = nil
	nw.start(t, rebindAttempts)
	return &nw
}

func (w *Wharf) start(t testing.TB, attempts int) {
	t.Helper()
	// WHARF_CONFIG, WHARF_DATA_DIR and friends from the test's environment
	// must not reach the server under test.
	env := cleanEnv([]string{"WHARF_"}, w.env...)
	for i := 1; ; i++ {
		// Restarts append to the same log: only what this process
		// writes counts.
		var logStart int64
		if fi, err := os.Stat(filepath.Join(w.Dir, "wharf.log")); err == nil {
			logStart = fi.Size()
		}
		w.Process = StartProcess(t, "wharf", w.Dir, env, append([]string{w.bin}, w.args...)...)
		ready := w.waitReady(t, ReadyTimeout, func() error {
			addr, metricsAddr, err := servingAddrs(w.LogPath, logStart)
			if err != nil {
				return err
			}
			w.Addr, w.MetricsAddr, w.URL = addr, metricsAddr, w.scheme+"://"+addr
			return pingV2(w.URL, w.tlsName, http.StatusOK, http.StatusUnauthorized)
		}, func(log string) bool {
			return i < attempts && addrInUse(log[min(int(logStart), len(log)):])
		})
		if ready {
			return
		}
		t.Logf("wharf: %s is taken; starting again once it is free", w.data.Listen)
		waitBindable(w.data.Listen, ReadyTimeout)
	}
}

var (
	// The line wharf logs once it serves, as log/slog writes it in text
	// (the default) or JSON (log.format: json).
	servingText  = regexp.MustCompile(`msg="wharf is serving".* addr=(\S+)`)
	servingJSON  = regexp.MustCompile(`"msg":"wharf is serving".*"addr":"([^"]+)"`)
	metricsText  = regexp.MustCompile(` metrics_addr=(\S+)`)
	metricsJSON  = regexp.MustCompile(`"metrics_addr":"([^"]+)"`)
	errNotServed = errors.New(`no "wharf is serving" line in the log yet`)
)

// servingAddrs reads, from offset on, the addresses wharf logged: the
// registry's and, with metrics.listen, the metrics one.
func servingAddrs(logPath string, offset int64) (addr, metricsAddr string, err error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "", "", err
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		for _, re := range []*regexp.Regexp{metricsText, metricsJSON} {
			if m := re.FindStringSubmatch(line); m != nil {
				metricsAddr = m[1]
			}
		}
		for _, re := range []*regexp.Regexp{servingText, servingJSON} {
			if m := re.FindStringSubmatch(line); m != nil {
				return m[1], metricsAddr, nil
			}
		}
	}
	return "", "", errNotServed
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
