package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const healthcheckSynopsis = `wharf healthcheck [--url URL | --config FILE] [--timeout 5s]

Exits 0 when a running wharf answers GET URL/readyz with 200 (running, the
index answers, the data dir takes writes, every listener serves), else 1
with the reason on one line. It needs no shell and prints nothing when
healthy, for a container's HEALTHCHECK:
  HEALTHCHECK CMD ["/usr/bin/wharf", "healthcheck"]`

func cmdHealthcheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("healthcheck", healthcheckSynopsis, stderr)
	url := fs.String("url", os.Getenv("WHARF_URL"), "the server's `URL` (env WHARF_URL; default from --config's listen, else http://127.0.0.1:5000)")
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` whose listen address and TLS settings to use (env WHARF_CONFIG)")
	timeout := fs.Duration("timeout", 5*time.Second, "unhealthy when no answer comes within this `long`")
	// Docker reserves exit status 2 of a HEALTHCHECK: a bad flag is
	// reported as unhealthy (1), like everything else.
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("unhealthy: %v", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unhealthy: healthcheck takes no arguments (got %q); did you mean --url %s?", fs.Arg(0), fs.Arg(0))
	}
	base, hc, err := serverClient(*url, *cfgPath)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	return checkReady(ctx, hc, base+"/readyz")
}

// checkReady turns /readyz's answer into nil or a one-line error: the
// first check that failed, as the server words it.
func checkReady(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("unhealthy: bad --url: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("unhealthy: %s did not answer in time", url)
		}
		return fmt.Errorf("unhealthy: cannot reach %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	reason := ""
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasSuffix(line, ": ok") {
			reason = line
			break
		}
	}
	if reason == "" {
		reason = "answered " + resp.Status
	} else {
		reason = fmt.Sprintf("%s (%d)", reason, resp.StatusCode)
	}
	return fmt.Errorf("unhealthy: %s: %s", url, reason)
}
