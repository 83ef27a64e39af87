package hosted

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// Manifest is a stored manifest with its bytes.
type Manifest struct {
	Digest    oci.Digest
	MediaType string
	Body      []byte
}

// resolve turns a reference into a digest present in repo.
func resolve(tx index.Txn, repo string, ref oci.Reference) (index.ManifestRecord, error) {
	d := ref.Digest
	if d == "" {
		var err error
		d, err = tx.Tag(repo, ref.Tag)
		if errors.Is(err, index.ErrNotFound) {
			return index.ManifestRecord{}, oci.Errorf(oci.CodeManifestUnknown, "tag %q is not in repository %s", ref.Tag, repo)
		}
		if err != nil {
			return index.ManifestRecord{}, err
		}
	}
	rec, err := tx.Manifest(repo, d)
	if errors.Is(err, index.ErrNotFound) {
		return rec, oci.Errorf(oci.CodeManifestUnknown, "manifest %s is not in repository %s", d, repo)
	}
	return rec, err
}

// StatManifest resolves ref without reading the manifest's bytes.
func (s *Service) StatManifest(ctx context.Context, repo string, ref oci.Reference) (index.ManifestRecord, error) {
	var rec index.ManifestRecord
	err := s.idx.View(func(tx index.Txn) error {
		var err error
		rec, err = resolve(tx, repo, ref)
		return err
	})
	return rec, err
}

// GetManifest returns a manifest and its bytes.
func (s *Service) GetManifest(ctx context.Context, repo string, ref oci.Reference) (Manifest, error) {
	rec, err := s.StatManifest(ctx, repo, ref)
	if err != nil {
		return Manifest{}, err
	}
	f, _, err := s.store.Open(rec.Digest)
	if err != nil {
		if errors.Is(err, oci.ErrBlobUnknown) {
			s.log.Warn("manifest indexed but its file is missing; run wharf fsck", "repo", repo, "digest", rec.Digest)
			return Manifest{}, oci.Errorf(oci.CodeManifestUnknown, "manifest %s is missing from storage", rec.Digest)
		}
		return Manifest{}, err
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, oci.MaxManifestSize+1))
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Digest: rec.Digest, MediaType: rec.MediaType, Body: body}, nil
}

// PutResult says what a manifest push stored.
type PutResult struct {
	Digest  oci.Digest
	Subject *oci.Digest
}

// PutManifest checks and stores a manifest under ref (a tag or its
// digest), also pointing the extra tags (the ?tag= parameters of a push by
// digest) at it.
func (s *Service) PutManifest(ctx context.Context, repo string, ref oci.Reference, contentType string, body []byte, tags ...string) (PutResult, error) {
	m, err := oci.ParseManifest(contentType, body)
	if err != nil {
		return PutResult{}, err
	}
	d := oci.FromBytes(body)
	if ref.Digest != "" {
		if ref.Digest.Algorithm() != "sha256" {
			d = oci.FromBytesAlg(ref.Digest.Algorithm(), body)
		}
		if d != ref.Digest {
			return PutResult{}, oci.Errorf(oci.CodeDigestInvalid, "manifest hashes to %s, not %s", d, ref.Digest)
		}
	}
	// Check references first, without holding a write transaction.
	err = s.idx.View(func(tx index.Txn) error { return s.checkReferences(tx, repo, m, false) })
	if err != nil {
		return PutResult{}, err
	}
	release := s.store.HoldBlob(d)
	defer release()
	if _, err := s.store.Put(ctx, d, int64(len(body)), bytes.NewReader(body)); err != nil {
		return PutResult{}, err
	}
	rec := index.ManifestRecord{
		Digest:       d,
		MediaType:    m.MediaType,
		Size:         int64(len(body)),
		ArtifactType: m.EffectiveArtifactType(),
		Annotations:  m.Annotations,
		Created:      s.now(),
	}
	if m.Subject != nil {
		sd := m.Subject.Digest
		rec.Subject = &sd
	}
	// The manifest's bytes are stored: finish recording it even if the
	// client hangs up now.
	err = s.idx.Update(context.WithoutCancel(ctx), func(tx index.Txn) error {
		// Check again, touching what is referenced, so that a garbage
		// collection deleting any of it either sees this push or makes
		// it fail: never both succeed (gc.go).
		if err := s.checkReferences(tx, repo, m, true); err != nil {
			return err
		}
		if err := s.recordBlob(tx, d, int64(len(body)), m.MediaType); err != nil {
			return err
		}
		if err := tx.LinkBlob(repo, d); err != nil {
			return err
		}
		if old, err := tx.Manifest(repo, d); err == nil {
			rec.Created = old.Created
		}
		if err := tx.PutManifest(repo, rec); err != nil {
			return err
		}
		if ref.Tag != "" {
			tags = append(tags, ref.Tag)
		}
		for _, t := range tags {
			if err := tx.SetTag(repo, t, d); err != nil {
				return err
			}
		}
		if m.Subject != nil {
			return tx.AddReferrer(repo, m.Subject.Digest, oci.Descriptor{
				MediaType:    m.MediaType,
				Digest:       d,
				Size:         int64(len(body)),
				ArtifactType: rec.ArtifactType,
				Annotations:  m.Annotations,
			})
		}
		return nil
	})
	if err != nil {
		return PutResult{}, err
	}
	return PutResult{Digest: d, Subject: rec.Subject}, nil
}

// checkReferences checks that everything m references is in repo. With
// touch set it also touches each referenced blob's record (touchBlob),
// which must still exist.
func (s *Service) checkReferences(tx index.Txn, repo string, m *oci.Manifest, touch bool) error {
	unknown := func(d oci.Digest, what string) error {
		return oci.Errorf(oci.CodeManifestBlobUnknown, "manifest references %s%s, which is not in repository %s; push it first", what, d, repo).WithDetail(map[string]string{"digest": string(d)})
	}
	seen := map[oci.Digest]bool{}
	for _, ref := range m.References() {
		if len(ref.URLs) > 0 {
			continue // foreign layer: lives elsewhere by design
		}
		if oci.IsManifestMediaType(ref.MediaType) || (oci.IsIndex(m.MediaType)) {
			if _, err := tx.Manifest(repo, ref.Digest); err != nil {
				if errors.Is(err, index.ErrNotFound) {
					return unknown(ref.Digest, "")
				}
				return err
			}
		} else {
			ok, err := tx.BlobLinked(repo, ref.Digest)
			if err != nil {
				return err
			}
			if !ok {
				return unknown(ref.Digest, "blob ")
			}
		}
		if !touch || seen[ref.Digest] {
			continue
		}
		seen[ref.Digest] = true
		rec, err := tx.Blob(ref.Digest)
		if errors.Is(err, index.ErrNotFound) {
			return unknown(ref.Digest, "blob ")
		}
		if err != nil {
			return err
		}
		if err := s.touchBlob(tx, rec); err != nil {
			return err
		}
	}
	return nil
}

// DeleteManifest deletes by digest (the manifest and every tag pointing at
// it) or by tag (only the tag).
func (s *Service) DeleteManifest(ctx context.Context, repo string, ref oci.Reference) error {
	return s.idx.Update(ctx, func(tx index.Txn) error {
		if ref.Tag != "" {
			if _, err := tx.Tag(repo, ref.Tag); err != nil {
				if errors.Is(err, index.ErrNotFound) {
					return oci.Errorf(oci.CodeManifestUnknown, "tag %q is not in repository %s", ref.Tag, repo)
				}
				return err
			}
			return tx.DeleteTag(repo, ref.Tag)
		}
		err := tx.DeleteManifest(repo, ref.Digest)
		if errors.Is(err, index.ErrNotFound) {
			return oci.Errorf(oci.CodeManifestUnknown, "manifest %s is not in repository %s", ref.Digest, repo)
		}
		return err
	})
}

// Tags lists repo's tags, n at most (n < 0: all) after last.
func (s *Service) Tags(ctx context.Context, repo string, n int, last string) ([]string, error) {
	var tags []string
	err := s.idx.View(func(tx index.Txn) error {
		var err error
		tags, err = tx.Tags(repo, n, last)
		if err != nil || len(tags) > 0 || last != "" {
			return err
		}
		// No tags: is the repository known at all?
		known := false
		err = tx.EachManifest(repo, func(string, index.ManifestRecord) error {
			known = true
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if !known {
			return oci.Errorf(oci.CodeNameUnknown, "repository %s has no manifests", repo)
		}
		return nil
	})
	return tags, err
}

// Catalog lists repositories that hold manifests.
func (s *Service) Catalog(ctx context.Context, n int, last string) ([]string, error) {
	var repos []string
	err := s.idx.View(func(tx index.Txn) error {
		var err error
		repos, err = tx.Repositories(n, last)
		return err
	})
	return repos, err
}

// Referrers lists the manifests in repo whose subject is d, optionally
// only those of artifactType.
func (s *Service) Referrers(ctx context.Context, repo string, d oci.Digest, artifactType string) ([]oci.Descriptor, error) {
	var out []oci.Descriptor
	err := s.idx.View(func(tx index.Txn) error {
		all, err := tx.Referrers(repo, d)
		for _, r := range all {
			if artifactType == "" || r.ArtifactType == artifactType {
				out = append(out, r)
			}
		}
		return err
	})
	if out == nil {
		out = []oci.Descriptor{}
	}
	return out, err
}

var errStop = errors.New("stop")
