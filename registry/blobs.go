package registry

import (
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	d, err := oci.ParseDigest(rt.Ref)
	if err != nil {
		return err
	}
	if tg.proxy != nil {
		return h.getProxyBlob(w, r, tg, d)
	}
	if r.Method == http.MethodHead {
		info, err := h.o.Hosted.StatBlob(r.Context(), rt.Name, d)
		if err != nil {
			return err
		}
		blobHeaders(w, info)
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if h.o.BlobRedirect != nil {
		info, err := h.o.Hosted.StatBlob(r.Context(), rt.Name, d)
		if err != nil {
			return err
		}
		return h.redirectBlob(w, r, info)
	}
	f, info, err := h.o.Hosted.OpenBlob(r.Context(), rt.Name, d)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := h.serveFile(w, r, f, info)
	h.o.Metrics.ServedBytes("hosted", n)
	return err
}

// redirectBlob answers a GET of a stored blob with a 307 to where the
// store serves it (BlobRedirect).
func (h *Handler) redirectBlob(w http.ResponseWriter, r *http.Request, info hosted.BlobInfo) error {
	u, err := h.o.BlobRedirect(r.Context(), info.Digest)
	if err != nil {
		return fmt.Errorf("%w: a URL for %s: %w", storage.ErrUnavailable, info.Digest, err)
	}
	w.Header().Set("Docker-Content-Digest", string(info.Digest))
	w.Header().Set("Location", u)
	w.Header().Set("Cache-Control", "no-store") // the URL expires
	w.WriteHeader(http.StatusTemporaryRedirect)
	return nil
}

func blobHeaders(w http.ResponseWriter, info hosted.BlobInfo) {
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Docker-Content-Digest", string(info.Digest))
	hd.Set("Accept-Ranges", "bytes")
	hd.Set("ETag", `"`+string(info.Digest)+`"`)
	hd.Set("Cache-Control", "max-age=31536000")
}

// serveFile writes a stored blob, honouring a single Range.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, f io.ReadSeeker, info hosted.BlobInfo) (int64, error) {
	blobHeaders(w, info)
	start, length := int64(0), info.Size
	status := http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		br, err := oci.ParseRange(rh, info.Size)
		if err != nil {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(info.Size, 10))
			return 0, err
		}
		start, length = br.Start, br.Len()
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(br.Start, 10)+"-"+strconv.FormatInt(br.End, 10)+"/"+strconv.FormatInt(info.Size, 10))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return 0, err
		}
	}
	w.WriteHeader(status)
	return h.copyBlob(w, f, length)
}

// copyBlob streams n bytes of f to w. With "sendfile", io.Copy finds an
// *os.File under the interface (a filesystem blob) and uses sendfile;
// other readers are copied through a buffer.
func (h *Handler) copyBlob(w http.ResponseWriter, f io.Reader, n int64) (int64, error) {
	if h.o.BlobCopy == "sendfile" {
		return io.Copy(w, io.LimitReader(f, n))
	}
	buf := getBuf()
	defer putBuf(buf)
	return io.CopyBuffer(writerOnly{w}, io.LimitReader(readerOnly{f}, n), *buf)
}

func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	d, err := oci.ParseDigest(rt.Ref)
	if err != nil {
		return err
	}
	if err := h.o.Hosted.DeleteBlob(r.Context(), rt.Name, d); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// writerOnly and readerOnly hide ReadFrom/WriteTo so CopyBuffer really
// uses the 1 MiB buffer instead of falling back to sendfile or 32 KiB.
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }
