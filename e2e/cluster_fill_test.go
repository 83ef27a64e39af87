//go:build linux

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// Cluster mode fetches each blob from the upstream once between all the
// replicas (issue #13 item 5): the replica holding a digest's fill lease
// fetches it, the others stream it from that one.

// gatedBlobRelay is a relay in front of a fresh origin holding a blob of
// size bytes whose GETs send the first gateAt bytes and then wait for
// release (closed by the test) or their client to go away: an upstream
// still sending, without a clock.
func gatedBlobRelay(t *testing.T, size, gateAt int64) (relay *harness.Relay, layer v1.Hash, layerSize int64, blobPath string, release chan struct{}) {
	t.Helper()
	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	img := pushLargeImage(t, origin.Addr+"/library/big:1", size)
	layer, layerSize = layerOf(t, img)
	blobPath = "/v2/library/big/blobs/" + layer.String()
	relay = harness.StartRelay(t, origin.URL)
	release = make(chan struct{})
	relay.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		if r.URL.Path != blobPath || r.Method != http.MethodGet {
			return false
		}
		forward.ServeHTTP(&harness.RelayHookWriter{ResponseWriter: w, Limit: gateAt, AfterBytes: func() error {
			select {
			case <-release:
				return nil
			case <-r.Context().Done():
				return r.Context().Err()
			}
		}}, r)
		return true
	})
	return relay, layer, layerSize, blobPath, release
}

// startHubReplicas starts n replicas proxying relay as the default proxy.
// The upstream timeout (also the longest pause between body bytes) is
// long: a gated origin body must wait for the test, not time out.
func startHubReplicas(t *testing.T, c *harness.Cluster, bin string, relay *harness.Relay, n int, extra string) []*harness.Wharf {
	t.Helper()
	rest := fmt.Sprintf("proxies:\n  - name: hub\n    upstream: %s\n    default: true\n    timeout: 3m\n", relay.URL) + extra
	var rs []*harness.Wharf
	for range n {
		rs = append(rs, c.StartReplica(t, bin, rest))
	}
	return rs
}

// fetchFirst is fetch that calls first once the first body bytes arrived.
func fetchFirst(ctx context.Context, url string, timeout time.Duration, first func()) fetchResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fetchResult{Err: err}
	}
	// Replicas serving TLS have self-signed certificates of their own;
	// what the client gets is checked by its digest.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return fetchResult{Err: err, Start: start}
	}
	defer resp.Body.Close()
	res := fetchResult{Status: resp.StatusCode, Header: resp.Header, Start: start}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if res.N == 0 {
				res.FirstByte = time.Since(start)
				first()
			}
			h.Write(buf[:n])
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
	res.Digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	res.Elapsed = time.Since(start)
	return res
}

// waitClosed waits for ch, failing the test after a minute.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(2 * time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// leaseHolder is the replica whose address the fill lease of d names.
func leaseHolder(t *testing.T, c *harness.Cluster, rs []*harness.Wharf, d v1.Hash) *harness.Wharf {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := c.PG.SQL(fmt.Sprintf("SELECT 'addr=' || addr FROM fill_leases WHERE digest = '%s'", d))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if strings.Contains(out, "addr="+r.URL+"\n") || strings.HasSuffix(strings.TrimSpace(out), "addr="+r.URL) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica holds the fill lease of %s: %q", d, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sqlCount runs a count(*) query in the cluster's database.
func sqlCount(t *testing.T, c *harness.Cluster, q string) int {
	t.Helper()
	out, err := c.PG.SQL("SELECT 'n=' || (" + q + ")")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if i := strings.Index(out, "n="); i < 0 {
		t.Fatalf("%s: %q", q, out)
	} else if _, err := fmt.Sscanf(out[i:], "n=%d", &n); err != nil {
		t.Fatalf("%s: %q: %v", q, out, err)
	}
	return n
}

// bucketObject is where versitygw keeps the object of d.
func bucketObject(c *harness.Cluster, d v1.Hash) string {
	return filepath.Join(c.S3.Dir, c.Bucket, c.Prefix, "blobs", d.Algorithm, d.Hex[:2], d.Hex)
}

// checkResults fails for every client that did not get the whole blob.
func checkResults(t *testing.T, results []fetchResult, layer v1.Hash, layerSize int64, skip func(i int) bool) int {
	t.Helper()
	ok := 0
	for i, r := range results {
		if skip != nil && skip(i) {
			continue
		}
		switch {
		case r.Err != nil:
			t.Errorf("client %d: %v after %d bytes", i, r.Err, r.N)
		case r.Status != http.StatusOK:
			t.Errorf("client %d: status %d", i, r.Status)
		case r.N != layerSize || r.Digest != layer.String():
			t.Errorf("client %d: got %d bytes with digest %s, want %d bytes %s", i, r.N, r.Digest, layerSize, layer)
		default:
			ok++
		}
	}
	return ok
}

// TestClusterFillOnceAcrossReplicas: 20 clients ask three replicas for
// one uncached 64 MiB blob at once. The origin serves it once; every
// client gets the right bytes; and every client has its first bytes while
// the origin is still holding back the rest of the body.
func TestClusterFillOnceAcrossReplicas(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	fillOnceAcross(t, 64<<20, 20, "")
}

// TestClusterFillOnceOverTLS is the same over replicas that each serve
// TLS with a self-signed certificate of their own: the hop between them
// rests on the cluster token and the digest check.
func TestClusterFillOnceOverTLS(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	fillOnceAcross(t, 16<<20, 6, "tls:\n  mode: self-signed\n")
}

// fetchAcross starts clients GETs of layer spread over the replicas rs
// and returns once every client has its first bytes (or failed); wait
// waits for the GETs to end and returns what each client got.
func fetchAcross(t *testing.T, rs []*harness.Wharf, layer v1.Hash, clients int) (wait func() []fetchResult) {
	t.Helper()
	var firsts, wg sync.WaitGroup
	firsts.Add(clients)
	results := make([]fetchResult, clients)
	for i := range clients {
		wg.Go(func() {
			var once sync.Once
			results[i] = fetchFirst(t.Context(), blobURL(rs[i%len(rs)], "library/big", layer), 3*time.Minute, func() { once.Do(firsts.Done) })
			once.Do(firsts.Done) // a client that failed must not hang the test
		})
	}
	allFirst := make(chan struct{})
	go func() { firsts.Wait(); close(allFirst) }()
	waitClosed(t, allFirst, "every client's first bytes")
	return func() []fetchResult { wg.Wait(); return results }
}

// fillOnceAcross has clients GET one uncached blob of size bytes over
// three replicas (config extra added to each) at once, with the origin
// holding back the body past gateAt until every client has bytes.
func fillOnceAcross(t *testing.T, size int64, clients int, extra string) {
	const gateAt = 4 << 20
	bin := harness.BuildWharf(t)
	relay, layer, layerSize, blobPath, release := gatedBlobRelay(t, size, gateAt)
	c := harness.StartClusterEngines(t)
	rs := startHubReplicas(t, c, bin, relay, 3, extra)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	start := time.Now()
	wait := fetchAcross(t, rs, layer, clients)
	firstAt := time.Since(start)
	// The relay records a request when its response ended: none has, so
	// every client had bytes while the origin still held most of the body.
	gets, _ := relay.Count(http.MethodGet, blobPath)
	t.Logf("all %d clients had first bytes at +%s, with the origin holding back all but the first %d MiB (%d origin GETs finished)",
		clients, firstAt.Round(time.Millisecond), gateAt>>20, gets)
	if gets != 0 {
		t.Errorf("an origin GET of the blob finished before every client had its first bytes")
	}
	filler := leaseHolder(t, c, rs, layer)
	close(release)
	results := wait()
	elapsed := time.Since(start)

	ok := checkResults(t, results, layer, layerSize, nil)
	gets, sent := relay.WaitCount(t, http.MethodGet, blobPath, 1)
	t.Logf("%d clients over %d replicas, %d MiB blob: %s wall, %d complete and correct; origin saw %d GET(s) carrying %d bytes; filler %s",
		clients, len(rs), size>>20, elapsed.Round(time.Millisecond), ok, gets, sent, filler.Addr)
	if gets != 1 {
		t.Errorf("origin was asked for the blob %d times over %d replicas, want once: %+v", gets, len(rs), relay.Requests())
	}
	if sent < layerSize || sent > layerSize+64<<10 {
		t.Errorf("origin sent %d bytes for a %d-byte blob, want it once", sent, layerSize)
	}
	for _, r := range rs {
		waitLogged(t, r, `msg="cached blob"`, "digest="+layer.String())
		if r == filler {
			continue
		}
		if !strings.Contains(r.Logs(), "streaming a blob from the replica filling it") {
			t.Errorf("replica %s did not stream from the filler %s:\n%s", r.Addr, filler.Addr, r.LogTail(20))
		}
		// What it streamed, the filler uploaded: it does not upload it again.
		waitLogged(t, r, "not uploading it again", "digest="+layer.String())
	}
	if fi, err := os.Stat(bucketObject(c, layer)); err != nil || fi.Size() != layerSize {
		t.Errorf("the bucket's object for %s: %v (size %v), want %d bytes", layer, err, fi, layerSize)
	}
	if n := sqlCount(t, c, "SELECT count(*) FROM fill_leases"); n != 0 {
		t.Errorf("%d fill leases left after the fills were committed", n)
	}
	// Warm: every replica serves it from the bucket.
	for _, r := range rs {
		if res := fetchFirst(t.Context(), blobURL(r, "library/big", layer), time.Minute, func() {}); !res.complete() || res.Digest != layer.String() {
			t.Errorf("warm GET through %s: status %d, %d bytes, %s, %v", r.Addr, res.Status, res.N, res.Digest, res.Err)
		}
	}
	if n, _ := relay.Count(http.MethodGet, blobPath); n != 1 {
		t.Errorf("warm GETs went to the origin (%d GETs)", n)
	}
	// /metrics says the same: one stream from the upstream in the whole
	// cluster, and the other replicas received the blob from the filler.
	var upstreams, peers, peerBytes float64
	for _, r := range rs {
		upstreams += clusterMetric(t, r, `wharf_cluster_fill_streams_total{source="upstream"}`)
		peers += clusterMetric(t, r, `wharf_cluster_fill_streams_total{source="peer"}`)
		peerBytes += clusterMetric(t, r, "wharf_cluster_peer_bytes_total")
	}
	if upstreams != 1 || peers < 1 || peerBytes < float64(layerSize) {
		t.Errorf("cluster metrics: %v upstream and %v peer streams, %v bytes from peers; want 1, at least 1, at least %d", upstreams, peers, peerBytes, layerSize)
	}
}

// TestClusterFillerKilledMidFill: the replica filling a blob for the
// cluster is killed (SIGKILL) while its upstream is half-way. The clients
// of the other replicas still get the whole, correct blob: the lease
// expires, one of them takes it over and resumes from the upstream where
// it stopped. Nothing of the blob is visible in the bucket or the index
// until it is complete.
func TestClusterFillerKilledMidFill(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	const (
		size    = 32 << 20
		clients = 6
		gateAt  = 4 << 20
	)
	bin := harness.BuildWharf(t)
	relay, layer, layerSize, blobPath, release := gatedBlobRelay(t, size, gateAt)
	c := harness.StartClusterEngines(t)
	rs := startHubReplicas(t, c, bin, relay, 3, "")
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	wait := fetchAcross(t, rs, layer, clients)
	filler := leaseHolder(t, c, rs, layer)
	fillerIdx := -1
	for i, r := range rs {
		if r == filler {
			fillerIdx = i
		}
	}
	t.Logf("every client streaming; %s holds the lease; killing it", filler.Addr)
	if err := filler.Kill(); err != nil {
		t.Logf("kill: %v", err)
	}
	killed := time.Now()

	// Half-way and its filler dead: nothing of the blob in the bucket
	// or the index.
	if _, err := os.Stat(bucketObject(c, layer)); !os.IsNotExist(err) {
		t.Errorf("the bucket has an object for %s mid-fill: %v", layer, err)
	}
	if n := sqlCount(t, c, fmt.Sprintf("SELECT count(*) FROM blobs WHERE digest = '%s'", layer)); n != 0 {
		t.Errorf("the index has a record of %s mid-fill", layer)
	}
	// A survivor takes the lease over once it expired (TTL 10 s), and
	// resumes from the origin. The relay records a request when it ends,
	// so the takeover is watched in the lease table.
	var next *harness.Wharf
	for next = leaseHolder(t, c, rs, layer); next == filler; next = leaseHolder(t, c, rs, layer) {
		if time.Since(killed) > time.Minute {
			t.Fatalf("the dead replica %s still holds the lease a minute after the kill", filler.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	takeover := time.Since(killed)
	t.Logf("lease taken over by %s %s after the kill", next.Addr, takeover.Round(time.Millisecond))
	if takeover > 20*time.Second {
		t.Errorf("the lease was taken over %s after the kill, want within seconds (TTL 10 s)", takeover)
	}
	if _, err := os.Stat(bucketObject(c, layer)); !os.IsNotExist(err) {
		t.Errorf("the bucket has an object for %s before the fill resumed: %v", layer, err)
	}
	close(release)
	results := wait()

	ok := checkResults(t, results, layer, layerSize, func(i int) bool { return i%len(rs) == fillerIdx })
	// The relay records a GET a moment after wharf read its last byte:
	// wait for the two, then check there were no more.
	relay.WaitCount(t, http.MethodGet, blobPath, 2)
	gets, sent := relay.Count(http.MethodGet, blobPath)
	t.Logf("%d clients of the surviving replicas got the whole blob; origin saw %d GETs carrying %d bytes (blob %d)", ok, gets, sent, layerSize)
	if gets != 2 {
		t.Errorf("origin saw %d GETs, want 2 (the dead filler's, and one resume): %+v", gets, relay.Requests())
	}
	for i, r := range rs {
		if i == fillerIdx {
			continue
		}
		waitLogged(t, r, `msg="cached blob"`, "digest="+layer.String())
	}
	if fi, err := os.Stat(bucketObject(c, layer)); err != nil || fi.Size() != layerSize {
		t.Errorf("the bucket's object for %s: %v, want %d bytes", layer, err, layerSize)
	}
	if n := sqlCount(t, c, fmt.Sprintf("SELECT count(*) FROM blobs WHERE digest = '%s'", layer)); n != 1 {
		t.Errorf("the index has %d records of %s after the fill, want 1", n, layer)
	}
	// And wharf fsck on the cluster finds nothing wrong in the bucket or
	// the tables.
	cfg := filepath.Join(t.TempDir(), "cluster.yml")
	if err := os.WriteFile(cfg, []byte(c.Keys()+clusterHosted), 0o600); err != nil {
		t.Fatal(err)
	}
	survivor := rs[(fillerIdx+1)%len(rs)]
	if out, err := survivor.Run("fsck", "--config", cfg); err != nil {
		t.Errorf("wharf fsck on the cluster after the kill: %v\n%s", err, out)
	} else {
		t.Logf("wharf fsck after the kill:\n%s", out)
	}
}
