package registry

import (
	"net/http"
	"strconv"

	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/oci"
)

func (h *Handler) getProxyBlob(w http.ResponseWriter, r *http.Request, tg target, d oci.Digest) error {
	p := tg.proxy.Proxy
	ctx := r.Context()
	if r.Method == http.MethodHead {
		size, _, err := p.StatBlob(ctx, tg.repo, d)
		if err != nil {
			return err
		}
		blobHeaders(w, hosted.BlobInfo{Digest: d, Size: size})
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	b, err := p.OpenBlob(ctx, tg.repo, d)
	if err != nil {
		return err
	}
	defer b.Close()
	h.o.Metrics.CacheResult(tg.proxy.Name, "blob", string(b.Source))
	if b.File != nil && h.o.BlobRedirect != nil {
		return h.redirectBlob(w, r, hosted.BlobInfo{Digest: d, Size: b.Size})
	}
	if b.File != nil {
		n, err := h.serveFile(w, r, b.File, hosted.BlobInfo{Digest: d, Size: b.Size})
		h.o.Metrics.ServedBytes(string(b.Source), n)
		return err
	}
	// A download in progress: stream it as it arrives.
	blobHeaders(w, hosted.BlobInfo{Digest: d, Size: b.Size})
	start, end := int64(0), int64(-1)
	status := http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" && b.Size >= 0 {
		br, err := oci.ParseRange(rh, b.Size)
		if err != nil {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(b.Size, 10))
			return err
		}
		start, end, status = br.Start, br.End, http.StatusPartialContent
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(br.Start, 10)+"-"+strconv.FormatInt(br.End, 10)+"/"+strconv.FormatInt(b.Size, 10))
		w.Header().Set("Content-Length", strconv.FormatInt(br.Len(), 10))
	} else if b.Size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(b.Size, 10))
	}
	w.WriteHeader(status)
	n, err := b.StreamTo(ctx, w, start, end)
	h.o.Metrics.ServedBytes(string(b.Source), n)
	return err
}

func (h *Handler) getProxyManifest(w http.ResponseWriter, r *http.Request, tg target, ref oci.Reference) error {
	m, err := tg.proxy.Proxy.GetManifest(r.Context(), tg.repo, ref, r.Header.Values("Accept"), r.Method == http.MethodHead)
	if err != nil {
		return err
	}
	if rec, ok := w.(*recorder); ok {
		rec.source = string(m.Source)
	}
	manifestHeaders(w, m.Digest, m.MediaType, m.Size)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		n, _ := w.Write(m.Body)
		h.o.Metrics.ServedBytes(string(m.Source), int64(n))
	}
	return nil
}

func (h *Handler) proxyTags(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	n, last, explicit, err := pagination(r)
	if err != nil {
		return err
	}
	un := -1
	if explicit {
		un = n
	}
	tags, next, _, err := tg.proxy.Proxy.Tags(r.Context(), tg.repo, un, last)
	if err != nil {
		return err
	}
	if next != "" && explicit {
		w.Header().Set("Link", nextLink("/v2/"+rt.Name+"/tags/list", n, next))
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Name, tags})
}
