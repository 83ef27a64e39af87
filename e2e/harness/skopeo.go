//go:build linux

package harness

import (
	"path/filepath"
	"testing"
	"time"
)

// SkopeoTimeout bounds one skopeo command.
const SkopeoTimeout = 5 * time.Minute

// Skopeo runs `skopeo ARGS...` with its own trust policy (accept anything),
// an empty registries.conf, an empty auth file and an empty registries.d, so
// nothing under /etc/containers or $HOME is read. It returns combined output.
func Skopeo(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return SkopeoRun{}.Run(t, args...)
}

// SkopeoWithRegistries is Skopeo with the given registries.conf (v2 TOML),
// e.g. with [[registry.mirror]] entries pointing at wharf.
func SkopeoWithRegistries(t testing.TB, registriesConf string, args ...string) (string, error) {
	t.Helper()
	return SkopeoRun{RegistriesConf: registriesConf}.Run(t, args...)
}

// SkopeoRun is a skopeo run with more set up than Skopeo does.
type SkopeoRun struct {
	// RegistriesConf is the registries.conf (v2 TOML); empty means no
	// search registries and no mirrors.
	RegistriesConf string
	// LoopbackNames resolve to 127.0.0.1 for this run (see LoopbackNames).
	LoopbackNames []string
}

// Run runs `skopeo ARGS...` as Skopeo does, with r's setup.
func (r SkopeoRun) Run(t testing.TB, args ...string) (string, error) {
	t.Helper()
	registriesConf := r.RegistriesConf
	if registriesConf == "" {
		registriesConf = "unqualified-search-registries = []\n"
	}
	bin := Tool(t, "skopeo")
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	writeFile(t, policy, `{"default":[{"type":"insecureAcceptAnything"}]}`+"\n")
	registries := filepath.Join(dir, "registries.conf")
	writeFile(t, registries, registriesConf)
	authFile := filepath.Join(dir, "auth.json")
	writeFile(t, authFile, `{"auths":{}}`+"\n")
	registriesD := filepath.Join(dir, "registries.d")
	writeFile(t, filepath.Join(registriesD, ".keep"), "")
	tmp := filepath.Join(dir, "tmp")
	writeFile(t, filepath.Join(tmp, ".keep"), "")

	env := cleanEnv([]string{"CONTAINERS_", "REGISTRY_AUTH_FILE=", "XDG_CONFIG_HOME=", "XDG_RUNTIME_DIR=", "DOCKER_CONFIG="},
		"CONTAINERS_REGISTRIES_CONF="+registries,
		"REGISTRY_AUTH_FILE="+authFile,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"DOCKER_CONFIG="+filepath.Join(dir, "docker"),
	)
	// skopeo 1.9 ignores CONTAINERS_REGISTRIES_CONF; its hidden
	// --registries-conf flag is honoured.
	argv := append(LoopbackNames(t, r.LoopbackNames...), bin, "--policy", policy, "--registries.d", registriesD, "--registries-conf", registries, "--tmpdir", tmp)
	argv = append(argv, args...)
	return runTool(SkopeoTimeout, env, dir, argv...)
}
