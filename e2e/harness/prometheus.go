//go:build linux

package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Prometheus is a running Debian `prometheus` (2.42) scraping test targets.
type Prometheus struct {
	*Process
	Addr string // 127.0.0.1:PORT
	URL  string // http://127.0.0.1:PORT
	Dir  string
}

// StartPrometheus runs prometheus with its TSDB in a temp dir, scraping
// /metrics of each target (host:port) every interval as job "wharf", and
// waits until it is ready.
func StartPrometheus(t testing.TB, interval time.Duration, targets ...string) *Prometheus {
	t.Helper()
	bin := Tool(t, "prometheus")
	dir := t.TempDir()
	p := &Prometheus{Dir: dir}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: wharf
    static_configs:
      - targets: [%[2]s]
`, interval, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfgPath, cfg)
	p.Process = StartProcess(t, "prometheus", dir, nil, bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+AnyLoopback,
		"--log.level=warn")
	p.Addr = p.WaitListening(t, 1, ReadyTimeout)[0]
	p.URL = "http://" + p.Addr
	p.WaitReady(t, ReadyTimeout, func() error {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(p.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query through /api/v1/query. A query that
// Prometheus rejects (a parse error, say) is an error naming its reason.
func (p *Prometheus) Query(expr string) ([]Sample, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w", expr, resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", expr, r.ErrorType, r.Error)
	}
	switch r.Data.ResultType {
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, err
		}
		f, err := sampleValue(v)
		return []Sample{{Value: f}}, err
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			f, err := sampleValue(s.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Metric: s.Metric, Value: f})
		}
		return out, nil
	}
	return nil, fmt.Errorf("query %q: unexpected result type %q", expr, r.Data.ResultType)
}

// sampleValue reads [timestamp, "value"].
func sampleValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v[1])
	}
	return strconv.ParseFloat(s, 64)
}

// WaitFor polls expr until check accepts its samples or timeout passes,
// then fails the test with the last samples. Scrapes come every few
// seconds, so a value the test just caused needs a wait.
func (p *Prometheus) WaitFor(t testing.TB, timeout time.Duration, expr string, check func([]Sample) bool) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.Query(expr)
		if err == nil && check(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s: after %s: samples %v, err %v", expr, timeout, s, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// CheckMetrics runs `promtool check metrics` on an exposition and returns
// what it reported; an error means it found problems (or failed to run).
func CheckMetrics(t testing.TB, exposition string) (string, error) {
	t.Helper()
	bin := Tool(t, "promtool")
	return runToolInput(time.Minute, exposition, bin, "check", "metrics")
}

// runToolInput runs a short-lived command with input on stdin and returns
// its combined output; a non-zero exit is an error quoting the output.
func runToolInput(timeout time.Duration, input string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, trimOutput(out.String()))
	}
	return out.String(), nil
}
