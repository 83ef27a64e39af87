package registry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/oci"
)

// Options configure a Handler.
type Options struct {
	Hosted *hosted.Service
	// HostedNamespaces are path prefixes served by Hosted; HostAll serves
	// every name there (the embedded default).
	HostedNamespaces []string
	HostAll          bool
	// Proxies are the pull-through namespaces.
	Proxies []ProxyNamespace
	// Auth checks who sends each request and what they may do; nil
	// allows everything.
	Auth *auth.Service
	// HostedAnonymousPull names hosted namespaces open to anonymous pulls.
	HostedAnonymousPull map[string]bool

	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	AccessLog bool
	// OnEvent, when set, is told of pushes, pulls, deletes and failures.
	OnEvent func(Event)
	// BlobCopy picks how stored blobs are written to clients: "sendfile"
	// (the kernel copies file to socket) or "buffer" (1 MiB read/write).
	BlobCopy string
	// BlobRedirect, when set, turns the GET of a stored blob (hosted, or
	// a proxy's hit) into a 307 to the URL it returns: the store's
	// presigned URL in cluster mode with storage.s3.redirect, so the bytes
	// go from the store to the client. Visibility and auth are checked
	// first; a download in progress is streamed as always.
	BlobRedirect func(ctx context.Context, d oci.Digest) (string, error)
	// ForwardUpload, in cluster mode, serves a request for an upload
	// session that another replica holds (a *hosted.ElsewhereError) by
	// passing it to that replica, whose scratch area has the bytes, and
	// its answer back. It is called after this replica authorized the
	// request and before anything was read from its body; an error it
	// returns has not been written. Nil: such a session is unknown here.
	ForwardUpload func(w http.ResponseWriter, r *http.Request, owner string) error
	// Internal reports whether r was forwarded by another replica of the
	// cluster (it carries the cluster token). An upload request that
	// was is served without users' auth, which the forwarding replica
	// applied, and is never forwarded again.
	Internal func(r *http.Request) bool
}

// Handler serves the distribution API.
type Handler struct {
	o     Options
	log   *slog.Logger
	table map[Kind]map[string]handlerFunc
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rt Route, tg target) error

// New builds the handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{o: o, log: o.Logger}
	h.table = map[Kind]map[string]handlerFunc{
		KindBase:    {"GET": h.base, "HEAD": h.base},
		KindCatalog: {"GET": h.catalog},
		KindTags:    {"GET": h.tags},
		KindManifest: {
			"GET": h.getManifest, "HEAD": h.getManifest,
			"PUT": h.putManifest, "DELETE": h.deleteManifest,
		},
		KindBlob:        {"GET": h.getBlob, "HEAD": h.getBlob, "DELETE": h.deleteBlob},
		KindUploadStart: {"POST": h.startUpload},
		KindUpload: {
			"GET": h.uploadStatus, "PATCH": h.patchUpload,
			"PUT": h.putUpload, "DELETE": h.cancelUpload,
		},
		KindReferrers: {"GET": h.referrers},
	}
	return h
}

// ServeHTTP parses the route, finds the handler and writes its error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := newRecorder(w)
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, err := ParseRoute(r.URL.EscapedPath())
	// finish runs even when writeError aborts a broken stream (a panic
	// with http.ErrAbortHandler), so every request gets its log line.
	defer func() { h.finish(rw, r, rt, start, err) }()
	if err == nil {
		err = h.dispatch(rw, r, rt)
	}
	if err != nil {
		h.writeError(rw, r, err)
	}
}

func (h *Handler) dispatch(w *recorder, r *http.Request, rt Route) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			w.panicked = true
			h.log.Error("handler panic", "panic", p, "method", r.Method, "path", r.URL.Path, "stack", string(debug.Stack()))
			err = oci.Errorf(oci.CodeUnknown, "internal error")
		}
	}()
	methods := h.table[rt.Kind]
	fn, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return oci.Errorf(oci.CodeUnsupported, "%s is not supported on this endpoint", r.Method)
	}
	var tg target
	if rt.Name != "" {
		var err error
		if tg, err = h.resolve(r, rt.Name); err != nil {
			return err
		}
		if tg.ns != "" {
			w.Header().Set("OCI-Namespace", tg.ns)
		}
		if tg.proxy != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			return h.readOnly(tg)
		}
		internal := rt.Kind == KindUpload && h.o.Internal != nil && h.o.Internal(r)
		if !internal {
			if err := h.authorize(w, r, rt, tg); err != nil {
				return err
			}
		}
		if rt.Kind == KindUpload {
			return h.uploadHere(w, r, rt, tg, fn, internal)
		}
	} else if rt.Kind == KindBase {
		if err := h.authorizeBase(w, r); err != nil {
			return err
		}
	}
	return fn(w, r, rt, tg)
}

// uploadHere serves an upload session's request, or in cluster mode
// forwards it to the replica holding the session.
func (h *Handler) uploadHere(w http.ResponseWriter, r *http.Request, rt Route, tg target, fn handlerFunc, internal bool) error {
	err := fn(w, r, rt, tg)
	var there *hosted.ElsewhereError
	if !errors.As(err, &there) {
		return err
	}
	if internal || h.o.ForwardUpload == nil || there.Owner == "" {
		// Forwarded once already, no way to forward (not in cluster
		// mode), or a session recorded before sessions named their
		// replica: its bytes cannot be reached from here.
		return oci.Errorf(oci.CodeBlobUploadUnknown, "upload %q of %s is held by another replica (%s) and cannot be reached from here; start the push again", rt.Ref, rt.Name, there.Owner)
	}
	return h.o.ForwardUpload(w, r, there.Owner)
}

func (h *Handler) isHosted(name string) bool {
	if h.o.HostAll {
		return true
	}
	for _, ns := range h.o.HostedNamespaces {
		if name == ns || strings.HasPrefix(name, ns+"/") {
			return true
		}
	}
	return false
}

func (h *Handler) base(w http.ResponseWriter, r *http.Request, _ Route, _ target) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("{}"))
	}
	return nil
}
