package cluster

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/oci"
)

// Handler serves BlobPath to the other replicas: the bytes of a fill
// running here from ?offset as they arrive (the last one once the digest
// matched), else the committed blob from the store, else 404. Requests
// without the cluster token get 401; users' auth does not apply here.
// proxies lists the caches whose fills to look in.
func (c *Coordinator) Handler(proxies func() []*cache.Proxy) http.Handler {
	token := []byte(c.o.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			fail(w, oci.Errorf(oci.CodeUnsupported, "%s between replicas takes GET only", BlobPath))
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), token) != 1 {
			fail(w, oci.Errorf(oci.CodeUnauthorized, "this endpoint is for the replicas of this cluster (the %s header carries their token)", TokenHeader))
			return
		}
		d, err := oci.ParseDigest(strings.TrimPrefix(r.URL.Path, BlobPath))
		if err != nil {
			fail(w, oci.Errorf(oci.CodeDigestInvalid, "%v", err))
			return
		}
		var offset int64
		if v := r.URL.Query().Get("offset"); v != "" {
			if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
				fail(w, oci.Errorf(oci.CodeParameterInvalid, "offset %q is not a byte offset (0 or more)", v))
				return
			}
		}
		for _, p := range proxies() {
			b, err := p.Filling(r.Context(), d)
			if err != nil {
				fail(w, oci.Errorf(oci.CodeUpstreamFailed, "%v", err))
				return
			}
			if b == nil {
				continue
			}
			defer b.Close()
			if b.Size >= 0 && offset > b.Size {
				fail(w, oci.Errorf(oci.CodeRangeInvalid, "offset %d is past the end (%d bytes)", offset, b.Size))
				return
			}
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			if b.Size >= 0 {
				h.Set(sizeHeader, strconv.FormatInt(b.Size, 10))
				h.Set("Content-Length", strconv.FormatInt(b.Size-offset, 10))
			}
			w.WriteHeader(http.StatusOK)
			if _, err := b.StreamTo(r.Context(), w, offset, -1); err != nil {
				// The fill failed: the follower must see a broken stream,
				// not an end.
				panic(http.ErrAbortHandler)
			}
			return
		}
		f, size, err := c.o.Store.Open(d)
		if errors.Is(err, oci.ErrBlobUnknown) {
			fail(w, oci.Errorf(oci.CodeBlobUnknown, "%s is neither being filled nor stored here", d))
			return
		}
		if err != nil {
			fail(w, oci.Errorf(oci.CodeUnavailable, "%v", err))
			return
		}
		defer f.Close()
		if offset > size {
			fail(w, oci.Errorf(oci.CodeRangeInvalid, "offset %d is past the end (%d bytes)", offset, size))
			return
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			fail(w, oci.Errorf(oci.CodeUnavailable, "%v", err))
			return
		}
		w.Header().Set(sizeHeader, strconv.FormatInt(size, 10))
		w.Header().Set("Content-Length", strconv.FormatInt(size-offset, 10))
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, f); err != nil {
			panic(http.ErrAbortHandler)
		}
	})
}

// fail answers e in the OCI error envelope, as every other endpoint does.
func fail(w http.ResponseWriter, e *oci.Error) {
	body := oci.Envelope(e)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.HTTPStatus())
	w.Write(body)
}
