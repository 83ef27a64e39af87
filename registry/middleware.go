package registry

import (
	"io"
	"log/slog"
	"net/http"
	"time"
)

// recorder notes status and bytes for the access log and metrics while
// keeping the ResponseWriter's ReaderFrom where it has one, so sendfile
// still works on HTTP/1.1.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	aborted     bool   // the connection was cut mid-body
	cutStatus   int    // what an aborted response counts as: 499 (client left) or 5xx
	panicked    bool   // a handler panicked: the request failed, whatever went out
	source      string // a proxied manifest's cache answer (hit, miss, stale), for the event
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

// ReadFrom hands src to the server's own ReadFrom when it has one: on
// HTTP/1.1 that sends a file with sendfile. HTTP/2's writer has none (its
// bytes go out in DATA frames), so then src is copied through Write with a
// pooled buffer. writerOnly hides this method from io.CopyBuffer, which
// would otherwise call it again and never return.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		buf := getBuf()
		n, err = io.CopyBuffer(writerOnly{r.ResponseWriter}, readerOnly{src}, *buf)
		putBuf(buf)
	}
	r.bytes += n
	return n, err
}

// Flush pushes buffered bytes to the client. http.ResponseController finds
// a Flusher through any wrappers below this one and reports when there is
// none, which for a plain writer is nothing to do.
func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
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
	// Source is where a proxied manifest came from: hit, miss or stale
	// (the cache's answer); empty for hosted repositories.
	Source string
}

func (h *Handler) finish(w *recorder, r *http.Request, rt Route, start time.Time, err error) {
	status := w.status
	switch {
	case w.panicked:
		// The client may have been sent a 200 before the panic, but the
		// response never completed: it is a server failure.
		status = http.StatusInternalServerError
	case w.aborted && w.cutStatus != 0:
		// The header said 200, but the body never completed.
		status = w.cutStatus
	case status == 0:
		status = 499 // nothing written: the client left first
	}

	dur := time.Since(start)
	h.o.Metrics.ObserveRequest(rt.Kind.String(), r.Method, status, dur)
	if h.o.AccessLog {
		level := slog.LevelInfo
		if w.aborted {
			level = slog.LevelWarn
		}
		if status >= 500 {
			level = slog.LevelError
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
		if w.panicked {
			attrs = append(attrs, slog.Bool("panic", true))
		}
		h.log.LogAttrs(r.Context(), level, "request", attrs...)
	}
	if h.o.OnEvent == nil {
		return
	}
	ev := Event{Time: start, Repo: rt.Name, Reference: rt.Ref, Status: status, Bytes: w.bytes, Remote: r.RemoteAddr, Source: w.source}
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
