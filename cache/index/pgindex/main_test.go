//go:build linux

package pgindex_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/indextest"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// pg is the one PostgreSQL server of this package's tests; each test gets
// a database of its own on it (newDB).
var (
	pg     *harness.Postgres
	pgSkip string
)

func TestMain(m *testing.M) {
	var stop func()
	var err error
	pg, stop, pgSkip, err = harness.Shared("postgres", func(t testing.TB) *harness.Postgres { return harness.StartPostgres(t) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		stop()
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

var dbs atomic.Int64

// newDB creates an empty database for t and returns its URL.
func newDB(t testing.TB) string {
	t.Helper()
	if pg == nil {
		t.Skip(pgSkip)
	}
	return pg.NewDatabase(t, fmt.Sprintf("t%d", dbs.Add(1)))
}

// open opens an index on a fresh database, closed at cleanup.
func open(t testing.TB) *pgindex.Index {
	t.Helper()
	x, err := pgindex.Open(context.Background(), newDB(t), pgindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// The behaviour every index shares, on PostgreSQL.
func TestSuite(t *testing.T) {
	indextest.Run(t, func(t *testing.T) index.Index { return open(t) })
}
