package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/minio/minio-go/v7"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// New's errors wrap one of these, so `wharf serve` and `wharf config
// check` can tell the cases apart with errors.Is; the message itself
// already says what to fix.
var (
	// ErrUnreachable: no answer from the endpoint (refused, DNS, TLS, timeout).
	ErrUnreachable = errors.New("S3 endpoint unreachable")
	// ErrNoBucket: the server answers, but the bucket does not exist.
	ErrNoBucket = errors.New("S3 bucket does not exist")
	// ErrAccessDenied: unknown access key, wrong secret, or a key without
	// the rights the store needs.
	ErrAccessDenied = errors.New("S3 access denied")
)

// check lists one key under the prefix: the cheapest request that needs
// the endpoint, the bucket, valid credentials and the right to list, and
// whose error body (unlike a HEAD's) names what is wrong.
func (s *Store) check(ctx context.Context, c *minio.Client) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var err error
	for obj := range c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, MaxKeys: 1}) {
		err = obj.Err
		break
	}
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	where := fmt.Sprintf("bucket %q at %s", s.bucket, s.endpoint)
	switch {
	case resp.Code == minio.NoSuchBucket || resp.Code == "NoSuchBucket":
		return fmt.Errorf("%w: %s: create it, or correct storage.s3.bucket", ErrNoBucket, where)
	// versitygw answers an unknown key with its admin API's code.
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "XAdminUserNotFound":
		return fmt.Errorf("%w: %s does not know the access key %q: correct storage.s3.access_key", ErrAccessDenied, s.endpoint, accessKey(c))
	case resp.Code == "SignatureDoesNotMatch":
		return fmt.Errorf("%w: %s: the secret key does not match the access key %q: correct storage.s3.secret_key", ErrAccessDenied, where, accessKey(c))
	case resp.Code == "AuthorizationHeaderMalformed" || resp.Code == "InvalidRegion":
		return fmt.Errorf("S3 %s: the region is wrong (%s): correct storage.s3.region", where, resp.Message)
	case resp.Code == "AccessDenied" || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %s: the access key %q may not list it; it needs to list the bucket and its multipart uploads, and to get, put and delete objects and abort multipart uploads under %q",
			ErrAccessDenied, where, accessKey(c), s.prefix)
	case isNetwork(err):
		return fmt.Errorf("%w: %s: %v: is the S3 server running, and is storage.s3.endpoint right?", ErrUnreachable, s.endpoint, err)
	}
	return fmt.Errorf("S3: checking %s: %w", where, err)
}

func accessKey(c *minio.Client) string {
	v, err := c.GetCreds()
	if err != nil {
		return "?"
	}
	return v.AccessKeyID
}

// isNetwork reports a failure to get any answer from the server.
func isNetwork(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &oe)
}

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == minio.NoSuchKey || resp.Code == "NoSuchKey" || resp.Code == "NotFound" ||
		(resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket)
}

// fail is BLOB_UNKNOWN for a missing key; any other failure says which
// operation on which blob failed, keeping a full bucket recognisable as
// storage.ErrNoSpace.
func (s *Store) fail(op string, d oci.Digest, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %s", oci.ErrBlobUnknown, d)
	}
	return fmt.Errorf("storage: s3: %s %s: %w", op, d, classify(err))
}

// classify turns a full server or an exceeded quota into
// storage.ErrNoSpace, so a cache fill evicts rather than just failing.
// AWS has neither; MinIO and versitygw (507 InsufficientStorage, its
// posix backend's ENOSPC) do.
func classify(err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case isNetwork(err), resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusInternalServerError,
		resp.Code == "SlowDown", resp.Code == "ServiceUnavailable":
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	case resp.StatusCode == http.StatusInsufficientStorage,
		resp.Code == "XMinioStorageFull", resp.Code == "StorageFull", resp.Code == "InsufficientStorage",
		resp.Code == "XMinioAdminBucketQuotaExceeded", resp.Code == "QuotaExceeded":
		return fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
	}
	return err
}
