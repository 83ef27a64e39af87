//go:build linux

package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestRelay proves the relay against Distribution: it passes a blob through
// unchanged and counts it, and its faults cut, corrupt and stall as the
// pull-through tests expect.
func TestRelay(t *testing.T) {
	skipShort(t)
	d := StartDistribution(t, DistributionOptions{})
	img := PushLargeImage(t, d.Addr+"/team/big:1", 1<<20)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[0]
	path := "/v2/team/big/blobs/" + layer.Digest.String()
	rl := StartRelay(t, d.URL)

	get := func(timeout time.Duration) (int, int64, string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rl.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, "", err
		}
		defer resp.Body.Close()
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		return resp.StatusCode, n, "sha256:" + hex.EncodeToString(h.Sum(nil)), err
	}

	if st, n, sum, err := get(time.Minute); err != nil || st != http.StatusOK || n != layer.Size || sum != layer.Digest.String() {
		t.Fatalf("pass-through: %d, %d bytes, %s, %v", st, n, sum, err)
	}
	if n, b := rl.WaitCount(t, http.MethodGet, path, 1); n != 1 || b != layer.Size {
		t.Errorf("count: %d GETs, %d bytes; want 1, %d", n, b, layer.Size)
	}

	rl.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		forward.ServeHTTP(&RelayHookWriter{ResponseWriter: w, Limit: 1000, AfterBytes: func() error { return errors.New("cut") }}, r)
		return true
	})
	if st, n, _, err := get(time.Minute); err == nil || st != http.StatusOK || n != 1000 {
		t.Errorf("cut after 1000 bytes: %d, %d bytes, %v", st, n, err)
	}

	rl.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		forward.ServeHTTP(&RelayHookWriter{ResponseWriter: w, Corrupt: func(off int64, p []byte) {
			if off == 0 {
				p[0] ^= 1
			}
		}}, r)
		return true
	})
	if st, n, sum, err := get(time.Minute); err != nil || st != http.StatusOK || n != layer.Size || sum == layer.Digest.String() {
		t.Errorf("corrupt: %d, %d bytes, %s, %v; want the full length with another digest", st, n, sum, err)
	}

	rl.SetFault(func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		rl.Stall(w, r, forward)
		return true
	})
	start := time.Now()
	if st, n, _, err := get(time.Second); !errors.Is(err, context.DeadlineExceeded) || st != http.StatusOK || n != 0 {
		t.Errorf("stall: %d, %d bytes, %v after %s; want headers, no body, the client's deadline", st, n, err, time.Since(start))
	}
}
