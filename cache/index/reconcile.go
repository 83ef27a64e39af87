package index

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// ReconcileReport says what reconciliation changed.
type ReconcileReport struct {
	TempFilesRemoved  int
	RecordsDropped    int // blob records whose file is gone
	ManifestsDropped  int // manifests whose bytes are gone
	FilesIndexed      int // files the index had lost, recorded again
	BlobsOnDisk       int
	BytesOnDisk       int64
	UnrecognizedFiles []string
}

// Reconcile makes the index agree with the files, at start, before
// serving: temp files of interrupted writes are removed, records of blobs
// whose file vanished are dropped (with their manifests and links, so no
// manifest is served whose bytes are gone), and verified files the index
// lost are recorded again (unlinked: a client pushing them again links them).
func Reconcile(ctx context.Context, x Index, s storage.BlobStore) (ReconcileReport, error) {
	var rep ReconcileReport
	n, err := s.CleanTemp()
	if err != nil {
		return rep, fmt.Errorf("reconcile: removing temp files: %w", err)
	}
	rep.TempFilesRemoved = n
	onDisk := map[oci.Digest]int64{}
	err = s.Walk(func(d oci.Digest, size int64) error {
		onDisk[d] = size
		rep.BlobsOnDisk++
		rep.BytesOnDisk += size
		return ctx.Err()
	}, func(p string) { rep.UnrecognizedFiles = append(rep.UnrecognizedFiles, p) })
	if err != nil {
		return rep, fmt.Errorf("reconcile: walking blob files: %w", err)
	}
	var missing []oci.Digest
	known := map[oci.Digest]bool{}
	err = x.View(func(tx Txn) error {
		return tx.EachBlob(func(r BlobRecord) error {
			known[r.Digest] = true
			if _, ok := onDisk[r.Digest]; !ok {
				missing = append(missing, r.Digest)
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: listing blob records: %w", err)
	}
	type repoManifest struct {
		repo string
		d    oci.Digest
	}
	var lostManifests []repoManifest
	err = x.View(func(tx Txn) error {
		return tx.EachManifest("", func(repo string, r ManifestRecord) error {
			if _, ok := onDisk[r.Digest]; !ok {
				lostManifests = append(lostManifests, repoManifest{repo, r.Digest})
			}
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: listing manifest records: %w", err)
	}
	for _, m := range lostManifests {
		if err := x.Update(ctx, func(tx Txn) error { return tx.DeleteManifest(m.repo, m.d) }); err != nil && !errors.Is(err, ErrNotFound) {
			return rep, fmt.Errorf("reconcile: dropping manifest %s of %s, whose file is gone: %w", m.d, m.repo, err)
		}
		rep.ManifestsDropped++
	}
	// A crash of a busy cache can leave many of either; one transaction
	// per blob would make start-up take minutes.
	dropped, err := x.DeleteBlobs(ctx, missing)
	rep.RecordsDropped += len(dropped)
	if err != nil {
		return rep, fmt.Errorf("reconcile: dropping records of blobs whose file is gone: %w", err)
	}
	var lost []oci.Digest
	for d := range onDisk {
		if !known[d] {
			lost = append(lost, d)
		}
	}
	now := time.Now()
	_, err = batches(ctx, len(lost), func(lo, hi int) ([]struct{}, error) {
		err := x.Update(ctx, func(tx Txn) error {
			for _, d := range lost[lo:hi] {
				if err := tx.PutBlob(BlobRecord{Digest: d, Size: onDisk[d], Created: now, LastAccess: now, Origin: OriginRecovered}); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			rep.FilesIndexed += hi - lo
		}
		return nil, err
	})
	if err != nil {
		return rep, fmt.Errorf("reconcile: recording blob files the index lost: %w", err)
	}
	return rep, nil
}

// FsckProblem is one inconsistency found by Fsck.
type FsckProblem struct {
	Digest oci.Digest
	Path   string
	What   string
}

// FsckReport summarizes a check.
type FsckReport struct {
	Checked  int
	Bytes    int64
	Problems []FsckProblem
	Repaired int
}

// FsckStore is a blob store fsck can repair: it names a blob's location
// in its messages and moves corrupt blobs aside rather than deleting them.
type FsckStore interface {
	storage.BlobStore
	BlobPath(d oci.Digest) string
	Quarantine(path string) error
}

var _ FsckStore = (*storage.Store)(nil)

// Fsck re-hashes every blob file and compares it with its name and its
// index record. With repair, corrupt files are moved to quarantine/ and
// their records dropped (Reconcile then cleans the manifests using them).
// progress, when set, is called after each blob with bytes checked so far.
func Fsck(ctx context.Context, x Index, s FsckStore, repair bool, progress func(done, total int64)) (FsckReport, error) {
	var rep FsckReport
	type blob struct {
		d    oci.Digest
		size int64
	}
	var blobs []blob
	var total int64
	err := s.Walk(func(d oci.Digest, size int64) error {
		blobs = append(blobs, blob{d, size})
		total += size
		return nil
	}, func(p string) {
		rep.Problems = append(rep.Problems, FsckProblem{Path: p, What: "file name is not a digest"})
	})
	if err != nil {
		return rep, fmt.Errorf("fsck: walking blob files: %w", err)
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		ok, err := s.Verify(b.d)
		if err != nil {
			return rep, err
		}
		rep.Checked++
		rep.Bytes += b.size
		if progress != nil {
			progress(rep.Bytes, total)
		}
		var rec BlobRecord
		recErr := x.View(func(tx Txn) error { var e error; rec, e = tx.Blob(b.d); return e })
		switch {
		case !ok:
			rep.Problems = append(rep.Problems, FsckProblem{Digest: b.d, Path: s.BlobPath(b.d), What: "content does not match its digest"})
			if repair {
				if err := s.Quarantine(s.BlobPath(b.d)); err != nil {
					return rep, fmt.Errorf("fsck: quarantining corrupt blob %s: %w", b.d, err)
				}
				if err := x.Update(ctx, func(tx Txn) error { return tx.DeleteBlob(b.d) }); err != nil {
					return rep, err
				}
				rep.Repaired++
			}
		case recErr == nil && rec.Size != b.size:
			rep.Problems = append(rep.Problems, FsckProblem{Digest: b.d, Path: s.BlobPath(b.d), What: fmt.Sprintf("index says %d bytes, file has %d", rec.Size, b.size)})
			if repair {
				rec.Size = b.size
				if err := x.Update(ctx, func(tx Txn) error { return tx.PutBlob(rec) }); err != nil {
					return rep, err
				}
				rep.Repaired++
			}
		}
	}
	if repair {
		if _, err := Reconcile(ctx, x, s); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
