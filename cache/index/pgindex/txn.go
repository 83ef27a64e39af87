package pgindex

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// Txn is one transaction with wharf's typed accessors, the methods of
// Badger's index.Txn. It is used by one goroutine, inside the fn of
// Update or View only.
type Txn struct {
	x    *Index
	ctx  context.Context
	conn *pgxpool.Conn
	// begin is the statement that starts the transaction. It is sent
	// with the first statement of fn, in one round trip; a transaction
	// that sent nothing has nothing to commit.
	begin    string
	begun    bool
	readOnly bool
	// conflict is the first serialization failure or deadlock a statement
	// met: the transaction is void, whatever fn does next, and runs again.
	conflict error
	// lost is the first error of a connection the server dropped.
	lost error
	// touches are reads recorded by Touch and not yet written: they go
	// in one statement before the next one, or at commit.
	touches map[oci.Digest]touch
}

// errReadOnly is a write in View. It is found before anything is sent,
// so the transaction stays usable, as Badger's does.
var errReadOnly = index.ErrReadOnly

// pageSize is how many rows the Each methods read per statement. They
// read a page, close it, then call fn for its rows: fn may use the
// transaction (one connection runs one statement at a time), and a walk
// of a million records holds a page in memory, not all of them.
const pageSize = 1000

// note keeps the first conflict or lost connection a statement met, and
// returns err, saying which server it lost.
func (t *Txn) note(err error) error {
	switch {
	case err == nil:
	case isConflict(err):
		if t.conflict == nil {
			t.conflict = err
		}
	case t.ctx.Err() == nil && unavailable(err):
		err = t.x.connError(err, "")
		if t.lost == nil {
			t.lost = err
		}
	}
	return err
}

func (t *Txn) writable() error {
	if t.readOnly {
		return errReadOnly
	}
	return nil
}

// send runs one statement, preceded by BEGIN when it is the
// transaction's first (in the same round trip), and hands its rows to
// read, which closes them and returns rows.Err().
func (t *Txn) send(sql string, args []any, read func(pgx.Rows) error) error {
	if t.begun {
		rows, _ := t.conn.Query(t.ctx, sql, args...) // an error comes back from the rows
		return read(rows)
	}
	b := &pgx.Batch{}
	b.Queue(t.begin)
	b.Queue(sql, args...)
	br := t.conn.SendBatch(t.ctx, b)
	// An argument that cannot be encoded fails the batch before anything
	// is sent: then the next statement begins the transaction.
	_, err := br.Exec()
	if err == nil {
		t.begun = true
		rows, _ := br.Query()
		err = read(rows)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func drain(rows pgx.Rows) error {
	rows.Close()
	return rows.Err()
}

// query runs a statement after the reads Touch has recorded.
func (t *Txn) query(sql string, args []any, read func(pgx.Rows) error) error {
	if err := t.flush(); err != nil {
		return err
	}
	return t.note(t.send(sql, args, read))
}

func (t *Txn) exec(sql string, args ...any) error { return t.query(sql, args, drain) }

// row runs a query of one row; no row is ErrNotFound.
func (t *Txn) row(sql string, args []any, dest ...any) error {
	found := false
	err := t.query(sql, args, func(rows pgx.Rows) error {
		if rows.Next() {
			found = true
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return err
			}
		}
		return drain(rows)
	})
	if err == nil && !found {
		return index.ErrNotFound
	}
	return err
}

// collect runs a query and reads all its rows.
func collect[T any](t *Txn, sql string, args []any, scan pgx.RowToFunc[T]) ([]T, error) {
	var out []T
	err := t.query(sql, args, func(rows pgx.Rows) error {
		var err error
		out, err = pgx.CollectRows(rows, scan)
		return err
	})
	return out, err
}

func scanString(row pgx.CollectableRow) (string, error) { return pgx.RowTo[string](row) }

// --- blobs ---

const blobColumns = "digest, size, media_type, origin, created, last_access, hits"

func scanBlob(row pgx.CollectableRow) (index.BlobRecord, error) {
	var r index.BlobRecord
	var created, access int64
	err := row.Scan(&r.Digest, &r.Size, &r.MediaType, &r.Origin, &created, &access, &r.Hits)
	r.Created, r.LastAccess = fromNS(created), fromNS(access)
	return r, err
}

// Blob returns a blob record.
func (t *Txn) Blob(d oci.Digest) (index.BlobRecord, error) {
	r := index.BlobRecord{Digest: d}
	var created, access int64
	err := t.row("SELECT size, media_type, origin, created, last_access, hits FROM blobs WHERE digest = $1", []any{d},
		&r.Size, &r.MediaType, &r.Origin, &created, &access, &r.Hits)
	if err != nil {
		return index.BlobRecord{}, fail(err, "read blob %s", d)
	}
	r.Created, r.LastAccess = fromNS(created), fromNS(access)
	return r, nil
}

// putBlobSQL writes a record and moves its size from the old record's
// origin's usage to the new one's, in one statement (all parts of it see
// the rows as they were before it).
const putBlobSQL = `
WITH old AS (
	SELECT origin, size FROM blobs WHERE digest = $1
), put AS (
	INSERT INTO blobs (digest, size, media_type, origin, created, last_access, hits)
	VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (digest) DO UPDATE SET size = EXCLUDED.size, media_type = EXCLUDED.media_type,
		origin = EXCLUDED.origin, created = EXCLUDED.created, last_access = EXCLUDED.last_access, hits = EXCLUDED.hits
), delta (origin, bytes, n) AS (
	SELECT $4::text, $2::bigint, 1::bigint
	UNION ALL
	SELECT origin, -size, -1 FROM old
)
INSERT INTO usage (origin, bytes, blobs)
SELECT CASE WHEN origin = '' THEN 'hosted' ELSE origin END, sum(bytes), sum(n)
FROM delta GROUP BY 1
ON CONFLICT (origin) DO UPDATE SET bytes = usage.bytes + EXCLUDED.bytes, blobs = usage.blobs + EXCLUDED.blobs`

// PutBlob writes a blob record, keeping the usage counters and the
// least-recently-used order in step.
func (t *Txn) PutBlob(r index.BlobRecord) error {
	err := t.writable()
	if err == nil {
		err = t.exec(putBlobSQL, r.Digest, r.Size, r.MediaType, r.Origin, ns(r.Created), ns(r.LastAccess), r.Hits)
	}
	if err != nil {
		return fail(err, "put blob %s", r.Digest)
	}
	return nil
}

// deleteBlobsSQL removes records and their links, and takes them off
// their origins' usage; it returns the records removed.
const deleteBlobsSQL = `
WITH gone AS (
	DELETE FROM blobs WHERE digest = ANY($1) RETURNING ` + blobColumns + `
), unlinked AS (
	DELETE FROM links WHERE digest = ANY($1)
), counted AS (
	INSERT INTO usage (origin, bytes, blobs)
	SELECT CASE WHEN origin = '' THEN 'hosted' ELSE origin END, -sum(size), -count(*) FROM gone GROUP BY 1
	ON CONFLICT (origin) DO UPDATE SET bytes = usage.bytes + EXCLUDED.bytes, blobs = usage.blobs + EXCLUDED.blobs
)
SELECT ` + blobColumns + ` FROM gone ORDER BY digest`

// DeleteBlob removes a blob record and all its links.
func (t *Txn) DeleteBlob(d oci.Digest) error {
	if _, err := t.deleteBlobs([]oci.Digest{d}); err != nil {
		return fail(err, "delete blob %s", d)
	}
	return nil
}

func (t *Txn) deleteBlobs(ds []oci.Digest) ([]index.BlobRecord, error) {
	if err := t.writable(); err != nil {
		return nil, err
	}
	return collect(t, deleteBlobsSQL, []any{ds}, scanBlob)
}

// LinkBlob makes d visible in repo.
func (t *Txn) LinkBlob(repo string, d oci.Digest) error {
	err := t.writable()
	if err == nil {
		err = t.exec("INSERT INTO links (repo, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING", repo, d)
	}
	if err != nil {
		return fail(err, "link %s into %s", d, repo)
	}
	return nil
}

// UnlinkBlob hides d in repo.
func (t *Txn) UnlinkBlob(repo string, d oci.Digest) error {
	err := t.writable()
	if err == nil {
		err = t.exec("DELETE FROM links WHERE repo = $1 AND digest = $2", repo, d)
	}
	if err != nil {
		return fail(err, "unlink %s from %s", d, repo)
	}
	return nil
}

// BlobLinked reports whether d is visible in repo.
func (t *Txn) BlobLinked(repo string, d oci.Digest) (bool, error) {
	var ok bool
	if err := t.row("SELECT EXISTS (SELECT 1 FROM links WHERE repo = $1 AND digest = $2)", []any{repo, d}, &ok); err != nil {
		return false, fail(err, "look up link of %s in %s", d, repo)
	}
	return ok, nil
}

// BlobRepos lists the repositories d is linked in.
func (t *Txn) BlobRepos(d oci.Digest) ([]string, error) {
	repos, err := collect(t, "SELECT repo FROM links WHERE digest = $1 ORDER BY repo", []any{d}, scanString)
	if err != nil {
		return nil, fail(err, "list repositories of %s", d)
	}
	return nilIfEmpty(repos), nil
}

// EachBlob visits every blob record, in digest order.
func (t *Txn) EachBlob(fn func(index.BlobRecord) error) error {
	var last oci.Digest
	for {
		page, err := collect(t, "SELECT "+blobColumns+" FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2", []any{last, pageSize}, scanBlob)
		if err != nil {
			return fail(err, "list blob records")
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		last = page[len(page)-1].Digest
	}
}

// EachLink visits every blob link (repository, digest), repository by
// repository.
func (t *Txn) EachLink(fn func(repo string, d oci.Digest) error) error {
	type link struct {
		repo string
		d    oci.Digest
	}
	var last link
	for {
		page, err := collect(t, "SELECT repo, digest FROM links WHERE (repo, digest) > ($1, $2) ORDER BY repo, digest LIMIT $3",
			[]any{last.repo, last.d, pageSize}, func(row pgx.CollectableRow) (link, error) {
				var l link
				err := row.Scan(&l.repo, &l.d)
				return l, err
			})
		if err != nil {
			return fail(err, "list links")
		}
		for _, l := range page {
			if err := fn(l.repo, l.d); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		last = page[len(page)-1]
	}
}

// --- manifests and tags ---

const manifestColumns = "repo, digest, media_type, size, artifact_type, subject, annotations, created"

type repoManifest struct {
	repo string
	r    index.ManifestRecord
}

func scanManifest(row pgx.CollectableRow) (repoManifest, error) {
	var m repoManifest
	var subject *string
	var annotations []byte
	var created int64
	err := row.Scan(&m.repo, &m.r.Digest, &m.r.MediaType, &m.r.Size, &m.r.ArtifactType, &subject, &annotations, &created)
	if err != nil {
		return m, err
	}
	if subject != nil {
		s := oci.Digest(*subject)
		m.r.Subject = &s
	}
	if len(annotations) > 0 {
		if err := json.Unmarshal(annotations, &m.r.Annotations); err != nil {
			return m, err
		}
	}
	m.r.Created = fromNS(created)
	return m, nil
}

// Manifest returns repo's manifest record for d.
func (t *Txn) Manifest(repo string, d oci.Digest) (index.ManifestRecord, error) {
	ms, err := collect(t, "SELECT "+manifestColumns+" FROM manifests WHERE repo = $1 AND digest = $2", []any{repo, d}, scanManifest)
	if err == nil && len(ms) == 0 {
		err = index.ErrNotFound
	}
	if err != nil {
		return index.ManifestRecord{}, fail(err, "read manifest %s in %s", d, repo)
	}
	return ms[0].r, nil
}

// PutManifest records a manifest in repo.
func (t *Txn) PutManifest(repo string, r index.ManifestRecord) error {
	err := t.writable()
	if err == nil {
		var annotations []byte
		if len(r.Annotations) > 0 {
			annotations, err = json.Marshal(r.Annotations)
		}
		if err == nil {
			err = t.exec(`INSERT INTO manifests (`+manifestColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8)
ON CONFLICT (repo, digest) DO UPDATE SET media_type = EXCLUDED.media_type, size = EXCLUDED.size,
	artifact_type = EXCLUDED.artifact_type, subject = EXCLUDED.subject, annotations = EXCLUDED.annotations, created = EXCLUDED.created`,
				repo, r.Digest, r.MediaType, r.Size, r.ArtifactType, (*string)(r.Subject), nullJSON(annotations), ns(r.Created))
		}
	}
	if err != nil {
		return fail(err, "put manifest %s in %s", r.Digest, repo)
	}
	return nil
}

func nullJSON(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

// DeleteManifest removes a manifest from repo, with its tags and its
// referrer entry. A missing manifest is ErrNotFound, and nothing changes.
func (t *Txn) DeleteManifest(repo string, d oci.Digest) error {
	err := t.writable()
	if err == nil {
		var n int
		err = t.row(`
WITH m AS (
	DELETE FROM manifests WHERE repo = $1 AND digest = $2 RETURNING subject
), untagged AS (
	DELETE FROM tags WHERE repo = $1 AND digest = $2 AND EXISTS (SELECT 1 FROM m)
), unreferred AS (
	DELETE FROM referrers WHERE repo = $1 AND digest = $2 AND subject = (SELECT subject FROM m)
)
SELECT count(*) FROM m`, []any{repo, d}, &n)
		if err == nil && n == 0 {
			err = index.ErrNotFound
		}
	}
	if err != nil {
		return fail(err, "delete manifest %s from %s", d, repo)
	}
	return nil
}

// EachManifest visits repo's manifests ("" for every repository), in
// order of repository and digest.
func (t *Txn) EachManifest(repo string, fn func(repo string, r index.ManifestRecord) error) error {
	var last repoManifest
	last.repo = repo
	for {
		var page []repoManifest
		var err error
		if repo != "" {
			page, err = collect(t, "SELECT "+manifestColumns+" FROM manifests WHERE repo = $1 AND digest > $2 ORDER BY digest LIMIT $3",
				[]any{repo, last.r.Digest, pageSize}, scanManifest)
		} else {
			page, err = collect(t, "SELECT "+manifestColumns+" FROM manifests WHERE (repo, digest) > ($1, $2) ORDER BY repo, digest LIMIT $3",
				[]any{last.repo, last.r.Digest, pageSize}, scanManifest)
		}
		if err != nil {
			if repo == "" {
				return fail(err, "list manifests")
			}
			return fail(err, "list manifests of %s", repo)
		}
		for _, m := range page {
			if err := fn(m.repo, m.r); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		last = page[len(page)-1]
	}
}

// Tag resolves repo:tag.
func (t *Txn) Tag(repo, tag string) (oci.Digest, error) {
	var d oci.Digest
	if err := t.row("SELECT digest FROM tags WHERE repo = $1 AND tag = $2", []any{repo, tag}, &d); err != nil {
		return "", fail(err, "read tag %s:%s", repo, tag)
	}
	return d, nil
}

// SetTag points repo:tag at d.
func (t *Txn) SetTag(repo, tag string, d oci.Digest) error {
	err := t.writable()
	if err == nil {
		err = t.exec("INSERT INTO tags (repo, tag, digest) VALUES ($1, $2, $3) ON CONFLICT (repo, tag) DO UPDATE SET digest = EXCLUDED.digest", repo, tag, d)
	}
	if err != nil {
		return fail(err, "tag %s as %s:%s", d, repo, tag)
	}
	return nil
}

// DeleteTag removes repo:tag.
func (t *Txn) DeleteTag(repo, tag string) error {
	err := t.writable()
	if err == nil {
		err = t.exec("DELETE FROM tags WHERE repo = $1 AND tag = $2", repo, tag)
	}
	if err != nil {
		return fail(err, "delete tag %s:%s", repo, tag)
	}
	return nil
}

// Tags lists up to n tags of repo in byte order after `last` (n < 0: all).
func (t *Txn) Tags(repo string, n int, last string) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	limit := any(nil) // LIMIT NULL is no limit
	if n > 0 {
		limit = n
	}
	tags, err := collect(t, "SELECT tag FROM tags WHERE repo = $1 AND tag > $2 ORDER BY tag LIMIT $3", []any{repo, last, limit}, scanString)
	if err != nil {
		return nil, fail(err, "list tags of %s", repo)
	}
	return nilIfEmpty(tags), nil
}

// TagsFor lists the tags of repo pointing at d.
func (t *Txn) TagsFor(repo string, d oci.Digest) ([]string, error) {
	tags, err := collect(t, "SELECT tag FROM tags WHERE repo = $1 AND digest = $2 ORDER BY tag", []any{repo, d}, scanString)
	if err != nil {
		return nil, fail(err, "list tags of %s pointing at %s", repo, d)
	}
	return nilIfEmpty(tags), nil
}

// Repositories lists up to n repositories that hold at least one
// manifest, in byte order after last (n < 0: all).
func (t *Txn) Repositories(n int, last string) ([]string, error) {
	if n == 0 {
		return nil, nil
	}
	limit := any(nil)
	if n > 0 {
		limit = n
	}
	// One probe of the primary key per repository, skipping the rest of
	// its manifests (a loose index scan, which PostgreSQL does not do on
	// its own): a page costs n probes, however many manifests each has.
	repos, err := collect(t, `WITH RECURSIVE r (repo) AS (
	(SELECT repo FROM manifests WHERE repo > $1 ORDER BY repo LIMIT 1)
	UNION ALL
	SELECT (SELECT m.repo FROM manifests m WHERE m.repo > r.repo ORDER BY m.repo LIMIT 1) FROM r WHERE r.repo IS NOT NULL
)
SELECT repo FROM r WHERE repo IS NOT NULL LIMIT $2`, []any{last, limit}, scanString)
	if err != nil {
		return nil, fail(err, "list repositories")
	}
	return nilIfEmpty(repos), nil
}

// ManifestRepos lists the repositories holding a manifest record for d
// (among those d is linked in).
func (t *Txn) ManifestRepos(d oci.Digest) ([]string, error) {
	repos, err := collect(t, `SELECT l.repo FROM links l JOIN manifests m ON m.repo = l.repo AND m.digest = l.digest
WHERE l.digest = $1 ORDER BY l.repo`, []any{d}, scanString)
	if err != nil {
		return nil, fail(err, "list repositories of %s", d)
	}
	return nilIfEmpty(repos), nil
}

// --- referrers ---

// AddReferrer records that desc (a manifest in repo) refers to subject.
func (t *Txn) AddReferrer(repo string, subject oci.Digest, desc oci.Descriptor) error {
	err := t.writable()
	if err == nil {
		var b []byte
		if b, err = json.Marshal(desc); err == nil {
			err = t.exec(`INSERT INTO referrers (repo, subject, digest, descriptor) VALUES ($1, $2, $3, $4::text::jsonb)
ON CONFLICT (repo, subject, digest) DO UPDATE SET descriptor = EXCLUDED.descriptor`, repo, subject, desc.Digest, string(b))
		}
	}
	if err != nil {
		return fail(err, "add %s as a referrer of %s in %s", desc.Digest, subject, repo)
	}
	return nil
}

// Referrers lists the manifests in repo that refer to subject.
func (t *Txn) Referrers(repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	raw, err := collect(t, "SELECT descriptor::text FROM referrers WHERE repo = $1 AND subject = $2 ORDER BY digest", []any{repo, subject}, scanString)
	if err != nil {
		return nil, fail(err, "list referrers of %s in %s", subject, repo)
	}
	var out []oci.Descriptor
	for _, s := range raw {
		var d oci.Descriptor
		if err := json.Unmarshal([]byte(s), &d); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// --- uploads ---

// PutUpload records an upload session.
func (t *Txn) PutUpload(r index.UploadRecord) error {
	err := t.writable()
	if err == nil {
		err = t.exec("INSERT INTO uploads (id, repo, started, owner) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET repo = EXCLUDED.repo, started = EXCLUDED.started, owner = EXCLUDED.owner",
			r.ID, r.Repo, ns(r.Started), r.Owner)
	}
	if err != nil {
		return fail(err, "put upload %s", r.ID)
	}
	return nil
}

func scanUpload(row pgx.CollectableRow) (index.UploadRecord, error) {
	var r index.UploadRecord
	var started int64
	err := row.Scan(&r.ID, &r.Repo, &started, &r.Owner)
	r.Started = fromNS(started)
	return r, err
}

// Upload returns an upload session.
func (t *Txn) Upload(id string) (index.UploadRecord, error) {
	r := index.UploadRecord{ID: id}
	var started int64
	if err := t.row("SELECT repo, started, owner FROM uploads WHERE id = $1", []any{id}, &r.Repo, &started, &r.Owner); err != nil {
		return index.UploadRecord{}, fail(err, "read upload %s", id)
	}
	r.Started = fromNS(started)
	return r, nil
}

// DeleteUpload forgets an upload session.
func (t *Txn) DeleteUpload(id string) error {
	err := t.writable()
	if err == nil {
		err = t.exec("DELETE FROM uploads WHERE id = $1", id)
	}
	if err != nil {
		return fail(err, "delete upload %s", id)
	}
	return nil
}

// EachUpload visits every upload session, in order of id.
func (t *Txn) EachUpload(fn func(index.UploadRecord) error) error {
	last := ""
	for {
		page, err := collect(t, "SELECT id, repo, started, owner FROM uploads WHERE id > $1 ORDER BY id LIMIT $2", []any{last, pageSize}, scanUpload)
		if err != nil {
			return fail(err, "list uploads")
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
		last = page[len(page)-1].ID
	}
}

// nilIfEmpty returns nil for no rows, as Badger's index does.
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
