//go:build linux

package harness

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ConformanceBinEnv names the OCI conformance program to run; by default it
// is $ROOT/.cache/bin/conformance, where scripts/test-deps.sh installs it.
const ConformanceBinEnv = "WHARF_CONFORMANCE_BIN"

// ConformanceTimeout bounds one conformance run.
const ConformanceTimeout = 10 * time.Minute

// ConformanceBin finds the conformance program, skipping (or failing, with
// WHARF_E2E_REQUIRE=1) when it is not installed.
func ConformanceBin(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(ConformanceBinEnv); bin != "" {
		Require(t, bin)
		return bin
	}
	bin := filepath.Join(ModuleRoot(t), ".cache", "bin", "conformance")
	Require(t, bin)
	return bin
}

// ConformanceOptions configures one run of the OCI distribution-spec
// conformance program (its OCI_* environment).
type ConformanceOptions struct {
	Registry           string // 127.0.0.1:PORT
	Repo1, Repo2       string // default team/repo1, team/repo2
	Username, Password string
	// Env adds or overrides OCI_* variables, e.g. "OCI_FILTER_TEST".
	Env map[string]string
}

// ConformanceResult is what a run produced.
type ConformanceResult struct {
	Output     string // the program's stdout and stderr: a tree of results, then totals
	ResultsDir string // junit.xml, results.yaml, report.html
	ExitErr    error  // non-nil when the program reported a failure
	Tests      int
	Failures   int // conformance failures
	Errors     int // failures of the test engine or of the registry to answer
	Skipped    int // skipped (the registry answered "unsupported") or disabled
	Failed     []ConformanceCase
	SkipNames  []string // names of the skipped leaf tests
}

// ConformanceCase is one failed or errored leaf test.
type ConformanceCase struct {
	Name   string // "OCI Conformance Test/sha256 blobs/.../push blob"
	Status string // failure or error
	Errors string // the errors the suite recorded
}

// Passed reports whether the program ran clean and no test failed.
func (r *ConformanceResult) Passed() bool {
	return len(r.Failed) == 0 && r.ExitErr == nil && r.Tests > 0
}

// Summary lists the failed tests, one per line with its first error line,
// followed by the totals; it is empty when everything passed.
func (r *ConformanceResult) Summary() string {
	if r.Passed() {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d conformance tests failed (%d failures, %d errors, %d skipped); results in %s\n",
		r.Failures+r.Errors, r.Tests, r.Failures, r.Errors, r.Skipped, r.ResultsDir)
	for _, c := range r.Failed {
		first, _, _ := strings.Cut(strings.TrimSpace(c.Errors), "\n")
		fmt.Fprintf(&b, "  %s [%s]: %s\n", c.Name, c.Status, first)
	}
	if len(r.Failed) == 0 {
		fmt.Fprintf(&b, "  exit: %v\n%s\n", r.ExitErr, tailLines(r.Output, LogTailLines))
	}
	return b.String()
}

// RunConformance runs the conformance program against a registry, with every
// API and data workflow it has switched on (pull, push, content discovery —
// tag list and referrers — and content management — deletes), and parses its
// junit.xml. It fails the test only when the program could not run at all.
func RunConformance(t testing.TB, bin string, opts ConformanceOptions) *ConformanceResult {
	t.Helper()
	if opts.Repo1 == "" {
		opts.Repo1 = "team/repo1"
	}
	if opts.Repo2 == "" {
		opts.Repo2 = "team/repo2"
	}
	// The program reads ./oci-conformance.yaml when present: run it in an
	// empty directory, with none of the test's own OCI_* variables.
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	vars := map[string]string{
		"OCI_REGISTRY":             opts.Registry,
		"OCI_TLS":                  "disabled",
		"OCI_REPO1":                opts.Repo1,
		"OCI_REPO2":                opts.Repo2,
		"OCI_USERNAME":             opts.Username,
		"OCI_PASSWORD":             opts.Password,
		"OCI_RESULTS_DIR":          results,
		"OCI_VERSION":              "1.1",
		"OCI_LOG":                  "warn",
		"OCI_API_PULL":             "true",
		"OCI_API_PUSH":             "true",
		"OCI_API_TAGS_LIST":        "true",
		"OCI_API_REFERRER":         "true",
		"OCI_API_BLOBS_DELETE":     "true",
		"OCI_API_MANIFESTS_DELETE": "true",
		"OCI_API_TAGS_DELETE":      "true",
		// Beyond the default profile: upload cancel and ?tag= on a push
		// by digest, both of which wharf implements.
		"OCI_API_BLOBS_UPLOAD_CANCEL": "true",
		"OCI_API_MANIFESTS_TAG_PARAM": "true",
	}
	for k, v := range opts.Env {
		vars[k] = v
	}
	var extra []string
	for k, v := range vars {
		extra = append(extra, k+"="+v)
	}
	env := cleanEnv([]string{"OCI_"}, extra...)
	out, err := runTool(ConformanceTimeout, env, dir, bin)
	res := &ConformanceResult{Output: out, ResultsDir: results, ExitErr: err}
	// The output is kept whole in Output; the error need only say how it ended.
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		res.ExitErr = exitErr
	}
	junitPath := filepath.Join(results, "junit.xml")
	raw, rerr := os.ReadFile(junitPath)
	if rerr != nil {
		// With OCI_FILTER_TEST this version fails to write its reports ("unknown
		// status 0") and still exits 0; the tree it printed is the record then.
		if !parseConformanceTree(res, out) {
			t.Fatalf("conformance wrote no %s (%v) and printed no results; exit: %v\n%s",
				junitPath, rerr, err, tailLines(out, LogTailLines))
		}
		return res
	}
	var suites junitSuites
	if err := xml.Unmarshal(raw, &suites); err != nil {
		t.Fatalf("parsing %s: %v", junitPath, err)
	}
	for _, s := range suites.Suites {
		res.Tests += s.Tests
		res.Failures += s.Failures
		res.Errors += s.Errors
		res.Skipped += s.Skipped + s.Disabled
		for _, c := range s.Cases {
			if c.Status == "failure" || c.Status == "error" || c.Failure != nil || c.Error != nil {
				status := c.Status
				if status == "" {
					status = "failure"
				}
				res.Failed = append(res.Failed, ConformanceCase{Name: c.Name, Status: status, Errors: c.SystemOut})
			} else if c.Status == "skipped" {
				res.SkipNames = append(res.SkipNames, c.Name)
			}
		}
	}
	return res
}

// parseConformanceTree reads the result tree the program prints
// ("  NAME: FAIL", then "   - error" lines under a leaf) into res. It
// reports false when the output holds no tree.
func parseConformanceTree(res *ConformanceResult, out string) bool {
	type node struct {
		name, status string
		errs         []string
	}
	var nodes []*node
	inTree := false
	for _, line := range strings.Split(out, "\n") {
		if line == "Test results" {
			inTree = true
			continue
		}
		if !inTree {
			continue
		}
		if line == "" {
			break
		}
		trimmed := strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(trimmed, "- "); ok && len(nodes) > 0 {
			n := nodes[len(nodes)-1]
			n.errs = append(n.errs, rest)
			continue
		}
		i := strings.LastIndex(trimmed, ": ")
		if i < 0 {
			continue
		}
		nodes = append(nodes, &node{name: trimmed[:i], status: trimmed[i+2:]})
	}
	if len(nodes) == 0 {
		return false
	}
	for i, n := range nodes {
		if i+1 < len(nodes) && strings.HasPrefix(nodes[i+1].name, n.name+"/") {
			continue // not a leaf
		}
		switch n.status {
		case "Pass":
			res.Tests++
		case "FAIL":
			res.Tests++
			res.Failures++
			res.Failed = append(res.Failed, ConformanceCase{Name: n.name, Status: "failure", Errors: strings.Join(n.errs, "\n")})
		case "Error":
			res.Tests++
			res.Errors++
			res.Failed = append(res.Failed, ConformanceCase{Name: n.name, Status: "error", Errors: strings.Join(n.errs, "\n")})
		case "Skip", "Disabled":
			res.Tests++
			res.Skipped++
			if n.status == "Skip" {
				res.SkipNames = append(res.SkipNames, n.name)
			}
		}
	}
	return true
}

type junitSuites struct {
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Disabled int         `xml:"disabled,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string    `xml:"name,attr"`
	Status    string    `xml:"status,attr"`
	Failure   *struct{} `xml:"failure"`
	Error     *struct{} `xml:"error"`
	SystemOut string    `xml:"system-out"`
}
