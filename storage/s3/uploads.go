package s3

import (
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

// Unfinished describes the multipart uploads of blobs that were
// neither completed nor aborted: the leftovers of replicas killed
// mid-upload, or uploads in progress right now, which no listing can tell
// apart, hence the grace period. fsck reports it.
type Unfinished struct {
	Count  int       // all unfinished uploads
	Stale  int       // of which older than the grace period: CleanTemp aborts these
	Oldest time.Time // when the oldest started (the server's clock); zero if none
}

// CleanTemp aborts the unfinished multipart uploads of blobs that are
// older than Config.UploadGrace, and returns how many it aborted.
// Unlike the filesystem's temp files, these are shared by every replica
// of the bucket, and a young one may be another replica's Put under way:
// it is left alone.
func (s *Store) CleanTemp() (removed int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	return s.SweepUploads(ctx, s.grace)
}

// SweepUploads aborts the unfinished multipart uploads of blobs that
// started more than olderThan ago, by the server's clock as this
// machine sees it: a server clock behind this one by more than olderThan
// would let a young upload look old, which the grace period's size covers.
func (s *Store) SweepUploads(ctx context.Context, olderThan time.Duration) (removed int, err error) {
	cutoff := time.Now().Add(-olderThan)
	err = s.eachUpload(ctx, func(u minio.ObjectMultipartInfo) error {
		if !u.Initiated.Before(cutoff) {
			return nil
		}
		if err := s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID); err != nil && !isNoSuchUpload(err) {
			return fmt.Errorf("storage: s3: aborting the unfinished upload of %s started %s: %w", u.Key, u.Initiated.Format(time.RFC3339), err)
		}
		removed++
		return nil
	})
	return removed, err
}

// Unfinished counts the unfinished multipart uploads of blobs.
func (s *Store) Unfinished(ctx context.Context) (Unfinished, error) {
	var rep Unfinished
	cutoff := time.Now().Add(-s.grace)
	err := s.eachUpload(ctx, func(u minio.ObjectMultipartInfo) error {
		rep.Count++
		if u.Initiated.Before(cutoff) {
			rep.Stale++
		}
		if rep.Oldest.IsZero() || u.Initiated.Before(rep.Oldest) {
			rep.Oldest = u.Initiated
		}
		return nil
	})
	return rep, err
}

// eachUpload calls fn for every unfinished multipart upload of the blob
// family, page by page. Only blobs/: with an empty prefix, another
// deployment's PREFIX/blobs/ must not be swept by this one.
func (s *Store) eachUpload(ctx context.Context, fn func(minio.ObjectMultipartInfo) error) error {
	var keyMarker, idMarker string
	dir := s.blobsDir()
	for {
		res, err := s.core.ListMultipartUploads(ctx, s.bucket, dir, keyMarker, idMarker, "", 1000)
		if err != nil {
			return fmt.Errorf("storage: s3: listing unfinished uploads under %s in bucket %s: %w", dir, s.bucket, err)
		}
		for _, u := range res.Uploads {
			if err := fn(u); err != nil {
				return err
			}
		}
		if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker) {
			return nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// isNoSuchUpload: another replica's sweep, or the Put itself, got there first.
func isNoSuchUpload(err error) bool {
	return minio.ToErrorResponse(err).Code == "NoSuchUpload"
}
