// Package pgindex is wharf's metadata index in PostgreSQL, for cluster
// mode: several wharf replicas share one database, as they share one
// bucket for the blobs. It implements index.Index and index.Txn with the
// Badger index's semantics, checked by indextest.Run and by a test that
// runs the same random operations on both and compares every read.
//
// # Transactions
//
// Update's transactions are SERIALIZABLE. Badger's transactions are
// optimistic and detect read-write conflicts: one whose reads a
// concurrent commit overwrote fails and is retried. PostgreSQL's
// serializable isolation is the same contract (serializable snapshot
// isolation), so code written for Badger (read a record, decide, write)
// stays correct without a row lock in every read. REPEATABLE READ with
// explicit locks would need each caller to say what it means to write,
// and would still let two writers that read each other's rows skew. A
// serialization failure or a deadlock (SQLSTATE 40001, 40P01) makes
// Update run fn again, up to 50 times, as Badger does on ErrConflict; an
// Update that gives up wraps index.ErrConflict. PostgreSQL may also
// report a conflict where there was none (its predicate locks can cover a
// page or a table rather than a row); those are retried alike. As in
// Badger, every write of a record updates its origin's usage row, so
// writers of one origin conflict there and take turns. View is a READ ONLY
// REPEATABLE READ transaction: one snapshot, as Badger's read
// transactions are.
//
// # Schema
//
// Migrations are versioned (table schema_migrations) and applied at Open
// under an advisory lock, each in its own transaction. Tables:
//
//	blobs       digest → size, media type, origin, created, last access, hits (index.BlobRecord)
//	            with blobs_lru, a partial index of the evictable ones in (last access, digest) order
//	links       (repo, digest): the blob is visible in the repository; links_by_digest reverses it
//	manifests   (repo, digest) → media type, size, artifact type, subject, annotations, created
//	tags        (repo, tag) → digest; tags_by_digest for TagsFor and DeleteManifest
//	referrers   (repo, subject, digest) → the referrer's descriptor (JSON)
//	uploads     id → repo, started
//	pins        (digest, rule)
//	usage       origin → bytes, blobs: updated in the statement that writes or removes a record
//	tag_checks  (repo, tag) → when it was last confirmed upstream
//	fill_leases digest → owner, addr, expiry: which replica fetches it from the upstream (lease.go)
//	cluster_token  one row: the secret replicas show each other
//
// Text is COLLATE "C" so that pages of tags and repositories come in
// Badger's byte order; times are unix nanoseconds, as Badger keeps them.
//
// # Differences from the Badger index that remain
//
//   - An evictable record with a zero LastAccess is the least recently
//     used here; Badger's LRU key of the zero time sorts it last (as if
//     read in 1754). The cache always records a last access.
//   - Text is PostgreSQL's: a repository, tag or media type with a NUL
//     byte or invalid UTF-8 is refused. The registry validates names and
//     tags before they reach the index.
//   - Times must lie in 1678–2262 (unix nanoseconds in an int64); Badger
//     stores others as JSON.
//   - A failed statement voids its transaction: when fn ignores the
//     error and goes on, the Update fails with nothing written, where
//     Badger would commit fn's other writes.
//   - ctx bounds every statement of an Update: cancelling it rolls back
//     the attempt in progress (Badger runs the first attempt to the end).
//   - A connection the server dropped before the commit makes Update or
//     View run fn again on a fresh one (up to three times): fn may run
//     more than once anyway, on conflicts.
//   - Evict reads the links of what it removes in its own transaction,
//     so a link added after PlanEviction is removed too, where Badger's
//     removes the links the plan found.
//   - The Each methods read pages of 1000 rows: a record that fn adds
//     ahead of the walk, in an Update, is visited.
//   - RunGC does nothing: autovacuum reclaims the space.
package pgindex

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wharf-registry/wharf/cache/index"
)

// Options tune the connection pool.
type Options struct {
	Logger *slog.Logger
	// MaxConns caps the pool (0: 16). Each Update and View holds one
	// connection while fn runs, and waits for one when all are busy; the
	// server's max_connections (100 by default) must cover every
	// replica's pool.
	MaxConns int32
	// ConnectTimeout bounds each new connection when the URL does not set
	// connect_timeout (0: 10 s), so that an unreachable server is an
	// error, not a hang.
	ConnectTimeout time.Duration
	// NoMigrate opens the database as it is, for commands that only look
	// (`wharf config check`, `wharf fsck`): pending migrations are left
	// for the next replica to start, and SchemaAt says where it stands.
	NoMigrate bool
}

// Index is the PostgreSQL-backed metadata store.
type Index struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// where names the server and database in errors.
	where string
	// schemaAt is the schema version found (NoMigrate) or reached.
	schemaAt int
}

// SchemaAt is the database's schema version: SchemaVersion once migrated,
// possibly less when opened with NoMigrate (0: no wharf tables yet).
func (x *Index) SchemaAt() int { return x.schemaAt }

// maxAttempts is how often Update runs fn before it gives up on
// conflicts, as Badger's index does.
const maxAttempts = 50

// Open connects to the database at url (postgres://user:password@host:port/db),
// checks that the role may do what wharf needs, and brings the schema up
// to date, one replica at a time. Connect to PostgreSQL directly or
// through a pooler in session mode: the migration lock is a session's.
// A role that may not create tables can open a schema an admin (or a
// first Open as the owner) has brought up to date; it needs SELECT,
// INSERT, UPDATE and DELETE on the tables.
func Open(ctx context.Context, url string, o Options) (*Index, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parsing the URL: %w", err)
	}
	cfg.MaxConns = 16
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
		if o.ConnectTimeout > 0 {
			cfg.ConnConfig.ConnectTimeout = o.ConnectTimeout
		}
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// What pg_stat_activity shows an admin looking for wharf's sessions.
		cfg.ConnConfig.RuntimeParams["application_name"] = "wharf"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	x := &Index{pool: pool, log: log, where: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)}
	if err := x.migrate(ctx, !o.NoMigrate); err != nil {
		pool.Close()
		return nil, err
	}
	return x, nil
}

// Close closes every connection; calls in flight finish first.
func (x *Index) Close() error {
	x.pool.Close()
	return nil
}

// RunGC does nothing: PostgreSQL's autovacuum reclaims the space of
// deleted and updated rows, which is what Badger's value-log GC does.
func (x *Index) RunGC() {}

// Update runs fn in a read-write transaction, running it again when it
// conflicts with concurrent transactions (a serialization failure or a
// deadlock), up to 50 times. An error from fn rolls back everything it
// wrote and is returned as it is. ctx bounds every statement: cancelling
// it rolls the transaction back.
//
// A connection the server dropped (a restart) is found when it is used.
// When that happens before the commit, nothing was written, and fn runs
// again on a fresh connection, as on a conflict (fn may run more than
// once anyway), up to three times: a server that came back is used at
// once, and one that is down is an error saying so. A connection lost
// during the commit is an error: whether it landed is unknown.
func (x *Index) Update(ctx context.Context, fn func(index.Txn) error) error {
	return x.update(ctx, func(t *Txn) error { return fn(t) })
}

func (x *Index) update(ctx context.Context, fn func(*Txn) error) error {
	lost := 0
	for attempt := 1; ; attempt++ {
		r := x.run(ctx, beginUpdate, fn)
		switch {
		case r.err == nil:
			return nil
		case r.lost && lost < maxLost:
			lost++
			x.pool.Reset()
			continue
		case r.lost:
			return fail(r.err, "update")
		case r.fnErr:
			return r.err // fn's own error is the caller's to describe
		case !isConflict(r.err):
			return x.fail(r.err, "commit")
		case attempt >= maxAttempts:
			return &conflictError{attempts: attempt, err: r.err}
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// A short, growing pause lets the winner finish.
		t := time.NewTimer(time.Duration(attempt) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// maxLost is how often Update and View start again on a fresh connection
// after losing one.
const maxLost = 3

// View runs fn in a read-only transaction on one snapshot (REPEATABLE
// READ, which is a snapshot in PostgreSQL, as Badger's read transactions
// are). It starts again on a fresh connection after losing one, as
// Update does.
func (x *Index) View(fn func(index.Txn) error) error {
	return x.view(func(t *Txn) error { return fn(t) })
}

func (x *Index) view(fn func(*Txn) error) error {
	for lost := 0; ; lost++ {
		r := x.run(context.Background(), beginView, fn)
		switch {
		case r.err == nil || r.fnErr:
			return r.err
		case r.lost && lost < maxLost:
			x.pool.Reset()
		default:
			return x.fail(r.err, "read")
		}
	}
}

// result is how one attempt of a transaction ended.
type result struct {
	err error
	// fnErr says that err is fn's own, not a failure to begin or commit
	// or a conflict.
	fnErr bool
	// lost says that the connection was lost before the commit: nothing
	// was written, and the transaction may run again.
	lost bool
}

// The statements that begin Update's and View's transactions.
const (
	beginUpdate = "BEGIN ISOLATION LEVEL SERIALIZABLE"
	beginView   = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
)

// run is one attempt: fn in a transaction begun with begin, committed
// when fn succeeds. A conflict or a lost connection that a statement of
// fn met is reported as such even when fn went on or returned another
// error: the transaction is void.
func (x *Index) run(ctx context.Context, begin string, fn func(*Txn) error) result {
	conn, err := x.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return result{err: ctx.Err()}
		}
		return result{err: x.connError(err, "begin a transaction"), lost: unavailable(err)}
	}
	// A connection left in a transaction (a failed ROLLBACK) is closed
	// by the pool on release, not reused.
	defer conn.Release()
	t := &Txn{x: x, ctx: ctx, conn: conn, begin: begin, readOnly: begin == beginView}
	err = fn(t)
	if err == nil {
		err = t.flush()
	}
	switch {
	case t.lost != nil:
		t.rollback()
		if err == nil { // fn went on after the failure
			err = t.lost
		}
		return result{err: err, lost: true}
	case t.conflict != nil:
		t.rollback()
		return result{err: t.conflict}
	case err != nil:
		t.rollback()
		return result{err: err, fnErr: true}
	case !t.begun:
		return result{}
	}
	tag, err := conn.Exec(ctx, "COMMIT")
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return result{err: ctx.Err()}
		}
		return result{err: x.connError(err, "")}
	case tag.String() == "ROLLBACK":
		// A statement failed and fn went on regardless: the server
		// rolled everything back.
		return result{err: errors.New("the transaction was rolled back: a statement in it had failed")}
	}
	return result{}
}

// rollback ends a transaction that will not commit.
func (t *Txn) rollback() {
	if t.begun {
		t.conn.Exec(context.WithoutCancel(t.ctx), "ROLLBACK")
	}
}

// conflictError is an Update that gave up: other writers kept changing
// what fn read.
type conflictError struct {
	attempts int
	err      error
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("index: commit: still conflicting after %d attempts: %v", e.attempts, e.err)
}
func (e *conflictError) Unwrap() []error { return []error{errConflict, e.err} }

// isConflict reports a serialization failure or a deadlock: running the
// transaction again may succeed.
func isConflict(err error) bool {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// opError says which operation failed on which records, as package
// index's errors do.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return "index: " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// fail wraps err with the operation that failed, unless it is
// ErrNotFound or already says which operation failed.
func fail(err error, format string, args ...any) error {
	if errors.Is(err, index.ErrNotFound) {
		return err
	}
	if _, ok := errors.AsType[*opError](err); ok {
		return err
	}
	if _, ok := errors.AsType[*conflictError](err); ok {
		return err
	}
	return &opError{op: fmt.Sprintf(format, args...), err: err}
}

func (x *Index) fail(err error, format string, args ...any) error {
	return fail(x.connError(err, ""), format, args...)
}

// connError says which server could not be reached, when that is what
// err is; other errors pass as they are.
func (x *Index) connError(err error, op string) error {
	if !unavailable(err) {
		return err
	}
	err = fmt.Errorf("postgres at %s %w: %w", x.where, index.ErrUnavailable, err)
	if op != "" {
		return &opError{op: op, err: err}
	}
	return err
}

// unavailable reports an error of the connection rather than of a
// statement: the server is down, restarting, or unreachable.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		// Class 08: connection exception; 57P0x: the server is shutting
		// down, crashed or cannot connect now.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "conn closed")
}

// ns is t as stored: unix nanoseconds, with the zero time as the
// smallest value so that it sorts first, as the least recently used.
func ns(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// fromNS reads a time stored by ns.
func fromNS(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
