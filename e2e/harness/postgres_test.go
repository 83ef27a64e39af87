//go:build linux

package harness

import (
	"strings"
	"testing"
)

func TestPostgres(t *testing.T) {
	p := StartPostgres(t)
	if !strings.HasPrefix(p.URL, "postgres://wharf:") || !strings.HasSuffix(p.URL, "/wharf?sslmode=disable") {
		t.Errorf("URL %q", p.URL)
	}
	// The wharf role owns its database: it can create tables in public,
	// which PostgreSQL 15 no longer lets every role do.
	if out, err := p.SQL("CREATE TABLE t (k text PRIMARY KEY); INSERT INTO t VALUES ('a')"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p.Restart()
	out, err := p.SQL("SELECT k FROM t")
	if err != nil || !strings.Contains(out, "a") {
		t.Fatalf("after a restart: %v\n%s", err, out)
	}
}
