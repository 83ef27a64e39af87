//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestIdealHoldsBackTheLastByte: the ideal mirror the floor is measured
// with streams the upstream's bytes, and sends the last one only when
// the body hashes to the digest asked for.
func TestIdealHoldsBackTheLastByte(t *testing.T) {
	body := make([]byte, 3<<20+5)
	for i := range body {
		body[i] = byte(i * 7)
	}
	sum := sha256.Sum256(body)
	good := "sha256:" + hex.EncodeToString(sum[:])
	bad := "sha256:" + hex.EncodeToString(make([]byte, 32))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	defer up.Close()
	mirror := httptest.NewServer(idealHandler(up.URL))
	defer mirror.Close()
	for _, tc := range []struct {
		digest string
		want   int
	}{{good, len(body)}, {bad, len(body) - 1}} {
		resp, err := http.Get(mirror.URL + "/v2/r/blobs/" + tc.digest)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(got) != tc.want {
			t.Errorf("%s: got %d bytes, want %d", tc.digest, len(got), tc.want)
		}
	}
}
