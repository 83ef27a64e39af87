package hosted

// Online garbage collection of hosted content: mark and sweep while the
// registry keeps serving and accepting pushes.
//
// Mark. In one read snapshot of the index, every manifest of every hosted
// repository is read from storage and parsed: its own digest, its config,
// layers and child manifests are marked, per repository and overall. A
// subject is not marked (a referrer does not keep its subject alive). The
// same snapshot captures the record of every candidate: hosted or
// recovered blobs nothing marked, and blobs linked in a hosted repository
// that no manifest of that repository references.
//
// Sweep. (a) A link in a hosted repository that no manifest of that
// repository references is removed. (b) A hosted or recovered blob that
// nothing marked and that no repository links any more (a proxy's link
// counts) is deleted: record, then file. A hosted blob that only proxies
// still link goes back to the cache (its origin becomes the proxy's), so
// eviction can reclaim it. Proxied blobs are otherwise left to the cache.
// Manifests are never deleted here, tagged or not: an untagged manifest
// is still pullable by digest and may be what a deployment pins, so only
// a DELETE removes it, and GC then reclaims what it used.
//
// Age. Candidates whose record was created or touched within the grace
// period are kept: that protects blobs uploaded for a manifest not pushed
// yet. Every hosted write that links or references a blob touches its
// record (touchBlob), so "touched" means "linked or referenced by a push".
//
// Concurrent pushes. The invariant is that a manifest push that succeeds
// has every blob it references, for good. Badger detects conflicts on
// the keys a transaction read, not on ranges, so everything rests on the
// blob record b/<digest>:
//
//   - Every link or reference a push makes writes the blob's record (a
//     touch moves LastAccess forward, so the record changes).
//   - GC unlinks or deletes only in a transaction that re-reads the record
//     and finds it equal to the one captured with the mark. A push that
//     committed after the mark changed it: GC keeps the blob. A push that
//     commits while GC's transaction runs wrote a key GC read: GC's commit
//     conflicts, Update retries, and the retry sees the change.
//   - A manifest push re-checks its references in its own write
//     transaction and reads each record to touch it. If GC's delete
//     committed first, the record is gone and the push fails with
//     MANIFEST_BLOB_UNKNOWN; if GC's delete commits while the push runs,
//     the push conflicts and its retry fails the same way.
//
// Files. The record is deleted first and the file second. A crash between
// the two leaves a file without a record, which start-up reconciliation
// records again as "recovered" and the next collection deletes; deleting
// the file first could leave a record whose file is gone, which a manifest
// pushed meanwhile would still need. Between the two steps a concurrent
// upload of the same bytes could find the file still there, keep it
// instead of its own copy and record it again, just before GC deletes the
// file; so uploads and GC's delete hold a per-digest claim (claims below):
// GC skips a blob being written and a writer waits the few milliseconds
// GC takes to delete one.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// DefaultGrace protects new content when GCOptions.Grace is zero.
const DefaultGrace = time.Hour

// ErrGCRunning is returned when a collection is asked for while another
// one runs.
var ErrGCRunning = errors.New("a garbage collection is already running; try again when it ends")

// GCOptions tune one garbage collection.
type GCOptions struct {
	// Grace keeps content linked, referenced or created more recently than
	// this. Zero means DefaultGrace; a negative value means none at all,
	// which can fail pushes that are between their uploads and their
	// manifest (they fail cleanly, with MANIFEST_BLOB_UNKNOWN).
	Grace time.Duration
	// DryRun reports what would be freed and changes nothing.
	DryRun bool
	// Proxies are the names of pull-through namespaces: a repository whose
	// first path component is one of them belongs to the cache. GC reads
	// no manifest and removes no link there, but a link there keeps a blob.
	Proxies []string
}

// GCReport says what a collection freed, or would free.
type GCReport struct {
	DryRun       bool          `json:"dryRun"`
	Started      time.Time     `json:"started"`
	Duration     time.Duration `json:"duration"`
	Grace        time.Duration `json:"grace"`
	Repositories int           `json:"repositories"` // hosted repositories with manifests
	Manifests    int           `json:"manifests"`    // hosted manifests read
	Marked       int           `json:"marked"`       // distinct digests they reference (themselves included)
	LinksRemoved int           `json:"linksRemoved"`
	BlobsFreed   int           `json:"blobsFreed"`
	BytesFreed   int64         `json:"bytesFreed"`
	// ReturnedToCache counts hosted blobs that only proxies still link:
	// they become the cache's again, which may evict them.
	ReturnedToCache int `json:"returnedToCache"`
	// Kept counts candidates that were written, linked or referenced while
	// the collection ran (or are pinned); the next one looks again.
	Kept int `json:"kept"`
	// Freed and Unlinked list what was (or would be) removed, at most
	// MaxListed each; the counts above are complete.
	Freed    []GCBlob `json:"freed,omitempty"`
	Unlinked []GCLink `json:"unlinked,omitempty"`
	// Problems are manifests that could not be read. While there are any,
	// no blob is deleted: what they reference is unknown.
	Problems []string `json:"problems,omitempty"`
}

// MaxListed bounds GCReport.Freed and GCReport.Unlinked.
const MaxListed = 1000

// GCBlob is a blob a collection freed.
type GCBlob struct {
	Digest    oci.Digest `json:"digest"`
	Size      int64      `json:"size"`
	MediaType string     `json:"mediaType,omitempty"`
	Origin    string     `json:"origin"`
}

// GCLink is a repository link a collection removed.
type GCLink struct {
	Repo   string     `json:"repo"`
	Digest oci.Digest `json:"digest"`
}

// GC collects hosted content nothing references any more. It runs while
// the registry serves and takes pushes; one collection runs at a time.
func (s *Service) GC(ctx context.Context, o GCOptions) (rep GCReport, err error) {
	if !s.gcMu.TryLock() {
		return GCReport{}, ErrGCRunning
	}
	defer s.gcMu.Unlock()
	began := time.Now()
	grace := o.Grace
	switch {
	case grace == 0:
		grace = DefaultGrace
	case grace < 0:
		grace = 0
	}
	start := s.now()
	rep = GCReport{DryRun: o.DryRun, Started: start, Grace: grace}
	defer func() { rep.Duration = time.Since(began) }()

	p, err := s.plan(o.Proxies, start.Add(-grace))
	if err != nil {
		return rep, err
	}
	rep.Repositories, rep.Manifests, rep.Marked, rep.Problems = len(p.marks.repos), p.marks.manifests, len(p.marks.all), p.marks.problems
	return rep, s.sweep(ctx, p, &rep)
}

// sweep removes what p picked, re-checking each candidate as it goes.
func (s *Service) sweep(ctx context.Context, p *gcPlan, rep *GCReport) error {
	var err error
	// (a) links.
	removed := map[oci.Digest]map[string]bool{}
	for _, l := range p.links {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok := true
		if !rep.DryRun {
			if ok, err = s.unlink(ctx, l.repo, p.records[l.d]); err != nil {
				return err
			}
		}
		if !ok {
			rep.Kept++
			continue
		}
		if removed[l.d] == nil {
			removed[l.d] = map[string]bool{}
		}
		removed[l.d][l.repo] = true
		rep.LinksRemoved++
		if len(rep.Unlinked) < MaxListed {
			rep.Unlinked = append(rep.Unlinked, GCLink{Repo: l.repo, Digest: l.d})
		}
	}

	// (b) blobs.
	if len(p.marks.problems) > 0 {
		return nil
	}
	for _, d := range p.blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := p.records[d]
		var left []string
		for _, r := range p.linkedIn[d] {
			if !removed[d][r] {
				left = append(left, r)
			}
		}
		switch {
		case len(left) == 0:
			ok := true
			if !rep.DryRun {
				if ok, err = s.collect(ctx, rec); err != nil {
					return err
				}
			}
			if !ok {
				rep.Kept++
				continue
			}
			rep.BlobsFreed++
			rep.BytesFreed += rec.Size
			if len(rep.Freed) < MaxListed {
				rep.Freed = append(rep.Freed, GCBlob{Digest: d, Size: rec.Size, MediaType: rec.MediaType, Origin: rec.Origin})
			}
		case !slices.ContainsFunc(left, func(r string) bool { return !p.proxied(r) }):
			ok := true
			if !rep.DryRun {
				if ok, err = s.returnToCache(ctx, rec, p.proxied); err != nil {
					return err
				}
			}
			if ok {
				rep.ReturnedToCache++
			} else {
				rep.Kept++
			}
		default:
			// Still linked in a hosted repository whose link was kept:
			// touched meanwhile, or a repository with an unreadable
			// manifest. Not a candidate this time.
		}
	}
	return nil
}

// proxiedFunc reports whether a repository belongs to one of the proxies.
func proxiedFunc(proxies []string) func(repo string) bool {
	set := map[string]bool{}
	for _, p := range proxies {
		set[p] = true
	}
	return func(repo string) bool {
		first, _, _ := strings.Cut(repo, "/")
		return set[first]
	}
}

// gcLink is one link in a hosted repository.
type gcLink struct {
	repo string
	d    oci.Digest
}

// gcPlan is what one snapshot says may go.
type gcPlan struct {
	proxied func(repo string) bool
	marks   *marks
	// records are the candidates' records as the snapshot saw them; a
	// sweep goes ahead only if the record is still exactly this.
	records map[oci.Digest]index.BlobRecord
	links   []gcLink     // unreferenced links in hosted repositories, old enough
	blobs   []oci.Digest // unmarked hosted or recovered blobs, old enough
	// linkedIn lists, for each blob candidate, every repository linking it.
	linkedIn map[oci.Digest][]string
}

// plan marks and picks candidates last used before cutoff, all in one
// snapshot of the index.
func (s *Service) plan(proxies []string, cutoff time.Time) (*gcPlan, error) {
	var p *gcPlan
	err := s.idx.View(func(tx index.Txn) error {
		var err error
		p, err = s.planIn(tx, proxiedFunc(proxies), cutoff)
		return err
	})
	return p, err
}

func (s *Service) planIn(tx index.Txn, proxied func(string) bool, cutoff time.Time) (*gcPlan, error) {
	m, err := mark(tx, s.readManifest, proxied)
	if err != nil {
		return nil, err
	}
	p := &gcPlan{proxied: proxied, marks: m, records: map[oci.Digest]index.BlobRecord{}, linkedIn: map[oci.Digest][]string{}}
	old := func(r index.BlobRecord) bool { return r.Created.Before(cutoff) && r.LastAccess.Before(cutoff) }
	err = tx.EachBlob(func(r index.BlobRecord) error {
		if r.Evictable() || m.all[r.Digest] || !old(r) {
			return nil
		}
		p.records[r.Digest] = r
		p.blobs = append(p.blobs, r.Digest)
		p.linkedIn[r.Digest] = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.EachLink(func(repo string, d oci.Digest) error {
		if repos, ok := p.linkedIn[d]; ok {
			p.linkedIn[d] = append(repos, repo)
		}
		if proxied(repo) || m.unreadable[repo] || m.repos[repo][d] {
			return nil
		}
		r, ok := p.records[d]
		if !ok {
			// Linked here but referenced by another repository (or a
			// proxied blob): fetch its record for the age check.
			var err error
			r, err = tx.Blob(d)
			if errors.Is(err, index.ErrNotFound) {
				return nil // a dangling link; not GC's to guess about
			}
			if err != nil {
				return err
			}
			if !old(r) {
				return nil
			}
			p.records[d] = r
		}
		p.links = append(p.links, gcLink{repo, d})
		return nil
	})
	return p, err
}

// marks is the mark phase's result.
type marks struct {
	repos      map[string]map[oci.Digest]bool // what each hosted repository's manifests reference
	all        map[oci.Digest]bool            // the union
	manifests  int
	unreadable map[string]bool // repositories with a manifest that could not be read
	problems   []string
}

// mark reads every hosted manifest (read returns a manifest's bytes) and
// marks what it references.
func mark(tx index.Txn, read func(oci.Digest) ([]byte, error), proxied func(string) bool) (*marks, error) {
	m := &marks{repos: map[string]map[oci.Digest]bool{}, all: map[oci.Digest]bool{}, unreadable: map[string]bool{}}
	err := tx.EachManifest("", func(repo string, r index.ManifestRecord) error {
		if proxied(repo) {
			return nil
		}
		m.manifests++
		refs := m.repos[repo]
		if refs == nil {
			refs = map[oci.Digest]bool{}
			m.repos[repo] = refs
		}
		add := func(d oci.Digest) {
			refs[d] = true
			m.all[d] = true
		}
		add(r.Digest)
		body, err := read(r.Digest)
		var parsed *oci.Manifest
		if err == nil {
			parsed, err = oci.ParseManifest(r.MediaType, body)
		}
		if err != nil {
			m.unreadable[repo] = true
			m.problems = append(m.problems, fmt.Sprintf("manifest %s in %s cannot be read (%v); run wharf fsck", r.Digest, repo, err))
			return nil
		}
		// Foreign layers are marked too: if their bytes happen to be
		// here, something references them.
		for _, ref := range parsed.References() {
			add(ref.Digest)
		}
		return nil
	})
	return m, err
}

func (s *Service) readManifest(d oci.Digest) ([]byte, error) {
	f, _, err := s.store.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, oci.MaxManifestSize+1))
}

// unlink removes rec's link in repo unless the record changed since the
// mark (the blob was linked or referenced again).
func (s *Service) unlink(ctx context.Context, repo string, rec index.BlobRecord) (bool, error) {
	done := false
	err := s.idx.Update(ctx, func(tx index.Txn) error {
		done = false
		if ok, err := unchanged(tx, rec); err != nil || !ok {
			return err
		}
		if ok, err := tx.BlobLinked(repo, rec.Digest); err != nil || !ok {
			return err
		}
		done = true
		return tx.UnlinkBlob(repo, rec.Digest)
	})
	if index.IsConflict(err) {
		return false, nil
	}
	return done, err
}

// collect deletes an unlinked, unmarked blob: its record, then its file.
func (s *Service) collect(ctx context.Context, rec index.BlobRecord) (bool, error) {
	release, ok := s.store.TryCollectBlob(rec.Digest)
	if !ok {
		return false, nil // being written right now
	}
	defer release()
	done := false
	err := s.idx.Update(ctx, func(tx index.Txn) error {
		done = false
		if ok, err := unchanged(tx, rec); err != nil || !ok {
			return err
		}
		repos, err := tx.BlobRepos(rec.Digest)
		if err != nil || len(repos) > 0 {
			return err
		}
		if pinned, err := tx.Pinned(rec.Digest); err != nil || pinned {
			return err
		}
		done = true
		return tx.DeleteBlob(rec.Digest)
	})
	if index.IsConflict(err) {
		return false, nil
	}
	if err != nil || !done {
		return false, err
	}
	// The record is gone, so nothing can reach the file; if removing it
	// fails, reconciliation after the next unclean stop, or fsck, finds it.
	if err := s.store.Delete(rec.Digest); err != nil {
		s.log.Warn("garbage collection: record deleted but the file could not be removed", "digest", rec.Digest, "err", err)
	}
	return true, nil
}

// returnToCache hands a hosted blob that only proxies still link back to
// the first of them, as if that proxy had fetched it.
func (s *Service) returnToCache(ctx context.Context, rec index.BlobRecord, proxied func(string) bool) (bool, error) {
	done := false
	err := s.idx.Update(ctx, func(tx index.Txn) error {
		done = false
		cur, err := tx.Blob(rec.Digest)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil || !same(cur, rec) {
			return err
		}
		repos, err := tx.BlobRepos(rec.Digest)
		if err != nil || len(repos) == 0 || slices.ContainsFunc(repos, func(r string) bool { return !proxied(r) }) {
			return err
		}
		cur.Origin, _, _ = strings.Cut(repos[0], "/")
		done = true
		return tx.PutBlob(cur)
	})
	if index.IsConflict(err) {
		return false, nil
	}
	return done, err
}

// unchanged reports whether rec's record is exactly as the mark saw it.
func unchanged(tx index.Txn, rec index.BlobRecord) (bool, error) {
	cur, err := tx.Blob(rec.Digest)
	if errors.Is(err, index.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return same(cur, rec), nil
}

func same(a, b index.BlobRecord) bool {
	return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType && a.Origin == b.Origin &&
		a.Hits == b.Hits && a.Created.Equal(b.Created) && a.LastAccess.Equal(b.LastAccess)
}

// touchBlob records that a hosted repository links or references rec's
// blob now. It moves LastAccess forward (strictly, so the record always
// changes) and writes the record, which is what a concurrent collection
// checks and conflicts on. A proxied blob becomes hosted content: the
// cache must not evict what a hosted repository needs.
func (s *Service) touchBlob(tx index.Txn, rec index.BlobRecord) error {
	t := s.now()
	if !t.After(rec.LastAccess) {
		t = rec.LastAccess.Add(time.Nanosecond)
	}
	if rec.Evictable() {
		rec.Origin = index.OriginHosted
		rec.LastAccess = t
		return tx.PutBlob(rec) // moves its size from the proxy's usage to hosted
	}
	// Touch leaves the usage counters alone: one fewer key for concurrent
	// pushes to conflict on.
	return tx.Touch(rec.Digest, t, 0)
}
