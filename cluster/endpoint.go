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
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), token) != 1 {
			http.Error(w, "not a replica of this cluster", http.StatusUnauthorized)
			return
		}
		d, err := oci.ParseDigest(strings.TrimPrefix(r.URL.Path, BlobPath))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var offset int64
		if v := r.URL.Query().Get("offset"); v != "" {
			if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
				http.Error(w, "bad offset", http.StatusBadRequest)
				return
			}
		}
		for _, p := range proxies() {
			b, err := p.Filling(r.Context(), d)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			if b == nil {
				continue
			}
			defer b.Close()
			if b.Size >= 0 && offset > b.Size {
				http.Error(w, "offset past the end", http.StatusRequestedRangeNotSatisfiable)
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
			http.Error(w, "neither filling nor stored here", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer f.Close()
		if offset > size {
			http.Error(w, "offset past the end", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
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
