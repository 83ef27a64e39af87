package cache

import (
	"context"
	"errors"
	"io"
	"path"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// PinRule pins images whose canonical repository matches Repo and whose
// tag matches Tag (path.Match patterns: "1.*"), or one digest.
type PinRule struct {
	Rule string // as written, e.g. "hub/library/golang:1.*"
	Repo string
	Tag  string // pattern, or "@sha256:..." for a digest
}

func (r PinRule) matches(canon, tag string, d oci.Digest) bool {
	if ok, _ := path.Match(r.Repo, canon); !ok {
		return false
	}
	if len(r.Tag) > 0 && r.Tag[0] == '@' {
		return r.Tag[1:] == string(d)
	}
	ok, _ := path.Match(r.Tag, tag)
	return ok
}

// pinFor pins d and everything it references when a rule covers
// canon:tag, or when d itself is already pinned (a child manifest of a
// pinned index, fetched later).
func pinFor(tx index.Txn, rules []PinRule, canon, tag string, d oci.Digest, m *oci.Manifest) error {
	var matched []string
	for _, r := range rules {
		if r.matches(canon, tag, d) {
			matched = append(matched, r.Rule)
		}
	}
	if len(matched) == 0 {
		var err error
		if matched, err = tx.PinsOf(d); err != nil {
			return err
		}
	}
	for _, rule := range matched {
		if err := tx.Pin(d, rule); err != nil {
			return err
		}
		for _, ref := range m.References() {
			if err := tx.Pin(ref.Digest, rule); err != nil {
				return err
			}
		}
	}
	return nil
}

// PinCached pins an image that is in the cache: its manifest, and
// recursively every child manifest, config and layer cached or not (a
// pinned digest fetched later stays pinned). It returns how many digests
// were pinned.
func (l *Lifecycle) PinCached(ctx context.Context, canon string, ref oci.Reference, rule string, pin bool) (int, error) {
	seen, err := l.closure(canon, ref)
	if err != nil {
		return 0, err
	}
	err = l.idx.Update(ctx, func(tx index.Txn) error {
		for d := range seen {
			var err error
			if pin {
				err = tx.Pin(d, rule)
			} else {
				err = tx.Unpin(d, "")
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return len(seen), err
}

// EvictImage drops a cached image's manifests and blobs (pinned ones
// stay); the next pull fetches them again.
func (l *Lifecycle) EvictImage(ctx context.Context, canon string, ref oci.Reference) (EvictReport, error) {
	seen, err := l.closure(canon, ref)
	if err != nil {
		return EvictReport{}, err
	}
	before, _ := l.ProxiedUsage()
	rep := EvictReport{Reason: "requested", UsedBefore: before.Bytes, Budget: l.budget.MaxSize}
	for d := range seen {
		n, ok, err := l.evictOne(ctx, d, time.Time{})
		if err != nil {
			return rep, err
		}
		if ok {
			rep.Blobs++
			rep.Bytes += n
		}
	}
	after, _ := l.ProxiedUsage()
	rep.UsedAfter = after.Bytes
	l.log.Info("evicted image on request", "image", canon+":"+ref.String(), "blobs", rep.Blobs, "bytes", rep.Bytes)
	return rep, nil
}

// closure is the set of digests an image consists of: its manifest and,
// recursively, every child manifest, config and layer.
func (l *Lifecycle) closure(canon string, ref oci.Reference) (map[oci.Digest]bool, error) {
	var root oci.Digest
	err := l.idx.View(func(tx index.Txn) error {
		if ref.Digest != "" {
			root = ref.Digest
			return nil
		}
		d, err := tx.Tag(canon, ref.Tag)
		if errors.Is(err, index.ErrNotFound) {
			return oci.Errorf(oci.CodeManifestUnknown, "%s:%s is not cached; pull or warm it first, or add a pin rule to the config", canon, ref.Tag)
		}
		root = d
		return err
	})
	if err != nil {
		return nil, err
	}
	seen := map[oci.Digest]bool{}
	queue := []oci.Digest{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		if m := l.readManifest(d); m != nil {
			for _, r := range m.References() {
				queue = append(queue, r.Digest)
			}
		}
	}
	return seen, nil
}

// readManifest parses d if it is a stored manifest, else nil.
func (l *Lifecycle) readManifest(d oci.Digest) *oci.Manifest {
	var rec index.BlobRecord
	if err := l.idx.View(func(tx index.Txn) error {
		var err error
		rec, err = tx.Blob(d)
		return err
	}); err != nil || !oci.IsManifestMediaType(rec.MediaType) {
		return nil
	}
	f, _, err := l.store.Open(d)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, oci.MaxManifestSize))
	if err != nil {
		return nil
	}
	m, err := oci.ParseManifest(rec.MediaType, b)
	if err != nil {
		return nil
	}
	return m
}
