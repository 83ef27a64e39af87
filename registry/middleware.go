package registry

import (
	"io"
	"log/slog"
	"net/http"
	"time"
)

// recorder notes status and bytes for the access log and metrics while
// keeping the ResponseWriter's ReaderFrom, so sendfile still works.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	aborted     bool // the connection was cut mid-body
}

func newRecorder(w http.ResponseWriter) *recorder { return &recorder{ResponseWriter: w} }

func (r *recorder) WriteHeader(code int) {
	if r.wroteHeader {
		return
	}
	r.status, r.wroteHeader = code, true
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Event is something a person watching the registry cares about.
type Event struct {
	Time time.Time
	// Type is push, pull (a manifest GET), resolve (a manifest HEAD: a
	// client asking what a tag points at, as Docker does before a pull of
	// an image it already has), delete or error.
	Type      string
	Repo      string
	Reference string
	Status    int
	Bytes     int64
	Remote    string
	Message   string
}

func (h *Handler) finish(w *recorder, r *http.Request, rt Route, start time.Time, err error) {
	status := w.status
	if status == 0 {
		status = 499 // nothing written: the client left first
	}

	dur := time.Since(start)
	h.o.Metrics.ObserveRequest(rt.Kind.String(), r.Method, status, dur)
	if h.o.AccessLog {
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		if w.aborted {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("path", r.URL.RequestURI()),
			slog.Int("status", status),
			slog.Int64("bytes", w.bytes),
			slog.Duration("duration", dur.Round(time.Microsecond)),
			slog.String("remote", r.RemoteAddr),
			slog.String("agent", r.UserAgent()),
		}
		if w.aborted {
			attrs = append(attrs, slog.Bool("aborted", true))
		}
		h.log.LogAttrs(r.Context(), level, "request", attrs...)
	}
	if h.o.OnEvent == nil {
		return
	}
	ev := Event{Time: start, Repo: rt.Name, Reference: rt.Ref, Status: status, Bytes: w.bytes, Remote: r.RemoteAddr}
	switch {
	case status >= 500:
		ev.Type = "error"
		if err != nil {
			ev.Message = err.Error()
		}
	case status >= 400:
		return
	case rt.Kind == KindManifest && r.Method == http.MethodPut:
		ev.Type = "push"
	case rt.Kind == KindManifest && r.Method == http.MethodGet:
		ev.Type = "pull"
	case rt.Kind == KindManifest && r.Method == http.MethodHead:
		ev.Type = "resolve"
	case (rt.Kind == KindManifest || rt.Kind == KindBlob) && r.Method == http.MethodDelete:
		ev.Type = "delete"
	default:
		return
	}
	h.o.OnEvent(ev)
}
