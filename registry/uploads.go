package registry

import (
	"io"
	"net/http"
	"strconv"

	"github.com/wharf-registry/wharf/oci"
)

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }
func blobLocation(name string, d oci.Digest) string {
	return "/v2/" + name + "/blobs/" + string(d)
}

// rangeHeader is the spec's "Range: 0-<last byte received>".
func rangeHeader(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	q := r.URL.Query()
	ctx := r.Context()
	if mount := q.Get("mount"); mount != "" {
		d, err := oci.ParseDigest(mount)
		if err != nil {
			return err
		}
		from := q.Get("from")
		if from != "" {
			if err := oci.ValidateName(from); err != nil {
				return err
			}
		}
		if from != "" && h.isHosted(from) {
			ok, err := h.o.Hosted.MountBlob(ctx, rt.Name, from, d)
			if err != nil {
				return err
			}
			if ok {
				created(w, blobLocation(rt.Name, d), d)
				return nil
			}
		}
		// Not mountable: the spec says to fall back to a new upload.
	}
	if dg := q.Get("digest"); dg != "" {
		d, err := oci.ParseDigest(dg)
		if err != nil {
			return err
		}
		size, err := contentLength(r)
		if err != nil {
			return err
		}
		h.o.Metrics.UploadStarted()
		defer h.o.Metrics.UploadDone()
		if err := h.o.Hosted.PutBlob(ctx, rt.Name, d, size, r.Body); err != nil {
			return err
		}
		created(w, blobLocation(rt.Name, d), d)
		return nil
	}
	id, err := h.o.Hosted.StartUpload(ctx, rt.Name)
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Location", uploadLocation(rt.Name, id))
	hd.Set("Docker-Upload-UUID", id)
	hd.Set("Range", "0-0")
	hd.Set("OCI-Chunk-Min-Length", "0")
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func created(w http.ResponseWriter, loc string, d oci.Digest) {
	hd := w.Header()
	hd.Set("Location", loc)
	hd.Set("Docker-Content-Digest", string(d))
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// contentLength is the declared body length, or -1 when streamed.
func contentLength(r *http.Request) (int64, error) {
	if r.ContentLength >= 0 {
		return r.ContentLength, nil
	}
	return -1, nil
}

// chunkOffset reads a PATCH/PUT chunk's Content-Range. It returns -1 when
// there is none. A range whose length disagrees with Content-Length is
// refused before any byte is stored.
func chunkOffset(r *http.Request) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, nil
	}
	br, err := oci.ParseContentRange(cr)
	if err != nil {
		return 0, err
	}
	if r.ContentLength >= 0 && br.Len() != r.ContentLength {
		return 0, oci.Errorf(oci.CodeRangeInvalid, "Content-Range %q covers %d bytes but Content-Length is %d", cr, br.Len(), r.ContentLength)
	}
	return br.Start, nil
}

func (h *Handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	size, err := h.o.Hosted.UploadSize(r.Context(), rt.Name, rt.Ref)
	if err != nil {
		return err
	}
	uploadAccepted(w, rt, size, http.StatusNoContent)
	return nil
}

func uploadAccepted(w http.ResponseWriter, rt Route, size int64, status int) {
	hd := w.Header()
	hd.Set("Location", uploadLocation(rt.Name, rt.Ref))
	hd.Set("Docker-Upload-UUID", rt.Ref)
	hd.Set("Range", rangeHeader(size))
	hd.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	off, err := chunkOffset(r)
	if err != nil {
		return err
	}
	h.o.Metrics.UploadStarted()
	defer h.o.Metrics.UploadDone()
	size, err := h.o.Hosted.AppendUpload(r.Context(), rt.Name, rt.Ref, off, r.Body)
	if err != nil {
		if e, ok := oci.AsError(err); ok && e.Code == oci.CodeRangeInvalid {
			// Tell the client where to resume, as the spec asks for a 416.
			w.Header().Set("Location", uploadLocation(rt.Name, rt.Ref))
			w.Header().Set("Range", rangeHeader(size))
			w.Header().Set("Docker-Upload-UUID", rt.Ref)
		}
		return err
	}
	uploadAccepted(w, rt, size, http.StatusAccepted)
	return nil
}

func (h *Handler) putUpload(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	dg := r.URL.Query().Get("digest")
	if dg == "" {
		return oci.Errorf(oci.CodeDigestInvalid, "the final PUT of an upload needs ?digest=")
	}
	d, err := oci.ParseDigest(dg)
	if err != nil {
		return err
	}
	off, err := chunkOffset(r)
	if err != nil {
		return err
	}
	var body io.Reader
	if r.ContentLength != 0 {
		body = r.Body
	}
	h.o.Metrics.UploadStarted()
	defer h.o.Metrics.UploadDone()
	if err := h.o.Hosted.FinishUpload(r.Context(), rt.Name, rt.Ref, off, body, d); err != nil {
		return err
	}
	created(w, blobLocation(rt.Name, d), d)
	return nil
}

func (h *Handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	if err := h.o.Hosted.CancelUpload(r.Context(), rt.Name, rt.Ref); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
