package pgindex

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migration is one step of the schema. Steps are never edited once
// released: a change is a new step.
type migration struct {
	version int
	what    string
	sql     string
}

// Text columns are COLLATE "C" so that ORDER BY and > compare bytes, as
// Badger orders keys: tag and repository pages come in the same order on
// either index, whatever the database's locale. Times are unix
// nanoseconds (bigint), as Badger keeps them: timestamptz holds
// microseconds, and a last-access time that changed on its way through
// the index would no longer match the one an eviction planned with. The
// zero time is the smallest bigint.
var migrations = []migration{
	{1, "blobs, links, manifests, tags, referrers, uploads, pins, usage, tag checks", `
CREATE TABLE blobs (
	digest      text COLLATE "C" PRIMARY KEY,
	size        bigint NOT NULL,
	media_type  text COLLATE "C" NOT NULL,
	origin      text COLLATE "C" NOT NULL,
	created     bigint NOT NULL,
	last_access bigint NOT NULL,
	hits        bigint NOT NULL
);
-- The least-recently-used order of the blobs eviction may remove
-- (index.BlobRecord.Evictable).
CREATE INDEX blobs_lru ON blobs (last_access, digest) WHERE origin NOT IN ('', 'hosted', 'recovered');

CREATE TABLE links (
	repo   text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	PRIMARY KEY (repo, digest)
);
CREATE INDEX links_by_digest ON links (digest, repo);

CREATE TABLE manifests (
	repo          text COLLATE "C" NOT NULL,
	digest        text COLLATE "C" NOT NULL,
	media_type    text COLLATE "C" NOT NULL,
	size          bigint NOT NULL,
	artifact_type text COLLATE "C" NOT NULL,
	subject       text COLLATE "C",
	annotations   jsonb,
	created       bigint NOT NULL,
	PRIMARY KEY (repo, digest)
);

CREATE TABLE tags (
	repo   text COLLATE "C" NOT NULL,
	tag    text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	PRIMARY KEY (repo, tag)
);
CREATE INDEX tags_by_digest ON tags (repo, digest, tag);

CREATE TABLE referrers (
	repo       text COLLATE "C" NOT NULL,
	subject    text COLLATE "C" NOT NULL,
	digest     text COLLATE "C" NOT NULL,
	descriptor jsonb NOT NULL,
	PRIMARY KEY (repo, subject, digest)
);

CREATE TABLE uploads (
	id      text COLLATE "C" PRIMARY KEY,
	repo    text COLLATE "C" NOT NULL,
	started bigint NOT NULL
);

CREATE TABLE pins (
	digest text COLLATE "C" NOT NULL,
	rule   text COLLATE "C" NOT NULL,
	PRIMARY KEY (digest, rule)
);

CREATE TABLE usage (
	origin text COLLATE "C" PRIMARY KEY,
	bytes  bigint NOT NULL,
	blobs  bigint NOT NULL
);

CREATE TABLE tag_checks (
	repo    text COLLATE "C" NOT NULL,
	tag     text COLLATE "C" NOT NULL,
	checked bigint NOT NULL,
	PRIMARY KEY (repo, tag)
);
`},
	{2, "fill leases and the cluster token", `
-- One upstream fetch per blob across replicas: the replica whose lease
-- is live fills the digest, the others stream from it (at addr).
-- expires is unix nanoseconds by the database's clock.
CREATE TABLE fill_leases (
	digest  text COLLATE "C" PRIMARY KEY,
	owner   text COLLATE "C" NOT NULL,
	addr    text COLLATE "C" NOT NULL,
	expires bigint NOT NULL
);

-- The secret replicas show each other on their internal endpoint: one
-- row, written by the first replica to ask for it (ClusterToken).
CREATE TABLE cluster_token (
	one   boolean PRIMARY KEY DEFAULT true CHECK (one),
	token text NOT NULL
);
`},
	{3, "replicas: each replica's heartbeat, for wharf status", `
-- Times here are the database's clock (now()), unlike the index's
-- records: replicas' clocks may disagree, and only "seen in the last 30
-- seconds" is asked of them, never compared with Badger's times.
CREATE TABLE replicas (
	id        text COLLATE "C" PRIMARY KEY,
	addr      text COLLATE "C" NOT NULL,
	version   text COLLATE "C" NOT NULL,
	started   timestamptz NOT NULL,
	last_seen timestamptz NOT NULL
);
`},
	{4, "uploads: the replica holding each session's bytes", `
-- An upload session's bytes sit in the scratch area of the replica that
-- started it; the others forward its PATCH, PUT, GET and DELETE there.
ALTER TABLE uploads ADD COLUMN owner text COLLATE "C" NOT NULL DEFAULT '';
`},
	{5, "blob claims: writes and deletes of one digest kept apart across replicas", `
-- A replica writing a digest to the bucket holds a write claim until the
-- blob is recorded; garbage collection and eviction delete a digest only
-- under a collect claim, which no live write claim may share. expires is
-- unix nanoseconds by the database's clock: a replica that died holding
-- a claim loses it then.
CREATE TABLE blob_claims (
	digest  text COLLATE "C" NOT NULL,
	holder  text COLLATE "C" NOT NULL,
	collect boolean NOT NULL,
	expires bigint NOT NULL,
	PRIMARY KEY (digest, holder)
);
`},
}

// SchemaVersion is the schema version this wharf brings a database to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrateLock is the key of the advisory lock that makes replicas
// starting together migrate one after the other: concurrent CREATE TABLE
// IF NOT EXISTS races in the catalog (duplicate pg_type rows).
const migrateLock int64 = 0x7768_6172_665f_6978 // "wharf_ix"

// migrate applies the migrations the database lacks, each in its own
// transaction, holding the advisory lock throughout; with apply false it
// only reads the version.
func (x *Index) migrate(ctx context.Context, apply bool) error {
	conn, err := x.pool.Acquire(ctx)
	if err != nil {
		return x.openError(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		return x.openError(fmt.Errorf("waiting for the schema lock: %w", err))
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock)

	applied := map[int]bool{}
	newest := 0
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return x.openError(fmt.Errorf("reading the schema version: %w", err))
	}
	if exists {
		rows, _ := conn.Query(ctx, "SELECT version FROM schema_migrations")
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return x.openError(fmt.Errorf("reading the schema version: %w", err))
		}
		for _, v := range versions {
			applied[v] = true
			newest = max(newest, v)
		}
	}
	if newest > SchemaVersion() {
		return fmt.Errorf("postgres: the schema of %s is at version %d, newer than this wharf knows (%d): upgrade wharf", x.where, newest, SchemaVersion())
	}
	x.schemaAt = newest
	if !apply {
		return nil
	}
	var pending []migration
	for _, m := range migrations {
		if !applied[m.version] {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	if err := x.checkCreate(ctx, conn.Conn()); err != nil {
		return err
	}
	if !exists {
		_, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (
	version    integer PRIMARY KEY,
	what       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`)
		if err != nil {
			return x.openError(fmt.Errorf("creating schema_migrations: %w", err))
		}
	}
	for _, m := range pending {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, what) VALUES ($1, $2)", m.version, m.what)
			return err
		})
		if err != nil {
			return x.openError(fmt.Errorf("schema migration %d (%s): %w", m.version, m.what, err))
		}
		x.log.Info("index: migrated the PostgreSQL schema", "version", m.version, "what", m.what)
		x.schemaAt = m.version
	}
	return nil
}

// checkCreate fails with what to do when the role may not create tables
// where they would go: since PostgreSQL 15 only the database owner may
// create in schema public, unless granted.
func (x *Index) checkCreate(ctx context.Context, conn *pgx.Conn) error {
	var role, db string
	var schema *string
	var can bool
	err := conn.QueryRow(ctx, `SELECT current_user, current_database(), current_schema(),
	coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)`).Scan(&role, &db, &schema, &can)
	if err != nil {
		return x.openError(fmt.Errorf("checking privileges: %w", err))
	}
	if schema == nil {
		return fmt.Errorf("postgres: no schema of the search_path of role %q exists in database %q: create one it may use (CREATE SCHEMA wharf AUTHORIZATION %s) or restore public",
			role, db, quoteIdent(role))
	}
	if !can {
		return fmt.Errorf("postgres: role %q cannot create tables in schema %s of database %q: make it the owner (ALTER DATABASE %s OWNER TO %s) or GRANT CREATE ON SCHEMA %s TO %s",
			role, *schema, db, quoteIdent(db), quoteIdent(role), quoteIdent(*schema), quoteIdent(role))
	}
	return nil
}

// openError turns what failed while connecting into what to do about it.
func (x *Index) openError(err error) error {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pe.Code {
		case "28P01":
			return fmt.Errorf("postgres: password authentication failed for user %q at %s: check the password in the URL", x.user(), x.where)
		case "3D000":
			db := x.pool.Config().ConnConfig.Database
			return fmt.Errorf("postgres: database %q does not exist on %s: create it (CREATE DATABASE %s OWNER %s)",
				db, x.hostPort(), quoteIdent(db), quoteIdent(x.user()))
		case "28000":
			return fmt.Errorf("postgres: %s refused role %q: %s", x.hostPort(), x.user(), pe.Message)
		}
		return fmt.Errorf("postgres: %s: %w", x.where, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("postgres: connecting to %s: %w", x.where, err)
	}
	if unavailable(err) || pgconn.Timeout(err) {
		return fmt.Errorf("postgres: cannot reach %s: %w", x.hostPort(), err)
	}
	return fmt.Errorf("postgres: %s: %w", x.where, err)
}

func (x *Index) user() string { return x.pool.Config().ConnConfig.User }

func (x *Index) hostPort() string {
	c := x.pool.Config().ConnConfig
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

// quoteIdent quotes a name for the SQL in a message, when it needs it.
func quoteIdent(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			plain = false
		}
	}
	if plain {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
