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
//
// Whatever goes upstream goes once for all the requests asking the same
// thing at the same time (see flight).
func (p *Proxy) GetManifest(ctx context.Context, repo string, ref oci.Reference, accept []string, head bool) (Manifest, error) {
	canon := p.canonical(repo)
	if ref.Digest != "" {
		if m, ok, err := p.cachedManifest(canon, ref.Digest, accept, head); err != nil || ok {
			if ok {
				p.o.Metrics.CacheResult(p.o.Name, "manifest", string(SourceHit))
			}
			return m, err
		}
		return p.manifestByDigest(ctx, repo, canon, ref.Digest, accept, head)
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
	return p.manifestByTag(ctx, repo, canon, ref.Tag, d, accept, head)
}

// manifestByTag resolves (or revalidates) a tag upstream and answers with
// its manifest, sharing the upstream HEAD and GET with every request for
// the same tag and media types under way. cached is the digest the cache
// holds for the tag ("" for none), served stale if the upstream fails.
func (p *Proxy) manifestByTag(ctx context.Context, repo, canon, tag string, cached oci.Digest, accept []string, head bool) (Manifest, error) {
	key := flightKey("tag", canon, tag, accept)
	g := p.manifestFlights()
	f, leader := g.join(key, !head)
	if leader {
		fctx, cancel := p.flightContext(ctx)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer cancel()
			p.runTagFlight(fctx, key, f, repo, canon, tag, accept)
		}()
	}
	if err := wait(ctx, f.resolved); err != nil {
		return Manifest{}, err
	}
	if !leader {
		p.o.Metrics.CoalescedFetch(p.o.Name)
	}
	if err := f.checkErr; err != nil {
		if le, ok := err.(localError); ok {
			return Manifest{}, le.err
		}
		if cached != "" && staleable(err) {
			if m, ok, cerr := p.cachedManifest(canon, cached, accept, head); cerr == nil && ok {
				p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceStale))
				m.Source = SourceStale
				return m, nil
			}
		}
		return Manifest{}, p.upstreamError(err, "manifest", repo+":"+tag)
	}
	c := f.check
	if c.cached {
		if m, ok, err := p.cachedManifest(canon, c.digest, accept, head); err != nil {
			return Manifest{}, err
		} else if ok {
			p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceHit))
			return m, nil
		}
		// Evicted since the flight looked: rare enough to fetch alone.
		m, err := p.fetchManifest(ctx, repo, canon, oci.Reference{Tag: tag}, accept)
		if err == nil {
			p.logCached(repo, tag, m, 1)
		}
		return p.answer("tag", m, err, head)
	}
	if head && c.digest != "" {
		// A HEAD needs no body: answer from the upstream's headers and
		// spend no pull on it; the GET that usually follows fills the cache.
		p.o.Metrics.CacheResult(p.o.Name, "tag", string(SourceMiss))
		return Manifest{Digest: c.digest, MediaType: c.desc.MediaType, Size: c.desc.Size, Source: SourceMiss}, nil
	}
	if err := wait(ctx, f.done); err != nil {
		return Manifest{}, err
	}
	return p.answer("tag", f.m, f.err, head)
}

// runTagFlight is the upstream side of manifestByTag.
func (p *Proxy) runTagFlight(ctx context.Context, key string, f *flight, repo, canon, tag string, accept []string) {
	g := p.manifestFlights()
	c, err := p.checkTag(ctx, repo, canon, tag, accept)
	f.resolve(c, err)
	if err != nil || c.cached || (c.digest != "" && !g.needBody(key, f)) {
		g.stop(key, f)
		f.finish(Manifest{}, nil)
		return
	}
	m, err := p.fetchManifest(ctx, repo, canon, oci.Reference{Tag: tag}, accept)
	if joined := g.stop(key, f); err == nil {
		p.logCached(repo, tag, m, joined)
	}
	f.finish(m, err)
}

// checkTag is a tag flight's first phase: what the tag points at, and
// whether the cache holds that manifest (then the tag is recorded as
// confirmed, once for all the flight's waiters). An upstream failure is
// returned unmapped, for waiters to decide on serving stale.
func (p *Proxy) checkTag(ctx context.Context, repo, canon, tag string, accept []string) (tagCheck, error) {
	// A request that read the tag as expired just before a flight
	// confirmed it must not ask the upstream again.
	d, checked, _, err := p.readTag(canon, tag)
	if err != nil {
		return tagCheck{}, localError{err}
	}
	if d != "" && p.o.Now().Sub(checked) < p.o.TagTTL {
		if _, ok, err := p.cachedManifest(canon, d, accept, true); err != nil {
			return tagCheck{}, localError{err}
		} else if ok {
			return tagCheck{digest: d, cached: true}, nil
		}
	}
	desc, err := p.o.Upstream.HeadManifest(ctx, repo, tag, accept)
	if err != nil {
		if staleable(err) {
			p.noteOutage(err)
			if d != "" {
				p.log.Warn("upstream failed; serving cached tag stale", "repo", repo, "tag", tag, "digest", d, "err", err)
			}
		}
		return tagCheck{}, err
	}
	ud, perr := oci.ParseDigest(string(desc.Digest))
	if perr != nil {
		// No usable digest in the HEAD answer: the GET will tell.
		return tagCheck{desc: desc}, nil
	}
	c := tagCheck{digest: ud, desc: desc}
	if _, ok, err := p.cachedManifest(canon, ud, accept, true); err != nil {
		return tagCheck{}, localError{err}
	} else if ok {
		if err := p.recordTag(ctx, canon, tag, ud); err != nil {
			return tagCheck{}, localError{err}
		}
		c.cached = true
	}
	return c, nil
}

// localError marks a flight's failure of the cache itself (the index),
// which waiters return as it is rather than as the upstream's.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() error { return e.err }

// manifestByDigest fetches a manifest by digest, one upstream GET for
// every request (HEAD or GET) for it with the same media types under way.
func (p *Proxy) manifestByDigest(ctx context.Context, repo, canon string, d oci.Digest, accept []string, head bool) (Manifest, error) {
	key := flightKey("digest", canon, d.String(), accept)
	g := p.manifestFlights()
	f, leader := g.join(key, true)
	if leader {
		fctx, cancel := p.flightContext(ctx)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer cancel()
			close(f.resolved)
			// Cached by a flight that ended after this request looked?
			m, ok, err := p.cachedManifest(canon, d, accept, false)
			if err == nil && !ok {
				m, err = p.fetchManifest(fctx, repo, canon, oci.Reference{Digest: d}, accept)
			}
			if joined := g.stop(key, f); err == nil && !ok {
				p.logCached(repo, d.String(), m, joined)
			}
			f.finish(m, err)
		}()
	}
	if err := wait(ctx, f.done); err != nil {
		return Manifest{}, err
	}
	if !leader {
		p.o.Metrics.CoalescedFetch(p.o.Name)
	}
	return p.answer("manifest", f.m, f.err, head)
}

// answer is a request's share of a flight's manifest, counted as one
// answer of kind (tag or manifest).
func (p *Proxy) answer(kind string, m Manifest, err error, head bool) (Manifest, error) {
	if err != nil {
		return Manifest{}, err
	}
	p.o.Metrics.CacheResult(p.o.Name, kind, string(m.Source))
	if head {
		m.Body = nil
	}
	return m, nil
}

// fetchManifest GETs a manifest upstream, stores it and returns it, body
// included.
func (p *Proxy) fetchManifest(ctx context.Context, repo, canon string, ref oci.Reference, accept []string) (Manifest, error) {
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
	err = p.o.Index.Update(context.WithoutCancel(ctx), func(tx index.Txn) error {
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
	p.bodies.put(d, body)
	return Manifest{Digest: d, MediaType: mt, Size: int64(len(body)), Body: body, Source: SourceMiss}, nil
}

// logCached notes a manifest fetched and stored for joined requests.
func (p *Proxy) logCached(repo, ref string, m Manifest, joined int) {
	p.log.Info("cached manifest", "repo", repo, "ref", ref, "digest", m.Digest, "media_type", m.MediaType, "clients_joined", joined)
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
	err := p.o.Index.View(func(tx index.Txn) error {
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
	return p.o.Index.Update(ctx, func(tx index.Txn) error {
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
	err := p.o.Index.View(func(tx index.Txn) error {
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

// Tags lists a proxied repository's tags: passed through to the upstream
// (once for the requests asking meanwhile), cached for the tag TTL, and
// served stale when the upstream fails.
func (p *Proxy) Tags(ctx context.Context, repo string, n int, last string) ([]string, string, Source, error) {
	key := repo + "\x00" + strconv.Itoa(n) + "\x00" + last
	p.tagsMu.Lock()
	page, ok := p.tags[key]
	p.tagsMu.Unlock()
	if ok && p.o.Now().Sub(page.fetched) < p.o.TagTTL {
		return page.tags, page.next, SourceHit, nil
	}
	v, _, err := p.share(ctx, "tags\x00"+p.canonical(repo)+"\x00"+key, func(ctx context.Context) (any, error) {
		tags, next, err := p.o.Upstream.Tags(ctx, repo, n, last)
		return tagPage{tags: tags, next: next}, err
	})
	fresh, _ := v.(tagPage)
	tags, next := fresh.tags, fresh.next
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
