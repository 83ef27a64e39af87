//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// diskFullConfig stores everything on a small filesystem (its path filled
// in with fmt.Sprintf) and gives the proxy a cache budget far larger than
// that filesystem, so the disk fills before the budget does.
const diskFullConfig = `listen: {{.Listen}}
data_dir: %s
proxies:
  - name: hub
    upstream: %s
    default: true
hosted:
  - name: team
cache:
  max_size: 1GiB
`

// TestDiskFull runs wharf with its data dir on a 64 MiB filesystem and
// fills it. Pushes that no longer fit fail with 507 and an OCI error that
// names the disk; the server keeps running; everything stored before still
// pulls with the right digests; after space is freed pushes work again;
// fsck after a stop finds nothing damaged. With a proxy whose budget is
// larger than the disk, a cold pull that cannot be stored fails cleanly
// (no partial blob kept, nothing left in tmp), and evicting cached content
// makes room for it.
func TestDiskFull(t *testing.T) {
	skipShortE2E(t)
	harness.Require(t, "docker-registry")
	fs := harness.MountSmallFS(t, 64<<20)
	t.Logf("data dir on %s at %s: %.1f MiB, %.1f MiB free", fs.Kind, fs.Dir, mib(fs.Size()), mib(fs.Free()))
	dataDir := filepath.Join(fs.Dir, "data")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))

	origin := harness.StartDistribution(t, harness.DistributionOptions{})
	var cachedSeeds []crashSeed
	for i := range 3 {
		s := crashSeed{repo: fmt.Sprintf("library/warm%d", i), size: 4 << 20}
		img, err := fastImage(rng, s.size)
		if err != nil {
			t.Fatal(err)
		}
		s.digest = harness.Push(t, origin.Addr+"/"+s.repo+":1", img)
		cachedSeeds = append(cachedSeeds, s)
	}
	cold := crashSeed{repo: "library/cold", size: 10 << 20}
	coldImg, err := fastImage(rng, cold.size)
	if err != nil {
		t.Fatal(err)
	}
	cold.digest = harness.Push(t, origin.Addr+"/"+cold.repo+":1", coldImg)
	coldLayer, _ := layerOf(t, coldImg)

	w := harness.StartWharf(t, harness.BuildWharf(t), fmt.Sprintf(diskFullConfig, dataDir, origin.URL))
	w.DataDir = dataDir
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	ctx := t.Context()
	// go-containerregistry takes the UNAVAILABLE code of a 507 for a
	// passing fault and tries three times over four seconds; once is
	// enough here.
	once := remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1})

	// Ballast the test can remove to free space without wharf's help.
	ballast := filepath.Join(fs.Dir, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{0xba}, 8<<20), 0o600); err != nil {
		t.Fatalf("ballast: %v", err)
	}

	// Proxied content, cached and evictable.
	for _, s := range cachedSeeds {
		if err := pullVerify(ctx, tr, w.Addr+"/"+s.repo+":1", s.digest); err != nil {
			t.Fatalf("warming the cache with %s: %v", s.repo, err)
		}
	}
	t.Logf("cache warmed with %d proxied images; %.1f MiB free", len(cachedSeeds), mib(fs.Free()))

	// Fill the disk with pushes.
	type pushedImg struct {
		ref    string
		digest v1.Hash
	}
	var ok []pushedImg
	var pushErr error
	for i := 0; i < 64; i++ {
		img, err := fastImage(rng, 4<<20, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("team/fill:%d", i)
		d, _ := img.Digest()
		if err := remote.Write(harness.Ref(t, w.Addr+"/"+ref), img, remote.WithContext(ctx), remote.WithTransport(tr), once); err != nil {
			pushErr = err
			break
		}
		ok = append(ok, pushedImg{ref, d})
	}
	if pushErr == nil {
		t.Fatalf("64 pushes of 4 MiB fit on a 64 MiB filesystem (%.1f MiB free)", mib(fs.Free()))
	}
	t.Logf("push %d failed with %.1f MiB free: %v", len(ok), mib(fs.Free()), pushErr)
	if !w.Running() {
		t.Fatalf("wharf died when the disk filled (%v); log:\n%s", w.ExitErr(), w.LogTail(40))
	}
	checkFullError(t, "the push that filled the disk", pushErr)

	// A blob upload on the full disk: 507 with an OCI body naming the disk.
	for _, size := range []int{4 << 20, 256 << 10} {
		status, body := uploadBlob(t, w, "team/raw", randomBytes(rng, size))
		t.Logf("upload of %d KiB on the full disk: %d %s", size>>10, status, bytes.TrimSpace(body))
		if status == http.StatusCreated {
			continue // a small one may still fit in the last free blocks
		}
		checkFullBody(t, fmt.Sprintf("upload of %d KiB", size>>10), status, body)
	}
	if !w.Running() {
		t.Fatalf("wharf died on the full disk (%v); log:\n%s", w.ExitErr(), w.LogTail(40))
	}
	if err := pingStatus(w); err != nil {
		t.Fatalf("GET /v2/ on the full disk: %v", err)
	}

	// Reads keep working: hosted and cached.
	for _, p := range ok {
		if err := pullVerify(ctx, tr, w.Addr+"/"+p.ref, p.digest); err != nil {
			t.Errorf("on the full disk, %s: %v", p.ref, err)
		}
	}
	for _, s := range cachedSeeds {
		if err := pullVerify(ctx, tr, w.Addr+"/"+s.repo+":1", s.digest); err != nil {
			t.Errorf("on the full disk, cached %s: %v", s.repo, err)
		}
	}

	// A cold pull that cannot be stored: it must fail (or be served whole
	// and right), keep no partial blob, and leave nothing in tmp.
	res := fetch(ctx, blobURL(w, cold.repo, coldLayer), time.Minute)
	t.Logf("cold pull of a %d MiB blob on the full disk (cache budget 1 GiB): status %d, %d bytes, err %v, body %.200s",
		cold.size>>20, res.Status, res.N, res.Err, res.Body)
	if res.complete() && res.Digest != coldLayer.String() {
		t.Errorf("cold pull on the full disk served WRONG bytes: %s, want %s", res.Digest, coldLayer)
	}
	if res.Status >= 500 {
		checkFullBody(t, "cold pull", res.Status, res.Body)
	}
	// A failed fill cleans up after its client's answer: wait for its
	// temp file to go (a loaded machine may take a while) rather than a
	// fixed half second.
	for deadline := time.Now().Add(time.Minute); len(tmpFiles(w)) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if blobCached(w, coldLayer) && !res.complete() {
		t.Errorf("cold blob %s is in the store although its pull failed", coldLayer)
	}
	if names := tmpFiles(w); len(names) > 0 {
		t.Errorf("temp files left a minute after the failed cold pull: %v", names)
	}
	if !w.Running() {
		t.Fatalf("wharf died on the cold pull (%v); log:\n%s", w.ExitErr(), w.LogTail(40))
	}
	coldServed := res.complete()
	if coldServed {
		t.Logf("observed: the cold pull succeeded on the full disk (%.1f MiB free): wharf made room itself or the blob fit", mib(fs.Free()))
	} else {
		t.Logf("observed: with a 1 GiB budget on a %.0f MiB disk, the failed fill did not trigger eviction of the %d cached images (%.1f MiB free)",
			mib(fs.Size()), len(cachedSeeds), mib(fs.Free()))
	}

	// Eviction makes room: evict what the cache holds, then the cold pull
	// fits.
	out, err := w.Run("cache", "evict", "--unused-for", "0s", "--data-dir", dataDir)
	t.Logf("wharf cache evict --unused-for 0s: %s (err %v); %.1f MiB free", strings.TrimSpace(out), err, mib(fs.Free()))
	if err != nil {
		t.Errorf("evicting on the full disk: %v", err)
	}
	if err := pullVerify(ctx, tr, w.Addr+"/"+cold.repo+":1", cold.digest); err != nil {
		t.Errorf("cold pull after eviction (%.1f MiB free): %v", mib(fs.Free()), err)
	} else if !coldServed {
		t.Logf("observed: after `wharf cache evict` the cold pull fits and succeeds")
	}
	if !waitCached(w, coldLayer) {
		t.Logf("observed: the cold blob was served but not kept (%.1f MiB free)", mib(fs.Free()))
	}

	// Take the last free blocks too, so that writes that only touch the
	// index (a tag pushed for a manifest already stored) meet a disk with
	// no space at all. Badger appends to its log through a memory map of a
	// sparse file, where ENOSPC cannot come back as an error.
	plug := filepath.Join(fs.Dir, "plug")
	plugged := fillUp(t, plug)
	t.Logf("plug file took the last %.2f MiB: %.2f MiB free", mib(plugged), mib(fs.Free()))
	var tagErrs []error
	tagStart := time.Now()
	died := false
	for i := range 20 {
		p := ok[i%len(ok)]
		desc, err := remote.Get(harness.Ref(t, w.Addr+"/"+p.ref), remote.WithContext(ctx), remote.WithTransport(tr))
		if err == nil {
			dst := harness.Ref(t, fmt.Sprintf("%s/team/fill:retag-%d", w.Addr, i))
			if err = remote.Tag(dst.Context().Tag(dst.Identifier()), desc, remote.WithContext(ctx), remote.WithTransport(tr), once); err != nil {
				tagErrs = append(tagErrs, err)
			}
		}
		if exitedAfter(w, err) {
			died = true
			t.Errorf("wharf died on tag push %d with the disk full (%v):\n%s", i, w.ExitErr(), crashReason(w.Logs()))
			break
		}
		if desc == nil {
			t.Errorf("on the full disk, GET %s: %v", p.ref, err)
			break
		}
	}
	t.Logf("tag pushes on the full disk took %s: %d failed; first: %v", time.Since(tagStart).Round(time.Millisecond), len(tagErrs), firstOf(tagErrs))
	for _, e := range tagErrs {
		if !died && !harness.HasStatus(e, http.StatusInsufficientStorage) && !strings.Contains(strings.ToLower(e.Error()), "disk") {
			t.Errorf("a tag push on the full disk failed without naming the disk: %s", e)
			break
		}
	}
	if err := os.Remove(plug); err != nil {
		t.Fatal(err)
	}
	if died {
		// Whatever killed it, nothing stored may be lost: restart and
		// check everything below.
		_ = w.Stop()
		w = w.Restart(t)
		t.Logf("restarted after the crash: %s", reconcileLine(w.Logs()))
	}
	for _, p := range ok {
		if err := pullVerify(ctx, tr, w.Addr+"/"+p.ref, p.digest); err != nil {
			t.Errorf("after the tag pushes on the full disk, %s: %v", p.ref, err)
		}
	}

	// Freeing space (the ballast) lets pushes work again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	t.Logf("ballast removed: %.1f MiB free", mib(fs.Free()))
	for i := range 2 {
		img, err := fastImage(rng, 2<<20)
		if err != nil {
			t.Fatal(err)
		}
		ref := fmt.Sprintf("team/after:%d", i)
		d, _ := img.Digest()
		if err := remote.Write(harness.Ref(t, w.Addr+"/"+ref), img, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
			t.Errorf("push after freeing space (%.1f MiB free): %v", mib(fs.Free()), err)
			continue
		}
		ok = append(ok, pushedImg{ref, d})
	}

	// Stop, check, restart: nothing stored was damaged.
	stopErr := w.Stop()
	if stopErr != nil {
		t.Errorf("SIGTERM: %v", stopErr)
	}
	fsckOut, err := w.Run("fsck", "--data-dir", dataDir)
	t.Logf("wharf fsck:\n%s", strings.TrimSpace(fsckOut))
	if err != nil {
		t.Errorf("fsck after the disk was full: %v", err)
	}
	if c := indexAgainstFiles(dataDir); len(c.problems) > 0 {
		for _, p := range c.problems {
			t.Errorf("index and files disagree: %s", p)
		}
	} else {
		t.Logf("index against files: %s", c.summary)
	}
	w = w.Restart(t)
	for _, p := range ok {
		if err := pullVerify(ctx, tr, w.Addr+"/"+p.ref, p.digest); err != nil {
			t.Errorf("after restart, %s: %v", p.ref, err)
		}
	}
	t.Logf("%d hosted images verified after restart; %.1f MiB free", len(ok), mib(fs.Free()))
}

// fillUp writes path until the filesystem has no space left and returns
// how much it wrote.
func fillUp(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("plug: %v", err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	f.Sync()
	return n
}

// exitedAfter reports whether wharf has exited, giving it a moment to be
// reaped when a request just failed.
func exitedAfter(w *harness.Wharf, err error) bool {
	if err == nil {
		return !w.Running()
	}
	select {
	case <-w.Exited():
		return true
	case <-time.After(2 * time.Second):
		return false
	}
}

// crashReason picks what a Go program prints when it dies (fatal error,
// panic, the signal) out of its log, with the first frames.
func crashReason(log string) string {
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "unexpected fault address") || strings.HasPrefix(l, "SIGBUS") {
			return strings.Join(lines[max(0, i-5):min(len(lines), i+40)], "\n")
		}
	}
	return harnessTail(log, 40)
}

func harnessTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func firstOf(errs []error) string {
	if len(errs) == 0 {
		return "none"
	}
	return errs[0].Error()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// checkFullError checks a client error for a disk-full answer: 507 (or
// another 5xx) whose OCI message names the disk.
func checkFullError(t *testing.T, what string, err error) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) {
		t.Errorf("%s: not a registry answer: %v", what, err)
		return
	}
	var msgs []string
	for _, d := range te.Errors {
		msgs = append(msgs, string(d.Code)+": "+d.Message)
	}
	if te.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("%s: status %d (%v), want 507 Insufficient Storage", what, te.StatusCode, msgs)
	}
	if !strings.Contains(strings.ToLower(strings.Join(msgs, " ")), "disk") {
		t.Errorf("%s: the error does not name the disk: %v", what, msgs)
	}
}

// checkFullBody checks a raw answer for 507 and an OCI body naming the disk.
func checkFullBody(t *testing.T, what string, status int, body []byte) {
	t.Helper()
	if status != http.StatusInsufficientStorage {
		t.Errorf("%s: status %d, want 507 Insufficient Storage: %s", what, status, body)
	}
	if ociCode(body) == "" || !strings.Contains(strings.ToLower(string(body)), "disk") {
		t.Errorf("%s: body is not an OCI error naming the disk: %s", what, body)
	}
}

// uploadBlob pushes data as one monolithic upload (POST then PUT with the
// digest) and returns the status and body of the step that answered last.
func uploadBlob(t *testing.T, w *harness.Wharf, repo string, data []byte) (int, []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	d := "sha256:" + hex.EncodeToString(sum[:])
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Post(w.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatalf("starting an upload: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, body
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = w.URL + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, loc+sep+"digest="+d, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("upload PUT: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, body
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func tmpFiles(w *harness.Wharf) []string {
	ents, _ := os.ReadDir(filepath.Join(w.DataDir, "tmp"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func pingStatus(w *harness.Wharf) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(w.URL + "/v2/")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}
