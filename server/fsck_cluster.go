package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage/s3"
)

// DefaultUploadGrace is how old an unfinished multipart upload must be
// for fsck to call it stale: the age replicas sweep them at.
const DefaultUploadGrace = s3.DefaultUploadGrace

// ClusterFsckReport is what FsckCluster found in the bucket and the
// database, and what it repaired.
type ClusterFsckReport struct {
	index.FsckReport
	// Uploads counts the bucket's unfinished multipart uploads; only
	// those older than the grace period are problems (the others may be a
	// replica's upload under way).
	Uploads s3.Unfinished
	Grace   time.Duration
	Swept   int // stale uploads aborted by repair
}

// FsckCluster checks cluster mode's bucket against its index, while
// replicas may serve: every object is re-hashed and compared with its
// digest and its record; records whose object is missing, objects no
// record knows and stale unfinished multipart uploads are reported. What
// a concurrent replica may be changing is checked again before it is
// called a problem. Without repair it writes nothing. With repair,
// corrupt objects are deleted (S3 has no quarantine: their bytes are
// gone) with their records, records without an object are dropped with
// the manifests stored under their digest (as index.Reconcile does),
// objects no record knows are recorded again as recovered, and stale
// uploads are aborted. Uploads older than grace are stale; grace 0 makes
// every unfinished upload stale (for a cluster whose replicas are stopped).
func FsckCluster(ctx context.Context, cfg *config.Config, repair bool, grace time.Duration, log *slog.Logger, progress func(done, total int64)) (ClusterFsckReport, error) {
	var rep ClusterFsckReport
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Clustered() {
		return rep, errors.New("the config has no storage.s3 and index.postgres (cluster mode)")
	}
	sc, err := s3Config(cfg.Storage.S3)
	if err != nil {
		return rep, err
	}
	// The store takes 0 for its default.
	sc.UploadGrace = max(grace, time.Nanosecond)
	rep.Grace = max(grace, 0)
	octx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	st, err := s3.New(octx, sc)
	if err != nil {
		return rep, fmt.Errorf("storage.s3: %w", err)
	}
	// fsck reads the tables as the replicas left them: it never migrates
	// the schema under replicas of another version.
	idx, err := pgindex.Open(octx, cfg.Index.Postgres, pgindex.Options{Logger: log, MaxConns: 2, NoMigrate: true})
	if err != nil {
		return rep, fmt.Errorf("index.postgres: %w", err)
	}
	defer idx.Close()
	if at := idx.SchemaAt(); at < pgindex.SchemaVersion() {
		return rep, fmt.Errorf("index.postgres: the schema is at version %d, and this wharf reads version %d: run the fsck of the wharf version the replicas run, or start a replica of this version first (it migrates the schema)", at, pgindex.SchemaVersion())
	}
	return rep, fsckBucket(ctx, st, idx, repair, &rep, progress)
}

// blobRecord reads d's record; ok is false when there is none.
func blobRecord(x index.Index, d oci.Digest) (r index.BlobRecord, ok bool, err error) {
	err = x.View(func(tx index.Txn) error { var e error; r, e = tx.Blob(d); return e })
	if errors.Is(err, index.ErrNotFound) {
		return r, false, nil
	}
	return r, err == nil, err
}

func fsckBucket(ctx context.Context, st *s3.Store, x index.Index, repair bool, rep *ClusterFsckReport, progress func(done, total int64)) error {
	problem := func(d oci.Digest, key, what string) {
		rep.Problems = append(rep.Problems, index.FsckProblem{Digest: d, Path: key, What: what})
	}
	objects := map[oci.Digest]int64{}
	var order []oci.Digest
	var total int64
	err := st.Walk(func(d oci.Digest, size int64) error {
		objects[d] = size
		order = append(order, d)
		total += size
		return ctx.Err()
	}, func(key string) { problem("", key, "key under blobs/ is not where a blob goes (left alone)") })
	if err != nil {
		return fmt.Errorf("fsck: listing the bucket: %w", err)
	}
	records := map[oci.Digest]bool{}
	err = x.View(func(tx index.Txn) error {
		return tx.EachBlob(func(r index.BlobRecord) error { records[r.Digest] = true; return nil })
	})
	if err != nil {
		return fmt.Errorf("fsck: listing blob records: %w", err)
	}

	var gone []oci.Digest // records to drop, with their manifests
	var unknown []oci.Digest
	for _, d := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		ok, err := st.Verify(d)
		if errors.Is(err, oci.ErrBlobUnknown) {
			continue // evicted or collected by a replica since the listing
		}
		if err != nil {
			return fmt.Errorf("fsck: %w", err)
		}
		rep.Checked++
		rep.Bytes += objects[d]
		if progress != nil {
			progress(rep.Bytes, total)
		}
		if !ok {
			problem(d, "", "content does not match its digest")
			if repair {
				if err := st.Delete(d); err != nil {
					return fmt.Errorf("fsck: deleting corrupt object %s: %w", d, err)
				}
				gone = append(gone, d)
			}
			continue
		}
		if !records[d] {
			unknown = append(unknown, d)
			continue
		}
		rec, found, err := blobRecord(x, d)
		if err != nil {
			return fmt.Errorf("fsck: %w", err)
		}
		if found && rec.Size != objects[d] {
			problem(d, "", fmt.Sprintf("index says %d bytes, object has %d", rec.Size, objects[d]))
			if repair {
				rec.Size = objects[d]
				if err := x.Update(ctx, func(tx index.Txn) error { return tx.PutBlob(rec) }); err != nil {
					return fmt.Errorf("fsck: %w", err)
				}
				rep.Repaired++
			}
		}
	}
	// Records without object: a replica may have written both since the
	// listing, so ask the bucket again.
	var missing []oci.Digest
	for d := range records {
		if _, ok := objects[d]; ok {
			continue
		}
		if _, err := st.Stat(d); err == nil {
			continue
		} else if !errors.Is(err, oci.ErrBlobUnknown) {
			return fmt.Errorf("fsck: %w", err)
		}
		if _, found, err := blobRecord(x, d); err != nil {
			return fmt.Errorf("fsck: %w", err)
		} else if !found {
			continue // dropped meanwhile (eviction, GC)
		}
		missing = append(missing, d)
	}
	slices.Sort(missing)
	for _, d := range missing {
		problem(d, "", "index record without object in the bucket")
	}
	// Objects no record knows: a replica's record may land a moment after
	// its object, so read the record again now.
	for _, d := range unknown {
		if _, found, err := blobRecord(x, d); err != nil {
			return fmt.Errorf("fsck: %w", err)
		} else if found {
			continue
		}
		problem(d, "", "object no index record knows")
		if !repair {
			continue
		}
		now := time.Now()
		err := x.Update(ctx, func(tx index.Txn) error {
			if _, err := tx.Blob(d); !errors.Is(err, index.ErrNotFound) {
				return err
			}
			return tx.PutBlob(index.BlobRecord{Digest: d, Size: objects[d], Created: now, LastAccess: now, Origin: index.OriginRecovered})
		})
		if err != nil {
			return fmt.Errorf("fsck: recording object %s: %w", d, err)
		}
		rep.Repaired++
	}
	if repair {
		n, err := dropRecords(ctx, x, append(gone, missing...))
		if err != nil {
			return err
		}
		rep.Repaired += n
	}

	u, err := st.Unfinished(ctx)
	if err != nil {
		return fmt.Errorf("fsck: %w", err)
	}
	rep.Uploads = u
	if u.Stale > 0 {
		problem("", "", fmt.Sprintf("%d unfinished multipart uploads older than %s (replicas killed mid-upload)", u.Stale, rep.Grace))
		if repair {
			n, err := st.CleanTemp()
			rep.Swept = n
			if err != nil {
				return fmt.Errorf("fsck: %w", err)
			}
			rep.Repaired++
		}
	}
	return nil
}

// dropRecords drops the records of ds and the manifests stored under
// them, and returns how many records it dropped.
func dropRecords(ctx context.Context, x index.Index, ds []oci.Digest) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	set := map[oci.Digest]bool{}
	for _, d := range ds {
		set[d] = true
	}
	type repoManifest struct {
		repo string
		d    oci.Digest
	}
	var ms []repoManifest
	err := x.View(func(tx index.Txn) error {
		return tx.EachManifest("", func(repo string, r index.ManifestRecord) error {
			if set[r.Digest] {
				ms = append(ms, repoManifest{repo, r.Digest})
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("fsck: listing manifests: %w", err)
	}
	for _, m := range ms {
		err := x.Update(ctx, func(tx index.Txn) error { return tx.DeleteManifest(m.repo, m.d) })
		if err != nil && !errors.Is(err, index.ErrNotFound) {
			return 0, fmt.Errorf("fsck: dropping manifest %s of %s: %w", m.d, m.repo, err)
		}
	}
	dropped, err := x.DeleteBlobs(ctx, ds)
	if err != nil {
		return len(dropped), fmt.Errorf("fsck: dropping records of missing or corrupt objects: %w", err)
	}
	return len(ds), nil
}
