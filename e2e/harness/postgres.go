//go:build linux

package harness

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PostgresPassword is the password of the wharf role of every test server.
const PostgresPassword = "wharf-pg-secret"

// Postgres is a PostgreSQL server of the test's own (Debian's
// postgresql-15), on a loopback port with a data dir of its own, fsync
// off: a database named wharf owned by the role wharf, which is how the
// docs tell an admin to set one up.
type Postgres struct {
	Proc *Process
	Addr string // 127.0.0.1:PORT
	// URL is what index.postgres takes:
	// postgres://wharf:PASSWORD@127.0.0.1:PORT/wharf?sslmode=disable
	URL string

	bin  string // the directory of postgres, initdb, pg_isready, psql
	dir  string
	data string
	as   []string // the command prefix that runs as the postgres user
	t    testing.TB
}

// postgresBin finds the newest Debian PostgreSQL's programs.
func postgresBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "postgres")) {
			return d
		}
	}
	skipOrFail(t, "missing PostgreSQL (/usr/lib/postgresql/*/bin/postgres; scripts/test-deps.sh installs postgresql)")
	return ""
}

// StartPostgres initialises a cluster and starts it. PostgreSQL refuses to
// run as root, so as root the programs run as the postgres user (setpriv
// execs them in place: Stop signals postgres itself).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	p := &Postgres{bin: postgresBin(t), dir: ShortTempDir(t, "pg"), t: t}
	p.data = filepath.Join(p.dir, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			skipOrFail(t, "running as root and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(p.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.as = []string{Tool(t, "setpriv"), "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--"}
	}
	pwfile := filepath.Join(p.dir, "pwfile")
	writeFile(t, pwfile, PostgresPassword+"\n")
	os.Chmod(pwfile, 0o644)
	env := []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
	if out, err := runTool(2*time.Minute, env, p.dir, p.cmd("initdb", "-D", p.data, "-U", "wharf", "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")...); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	onFreePort(t, "postgres", func(addr string, retryBind bool) bool {
		p.Addr = addr
		return p.start(retryBind)
	})
	if out, err := p.psql("postgres", "CREATE DATABASE wharf OWNER wharf"); err != nil {
		t.Fatalf("create database: %v\n%s", err, out)
	}
	p.URL = fmt.Sprintf("postgres://wharf:%s@%s/wharf?sslmode=disable", PostgresPassword, p.Addr)
	return p
}

func (p *Postgres) cmd(prog string, args ...string) []string {
	return append(append(append([]string{}, p.as...), filepath.Join(p.bin, prog)), args...)
}

// start runs postgres on p.Addr and waits until it accepts connections.
func (p *Postgres) start(retryBind bool) bool {
	p.t.Helper()
	_, port, _ := net.SplitHostPort(p.Addr)
	argv := p.cmd("postgres", "-D", p.data, "-h", "127.0.0.1", "-p", port, "-k", p.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	p.Proc = StartProcess(p.t, "postgres", p.dir, []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}, argv...)
	var retry func(string) bool
	if retryBind {
		retry = addrInUse
	}
	return p.Proc.waitReady(p.t, ReadyTimeout, func() error {
		out, err := runTool(10*time.Second, nil, p.dir, filepath.Join(p.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", port)
		if err != nil {
			return fmt.Errorf("pg_isready: %v %s", err, out)
		}
		return nil
	}, retry)
}

// psql runs one SQL command as the wharf role in database db.
func (p *Postgres) psql(db, sql string) (string, error) {
	host, port, _ := net.SplitHostPort(p.Addr)
	return runTool(time.Minute, []string{"PGPASSWORD=" + PostgresPassword, "PATH=/usr/bin:/bin"}, p.dir,
		filepath.Join(p.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port, "-U", "wharf", "-d", db, "-c", sql)
}

// SQL runs one SQL command in the wharf database and returns psql's output.
func (p *Postgres) SQL(sql string) (string, error) { return p.psql("wharf", sql) }

// Stop stops the server with a fast shutdown (SIGINT: open sessions are
// ended, as when an admin restarts it under load).
func (p *Postgres) Stop() error { return p.Proc.StopWith(syscall.SIGINT) }

// Restart stops the server and starts it again on the same port with the
// same data: what "PostgreSQL restarted mid-traffic" does.
func (p *Postgres) Restart() {
	p.t.Helper()
	p.Stop()
	if !p.start(false) {
		p.t.Fatalf("postgres did not come back on %s", p.Addr)
	}
}

// NewDatabase creates an empty database owned by the wharf role, for one
// test of a package that shares the server, and returns its URL. It is
// dropped at t's cleanup, with any sessions still in it.
func (p *Postgres) NewDatabase(t testing.TB, name string) string {
	t.Helper()
	if out, err := p.psql("postgres", "CREATE DATABASE "+name+" OWNER wharf"); err != nil {
		t.Fatalf("create database %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := p.psql("postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v\n%s", name, err, out)
		}
	})
	return p.URLOf("wharf", PostgresPassword, name)
}

// URLOf is the URL of database db on this server as user with password.
func (p *Postgres) URLOf(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password, p.Addr, db)
}
