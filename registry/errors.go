package registry

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"syscall"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

// ErrorFor maps any error to the OCI error answered for it. This is the
// only place where domain errors become codes and statuses. known is false
// for an error no rule matches: an internal failure, answered 500 with a
// message that points at the server log.
func ErrorFor(err error) (e *oci.Error, known bool) {
	if e, ok := oci.AsError(err); ok {
		return e, true
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return oci.Errorf(oci.CodeSizeInvalid, "request body is larger than the %d-byte limit", mbe.Limit).WithStatus(http.StatusRequestEntityTooLarge), true
	case errors.Is(err, storage.ErrNoSpace):
		return &oci.Error{Code: oci.CodeInsufficientStorage, Message: "the data disk is full: free space on it (or lower the cache size) and retry"}, true
	case errors.Is(err, storage.ErrUnavailable):
		return &oci.Error{Code: oci.CodeUnavailable, Message: "the blob store cannot be reached now; retry shortly (the server log says why)"}, true
	case errors.Is(err, index.ErrUnavailable):
		return &oci.Error{Code: oci.CodeUnavailable, Message: "the metadata database cannot be reached now; retry shortly (the server log says why)"}, true
	case errors.Is(err, hosted.ErrGCRunning):
		return &oci.Error{Code: oci.CodeUnavailable, Message: hosted.ErrGCRunning.Error()}, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &oci.Error{Code: oci.CodeUnavailable, Message: "request cancelled", Status: statusClientGone}, true
	}
	return &oci.Error{Code: oci.CodeUnknown, Message: "internal error; see the server log"}, false
}

// statusClientGone marks a request whose client went away: nothing is
// written (nginx's 499, for the access log).
const statusClientGone = 499

// WriteError answers err with its status and the OCI {"errors":[...]}
// body. It is the one writer of every error wharf answers over HTTP: the
// distribution API, the token endpoint, the admin API and paths that name
// no endpoint. It returns the error as answered and whether ErrorFor knew
// it; a request whose client went away gets no answer.
func WriteError(w http.ResponseWriter, r *http.Request, err error) (*oci.Error, bool) {
	e, known := ErrorFor(err)
	if e.HTTPStatus() == statusClientGone {
		return e, known
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
	return e, known
}

// clientLeft reports whether a body broke off because the client went away.
func clientLeft(r *http.Request, err error) bool {
	return r.Context().Err() != nil || errors.Is(err, context.Canceled) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func (h *Handler) writeError(w *recorder, r *http.Request, err error) {
	if w.wroteHeader {
		// The body was already under way (a blob stream broke): the only
		// honest signal left is to abort the connection so the client sees
		// a truncated transfer, never a short body that looks complete.
		w.aborted = true
		if clientLeft(r, err) {
			w.cutStatus = 499 // nginx's "client closed request"
		} else {
			// Ours, not the client's (the upstream broke, or sent bad bytes):
			// logged and counted as the failure it is, not as the 200 sent.
			switch e, known := ErrorFor(err); {
			case !known || e.HTTPStatus() >= 500:
				w.cutStatus = e.HTTPStatus()
			default: // a client error about what the upstream sent (its digest)
				w.cutStatus = http.StatusBadGateway
			}
			h.log.Warn("response cut off mid-body", "method", r.Method, "path", r.URL.Path, "sent", w.bytes, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	if _, known := WriteError(w, r, err); !known {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}
