//go:build linux

package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wharf-registry/wharf/e2e/harness"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/storage/s3"
	"github.com/wharf-registry/wharf/storage/storagetest"
)

// partSize is S3's smallest, so multipart cases stay small.
const partSize = s3.MinPartSize

// server is one versitygw shared by the subtests of TestS3, each in a
// bucket or prefix of its own.
type server struct {
	g     *harness.VersityGW
	names atomic.Int64
	// tr carries every store's requests, so a test stopping the server
	// can close their idle connections first: versitygw waits for them
	// (10 s) before it exits.
	tr *http.Transport
}

func (e *server) name(kind string) string { return fmt.Sprintf("%s-%d", kind, e.names.Add(1)) }

// config is a fresh prefix in bucket "wharf".
func (e *server) config() s3.Config {
	return s3.Config{Endpoint: e.g.Endpoint, Region: e.g.Region, Bucket: "wharf", Prefix: e.name("t") + "/",
		AccessKey: e.g.AccessKey, SecretKey: e.g.SecretKey, PartSize: partSize, Transport: e.tr}
}

// stop stops the server, as a crash of it or of the network would.
func (e *server) stop(t *testing.T) {
	e.tr.CloseIdleConnections()
	if err := e.g.Stop(); err != nil {
		t.Logf("stopping versitygw: %v", err)
	}
}

func (e *server) open(t testing.TB, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// core talks to the server directly, as another client would.
func (e *server) core(t testing.TB) minio.Core {
	t.Helper()
	c, err := minio.New(e.g.Addr(), &minio.Options{Creds: credentials.NewStaticV4(e.g.AccessKey, e.g.SecretKey, ""),
		Region: e.g.Region, BucketLookup: minio.BucketLookupPath, Transport: e.tr})
	if err != nil {
		t.Fatal(err)
	}
	return minio.Core{Client: c}
}

// TestS3 runs everything against one real S3 server. The subtests that
// stop the server come last.
func TestS3(t *testing.T) {
	e := &server{g: harness.StartVersityGW(t), tr: http.DefaultTransport.(*http.Transport).Clone()}
	defer e.tr.CloseIdleConnections()
	e.g.MakeBucket("wharf")
	t.Run("Conformance", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.BlobStore { return e.open(t, e.config()) })
	})
	t.Run("ConformanceNoPrefix", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.BlobStore {
			cfg := e.config()
			cfg.Bucket, cfg.Prefix = e.name("bucket"), ""
			e.g.MakeBucket(cfg.Bucket)
			return e.open(t, cfg)
		})
	})
	for _, c := range []struct {
		name string
		fn   func(*testing.T, *server)
	}{
		{"KeyLayout", testKeyLayout},
		{"WalkReportsBadKeys", testWalkBad},
		{"StartupErrors", testStartupErrors},
		{"CredentialChain", testCredentialChain},
		{"WrongDigestMultipart", testWrongDigestMultipart},
		{"CancelMidPut", testCancelMidPut},
		{"SweepUnfinished", testSweep},
		{"KilledBetweenParts", testKilled},
		{"Presign", testPresign},
		{"RangesPassThrough", testRanges},
		{"EmptyAndSHA512", testEmptyAndSHA512},
		{"MemoryFlat", testMemoryFlat},
		{"ServerStopped", testServerStopped},
		{"ServerStoppedMidPut", testStoppedMidPut},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, e) })
	}
}

// gen is a deterministic stream of n bytes that never exists whole in
// memory: the large-blob tests would otherwise measure their own buffer.
type gen struct {
	rng *rand.ChaCha8
	n   int64
	// at, if set, runs once when the stream passes byte atN.
	at  func()
	atN int64
}

func newGen(seed byte, n int64) *gen { return &gen{rng: rand.NewChaCha8([32]byte{seed}), n: n} }

func (g *gen) Read(p []byte) (int, error) {
	if g.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	if g.at != nil && int64(len(p)) >= g.atN {
		p = p[:g.atN]
	}
	n, _ := g.rng.Read(p)
	g.n -= int64(n)
	if g.at != nil {
		if g.atN -= int64(n); g.atN == 0 {
			at := g.at
			g.at = nil
			at()
		}
	}
	return n, nil
}

// digestOf hashes what newGen(seed, n) yields.
func digestOf(t testing.TB, seed byte, n int64) oci.Digest {
	t.Helper()
	h := oci.NewHash("sha256")
	if _, err := io.Copy(h, newGen(seed, n)); err != nil {
		t.Fatal(err)
	}
	return oci.FromHash("sha256", h)
}

// mustBeAbsent checks that d is visible nowhere and left no upload.
func mustBeAbsent(t *testing.T, s *s3.Store, d oci.Digest) {
	t.Helper()
	if _, err := s.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Stat %s = %v, want ErrBlobUnknown", d, err)
	}
	if err := s.Walk(func(got oci.Digest, _ int64) error {
		if got == d {
			t.Errorf("Walk lists %s", got)
		}
		return nil
	}, func(p string) { t.Errorf("Walk: bad entry %s", p) }); err != nil {
		t.Fatal(err)
	}
}

func unfinished(t *testing.T, s *s3.Store) s3.Unfinished {
	t.Helper()
	u, err := s.Unfinished(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testKeyLayout checks where keys land, with a prefix with and without
// its slash, and with none: the posix backend shows them as files.
func testKeyLayout(t *testing.T, e *server) {
	b := []byte("layout")
	d := oci.FromBytes(b)
	bucket := e.name("layout")
	e.g.MakeBucket(bucket)
	for _, c := range []struct{ prefix, dir string }{{"prod/", "prod/"}, {"stage", "stage/"}, {"/a/b/", "a/b/"}, {"", ""}} {
		cfg := e.config()
		cfg.Bucket, cfg.Prefix = bucket, c.prefix
		s := e.open(t, cfg)
		if s.Prefix() != c.dir {
			t.Errorf("Prefix(%q) = %q, want %q", c.prefix, s.Prefix(), c.dir)
		}
		if _, err := s.Put(context.Background(), d, int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(e.g.Dir, bucket, c.dir+"blobs/sha256/"+d.Hex()[:2]+"/"+d.Hex())
		if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, b) {
			t.Errorf("prefix %q: %s = %q, %v; want the blob", c.prefix, file, got, err)
		}
	}
	// With no prefix, the other deployments' prefixes are not blobs/: Walk
	// sees only its own blob.
	cfg := e.config()
	cfg.Bucket, cfg.Prefix = bucket, ""
	s := e.open(t, cfg)
	n := 0
	if err := s.Walk(func(oci.Digest, int64) error { n++; return nil }, func(p string) { t.Errorf("bad %s", p) }); err != nil || n != 1 {
		t.Errorf("Walk with no prefix: %d blobs, %v; want 1", n, err)
	}
}

func testWalkBad(t *testing.T, e *server) {
	cfg := e.config()
	s := e.open(t, cfg)
	good := oci.FromBytes([]byte("good"))
	if _, err := s.Put(context.Background(), good, 4, strings.NewReader("good")); err != nil {
		t.Fatal(err)
	}
	misplaced := oci.FromBytes([]byte("misplaced")).Hex()
	keys := []string{
		"blobs/sha256/zz/not-a-digest",
		"blobs/sha256/00/" + misplaced, // wrong fan-out
		"blobs/md5/" + misplaced[:2] + "/" + misplaced,
	}
	c := e.core(t)
	for _, k := range keys {
		if _, err := c.PutObject(context.Background(), cfg.Bucket, cfg.Prefix+k, strings.NewReader("x"), 1, "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var bad []string
	got := map[oci.Digest]int64{}
	if err := s.Walk(func(d oci.Digest, n int64) error { got[d] = n; return nil }, func(p string) { bad = append(bad, p) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[good] != 4 {
		t.Errorf("Walk blobs = %v, want only %s", got, good)
	}
	if len(bad) != len(keys) {
		t.Errorf("Walk bad = %q, want the %d misplaced keys", bad, len(keys))
	}
	stop := errors.New("stop")
	if err := s.Walk(func(oci.Digest, int64) error { return stop }, func(string) {}); !errors.Is(err, stop) {
		t.Errorf("Walk = %v, want fn's error", err)
	}
}

// testStartupErrors: each misconfiguration fails New with an error that
// errors.Is can classify and that names the setting to correct.
func testStartupErrors(t *testing.T, e *server) {
	for _, c := range []struct {
		name string
		edit func(*s3.Config)
		want error
		says string
	}{
		{"WrongSecret", func(c *s3.Config) { c.SecretKey = "not-the-secret" }, s3.ErrAccessDenied, "secret_key"},
		{"UnknownKey", func(c *s3.Config) { c.AccessKey = "nobody" }, s3.ErrAccessDenied, "access_key"},
		{"NoBucket", func(c *s3.Config) { c.Bucket = "no-such-bucket" }, s3.ErrNoBucket, "storage.s3.bucket"},
		{"BadEndpoint", func(c *s3.Config) { c.Endpoint = "127.0.0.1:1" }, nil, "http://"},
		{"EndpointPath", func(c *s3.Config) { c.Endpoint += "/wharf" }, nil, "path"},
		{"SmallParts", func(c *s3.Config) { c.PartSize = 1 << 20 }, nil, "part size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := e.config()
			c.edit(&cfg)
			s, err := s3.New(context.Background(), cfg)
			if err == nil {
				t.Fatalf("New succeeded: %+v", s)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("New = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("New = %v, want a message mentioning %q", err, c.says)
			}
			t.Log(err)
		})
	}
}

func testWrongDigestMultipart(t *testing.T, e *server) {
	s := e.open(t, e.config())
	n := int64(2*partSize + 123)
	claimed := digestOf(t, 2, n) // the right size, other bytes
	_, err := s.Put(context.Background(), claimed, n, newGen(1, n))
	if !errors.Is(err, oci.ErrDigestInvalid) {
		t.Fatalf("Put = %v, want DIGEST_INVALID", err)
	}
	mustBeAbsent(t, s, claimed)
	if u := unfinished(t, s); u.Count != 0 {
		t.Errorf("after a mismatch: %+v, want no unfinished upload", u)
	}
	// Too long and too short for a known size, past the first part.
	right := digestOf(t, 1, n)
	for _, size := range []int64{n - 1, n + 1} {
		if _, err := s.Put(context.Background(), right, size, newGen(1, n)); !errors.Is(err, oci.ErrSizeInvalid) {
			t.Errorf("Put of %d bytes as %d = %v, want SIZE_INVALID", n, size, err)
		}
		mustBeAbsent(t, s, right)
	}
	if u := unfinished(t, s); u.Count != 0 {
		t.Errorf("after wrong sizes: %+v, want no unfinished upload", u)
	}
}

func testCancelMidPut(t *testing.T, e *server) {
	s := e.open(t, e.config())
	n := int64(3 * partSize)
	d := digestOf(t, 3, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := newGen(3, n)
	g.at, g.atN = cancel, partSize+partSize/2 // the first part is on its way
	if _, err := s.Put(ctx, d, n, g); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
	mustBeAbsent(t, s, d)
	if u := unfinished(t, s); u.Count != 0 {
		t.Errorf("after a cancel: %+v, want no unfinished upload", u)
	}
}

// startUpload leaves an unfinished upload with one part, as a replica
// killed mid-Put would.
func startUpload(t *testing.T, e *server, cfg s3.Config, key string) {
	t.Helper()
	c := e.core(t)
	id, err := c.NewMultipartUpload(context.Background(), cfg.Bucket, cfg.Prefix+key, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObjectPart(context.Background(), cfg.Bucket, cfg.Prefix+key, id, 1, strings.NewReader("part"), 4, minio.PutObjectPartOptions{}); err != nil {
		t.Fatal(err)
	}
}

func testSweep(t *testing.T, e *server) {
	cfg := e.config()
	d := oci.FromBytes([]byte("left behind"))
	startUpload(t, e, cfg, "blobs/sha256/"+d.Hex()[:2]+"/"+d.Hex())
	// Another deployment's upload, outside the prefix, is not ours.
	other := e.config()
	startUpload(t, e, other, "blobs/sha256/"+d.Hex()[:2]+"/"+d.Hex())

	young := e.open(t, cfg) // the default grace: a day
	if u := unfinished(t, young); u.Count != 1 || u.Stale != 0 || u.Oldest.IsZero() {
		t.Fatalf("Unfinished = %+v, want 1 young upload", u)
	}
	if n, err := young.CleanTemp(); err != nil || n != 0 {
		t.Fatalf("CleanTemp with a day's grace = %d, %v; want 0 aborted", n, err)
	}
	if u := unfinished(t, young); u.Count != 1 {
		t.Fatalf("a young upload was swept: %+v", u)
	}

	cfg.UploadGrace = time.Nanosecond
	old := e.open(t, cfg)
	if u := unfinished(t, old); u.Count != 1 || u.Stale != 1 {
		t.Fatalf("Unfinished with a tiny grace = %+v, want 1 stale", u)
	}
	if n, err := old.CleanTemp(); err != nil || n != 1 {
		t.Fatalf("CleanTemp with a tiny grace = %d, %v; want 1 aborted", n, err)
	}
	if u := unfinished(t, old); u.Count != 0 {
		t.Fatalf("after the sweep: %+v, want none", u)
	}
	if u := unfinished(t, e.open(t, other)); u.Count != 1 {
		t.Fatalf("the sweep reached outside its prefix: the other deployment has %+v", u)
	}

	// With no prefix, another deployment's prod/blobs/ is still not ours.
	root := e.config()
	root.Bucket, root.Prefix = e.name("sweep"), ""
	e.g.MakeBucket(root.Bucket)
	prod := root
	prod.Prefix = "prod/"
	startUpload(t, e, root, "blobs/sha256/"+d.Hex()[:2]+"/"+d.Hex())
	startUpload(t, e, prod, "blobs/sha256/"+d.Hex()[:2]+"/"+d.Hex())
	if n, err := e.open(t, root).SweepUploads(context.Background(), -time.Hour); err != nil || n != 1 {
		t.Fatalf("SweepUploads with no prefix = %d, %v; want 1 (its own)", n, err)
	}
	if u := unfinished(t, e.open(t, prod)); u.Count != 1 {
		t.Fatalf("a sweep with no prefix reached prod/: %+v", u)
	}
}

// testPresign: a plain GET of the presigned URL, without credentials,
// returns the blob.
func testPresign(t *testing.T, e *server) {
	s := e.open(t, e.config())
	b := bytes.Repeat([]byte("presigned "), 10_000)
	d := oci.FromBytes(b)
	if _, err := s.Put(context.Background(), d, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	u, err := s.Presign(context.Background(), d, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, b) {
		t.Fatalf("GET %s: %s, %d bytes, %v; want the %d bytes of the blob", u.Redacted(), resp.Status, len(got), err, len(b))
	}
}

// testServerStopped: New against a stopped server says it is unreachable.
func testServerStopped(t *testing.T, e *server) {
	cfg := e.config()
	e.stop(t)
	defer e.g.Restart()
	_, err := s3.New(context.Background(), cfg)
	if !errors.Is(err, s3.ErrUnreachable) || !strings.Contains(err.Error(), "storage.s3.endpoint") {
		t.Fatalf("New with the server stopped = %v, want ErrUnreachable naming storage.s3.endpoint", err)
	}
	t.Log(err)
}

// testStoppedMidPut stops the server while a multipart Put is between
// parts: the Put fails, and after a restart nothing is visible beyond an
// unfinished upload that the sweep removes.
func testStoppedMidPut(t *testing.T, e *server) {
	cfg := e.config()
	cfg.MaxRetries = 1 // the server is gone: retrying only slows the test
	s := e.open(t, cfg)
	n := int64(4 * partSize)
	d := digestOf(t, 4, n)
	g := newGen(4, n)
	g.at, g.atN = func() { e.stop(t) }, 2*partSize+partSize/2
	_, err := s.Put(context.Background(), d, n, g)
	e.g.Restart()
	if err == nil {
		t.Fatal("Put succeeded with the server stopped mid-way")
	}
	t.Log(err)
	mustBeAbsent(t, s, d)
	if u := unfinished(t, s); u.Count > 1 {
		t.Errorf("Unfinished = %+v, want at most the one upload", u)
	}
	if _, err := s.SweepUploads(context.Background(), -time.Hour); err != nil {
		t.Fatal(err)
	}
	if u := unfinished(t, s); u.Count != 0 {
		t.Errorf("after the sweep: %+v, want none", u)
	}
}

// rangeLog records the Range header of every GET.
type rangeLog struct {
	base   http.RoundTripper
	mu     sync.Mutex
	ranges []string
}

func (l *rangeLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" {
		l.mu.Lock()
		l.ranges = append(l.ranges, r.Header.Get("Range"))
		l.mu.Unlock()
	}
	return l.base.RoundTrip(r)
}

// testRanges: ReadAt and Seek become Range requests, so a ranged GET of a
// large blob does not download all of it.
func testRanges(t *testing.T, e *server) {
	cfg := e.config()
	log := &rangeLog{base: e.tr}
	cfg.Transport = log
	s := e.open(t, cfg)
	const n = 2*partSize + 1
	d := digestOf(t, 9, n)
	if _, err := s.Put(context.Background(), d, n, newGen(9, n)); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, n)
	if _, err := io.ReadFull(newGen(9, n), want); err != nil {
		t.Fatal(err)
	}
	f, _, err := s.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 10)
	if _, err := f.ReadAt(got, 3<<20); err != nil || !bytes.Equal(got, want[3<<20:3<<20+10]) {
		t.Fatalf("ReadAt = %v, or other bytes", err)
	}
	if _, err := f.Seek(n-10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, want[n-10:]) {
		t.Fatalf("Seek+Read = %v, or other bytes", err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	wantRanges := []string{fmt.Sprintf("bytes=%d-%d", 3<<20, 3<<20+9), fmt.Sprintf("bytes=%d-", n-10)}
	if fmt.Sprint(log.ranges) != fmt.Sprint(wantRanges) {
		t.Errorf("GETs with Range %q, want %q", log.ranges, wantRanges)
	}
}

// testEmptyAndSHA512: an empty blob is one empty PutObject; sha512 blobs
// are hashed with sha512, single-part and multipart, and listed as such.
func testEmptyAndSHA512(t *testing.T, e *server) {
	s := e.open(t, e.config())
	empty := oci.FromBytes(nil)
	if n, err := s.Put(context.Background(), empty, -1, bytes.NewReader(nil)); err != nil || n != 0 {
		t.Fatalf("Put of the empty blob = %d, %v", n, err)
	}
	if size, err := s.Stat(empty); err != nil || size != 0 {
		t.Fatalf("Stat of the empty blob = %d, %v", size, err)
	}
	want := map[oci.Digest]int64{empty: 0}
	for _, n := range []int64{1000, 2*partSize + 5} {
		b := make([]byte, n)
		if _, err := io.ReadFull(newGen(11, n), b); err != nil {
			t.Fatal(err)
		}
		d := oci.FromBytesAlg("sha512", b)
		if _, err := s.Put(context.Background(), d, -1, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Verify(d); err != nil || !ok {
			t.Fatalf("Verify %s = %v, %v", d, ok, err)
		}
		want[d] = n
	}
	got := map[oci.Digest]int64{}
	if err := s.Walk(func(d oci.Digest, n int64) error { got[d] = n; return nil }, func(p string) { t.Errorf("bad %s", p) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}
}

// refuseAll is a transport for a test that must not reach any metadata
// service (169.254.169.254) whatever machine it runs on.
type refuseAll struct{}

func (refuseAll) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

// testCredentialChain: with neither key set, the store finds credentials
// where the AWS SDKs look (environment, shared credentials file), and
// says what to do when there are none.
func testCredentialChain(t *testing.T, e *server) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
	for _, v := range []string{"AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(v, "")
	}
	noKeys := func() s3.Config {
		cfg := e.config()
		cfg.AccessKey, cfg.SecretKey = "", ""
		return cfg
	}
	roundTrip := func(what string, cfg s3.Config) {
		t.Helper()
		s, err := s3.New(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b := []byte(what)
		if _, err := s.Put(context.Background(), oci.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatalf("%s: put: %v", what, err)
		}
	}

	t.Setenv("AWS_ACCESS_KEY_ID", e.g.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.g.SecretKey)
	roundTrip("credentials from the environment", noKeys())

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	file := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", e.g.AccessKey, e.g.SecretKey)
	if err := os.WriteFile(filepath.Join(home, "credentials"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	roundTrip("credentials from the shared file", noKeys())

	os.Remove(filepath.Join(home, "credentials"))
	cfg := noKeys()
	cfg.Transport = refuseAll{}
	_, err := s3.New(context.Background(), cfg)
	if !errors.Is(err, s3.ErrAccessDenied) || !strings.Contains(err.Error(), "found no credentials") || !strings.Contains(err.Error(), "set access_key and secret_key") {
		t.Errorf("no credentials anywhere: %v", err)
	}
	t.Logf("no credentials anywhere: %v", err)
}
