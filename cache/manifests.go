package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// Manifest is a manifest to answer with. Body is nil for a HEAD answered
// from the upstream's headers alone.
type Manifest struct {
	Digest    oci.Digest
	MediaType string
	Size      int64
	Body      []byte
	Source    Source
}

// GetManifest answers a manifest GET (head=false) or HEAD (head=true).
//
// By digest: content-addressed, so a cached copy is always right.
// By tag: the cached tag is trusted for TagTTL; after that a HEAD upstream
// (which Docker Hub does not count against the pull limit) revalidates it,
// and a GET goes upstream only for a digest not cached yet. When the
// upstream fails, a cached tag is served stale.
func (p *Proxy) GetManifest(ctx context.Context, repo string, ref oci.Reference, accept []string, head bool) (Manifest, error) {
	canon := p.canonical(repo)
	if ref.Digest != "" {
		if m, ok, err := p.cachedManifest(canon, ref.Digest, accept, head); err != nil || ok {
			if ok {
				p.o.Metrics.CacheResult(p.o.Name, "manifest", string(SourceHit))
			}
			return m, err
		}
		return p.fetchManifest(ctx, repo, canon, ref, accept, head)
	}

	d, checked, rec, err := p.cachedTag(canon, ref.Tag)
	if err != nil {
		return Manifest{}, err
	}
	if d != "" && p.o.Now().Sub(checked) < p.o.TagTTL {
		// The hot path (a fresh tag): one index read, and for a HEAD no
		// file access at all.
		if rec != nil && acceptable(rec.MediaType, accept) {
			m := Manifest{Digest: d, MediaType: rec.MediaType, Size: rec.Size, Source: SourceHit}
			body, ok := p.bodies.get(d)
			if head || ok {
				if !head {
					m.Body = body
				}
				p.o.Lifecycle.touched(d)
				p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceHit))
				return m, nil
			}
		}
		if m, ok, err := p.cachedManifest(canon, d, accept, head); err != nil || ok {
			if ok {
				p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceHit))
			}
			return m, err
		}
	}
	if d != "" && p.upstreamDown() {
		if m, ok, cerr := p.cachedManifest(canon, d, accept, head); cerr == nil && ok {
			p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceStale))
			m.Source = SourceStale
			return m, nil
		}
	}
	// Revalidate (or resolve) the tag with a HEAD.
	desc, err := p.o.Upstream.HeadManifest(ctx, repo, ref.Tag, accept)
	if err != nil {
		if staleable(err) {
			p.noteOutage(err)
		}
		if d != "" && staleable(err) {
			if m, ok, cerr := p.cachedManifest(canon, d, accept, head); cerr == nil && ok {
				p.log.Warn("upstream failed; serving cached tag stale", "repo", repo, "tag", ref.Tag, "digest", d, "err", err)
				p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceStale))
				m.Source = SourceStale
				return m, nil
			}
		}
		return Manifest{}, p.upstreamError(err, "manifest", repo+":"+ref.Tag)
	}
	ud, perr := oci.ParseDigest(string(desc.Digest))
	if perr != nil {
		// No usable digest in the HEAD answer: fall back to a GET.
		return p.fetchManifest(ctx, repo, canon, ref, accept, head)
	}
	if m, ok, err := p.cachedManifest(canon, ud, accept, head); err != nil {
		return Manifest{}, err
	} else if ok {
		if err := p.recordTag(ctx, canon, ref.Tag, ud); err != nil {
			return Manifest{}, err
		}
		p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceHit))
		return m, nil
	}
	if head {
		// A HEAD needs no body: answer from the upstream's headers and
		// spend no pull on it; the GET that usually follows fills the cache.
		p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceMiss))
		return Manifest{Digest: ud, MediaType: desc.MediaType, Size: desc.Size, Source: SourceMiss}, nil
	}
	return p.fetchManifest(ctx, repo, canon, oci.Reference{Tag: ref.Tag}, accept, head)
}

// fetchManifest GETs a manifest upstream, stores it and answers with it.
func (p *Proxy) fetchManifest(ctx context.Context, repo, canon string, ref oci.Reference, accept []string, head bool) (Manifest, error) {
	body, desc, err := p.o.Upstream.GetManifest(ctx, repo, ref.String(), accept)
	if err != nil {
		return Manifest{}, p.upstreamError(err, "manifest", repo+refSep(ref)+ref.String())
	}
	d := ref.Digest
	if d == "" {
		if d, err = oci.ParseDigest(string(desc.Digest)); err != nil || (d.Algorithm() == "sha256" && d != oci.FromBytes(body)) {
			d = oci.FromBytes(body)
		}
	}
	if oci.FromBytesAlg(d.Algorithm(), body) != d {
		return Manifest{}, oci.Errorf(oci.CodeUpstreamFailed, "the upstream registry (%s) sent a manifest that does not match %s", p.o.Name, d)
	}
	mt := desc.MediaType
	parsed, perr := oci.ParseManifest(mt, body)
	if perr != nil {
		return Manifest{}, oci.Errorf(oci.CodeUpstreamFailed, "the upstream registry (%s) sent an unusable manifest for %s: %v", p.o.Name, ref, perr)
	}
	mt = parsed.MediaType
	release := p.o.Store.HoldBlob(d)
	defer release()
	if _, err := p.o.Store.Put(ctx, d, int64(len(body)), bytes.NewReader(body)); err != nil {
		return Manifest{}, err
	}
	now := p.o.Now()
	// The bytes are stored: record them even if ctx ends now (see download).
	err = p.o.Index.Update(context.WithoutCancel(ctx), func(tx *index.Txn) error {
		if _, err := tx.Blob(d); errors.Is(err, index.ErrNotFound) {
			if err := tx.PutBlob(index.BlobRecord{Digest: d, Size: int64(len(body)), MediaType: mt, Created: now, LastAccess: now, Origin: p.o.Name}); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if err := tx.LinkBlob(canon, d); err != nil {
			return err
		}
		rec := index.ManifestRecord{Digest: d, MediaType: mt, Size: int64(len(body)), ArtifactType: parsed.EffectiveArtifactType(), Created: now}
		if parsed.Subject != nil {
			sd := parsed.Subject.Digest
			rec.Subject = &sd
		}
		if err := tx.PutManifest(canon, rec); err != nil {
			return err
		}
		if err := pinFor(tx, p.o.Pins, canon, ref.Tag, d, parsed); err != nil {
			return err
		}
		if ref.Tag != "" {
			if err := tx.SetTag(canon, ref.Tag, d); err != nil {
				return err
			}
			return tx.SetTagChecked(canon, ref.Tag, now)
		}
		return nil
	})
	if ref.Tag != "" {
		p.tagMemo.invalidate(canon, ref.Tag)
	}
	if err != nil {
		return Manifest{}, err
	}
	p.log.Info("cached manifest", "repo", repo, "ref", ref.String(), "digest", d, "media_type", mt)
	kind := "manifest"
	if ref.Tag != "" {
		kind = "tag" // a tag miss, counted with the tag's hits
	}
	p.o.Metrics.CacheResult(p.o.Name, kind, string(SourceMiss))
	p.bodies.put(d, body)
	m := Manifest{Digest: d, MediaType: mt, Size: int64(len(body)), Source: SourceMiss}
	if !head {
		m.Body = body
	}
	return m, nil
}

func refSep(r oci.Reference) string {
	if r.Digest != "" {
		return "@"
	}
	return ":"
}

// cachedTag returns the cached digest of canon:tag, when it was last
// confirmed upstream ("" when the tag is not cached), and the manifest's
// record when that is cached too.
func (p *Proxy) cachedTag(canon, tag string) (oci.Digest, time.Time, *index.ManifestRecord, error) {
	e, ok, gen := p.tagMemo.get(canon, tag)
	if ok && p.o.Now().Sub(e.checked) < p.o.TagTTL {
		return e.d, e.checked, e.rec, nil
	}
	d, checked, rec, err := p.readTag(canon, tag)
	if err == nil && d != "" {
		p.tagMemo.put(gen, canon, tag, tagMemoEntry{d: d, checked: checked, rec: rec})
	}
	return d, checked, rec, err
}

func (p *Proxy) readTag(canon, tag string) (oci.Digest, time.Time, *index.ManifestRecord, error) {
	var d oci.Digest
	var checked time.Time
	var rec *index.ManifestRecord
	err := p.o.Index.View(func(tx *index.Txn) error {
		var err error
		d, err = tx.Tag(canon, tag)
		if errors.Is(err, index.ErrNotFound) {
			d = ""
			return nil
		}
		if err != nil {
			return err
		}
		if r, err := tx.Manifest(canon, d); err == nil {
			rec = &r
		} else if !errors.Is(err, index.ErrNotFound) {
			return err
		}
		checked, err = tx.TagChecked(canon, tag)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		return err
	})
	return d, checked, rec, err
}

// recordTag points canon:tag at d, confirmed now.
func (p *Proxy) recordTag(ctx context.Context, canon, tag string, d oci.Digest) error {
	now := p.o.Now()
	defer p.tagMemo.invalidate(canon, tag)
	return p.o.Index.Update(ctx, func(tx *index.Txn) error {
		if err := tx.SetTag(canon, tag, d); err != nil {
			return err
		}
		return tx.SetTagChecked(canon, tag, now)
	})
}

// cachedManifest reads a cached manifest of canon, if present and
// acceptable to the client.
func (p *Proxy) cachedManifest(canon string, d oci.Digest, accept []string, head bool) (Manifest, bool, error) {
	var rec index.ManifestRecord
	found := false
	err := p.o.Index.View(func(tx *index.Txn) error {
		var err error
		rec, err = tx.Manifest(canon, d)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil || !found || !acceptable(rec.MediaType, accept) {
		return Manifest{}, false, err
	}
	m := Manifest{Digest: d, MediaType: rec.MediaType, Size: rec.Size, Source: SourceHit}
	p.o.Lifecycle.touched(d)
	if head {
		if _, err := p.o.Store.Stat(d); err != nil {
			return Manifest{}, false, nil // bytes gone: treat as a miss
		}
		return m, true, nil
	}
	if body, ok := p.bodies.get(d); ok {
		m.Body = body
		return m, true, nil
	}
	f, _, err := p.o.Store.Open(d)
	if err != nil {
		return Manifest{}, false, nil
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, oci.MaxManifestSize+1))
	if err != nil {
		return Manifest{}, false, err
	}
	p.bodies.put(d, body)
	m.Body = body
	return m, true, nil
}

// acceptable reports whether a client sending accept takes media type mt.
// No Accept header means the client takes what the registry has.
func acceptable(mt string, accept []string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		for _, part := range strings.Split(a, ",") {
			t := mediaTypeOnly(part)
			if t == "*/*" || t == "application/*" || t == mt {
				return true
			}
		}
	}
	return false
}

// --- tags ---

// Tags lists a proxied repository's tags: passed through to the upstream,
// cached for the tag TTL, and served stale when the upstream fails.
func (p *Proxy) Tags(ctx context.Context, repo string, n int, last string) ([]string, string, Source, error) {
	key := repo + "\x00" + strconv.Itoa(n) + "\x00" + last
	p.tagsMu.Lock()
	page, ok := p.tags[key]
	p.tagsMu.Unlock()
	if ok && p.o.Now().Sub(page.fetched) < p.o.TagTTL {
		return page.tags, page.next, SourceHit, nil
	}
	tags, next, err := p.o.Upstream.Tags(ctx, repo, n, last)
	if err != nil {
		if ok && staleable(err) {
			p.log.Warn("upstream failed; serving cached tag list stale", "repo", repo, "err", err)
			return page.tags, page.next, SourceStale, nil
		}
		return nil, "", "", p.upstreamError(err, "tags", repo)
	}
	p.tagsMu.Lock()
	if len(p.tags) > 10000 {
		p.tags = map[string]tagPage{} // crude bound: tag lists are cheap to refetch
	}
	p.tags[key] = tagPage{tags: tags, next: next, fetched: p.o.Now()}
	p.tagsMu.Unlock()
	return tags, next, SourceMiss, nil
}
