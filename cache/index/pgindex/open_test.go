//go:build linux

package pgindex_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/e2e/harness"
)

// sqlIn runs statements in the database at url, as whoever the URL says.
func sqlIn(t *testing.T, url string, stmts ...string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, s := range stmts {
		if _, err := c.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func queryInt(t *testing.T, url, q string) int {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Replicas starting together migrate one at a time: three Opens of a
// fresh database at once, ten times, all succeed, and the schema is
// applied once. Without the advisory lock, concurrent CREATE TABLEs race
// in the catalog.
func TestMigrateConcurrently(t *testing.T) {
	for round := range 10 {
		url := newDB(t)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		start := make(chan struct{})
		for i := range errs {
			wg.Go(func() {
				<-start
				x, err := pgindex.Open(context.Background(), url, pgindex.Options{})
				if err == nil {
					x.Close()
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, replica %d: %v", round, i, err)
			}
		}
		if n := queryInt(t, url, "SELECT count(*) FROM schema_migrations"); n != pgindex.SchemaVersion() {
			t.Errorf("round %d: %d migrations recorded, want %d", round, n, pgindex.SchemaVersion())
		}
	}
}

// PostgreSQL 15 lets only the database owner create tables in public: a
// role without the privilege is told what it needs, before anything is
// created; granted it, the same role migrates.
func TestOpenRoleWithoutCreate(t *testing.T) {
	url := newDB(t)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	sqlIn(t, url, "DROP ROLE IF EXISTS limited", "CREATE ROLE limited LOGIN PASSWORD 'limited-pw'")
	first := url
	t.Cleanup(func() { sqlIn(t, first, "DROP OWNED BY limited", "DROP ROLE limited") }) // after the second database is dropped
	limited := pg.URLOf("limited", "limited-pw", db)
	_, err := pgindex.Open(context.Background(), limited, pgindex.Options{})
	want := `postgres: role "limited" cannot create tables in schema public of database "` + db +
		`": make it the owner (ALTER DATABASE ` + db + ` OWNER TO limited) or GRANT CREATE ON SCHEMA public TO limited`
	if err == nil || err.Error() != want {
		t.Fatalf("Open as a role without CREATE = %v\nwant %s", err, want)
	}
	if n := queryInt(t, url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("%d tables created anyway", n)
	}
	sqlIn(t, url, "GRANT CREATE ON SCHEMA public TO limited")
	x, err := pgindex.Open(context.Background(), limited, pgindex.Options{})
	if err != nil {
		t.Fatalf("Open after GRANT CREATE: %v", err)
	}
	x.Close()

	// A schema an admin migrated needs no CREATE: a role that may only
	// read and write the tables opens it and works.
	url = newDB(t)
	db = url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	x, err = pgindex.Open(context.Background(), url, pgindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x.Close()
	sqlIn(t, url, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO limited")
	x, err = pgindex.Open(context.Background(), pg.URLOf("limited", "limited-pw", db), pgindex.Options{})
	if err != nil {
		t.Fatalf("Open of a migrated schema with table privileges only: %v", err)
	}
	defer x.Close()
	update(t, x, func(tx index.Txn) error {
		return tx.PutBlob(index.BlobRecord{Digest: dgN(1), Size: 1, Origin: "hub", LastAccess: base})
	})
}

// What goes wrong connecting is said in words an admin can act on.
func TestOpenErrors(t *testing.T) {
	url := newDB(t)
	free := harness.PickAddr(t)
	tests := []struct {
		name, url string
		want      []string
	}{
		{"wrong password", strings.Replace(url, harness.PostgresPassword, "wrong", 1),
			[]string{`postgres: password authentication failed for user "wharf" at ` + pg.Addr + "/", "check the password"}},
		{"missing database", pg.URLOf("wharf", harness.PostgresPassword, "nope"),
			[]string{`postgres: database "nope" does not exist on ` + pg.Addr + ": create it (CREATE DATABASE nope OWNER wharf)"}},
		{"unreachable", strings.Replace(url, pg.Addr, free, 1),
			[]string{"postgres: cannot reach " + free + ": ", "connection refused"}},
		{"bad URL", "postgres://wharf:secret@127.0.0.1:notaport/wharf",
			[]string{"postgres: parsing the URL: "}},
	}
	for _, tt := range tests {
		_, err := pgindex.Open(context.Background(), tt.url, pgindex.Options{})
		if err == nil {
			t.Errorf("%s: Open succeeded", tt.name)
			continue
		}
		t.Logf("%s: %v", tt.name, err)
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v\nwant it to contain %q", tt.name, err, w)
			}
		}
		if strings.Contains(err.Error(), harness.PostgresPassword) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", tt.name, err)
		}
	}
}

// A database migrated by a newer wharf is not used by an older one; an
// up-to-date one is opened again without migrating; NoMigrate changes
// nothing.
func TestOpenSchemaVersions(t *testing.T) {
	url := newDB(t)
	x, err := pgindex.Open(context.Background(), url, pgindex.Options{NoMigrate: true})
	if err != nil || x.SchemaAt() != 0 {
		t.Fatalf("Open without migrating an empty database: %v", err)
	}
	x.Close()
	if n := queryInt(t, url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
		t.Errorf("Open with NoMigrate created %d tables", n)
	}
	x, err = pgindex.Open(context.Background(), url, pgindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if x.SchemaAt() != pgindex.SchemaVersion() {
		t.Errorf("SchemaAt = %d after migrating, want %d", x.SchemaAt(), pgindex.SchemaVersion())
	}
	x.Close()
	x, err = pgindex.Open(context.Background(), url, pgindex.Options{})
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	// Its sessions are named for an admin reading pg_stat_activity.
	x.View(func(tx index.Txn) error { _, err := tx.Usages(); return err })
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	if n := queryInt(t, url, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wharf' AND datname = '"+db+"'"); n == 0 {
		t.Error("no session named wharf in pg_stat_activity")
	}
	x.Close()
	// Commands that only look open it as it is: a schema behind is
	// reported, not migrated.
	sqlIn(t, url, "DELETE FROM schema_migrations WHERE version > 3")
	x, err = pgindex.Open(context.Background(), url, pgindex.Options{NoMigrate: true})
	if err != nil || x.SchemaAt() != 3 {
		t.Fatalf("Open without migrating a schema at version 3: SchemaAt %v, %v", x, err)
	}
	x.Close()
	if n := queryInt(t, url, "SELECT max(version) FROM schema_migrations"); n != 3 {
		t.Errorf("Open with NoMigrate migrated the schema to %d", n)
	}
	sqlIn(t, url, "INSERT INTO schema_migrations (version, what) VALUES (999, 'from the future')")
	_, err = pgindex.Open(context.Background(), url, pgindex.Options{})
	if err == nil || !strings.Contains(err.Error(), "at version 999, newer than this wharf knows") {
		t.Errorf("Open of a newer schema = %v", err)
	}
}
