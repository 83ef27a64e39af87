// Package index is wharf's metadata in Badger: blob records and their
// per-repository links, manifests, tags, referrers and upload sessions.
// Blob bytes live in package storage; this index says what is visible where.
package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/wharf-registry/wharf/oci"
)

// ErrNotFound is returned when a record does not exist. It comes back
// bare, not wrapped: callers test for it on every lookup and answer it
// themselves (MANIFEST_UNKNOWN, a cache miss), and it costs nothing.
var ErrNotFound = errors.New("index: not found")

// opError is any other failure, saying which operation failed on which
// records, so that a log line names them.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return "index: " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// fail wraps err, which is not nil, with the operation that failed. The
// innermost operation says best what failed, so an error that already
// names one is returned as it is, and so is ErrNotFound. Call it only on
// the error path: formatting allocates.
func fail(err error, format string, args ...any) error {
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if errors.Is(err, badger.ErrReadOnlyTxn) {
		err = ErrReadOnly // what PostgreSQL's index says too
	}
	if _, ok := errors.AsType[*opError](err); ok {
		return err
	}
	return &opError{op: fmt.Sprintf(format, args...), err: err}
}

// Key prefixes. A repository name never contains NUL, so NUL separates
// the parts of composite keys and keeps prefix scans exact.
const (
	pBlob     = "b/" // b/<digest>                      → BlobRecord
	pLink     = "l/" // l/<repo>\0<digest>              → "" (blob visible in repo)
	pLinkRev  = "L/" // L/<digest>\0<repo>              → ""
	pManifest = "m/" // m/<repo>\0<digest>              → ManifestRecord
	pTag      = "t/" // t/<repo>\0<tag>                 → digest
	pReferrer = "r/" // r/<repo>\0<subject>\0<digest>   → oci.Descriptor
	pUpload   = "u/" // u/<id>                          → UploadRecord
)

// BlobRecord describes a stored blob.
type BlobRecord struct {
	Digest     oci.Digest `json:"digest"`
	Size       int64      `json:"size"`
	MediaType  string     `json:"mediaType,omitempty"`
	Created    time.Time  `json:"created"`
	LastAccess time.Time  `json:"lastAccess"`
	// Origin is the namespace kind that brought the blob: "hosted" or a
	// proxy's name.
	Origin string `json:"origin,omitempty"`
	// Hits counts reads (batched, so it trails by a few seconds).
	Hits int64 `json:"hits,omitempty"`
}

// Evictable reports whether the record is proxied content, which the
// cache may drop and fetch again. Hosted and recovered blobs are never
// evicted: their only copy is here.
func (r BlobRecord) Evictable() bool {
	return r.Origin != "" && r.Origin != OriginHosted && r.Origin != OriginRecovered
}

// Origins of blobs that are not a proxy's.
const (
	OriginHosted    = "hosted"
	OriginRecovered = "recovered"
)

// ManifestRecord describes a manifest stored in a repository. The bytes
// are a blob in storage, under the same digest.
type ManifestRecord struct {
	Digest       oci.Digest        `json:"digest"`
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Subject      *oci.Digest       `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Created      time.Time         `json:"created"`
}

// UploadRecord is an upload session that survives a restart.
type UploadRecord struct {
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
	// Owner is the replica whose scratch area holds the session's bytes,
	// in cluster mode; empty on a single box. Another replica forwards
	// the session's requests there.
	Owner string `json:"owner,omitempty"`
}

// Options tune Badger for a small resident footprint.
type Options struct {
	Logger *slog.Logger
	// InMemory is for tests.
	InMemory bool
}

// Badger is the index in Badger: the embedded default, one process.
type Badger struct {
	db  *badger.DB
	log *slog.Logger
}

// Open opens (or creates) the index in dir.
func Open(dir string, o Options) (*Badger, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithInMemory(o.InMemory).
		// Metadata is small: keep memory flat rather than fast at scale.
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		// Badger's own metrics are process-wide expvars nobody reads,
		// updated on every lookup.
		WithMetricsEnabled(false).
		// Tables are written uncompressed: keys and records are mostly
		// hex digests and varints, which Snappy hardly shrinks (about a
		// fifth), while decompressing a block into a fresh buffer was most
		// of a lookup that missed the block cache, and most of its garbage.
		// An uncompressed block is read in place from the mapped file.
		// Tables written compressed by earlier versions stay readable
		// (each table records its compression) through the block cache,
		// until compaction rewrites them.
		WithCompression(options.None).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithSyncWrites(true).
		WithDetectConflicts(true)
	if o.InMemory {
		opts.Dir, opts.ValueDir = "", ""
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("opening index in %s: %w", dir, err)
	}
	return &Badger{db: db, log: log}, nil
}

// Close flushes and closes the index.
func (x *Badger) Close() error { return x.db.Close() }

// RunGC reclaims value-log space; call it periodically.
func (x *Badger) RunGC() {
	for x.db.RunValueLogGC(0.5) == nil {
	}
}

// Update runs fn in a read-write transaction, retrying on conflicts with
// concurrent transactions (parallel pushes of the same tag, say).
func (x *Badger) Update(ctx context.Context, fn func(Txn) error) error {
	return x.update(ctx, func(tx *badgerTxn) error { return fn(tx) })
}

// View runs fn in a read-only transaction.
func (x *Badger) View(fn func(Txn) error) error {
	return x.view(func(tx *badgerTxn) error { return fn(tx) })
}

// update is Update for the Badger index's own batch work, which walks
// keys with the transaction's iterators.
func (x *Badger) update(ctx context.Context, fn func(*badgerTxn) error) error {
	for attempt := 0; ; attempt++ {
		var fnErr error
		err := x.db.Update(func(t *badger.Txn) error { fnErr = fn(&badgerTxn{t}); return fnErr })
		if !errors.Is(err, badger.ErrConflict) || attempt >= 50 {
			if err != nil && err != fnErr { // fn's own error is the caller's to describe
				return fail(err, "commit")
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
}

func (x *Badger) view(fn func(*badgerTxn) error) error {
	return x.db.View(func(t *badger.Txn) error { return fn(&badgerTxn{t}) })
}

// badgerTxn wraps a Badger transaction with wharf's typed accessors.
type badgerTxn struct{ t *badger.Txn }

func (tx *badgerTxn) getJSON(key string, v any) error {
	it, err := tx.t.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

func (tx *badgerTxn) setJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.t.Set([]byte(key), b)
}

func (tx *badgerTxn) exists(key string) (bool, error) {
	_, err := tx.t.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (tx *badgerTxn) del(key string) error { return tx.t.Delete([]byte(key)) }

// scan calls fn for each key with prefix, starting after `after` (a full
// key) when non-empty, keys only unless values is set.
func (tx *badgerTxn) scan(prefix, after string, values bool, fn func(key string, val []byte) (bool, error)) error {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = values
	o.Prefix = []byte(prefix)
	it := tx.t.NewIterator(o)
	defer it.Close()
	start := prefix
	if after > prefix {
		start = after
	}
	for it.Seek([]byte(start)); it.ValidForPrefix([]byte(prefix)); it.Next() {
		item := it.Item()
		k := string(item.Key())
		if after != "" && k <= after {
			continue
		}
		var v []byte
		if values {
			var err error
			if v, err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		cont, err := fn(k, v)
		if err != nil || !cont {
			return err
		}
	}
	return nil
}

// --- blobs ---

// Blob returns a blob record.
func (tx *badgerTxn) Blob(d oci.Digest) (BlobRecord, error) {
	var r BlobRecord
	it, err := tx.t.Get(blobKey(d))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return r, ErrNotFound
	}
	if err == nil {
		err = it.Value(func(b []byte) error { return decodeBlobRecord(d, b, &r) })
	}
	if err != nil {
		return r, fail(err, "read blob %s", d)
	}
	return r, nil
}

func blobKey(d oci.Digest) []byte {
	k := make([]byte, 0, len(pBlob)+len(d))
	return append(append(k, pBlob...), d...)
}

// setBlob stores r as d's record (the digest is the key's).
func (tx *badgerTxn) setBlob(d oci.Digest, r BlobRecord) error {
	b, err := encodeBlobRecord(r)
	if err != nil {
		return err
	}
	return tx.t.Set(blobKey(d), b)
}

// PutBlob writes a blob record.
// It keeps the usage counters and the least-recently-used order in step.
func (tx *badgerTxn) PutBlob(r BlobRecord) error {
	if err := tx.putBlob(r); err != nil {
		return fail(err, "put blob %s", r.Digest)
	}
	return nil
}

func (tx *badgerTxn) putBlob(r BlobRecord) error {
	old, err := tx.Blob(r.Digest)
	switch {
	case err == nil:
		if err := tx.forget(old); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if err := tx.remember(r); err != nil {
		return err
	}
	return tx.setBlob(r.Digest, r)
}

// DeleteBlob removes a blob record and all its links.
func (tx *badgerTxn) DeleteBlob(d oci.Digest) error {
	if err := tx.deleteBlob(d); err != nil {
		return fail(err, "delete blob %s", d)
	}
	return nil
}

func (tx *badgerTxn) deleteBlob(d oci.Digest) error {
	var repos []string
	err := tx.scan(pLinkRev+string(d)+"\x00", "", false, func(k string, _ []byte) (bool, error) {
		repos = append(repos, k[len(pLinkRev)+len(d)+1:])
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, r := range repos {
		if err := tx.UnlinkBlob(r, d); err != nil {
			return err
		}
	}
	rec, err := tx.Blob(d)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.forget(rec); err != nil {
		return err
	}
	return tx.del(pBlob + string(d))
}

// LinkBlob makes d visible in repo.
func (tx *badgerTxn) LinkBlob(repo string, d oci.Digest) error {
	err := tx.t.Set([]byte(pLink+repo+"\x00"+string(d)), nil)
	if err == nil {
		err = tx.t.Set([]byte(pLinkRev+string(d)+"\x00"+repo), nil)
	}
	if err != nil {
		return fail(err, "link %s into %s", d, repo)
	}
	return nil
}

// UnlinkBlob hides d in repo.
func (tx *badgerTxn) UnlinkBlob(repo string, d oci.Digest) error {
	err := tx.del(pLink + repo + "\x00" + string(d))
	if err == nil {
		err = tx.del(pLinkRev + string(d) + "\x00" + repo)
	}
	if err != nil {
		return fail(err, "unlink %s from %s", d, repo)
	}
	return nil
}

// BlobLinked reports whether d is visible in repo.
func (tx *badgerTxn) BlobLinked(repo string, d oci.Digest) (bool, error) {
	ok, err := tx.exists(pLink + repo + "\x00" + string(d))
	if err != nil {
		return false, fail(err, "look up link of %s in %s", d, repo)
	}
	return ok, nil
}

// BlobRepos lists the repositories d is linked in.
func (tx *badgerTxn) BlobRepos(d oci.Digest) ([]string, error) {
	var repos []string
	err := tx.scan(pLinkRev+string(d)+"\x00", "", false, func(k string, _ []byte) (bool, error) {
		repos = append(repos, k[len(pLinkRev)+len(d)+1:])
		return true, nil
	})
	if err != nil {
		return nil, fail(err, "list repositories of %s", d)
	}
	return repos, nil
}

// EachBlob visits every blob record.
func (tx *badgerTxn) EachBlob(fn func(BlobRecord) error) error {
	return tx.scan(pBlob, "", true, func(k string, v []byte) (bool, error) {
		var r BlobRecord
		if err := decodeBlobRecord(oci.Digest(k[len(pBlob):]), v, &r); err != nil {
			return true, nil // a damaged record is skipped; reconcile rewrites it
		}
		return true, fn(r)
	})
}

// --- manifests and tags ---

// Manifest returns repo's manifest record for d.
func (tx *badgerTxn) Manifest(repo string, d oci.Digest) (ManifestRecord, error) {
	var r ManifestRecord
	if err := tx.getJSON(pManifest+repo+"\x00"+string(d), &r); err != nil {
		return r, fail(err, "read manifest %s in %s", d, repo)
	}
	return r, nil
}

// PutManifest records a manifest in repo.
func (tx *badgerTxn) PutManifest(repo string, r ManifestRecord) error {
	if err := tx.setJSON(pManifest+repo+"\x00"+string(r.Digest), r); err != nil {
		return fail(err, "put manifest %s in %s", r.Digest, repo)
	}
	return nil
}

// DeleteManifest removes a manifest from repo, with its tags and its
// referrer entry.
func (tx *badgerTxn) DeleteManifest(repo string, d oci.Digest) error {
	if err := tx.deleteManifest(repo, d); err != nil {
		return fail(err, "delete manifest %s from %s", d, repo)
	}
	return nil
}

func (tx *badgerTxn) deleteManifest(repo string, d oci.Digest) error {
	r, err := tx.Manifest(repo, d)
	if err != nil {
		return err
	}
	tags, err := tx.TagsFor(repo, d)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if err := tx.del(pTag + repo + "\x00" + t); err != nil {
			return err
		}
	}
	if r.Subject != nil {
		if err := tx.del(pReferrer + repo + "\x00" + string(*r.Subject) + "\x00" + string(d)); err != nil {
			return err
		}
	}
	return tx.del(pManifest + repo + "\x00" + string(d))
}

// EachManifest visits repo's manifests ("" for every repository).
func (tx *badgerTxn) EachManifest(repo string, fn func(repo string, r ManifestRecord) error) error {
	prefix := pManifest
	if repo != "" {
		prefix += repo + "\x00"
	}
	return tx.scan(prefix, "", true, func(k string, v []byte) (bool, error) {
		rp, _, _ := strings.Cut(k[len(pManifest):], "\x00")
		var r ManifestRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return true, nil
		}
		return true, fn(rp, r)
	})
}

// Tag resolves repo:tag.
func (tx *badgerTxn) Tag(repo, tag string) (oci.Digest, error) {
	it, err := tx.t.Get([]byte(pTag + repo + "\x00" + tag))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", ErrNotFound
	}
	var v []byte
	if err == nil {
		v, err = it.ValueCopy(nil)
	}
	if err != nil {
		return "", fail(err, "read tag %s:%s", repo, tag)
	}
	return oci.Digest(v), nil
}

// SetTag points repo:tag at d.
func (tx *badgerTxn) SetTag(repo, tag string, d oci.Digest) error {
	if err := tx.t.Set([]byte(pTag+repo+"\x00"+tag), []byte(d)); err != nil {
		return fail(err, "tag %s as %s:%s", d, repo, tag)
	}
	return nil
}

// DeleteTag removes repo:tag.
func (tx *badgerTxn) DeleteTag(repo, tag string) error {
	if err := tx.del(pTag + repo + "\x00" + tag); err != nil {
		return fail(err, "delete tag %s:%s", repo, tag)
	}
	return nil
}

// Tags lists up to n tags of repo in lexical order after `last` (n < 0: all).
func (tx *badgerTxn) Tags(repo string, n int, last string) ([]string, error) {
	prefix := pTag + repo + "\x00"
	after := ""
	if last != "" {
		after = prefix + last
	}
	var out []string
	err := tx.scan(prefix, after, false, func(k string, _ []byte) (bool, error) {
		if n >= 0 && len(out) >= n {
			return false, nil
		}
		out = append(out, k[len(prefix):])
		return true, nil
	})
	if err != nil {
		return nil, fail(err, "list tags of %s", repo)
	}
	return out, nil
}

// TagsFor lists the tags of repo pointing at d.
func (tx *badgerTxn) TagsFor(repo string, d oci.Digest) ([]string, error) {
	prefix := pTag + repo + "\x00"
	var out []string
	err := tx.scan(prefix, "", true, func(k string, v []byte) (bool, error) {
		if oci.Digest(v) == d {
			out = append(out, k[len(prefix):])
		}
		return true, nil
	})
	if err != nil {
		return nil, fail(err, "list tags of %s pointing at %s", repo, d)
	}
	return out, nil
}

// Repositories lists up to n repositories that hold at least one
// manifest, in lexical order after last.
func (tx *badgerTxn) Repositories(n int, last string) ([]string, error) {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = []byte(pManifest)
	it := tx.t.NewIterator(o)
	defer it.Close()
	seek := pManifest
	if last != "" {
		seek = pManifest + last + "\x01" // skip every key of `last`
	}
	var out []string
	for it.Seek([]byte(seek)); it.ValidForPrefix([]byte(pManifest)); {
		if n >= 0 && len(out) >= n {
			break
		}
		k := string(it.Item().Key())
		repo, _, _ := strings.Cut(k[len(pManifest):], "\x00")
		out = append(out, repo)
		it.Seek([]byte(pManifest + repo + "\x01"))
	}
	return out, nil
}

// --- referrers ---

// AddReferrer records that desc (a manifest in repo) refers to subject.
func (tx *badgerTxn) AddReferrer(repo string, subject oci.Digest, desc oci.Descriptor) error {
	if err := tx.setJSON(pReferrer+repo+"\x00"+string(subject)+"\x00"+string(desc.Digest), desc); err != nil {
		return fail(err, "add %s as a referrer of %s in %s", desc.Digest, subject, repo)
	}
	return nil
}

// Referrers lists the manifests in repo that refer to subject.
func (tx *badgerTxn) Referrers(repo string, subject oci.Digest) ([]oci.Descriptor, error) {
	var out []oci.Descriptor
	err := tx.scan(pReferrer+repo+"\x00"+string(subject)+"\x00", "", true, func(_ string, v []byte) (bool, error) {
		var d oci.Descriptor
		if err := json.Unmarshal(v, &d); err == nil {
			out = append(out, d)
		}
		return true, nil
	})
	if err != nil {
		return nil, fail(err, "list referrers of %s in %s", subject, repo)
	}
	return out, nil
}

// --- uploads ---

// PutUpload records an upload session.
func (tx *badgerTxn) PutUpload(r UploadRecord) error {
	if err := tx.setJSON(pUpload+r.ID, r); err != nil {
		return fail(err, "put upload %s", r.ID)
	}
	return nil
}

// Upload returns an upload session.
func (tx *badgerTxn) Upload(id string) (UploadRecord, error) {
	var r UploadRecord
	if err := tx.getJSON(pUpload+id, &r); err != nil {
		return r, fail(err, "read upload %s", id)
	}
	return r, nil
}

// DeleteUpload forgets an upload session.
func (tx *badgerTxn) DeleteUpload(id string) error {
	if err := tx.del(pUpload + id); err != nil {
		return fail(err, "delete upload %s", id)
	}
	return nil
}

// EachUpload visits every upload session.
func (tx *badgerTxn) EachUpload(fn func(UploadRecord) error) error {
	return tx.scan(pUpload, "", true, func(_ string, v []byte) (bool, error) {
		var r UploadRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return true, nil
		}
		return true, fn(r)
	})
}

// badgerLogger sends Badger's chatter to slog: its info lines are debug
// for a wharf user; warnings and errors stay visible.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("index: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("index: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug("index: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug("index: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
