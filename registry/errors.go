package registry

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// toOCI maps any error a handler returns to the OCI error answered. This
// is the only place where domain errors become statuses.
func toOCI(err error) (*oci.Error, bool) {
	if e, ok := oci.AsError(err); ok {
		return e, true
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return oci.Errorf(oci.CodeSizeInvalid, "request body is larger than the %d-byte limit", mbe.Limit).WithStatus(http.StatusRequestEntityTooLarge), true
	case errors.Is(err, storage.ErrNoSpace):
		return &oci.Error{Code: oci.CodeInsufficientStorage, Message: "the data disk is full: free space on it (or lower the cache size) and retry"}, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &oci.Error{Code: oci.CodeUnavailable, Message: "request cancelled", Status: 499}, true
	}
	return &oci.Error{Code: oci.CodeUnknown, Message: "internal error; see the server log"}, false
}

func (h *Handler) writeError(w *recorder, r *http.Request, err error) {
	if w.wroteHeader {
		// The body was already under way (a blob stream broke): the only
		// honest signal left is to abort the connection so the client sees
		// a truncated transfer, never a short body that looks complete.
		if !errors.Is(err, context.Canceled) {
			h.log.Warn("response cut off mid-body", "method", r.Method, "path", r.URL.Path, "sent", w.bytes, "err", err)
		}
		w.aborted = true
		panic(http.ErrAbortHandler)
	}
	e, known := toOCI(err)
	if !known {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.HTTPStatus() == 499 {
		return // client went away; nobody to answer
	}
	body := oci.Envelope(e)
	hdr := w.Header()
	hdr.Del("Content-Length")
	hdr.Del("Docker-Content-Digest")
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.HTTPStatus())
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
