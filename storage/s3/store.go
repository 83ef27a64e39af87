// Package s3 keeps wharf's blobs in an S3-compatible object store (AWS,
// MinIO, versitygw, Ceph RGW, ...): the storage.BlobStore of cluster mode
// (issue #13), where several replicas share one bucket and keep their
// metadata in PostgreSQL.
//
// # Key layout
//
// Every key the store writes starts with the configured prefix (empty, or
// ending in "/") followed by a key family:
//
//	PREFIX blobs/ALG/HH/HEX    a committed, verified blob
//	                           (ALG sha256 or sha512, HH the first two hex
//	                           digits of HEX, its digest's hex part)
//
// S3 has no directories, but POSIX-backed servers (versitygw's posix
// backend, MinIO on a filesystem) map "/" to them and refuse, with 409, a
// key that is the "folder" of another key: prod/a/b next to prod/a/b/c.
// So the layout keeps one rule, which every future family (upload
// sessions, quarantine, ...) must keep too: within a family, every key has
// the same number of segments, so a segment is either always a leaf or
// always a folder, and a family's name is never itself a key. Families
// are told apart by their first segment, and Walk lists only blobs/.
//
// # Visibility
//
// A blob becomes visible only by a request that succeeds after its bytes
// were hashed and counted: a single PutObject of a blob held whole in
// memory, or the CompleteMultipartUpload of a larger one. A failure before
// that aborts the multipart upload; a replica killed mid-upload leaves an
// unfinished upload, which S3 never shows as an object, and CleanTemp
// sweeps it once it is older than the grace period.
package s3

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// Defaults of the tunables in Config.
const (
	// DefaultPartSize bounds a Put's memory (two parts) and, at S3's
	// limit of 10,000 parts, the largest blob: 160 GiB.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part other than the last.
	MinPartSize = 5 << 20
	// DefaultUploadGrace is how old an unfinished multipart upload must be
	// before CleanTemp aborts it: longer than any single blob upload
	// (100 GiB at 10 MB/s is three hours), since another replica may be
	// uploading right now, and long enough to absorb clock skew between a
	// replica and the S3 server, whose clock dates the upload.
	DefaultUploadGrace = 24 * time.Hour
	// maxParts is S3's limit on the parts of one multipart upload.
	maxParts = 10_000
	// checkTimeout bounds New's check that the bucket can be reached.
	checkTimeout = 30 * time.Second
	// cleanupTimeout bounds an abort or a sweep run without a caller's
	// context (after a cancelled Put, or from CleanTemp).
	cleanupTimeout = 2 * time.Minute
)

// Config says where the blobs live and how to reach them.
type Config struct {
	// Endpoint is the server's URL, http:// or https:// with a host and
	// an optional port, and no path; empty means AWS S3. With an endpoint,
	// buckets are addressed by path (http://host/bucket/key): local and
	// self-hosted servers rarely resolve virtual hosts (bucket.host).
	Endpoint string
	// Region is the bucket's region; empty asks the server (AWS) or
	// means us-east-1 (most other servers).
	Region string
	// Bucket must exist: New does not create it.
	Bucket string
	// Prefix puts every key under PREFIX/ (a trailing "/" is added), so
	// several deployments can share a bucket.
	Prefix string
	// AccessKey and SecretKey sign requests (AWS signature v4).
	AccessKey, SecretKey string

	// PartSize is the multipart part size and the largest blob sent in
	// one PutObject; 0 means DefaultPartSize, and it must be at least
	// MinPartSize. Each Put holds at most two parts in memory, so n
	// concurrent Puts hold 2n parts.
	PartSize int64
	// UploadGrace: CleanTemp aborts only unfinished multipart uploads
	// older than this; 0 means DefaultUploadGrace.
	UploadGrace time.Duration
	// MaxRetries is how many times a failed request is tried; 0 means
	// minio-go's default (10).
	MaxRetries int
	// Transport carries the requests (a custom CA, a proxy); nil means
	// minio-go's default, which gives up on a server that sends no
	// response header for a minute. Stat, Open, Delete, Verify and Walk
	// have no context (storage.BlobStore's signatures), so a Transport
	// should keep such a limit.
	Transport http.RoundTripper
}

// Store is a storage.BlobStore on an S3 bucket.
type Store struct {
	claims   storage.Claims
	shared   storage.SharedClaims // the other replicas' writes and deletes; nil: none
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string // for messages
	partSize int64
	parts    sync.Pool // *[]byte of partSize: a Put takes one or two
	grace    time.Duration
}

var _ storage.BlobStore = (*Store)(nil)

// New connects to the bucket and checks at once that it can be listed
// with the credentials, so a wrong endpoint, bucket or key shows at start
// with an error that says what to fix (see ErrUnreachable, ErrNoBucket,
// ErrAccessDenied) rather than at the first push.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("storage: s3: no bucket configured")
	}
	host, secure, lookup, where, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	part := cfg.PartSize
	if part == 0 {
		part = DefaultPartSize
	}
	if part < MinPartSize || part > 5<<30 {
		return nil, fmt.Errorf("storage: s3: part size %d: must be between %d (5 MiB) and 5 GiB", part, MinPartSize)
	}
	grace := cfg.UploadGrace
	if grace <= 0 {
		grace = DefaultUploadGrace
	}
	creds, err := credentialsFor(cfg)
	if err != nil {
		return nil, err
	}
	opts := func(retries int) *minio.Options {
		return &minio.Options{
			Creds:        creds,
			Secure:       secure,
			Region:       cfg.Region,
			BucketLookup: lookup,
			Transport:    cfg.Transport,
			MaxRetries:   retries,
		}
	}
	client, err := minio.New(host, opts(cfg.MaxRetries))
	if err != nil {
		return nil, fmt.Errorf("storage: s3: endpoint %s: %w", where, err)
	}
	s := &Store{
		client: client, core: minio.Core{Client: client},
		bucket: cfg.Bucket, prefix: normalizePrefix(cfg.Prefix), endpoint: where,
		partSize: part, grace: grace,
	}
	s.parts.New = func() any { b := make([]byte, part); return &b }
	// The check tries once: at start a refused connection is an answer,
	// and ten retries would only delay it.
	checker, err := minio.New(host, opts(1))
	if err != nil {
		return nil, fmt.Errorf("storage: s3: endpoint %s: %w", where, err)
	}
	if err := s.check(ctx, checker); err != nil {
		return nil, err
	}
	return s, nil
}

// credentialsFor is cfg's static keys or, with neither set, the AWS
// credential chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
// AWS_SESSION_TOKEN), the shared credentials and config files, then the
// role of an EC2 instance, an ECS task or an EKS pod (IRSA). The chain
// must find credentials now: anonymous requests would fail later with a
// less helpful error.
func credentialsFor(cfg Config) (*credentials.Credentials, error) {
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), nil
	}
	client := &http.Client{Transport: cfg.Transport, Timeout: checkTimeout}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{Client: client, Region: cfg.Region},
	})
	v, err := creds.GetWithContext(&credentials.CredContext{Client: client})
	if err == nil && v.AccessKeyID != "" {
		return creds, nil
	}
	why := ""
	if err != nil {
		why = " (" + err.Error() + ")"
	}
	return nil, fmt.Errorf("%w: storage.s3.access_key is not set, and the AWS credential chain found no credentials%s: set access_key and secret_key, or give wharf AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared credentials file or an instance or pod role",
		ErrAccessDenied, why)
}

// parseEndpoint splits Endpoint into what minio-go takes.
func parseEndpoint(endpoint string) (host string, secure bool, lookup minio.BucketLookupType, where string, err error) {
	if endpoint == "" {
		return "s3.amazonaws.com", true, minio.BucketLookupAuto, "AWS S3", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, 0, "", fmt.Errorf("storage: s3: endpoint %q: want http://host[:port] or https://host[:port]", endpoint)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return "", false, 0, "", fmt.Errorf("storage: s3: endpoint %q: must not have a path; put the bucket in bucket and key prefixes in prefix", endpoint)
	}
	return u.Host, u.Scheme == "https", minio.BucketLookupPath, u.Scheme + "://" + u.Host, nil
}

func normalizePrefix(p string) string {
	p = strings.TrimLeft(p, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// blobsDir is the blob family's key prefix.
func (s *Store) blobsDir() string { return s.prefix + "blobs/" }

// key is where a committed blob lives. Digests are validated before they
// reach here, so the hex part never contains a "/".
func (s *Store) key(d oci.Digest) string {
	h := d.Hex()
	return s.blobsDir() + d.Algorithm() + "/" + h[:2] + "/" + h
}

// Bucket is the bucket the store keeps its keys in (for messages).
func (s *Store) Bucket() string { return s.bucket }

// Prefix is the normalised key prefix: empty or ending in "/".
func (s *Store) Prefix() string { return s.prefix }

// Stat returns a committed blob's size.
func (s *Store) Stat(d oci.Digest) (int64, error) {
	info, err := s.client.StatObject(context.Background(), s.bucket, s.key(d), minio.StatObjectOptions{})
	if err != nil {
		return 0, s.fail("stat", d, err)
	}
	return info.Size, nil
}

// Open opens a committed blob for reading. The Blob is a *minio.Object:
// a Seek or ReadAt turns into a Range request, so a ranged GET or a
// resumed fill reads only what it needs. Open asks for the blob's size
// at once (a HEAD), so a missing blob fails here rather than at the
// first Read.
func (s *Store) Open(d oci.Digest) (storage.Blob, int64, error) {
	obj, err := s.client.GetObject(context.Background(), s.bucket, s.key(d), minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, s.fail("open", d, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, 0, s.fail("open", d, err)
	}
	return obj, info.Size, nil
}

// Delete removes a committed blob; a missing blob is not an error (S3
// answers a delete of a missing key with success).
func (s *Store) Delete(d oci.Digest) error {
	err := s.client.RemoveObject(context.Background(), s.bucket, s.key(d), minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return s.fail("delete", d, err)
	}
	return nil
}

// Verify re-reads a committed blob and reports whether it hashes to d.
func (s *Store) Verify(d oci.Digest) (bool, error) { return storage.VerifyBlob(s, d) }

// Walk calls fn for every committed blob, and bad for every key under
// blobs/ that is not where key() would put a blob (fsck reports it).
// Keys of other families, and outside the prefix, are not looked at.
func (s *Store) Walk(fn func(d oci.Digest, size int64) error, bad func(path string)) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // stops the listing when fn fails
	dir := s.blobsDir()
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("storage: s3: listing %s in bucket %s: %w", dir, s.bucket, obj.Err)
		}
		parts := strings.Split(strings.TrimPrefix(obj.Key, dir), "/")
		if len(parts) != 3 {
			bad(obj.Key)
			continue
		}
		d, err := oci.ParseDigest(parts[0] + ":" + parts[2])
		// The fan-out segment must be exactly where key() puts the blob,
		// or the digest reported here could not be opened.
		if err != nil || parts[1] != parts[2][:2] {
			bad(obj.Key)
			continue
		}
		if err := fn(d, obj.Size); err != nil {
			return err
		}
	}
	return nil
}

// SetSharedClaims makes HoldBlob and TryCollectBlob also keep writes and
// deletes of a digest apart across the processes c covers (the replicas
// of a cluster). Call it before the store is used.
func (s *Store) SetSharedClaims(c storage.SharedClaims) { s.shared = c }

// HoldBlob marks d as being written until release is called, waiting
// while a collection of d is under way here or, with SetSharedClaims, on
// another replica.
func (s *Store) HoldBlob(d oci.Digest) (release func()) {
	local := s.claims.Hold(d)
	if s.shared == nil {
		return local
	}
	shared := s.shared.HoldWrite(d)
	return func() { shared(); local() }
}

// TryCollectBlob claims d for deletion unless this process, or with
// SetSharedClaims another replica, is writing or deleting it.
func (s *Store) TryCollectBlob(d oci.Digest) (release func(), ok bool) {
	local, ok := s.claims.TryCollect(d)
	if !ok || s.shared == nil {
		return local, ok
	}
	shared, ok := s.shared.TryCollect(d)
	if !ok {
		local()
		return nil, false
	}
	return func() { shared(); local() }, true
}

// SpaceLeft reports unlimited free space and no reserve. An object store
// has no free-space figure to ask for, and the reserve the filesystem
// keeps protects Badger's memory-mapped files on the same disk, which S3
// does not share. Callers refuse a write when free < reserve, which never
// holds here; a bucket that is really full (a quota) fails the write
// itself, reported as storage.ErrNoSpace. Do not add to free: it is
// math.MaxInt64.
func (s *Store) SpaceLeft() (free, reserve int64, err error) { return math.MaxInt64, 0, nil }

// Presign returns a URL that GETs the blob d without credentials for ttl
// (at most 7 days), for redirecting blob downloads to the store
// (storage.s3.redirect). It is computed locally: it does not check that
// the blob exists.
func (s *Store) Presign(ctx context.Context, d oci.Digest, ttl time.Duration) (*url.URL, error) {
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.key(d), ttl, nil)
	if err != nil {
		return nil, fmt.Errorf("storage: s3: presign %s: %w", d, err)
	}
	return u, nil
}
