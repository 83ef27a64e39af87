//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// Helpers shared by the pull-through (proxy_*) tests.

// skipShortE2E skips under -short: these tests start real processes.
func skipShortE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: starts real processes")
	}
}

// startProxyWharf starts wharf with a config template (see
// harness.WharfConfigData); the template is usually built with fmt.Sprintf
// around the upstream URLs.
func startProxyWharf(t *testing.T, configTemplate string) *harness.Wharf {
	t.Helper()
	return harness.StartWharf(t, harness.BuildWharf(t), configTemplate)
}

// blobCached reports whether wharf's data dir holds the blob file for d.
func blobCached(w *harness.Wharf, d v1.Hash) bool {
	_, err := os.Stat(filepath.Join(w.DataDir, "blobs", d.Algorithm, d.Hex[:2], d.Hex))
	return err == nil
}

// waitCached waits up to a minute for the blob file for d to appear in wharf's
// data dir: a client may hold the whole verified body a moment before the
// fill's commit (rename, index) is done.
func waitCached(w *harness.Wharf, d v1.Hash) bool {
	// Generous: on a loaded machine a commit can lag the client by seconds.
	deadline := time.Now().Add(time.Minute)
	for {
		if blobCached(w, d) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accessLine is one line of wharf's access log.
type accessLine struct {
	Method string
	Path   string // with query
	Status int
	Bytes  int64
}

var accessRE = regexp.MustCompile(`msg=request method=(\S+) path=("(?:[^"\\]|\\.)*"|\S+) status=(\d+) bytes=(\d+)`)

// accessLog returns wharf's access-log lines whose path contains substr.
func accessLog(w *harness.Wharf, substr string) []accessLine {
	var out []accessLine
	for _, m := range accessRE.FindAllStringSubmatch(w.Logs(), -1) {
		p := m[2]
		if uq, err := strconv.Unquote(p); err == nil {
			p = uq
		}
		if !strings.Contains(p, substr) {
			continue
		}
		st, _ := strconv.Atoi(m[3])
		n, _ := strconv.ParseInt(m[4], 10, 64)
		out = append(out, accessLine{Method: m[1], Path: p, Status: st, Bytes: n})
	}
	return out
}

// served200 reports whether the access log shows a 200 GET of path substr.
func served200(w *harness.Wharf, substr string) bool {
	for _, l := range accessLog(w, substr) {
		if l.Method == http.MethodGet && l.Status == http.StatusOK {
			return true
		}
	}
	return false
}

// servedWhole reports whether the access log shows a 200 GET of path
// substr with exactly size body bytes.
func servedWhole(w *harness.Wharf, substr string, size int64) bool {
	for _, l := range accessLog(w, substr) {
		if l.Method == http.MethodGet && l.Status == http.StatusOK && l.Bytes == size {
			return true
		}
	}
	return false
}

// fetchResult is what one raw HTTP GET got.
type fetchResult struct {
	Status    int
	Header    http.Header
	N         int64  // body bytes received
	Digest    string // sha256:HEX of what was received
	Body      []byte // the body when it is small (errors, manifests)
	Err       error  // transport or body read error
	Start     time.Time
	FirstByte time.Duration // from Start
	Elapsed   time.Duration
}

// complete reports a 200 whose body arrived whole, without a read error.
func (f fetchResult) complete() bool { return f.Err == nil && f.Status == http.StatusOK }

// fetch GETs url (with optional header pairs), hashing the body as it
// arrives; timeout bounds the whole exchange.
func fetch(ctx context.Context, url string, timeout time.Duration, hdr ...string) fetchResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fetchResult{Err: err}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// A client of its own: no connection reuse between the test's callers,
	// so one aborted stream cannot disturb another.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fetchResult{Err: err, Start: start, Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	res := fetchResult{Status: resp.StatusCode, Header: resp.Header, Start: start}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var small []byte
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if res.N == 0 {
				res.FirstByte = time.Since(start)
			}
			h.Write(buf[:n])
			if res.N < 1<<20 {
				small = append(small, buf[:n]...)
			}
			res.N += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			res.Err = rerr
			break
		}
	}
	if res.N <= 1<<20 {
		res.Body = small
	}
	res.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	res.Elapsed = time.Since(start)
	return res
}

// ociCode returns the first error code of an OCI error body, or "".
func ociCode(body []byte) string {
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// blobURL is wharf's URL for a blob in repo (a full repository name as the
// client sends it, e.g. "hub/library/busybox" or "library/busybox").
func blobURL(w *harness.Wharf, repo string, d v1.Hash) string {
	return w.URL + "/v2/" + repo + "/blobs/" + d.String()
}

// manifestURL is wharf's URL for a manifest by tag or digest.
func manifestURL(w *harness.Wharf, repo, ref string) string {
	return w.URL + "/v2/" + repo + "/manifests/" + ref
}

// manifestAccept is what a current client sends for manifests.
const manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// layerOf returns the digest and size of an image's only (or first) layer.
func layerOf(t *testing.T, img v1.Image) (v1.Hash, int64) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) == 0 {
		t.Fatal("image has no layers")
	}
	return m.Layers[0].Digest, m.Layers[0].Size
}

// unreachableUpstream is the "other" proxy's upstream where the tests
// never send it anything: port 1 (tcpmux) is privileged and nothing here
// serves it, so a connection is refused, and no test server can be given
// it by the kernel, as a port picked free a moment ago could be.
const unreachableUpstream = "http://127.0.0.1:1"

// contractConfig is issue 3's config exactly as users write it, with the two
// upstream URLs (hub, the default, and other) left to fill in with
// fmt.Sprintf and the listen address to the harness.
const contractConfig = `listen: {{.Listen}}
data_dir: ./data
proxies:
  - name: hub
    upstream: %s
    default: true
  - name: other
    upstream: %s
hosted:
  - name: team
`

// withRandomLayer returns img with one more random layer of size bytes
// (Docker media type), so a derived image has a blob of its own.
func withRandomLayer(t *testing.T, img v1.Image, size int64) v1.Image {
	t.Helper()
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "wharf e2e: random layer"}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// blobsOf returns the config and layer descriptors of an image.
func blobsOf(t *testing.T, img v1.Image) []v1.Descriptor {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return append([]v1.Descriptor{m.Config}, m.Layers...)
}

// pushLargeImage pushes a one-layer image whose layer (a valid tar.gz) holds
// size bytes of fresh random data, and returns it. It is harness.PushLargeImage
// made cheap: the gzip stream uses stored blocks and the layer bytes are
// built once, so seeding 64 MiB costs well under a second even with -race,
// where go-containerregistry's random layer is compressed at each read.
func pushLargeImage(t *testing.T, ref string, size int64) v1.Image {
	t.Helper()
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Grow(int(size) + 1<<20)
	gz, err := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(gz)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: "data", Mode: 0o644, Size: size, ModTime: time.Unix(946684800, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, rand.NewChaCha8(seed), size); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(buf.Bytes(), types.DockerLayer)
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "wharf e2e: large random layer"}})
	if err != nil {
		t.Fatal(err)
	}
	harness.Push(t, ref, img)
	return img
}
