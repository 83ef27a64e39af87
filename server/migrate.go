package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/storage/s3"
)

// MigrateReport says what Migrate copied and what it found already there.
type MigrateReport struct {
	Blobs        int   // blob files in the data dir
	Bytes        int64 // their total size
	BlobsCopied  int
	BytesCopied  int64
	BlobsPresent int // already in the bucket with the same size: not copied
	// Records counts index records by kind (blobs, links, manifests, tags,
	// referrers, pins, tag checks) written into the database; Present
	// those the database already had, left as they are.
	Records map[string]int
	Present map[string]int
	// Orphans are blob records of the data dir whose file is gone: not
	// copied (fsck --repair drops them).
	Orphans int
	// Uploads are upload sessions, never copied: a client resumes an
	// upload on the replica that holds its bytes.
	Uploads int
}

// MigrateProgress is called after each blob with the bytes and blobs
// done so far and the totals.
type MigrateProgress func(bytesDone, bytesTotal int64, blobsDone, blobsTotal int)

// migrateBatch is how many index records one transaction writes.
const migrateBatch = 500

// Migrate copies the single-box data dir dataDir (filesystem blobs and the
// Badger index), which no server may be using, into the bucket and the
// database of cfg's cluster mode. Blobs go first, each streamed and
// verified by the S3 store's Put, skipping those already in the bucket;
// then index records, in batches, skipping those the database already
// has. So it is idempotent and, after an interruption, resumes where it
// stopped: records are written only for blobs already in the bucket.
func Migrate(ctx context.Context, dataDir string, cfg *config.Config, log *slog.Logger, progress MigrateProgress) (MigrateReport, error) {
	rep := MigrateReport{Records: map[string]int{}, Present: map[string]int{}}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Clustered() {
		return rep, errors.New("the target config has no storage.s3 and index.postgres (cluster mode)")
	}
	lock, err := lockDir(dataDir)
	if err != nil {
		return rep, err
	}
	defer lock.Close()
	local, err := storage.Open(dataDir)
	if err != nil {
		return rep, err
	}
	src, err := index.Open(filepath.Join(dataDir, "index"), index.Options{Logger: log})
	if err != nil {
		return rep, err
	}
	defer src.Close()
	sc, err := s3Config(cfg.Storage.S3)
	if err != nil {
		return rep, err
	}
	octx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	remote, err := s3.New(octx, sc)
	if err != nil {
		return rep, fmt.Errorf("storage.s3: %w", err)
	}
	dst, err := pgindex.Open(octx, cfg.Index.Postgres, pgindex.Options{Logger: log, MaxConns: 2})
	if err != nil {
		return rep, fmt.Errorf("index.postgres: %w", err)
	}
	defer dst.Close()

	inBucket, err := migrateBlobs(ctx, local, remote, &rep, progress)
	if err != nil {
		return rep, err
	}
	return rep, migrateRecords(ctx, src, dst, inBucket, &rep)
}

// migrateBlobs copies every blob file the bucket lacks and returns the
// digests the bucket now holds.
func migrateBlobs(ctx context.Context, local *storage.Store, remote *s3.Store, rep *MigrateReport, progress MigrateProgress) (map[oci.Digest]bool, error) {
	type blob struct {
		d    oci.Digest
		size int64
	}
	var blobs []blob
	err := local.Walk(func(d oci.Digest, size int64) error {
		blobs = append(blobs, blob{d, size})
		rep.Blobs++
		rep.Bytes += size
		return nil
	}, func(string) {})
	if err != nil {
		return nil, fmt.Errorf("listing the blob files: %w", err)
	}
	inBucket := make(map[oci.Digest]bool, len(blobs))
	var done int64
	for i, b := range blobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if size, err := remote.Stat(b.d); err == nil && size == b.size {
			rep.BlobsPresent++
		} else {
			if err != nil && !errors.Is(err, oci.ErrBlobUnknown) {
				return nil, fmt.Errorf("asking the bucket for %s: %w", b.d, err)
			}
			if err := copyBlob(ctx, local, remote, b.d, b.size); err != nil {
				return nil, err
			}
			rep.BlobsCopied++
			rep.BytesCopied += b.size
		}
		inBucket[b.d] = true
		done += b.size
		if progress != nil {
			progress(done, rep.Bytes, i+1, len(blobs))
		}
	}
	return inBucket, nil
}

func copyBlob(ctx context.Context, local *storage.Store, remote *s3.Store, d oci.Digest, size int64) error {
	f, _, err := local.Open(d)
	if err != nil {
		return fmt.Errorf("opening blob %s: %w", d, err)
	}
	defer f.Close()
	if _, err := remote.Put(ctx, d, size, f); err != nil {
		if errors.Is(err, oci.ErrDigestInvalid) || errors.Is(err, oci.ErrSizeInvalid) {
			return fmt.Errorf("blob %s is corrupt in the data dir (run 'wharf fsck --repair' on it first): %w", d, err)
		}
		return fmt.Errorf("copying blob %s into the bucket: %w", d, err)
	}
	return nil
}

// recordWrite writes one record into the database unless it has it.
type recordWrite struct {
	kind string
	fn   func(tx index.Txn) (present bool, err error)
}

// migrateRecords reads every record of src (but upload sessions) and
// writes, in batches, those dst lacks.
func migrateRecords(ctx context.Context, src index.Index, dst index.Index, inBucket map[oci.Digest]bool, rep *MigrateReport) error {
	var ws []recordWrite
	add := func(kind string, fn func(tx index.Txn) (bool, error)) { ws = append(ws, recordWrite{kind, fn}) }
	err := src.View(func(tx index.Txn) error {
		if err := tx.EachBlob(func(r index.BlobRecord) error {
			if !inBucket[r.Digest] {
				rep.Orphans++
				return nil
			}
			add("blobs", func(tx index.Txn) (bool, error) {
				if _, err := tx.Blob(r.Digest); err == nil || !errors.Is(err, index.ErrNotFound) {
					return err == nil, err
				}
				return false, tx.PutBlob(r)
			})
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachLink(func(repo string, d oci.Digest) error {
			if !inBucket[d] {
				return nil
			}
			add("links", func(tx index.Txn) (bool, error) {
				if ok, err := tx.BlobLinked(repo, d); ok || err != nil {
					return ok, err
				}
				return false, tx.LinkBlob(repo, d)
			})
			return nil
		}); err != nil {
			return err
		}
		type subj struct {
			repo string
			d    oci.Digest
		}
		var subjects []subj
		if err := tx.EachManifest("", func(repo string, m index.ManifestRecord) error {
			if !inBucket[m.Digest] {
				return nil
			}
			if m.Subject != nil {
				subjects = append(subjects, subj{repo, *m.Subject})
			}
			add("manifests", func(tx index.Txn) (bool, error) {
				if _, err := tx.Manifest(repo, m.Digest); err == nil || !errors.Is(err, index.ErrNotFound) {
					return err == nil, err
				}
				return false, tx.PutManifest(repo, m)
			})
			return nil
		}); err != nil {
			return err
		}
		seen := map[subj]bool{}
		for _, s := range subjects {
			if seen[s] {
				continue
			}
			seen[s] = true
			descs, err := tx.Referrers(s.repo, s.d)
			if err != nil {
				return err
			}
			for _, desc := range descs {
				add("referrers", func(tx index.Txn) (bool, error) {
					have, err := tx.Referrers(s.repo, s.d)
					if err != nil {
						return false, err
					}
					for _, h := range have {
						if h.Digest == desc.Digest {
							return true, nil
						}
					}
					return false, tx.AddReferrer(s.repo, s.d, desc)
				})
			}
		}
		repos, err := tx.Repositories(-1, "")
		if err != nil {
			return err
		}
		for _, repo := range repos {
			tags, err := tx.Tags(repo, -1, "")
			if err != nil {
				return err
			}
			for _, tag := range tags {
				d, err := tx.Tag(repo, tag)
				if err != nil {
					return err
				}
				if !inBucket[d] {
					continue
				}
				add("tags", func(tx index.Txn) (bool, error) {
					if _, err := tx.Tag(repo, tag); err == nil || !errors.Is(err, index.ErrNotFound) {
						return err == nil, err
					}
					return false, tx.SetTag(repo, tag, d)
				})
				checked, err := tx.TagChecked(repo, tag)
				if errors.Is(err, index.ErrNotFound) || err == nil && checked.IsZero() {
					continue
				}
				if err != nil {
					return err
				}
				add("tag checks", func(tx index.Txn) (bool, error) {
					if t, err := tx.TagChecked(repo, tag); err == nil && !t.IsZero() || err != nil && !errors.Is(err, index.ErrNotFound) {
						return err == nil, err
					}
					return false, tx.SetTagChecked(repo, tag, checked)
				})
			}
		}
		pins, err := tx.PinRules()
		if err != nil {
			return err
		}
		for d, rules := range pins {
			if !inBucket[d] {
				continue
			}
			for _, rule := range rules {
				add("pins", func(tx index.Txn) (bool, error) {
					have, err := tx.PinsOf(d)
					if err != nil {
						return false, err
					}
					for _, h := range have {
						if h == rule {
							return true, nil
						}
					}
					return false, tx.Pin(d, rule)
				})
			}
		}
		return tx.EachUpload(func(index.UploadRecord) error { rep.Uploads++; return nil })
	})
	if err != nil {
		return fmt.Errorf("reading the data dir's index: %w", err)
	}
	for lo := 0; lo < len(ws); lo += migrateBatch {
		hi := min(lo+migrateBatch, len(ws))
		var written, present map[string]int
		err := dst.Update(ctx, func(tx index.Txn) error {
			// fn may run again after a conflict: count afresh each time.
			written, present = map[string]int{}, map[string]int{}
			for _, w := range ws[lo:hi] {
				had, err := w.fn(tx)
				if err != nil {
					return fmt.Errorf("%s: %w", w.kind, err)
				}
				if had {
					present[w.kind]++
				} else {
					written[w.kind]++
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("writing index records into the database: %w", err)
		}
		for k, n := range written {
			rep.Records[k] += n
		}
		for k, n := range present {
			rep.Present[k] += n
		}
	}
	return nil
}
