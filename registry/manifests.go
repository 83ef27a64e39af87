package registry

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/wharf-registry/wharf/oci"
)

func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	ref, err := oci.ParseReference(rt.Ref)
	if err != nil {
		return err
	}
	if tg.proxy != nil {
		return h.getProxyManifest(w, r, tg, ref)
	}
	ctx := r.Context()
	if r.Method == http.MethodHead {
		rec, err := h.o.Hosted.StatManifest(ctx, rt.Name, ref)
		if err != nil {
			return err
		}
		manifestHeaders(w, rec.Digest, rec.MediaType, rec.Size)
		w.WriteHeader(http.StatusOK)
		return nil
	}
	m, err := h.o.Hosted.GetManifest(ctx, rt.Name, ref)
	if err != nil {
		return err
	}
	manifestHeaders(w, m.Digest, m.MediaType, int64(len(m.Body)))
	w.WriteHeader(http.StatusOK)
	n, _ := w.Write(m.Body)
	h.o.Metrics.ServedBytes("hosted", int64(n))
	return nil
}

func manifestHeaders(w http.ResponseWriter, d oci.Digest, mediaType string, size int64) {
	hd := w.Header()
	hd.Set("Content-Type", mediaType)
	hd.Set("Docker-Content-Digest", string(d))
	hd.Set("Content-Length", strconv.FormatInt(size, 10))
	hd.Set("ETag", `"`+string(d)+`"`)
}

func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	ref, err := oci.ParseReference(rt.Ref)
	if err != nil {
		if e, ok := oci.AsError(err); ok && e.Code == oci.CodeManifestUnknown {
			return oci.Errorf(oci.CodeTagInvalid, "invalid tag %q: up to 128 characters of [A-Za-z0-9_.-], not starting with . or -", rt.Ref)
		}
		return err
	}
	if r.ContentLength > oci.MaxManifestSize {
		return oci.Errorf(oci.CodeManifestInvalid, "manifest is %d bytes; the limit is %d", r.ContentLength, oci.MaxManifestSize).WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, oci.MaxManifestSize))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return oci.Errorf(oci.CodeManifestInvalid, "manifest is larger than the %d-byte limit", oci.MaxManifestSize).WithStatus(http.StatusRequestEntityTooLarge)
		}
		return err
	}
	tags := r.URL.Query()["tag"]
	for _, t := range tags {
		if !oci.ValidTag(t) {
			return oci.Errorf(oci.CodeTagInvalid, "invalid tag parameter %q", t)
		}
	}
	res, err := h.o.Hosted.PutManifest(r.Context(), rt.Name, ref, r.Header.Get("Content-Type"), body, tags...)
	if err != nil {
		return err
	}
	hd := w.Header()
	for _, t := range tags {
		hd.Add("OCI-Tag", t)
	}
	hd.Set("Location", "/v2/"+rt.Name+"/manifests/"+string(res.Digest))
	hd.Set("Docker-Content-Digest", string(res.Digest))
	if res.Subject != nil {
		hd.Set("OCI-Subject", string(*res.Subject))
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	ref, err := oci.ParseReference(rt.Ref)
	if err != nil {
		return err
	}
	if err := h.o.Hosted.DeleteManifest(r.Context(), rt.Name, ref); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
