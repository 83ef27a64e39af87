package index

import (
	"context"
	"errors"
	"time"

	"github.com/wharf-registry/wharf/oci"
)

// ErrReadOnly is a write in View's read-only transaction (wrapped, with
// the operation that tried it).
var ErrReadOnly = errors.New("write in a read-only transaction")

// Index is wharf's metadata: blob records, per-repository links,
// manifests, tags, referrers, upload sessions, pins and the LRU order of
// cached blobs. Hosted, cache, eviction, GC and reconcile work through
// this interface and do not know which implementation holds it: Badger
// (Open; the embedded default, one process) or PostgreSQL (package
// pgindex; cluster mode, shared by replicas). indextest.Run checks every
// implementation against the same behaviour.
type Index interface {
	// Update runs fn in a read-write transaction: all of fn's changes
	// land together or none do (fn's error discards them). A transaction
	// that conflicts with a concurrent one is retried, so fn may run more
	// than once and must not have effects outside the transaction. A
	// conflict that outlasts the retries is reported as IsConflict.
	Update(ctx context.Context, fn func(Txn) error) error
	// View runs fn in a read-only transaction on a consistent snapshot.
	View(fn func(Txn) error) error

	// DeleteBlobs drops the records of ds (with their links, pins and
	// LRU entries) in batches and returns the records it removed.
	DeleteBlobs(ctx context.Context, ds []oci.Digest) ([]BlobRecord, error)
	// PlanEviction reads what evicting cands would remove (their links
	// and the manifests using them), skipping pinned blobs and blobs
	// used at or after before; Evict carries a plan out, re-checking what
	// concurrent writers may have changed, and returns what it removed.
	PlanEviction(cands []LRUEntry, before time.Time) ([]EvictPlan, error)
	Evict(ctx context.Context, plan []EvictPlan) ([]LRUEntry, error)
	// EvictBlobs is PlanEviction then Evict.
	EvictBlobs(ctx context.Context, cands []LRUEntry, before time.Time) ([]LRUEntry, error)

	// RunGC reclaims the store's own space, where it has to; call it
	// periodically.
	RunGC()
	// Close flushes and closes the index.
	Close() error
}

// Txn is one transaction of an Index, with wharf's typed accessors. A
// missing record is reported as ErrNotFound.
type Txn interface {
	// Blob returns a blob record.
	Blob(d oci.Digest) (BlobRecord, error)
	// PutBlob writes a blob record.
	// It keeps the usage counters and the least-recently-used order in step.
	PutBlob(r BlobRecord) error
	// DeleteBlob removes a blob record and all its links.
	DeleteBlob(d oci.Digest) error
	// LinkBlob makes d visible in repo.
	LinkBlob(repo string, d oci.Digest) error
	// UnlinkBlob hides d in repo.
	UnlinkBlob(repo string, d oci.Digest) error
	// BlobLinked reports whether d is visible in repo.
	BlobLinked(repo string, d oci.Digest) (bool, error)
	// BlobRepos lists the repositories d is linked in.
	BlobRepos(d oci.Digest) ([]string, error)
	// EachBlob visits every blob record.
	EachBlob(fn func(BlobRecord) error) error
	// Manifest returns repo's manifest record for d.
	Manifest(repo string, d oci.Digest) (ManifestRecord, error)
	// PutManifest records a manifest in repo.
	PutManifest(repo string, r ManifestRecord) error
	// DeleteManifest removes a manifest from repo, with its tags and its
	// referrer entry.
	DeleteManifest(repo string, d oci.Digest) error
	// EachManifest visits repo's manifests ("" for every repository).
	EachManifest(repo string, fn func(repo string, r ManifestRecord) error) error
	// Tag resolves repo:tag.
	Tag(repo, tag string) (oci.Digest, error)
	// SetTag points repo:tag at d.
	SetTag(repo, tag string, d oci.Digest) error
	// DeleteTag removes repo:tag.
	DeleteTag(repo, tag string) error
	// Tags lists up to n tags of repo in lexical order after `last` (n < 0: all).
	Tags(repo string, n int, last string) ([]string, error)
	// TagsFor lists the tags of repo pointing at d.
	TagsFor(repo string, d oci.Digest) ([]string, error)
	// Repositories lists up to n repositories that hold at least one
	// manifest, in lexical order after last.
	Repositories(n int, last string) ([]string, error)
	// AddReferrer records that desc (a manifest in repo) refers to subject.
	AddReferrer(repo string, subject oci.Digest, desc oci.Descriptor) error
	// Referrers lists the manifests in repo that refer to subject.
	Referrers(repo string, subject oci.Digest) ([]oci.Descriptor, error)
	// PutUpload records an upload session.
	PutUpload(r UploadRecord) error
	// Upload returns an upload session.
	Upload(id string) (UploadRecord, error)
	// DeleteUpload forgets an upload session.
	DeleteUpload(id string) error
	// EachUpload visits every upload session.
	EachUpload(fn func(UploadRecord) error) error
	// Usage returns one origin's totals.
	Usage(origin string) (Usage, error)
	// Usages returns the totals of every origin.
	Usages() (map[string]Usage, error)
	// Touch records reads of d: last access at t and hits more hits. It keeps
	// the LRU order; a missing record is ignored (evicted meanwhile).
	Touch(d oci.Digest, t time.Time, hits int64) error
	// EachLeastRecent visits evictable blobs from the least recently used,
	// stopping when fn returns false or at the first one used at or after
	// before (zero: no limit).
	EachLeastRecent(before time.Time, fn func(d oci.Digest, lastAccess time.Time) (bool, error)) error
	// Pin marks d as pinned by rule (an image reference pattern).
	Pin(d oci.Digest, rule string) error
	// Unpin removes rule's pin on d ("" removes every pin on d).
	Unpin(d oci.Digest, rule string) error
	// Pinned reports whether any rule pins d.
	Pinned(d oci.Digest) (bool, error)
	// PinRules lists every pin as digest → rules.
	PinRules() (map[oci.Digest][]string, error)
	// ManifestRepos lists the repositories holding a manifest record for d.
	ManifestRepos(d oci.Digest) ([]string, error)
	// PinsOf lists the rules pinning d.
	PinsOf(d oci.Digest) ([]string, error)
	// EachLeastRecentAfter visits evictable blobs in least-recently-used
	// order from c on, moving c past each entry it hands to fn, so that the
	// next call resumes after it. It stops when fn returns false or at the
	// first blob used at or after before (zero: no limit), which c stays
	// before. It reads LRU keys only, one after the other.
	EachLeastRecentAfter(c *LRUCursor, before time.Time, fn func(LRUEntry) (bool, error)) error
	// TagChecked returns when repo:tag was last confirmed upstream.
	TagChecked(repo, tag string) (time.Time, error)
	// SetTagChecked records a confirmation of repo:tag at t.
	SetTagChecked(repo, tag string, t time.Time) error
	// EachLink visits every blob link (repository, digest), repository by
	// repository. It reads keys only.
	EachLink(fn func(repo string, d oci.Digest) error) error
	// CountEntries counts the index's records by type (EntryTypes). It walks
	// keys without reading values, but still visits every record: metrics
	// call it at most every few seconds, never on a request path.
	CountEntries() (map[string]int64, error)
}

// ErrUnavailable is what an implementation on a server (PostgreSQL)
// wraps when the server cannot be reached: the registry answers 503, and
// the same call works again once the server is back.
var ErrUnavailable = errors.New("unavailable")

// ErrConflict is what an implementation other than Badger wraps when a
// transaction kept conflicting with concurrent ones (IsConflict).
var ErrConflict = errors.New("index: transaction conflict")

var (
	_ Index = (*Badger)(nil)
	_ Txn   = (*badgerTxn)(nil)
)
