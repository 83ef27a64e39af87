package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/registry"
)

// AdminSocket is the admin API's unix socket inside the data dir. Only
// the user running wharf can connect (mode 0600), which is the
// authentication: `wharf cache ...` run as that user on that machine.
const AdminSocket = "admin.sock"

type adminListener struct {
	ln  net.Listener
	srv *http.Server
}

func (s *Server) listenAdmin() (*adminListener, error) {
	p := filepath.Join(s.cfg.DataDir, AdminSocket)
	if abs, err := filepath.Abs(p); err == nil && len(abs) >= 104 {
		s.log.Warn("data dir path too long for the admin socket; `wharf cache` commands are unavailable", "path", abs)
		return nil, nil
	}
	os.Remove(p) // a stale socket from a crash; the data dir lock says we own it
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	a := &adminListener{ln: ln, srv: &http.Server{Handler: s.adminRoutes(), ReadHeaderTimeout: 10 * time.Second}}
	go a.srv.Serve(ln)
	return a, nil
}

func (a *adminListener) close(ctx context.Context) {
	if a != nil {
		a.srv.Shutdown(ctx)
	}
}

// adminFunc serves one admin endpoint: its answer is encoded as JSON, its
// error written by registry.WriteError like every other error.
type adminFunc func(*http.Request) (any, error)

// adminRoutes is the admin API: a table of path and method, so an unknown
// path and a wrong method are answered in the OCI envelope too (404
// NOT_FOUND, 405 UNSUPPORTED), not by ServeMux's plain text.
func (s *Server) adminRoutes() http.Handler {
	routes := map[string]map[string]adminFunc{
		"/cache/stats": {http.MethodGet: func(r *http.Request) (any, error) { return s.CacheStats() }},
		"/cache/ls": {http.MethodGet: func(r *http.Request) (any, error) {
			q := r.URL.Query()
			n := 0
			if l := q.Get("limit"); l != "" {
				var err error
				if n, err = strconv.Atoi(l); err != nil || n < 0 {
					return nil, oci.Errorf(oci.CodePaginationInvalid, "limit: %q is not a number of rows (0 for all)", l)
				}
			}
			return s.CacheList(q.Get("sort"), q.Get("proxy"), n)
		}},
		"/cache/evict": {http.MethodPost: func(r *http.Request) (any, error) {
			q := r.URL.Query()
			if u := q.Get("unused_for"); u != "" {
				d, err := config.ParseDuration(u)
				if err != nil || d < 0 {
					return nil, oci.Errorf(oci.CodeParameterInvalid, "unused_for: %q is not a duration like 30d or 12h", u)
				}
				return s.life.EvictUnusedFor(r.Context(), d)
			}
			return s.EvictImage(r.Context(), q.Get("image"))
		}},
		"/cache/pin": {http.MethodPost: func(r *http.Request) (any, error) {
			return s.PinImage(r.Context(), r.URL.Query().Get("image"), true)
		}},
		"/cache/unpin": {http.MethodPost: func(r *http.Request) (any, error) {
			return s.PinImage(r.Context(), r.URL.Query().Get("image"), false)
		}},
		"/cache/warm": {http.MethodPost: func(r *http.Request) (any, error) {
			return s.Prewarm(r.Context(), r.URL.Query().Get("image"), nil)
		}},
		"/transfers": {http.MethodGet: func(r *http.Request) (any, error) {
			if t := s.Transfers(); t != nil {
				return t, nil
			}
			return []Transfer{}, nil
		}},
		"/events": {http.MethodGet: func(r *http.Request) (any, error) {
			seq, err := afterParam(r)
			if err != nil {
				return nil, err
			}
			return s.RecentEvents(seq), nil
		}},
		"/whoami": {http.MethodGet: func(r *http.Request) (any, error) { return s.whoami(r) }},
		"/users":  {http.MethodGet: func(r *http.Request) (any, error) { return s.Users() }},
		"/users/{name}": {
			http.MethodPut:    func(r *http.Request) (any, error) { return s.userRoute(r, r.PathValue("name")) },
			http.MethodDelete: func(r *http.Request) (any, error) { return s.userRoute(r, r.PathValue("name")) },
		},
		"/gc": {http.MethodPost: func(r *http.Request) (any, error) {
			q := r.URL.Query()
			req := GCRequest{DryRun: q.Get("dry_run") == "1" || q.Get("dry_run") == "true"}
			if g := q.Get("grace"); g != "" {
				d, err := config.ParseDuration(g)
				if err != nil || d < 0 {
					return nil, oci.Errorf(oci.CodeParameterInvalid, "grace: %q is not a duration like 1h or 0s", g)
				}
				req.Grace = &d
			}
			return s.GC(r.Context(), req)
		}},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if name, ok := strings.CutPrefix(path, "/users/"); ok && name != "" && !strings.Contains(name, "/") {
			path = "/users/{name}"
			r.SetPathValue("name", name)
		}
		methods, ok := routes[path]
		if !ok {
			s.adminError(w, r, oci.Errorf(oci.CodeNotFound, "no admin endpoint %s", r.URL.Path))
			return
		}
		fn, ok := methods[r.Method]
		if !ok {
			allow := slices.Sorted(maps.Keys(methods))
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.adminError(w, r, oci.Errorf(oci.CodeUnsupported, "%s is not supported on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
			return
		}
		v, err := fn(r)
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	})
}

// adminError answers err through the one OCI error writer. An internal
// failure is answered with its own text, not a pointer to the log: the
// admin API talks only to the operator, who needs to know what failed.
func (s *Server) adminError(w http.ResponseWriter, r *http.Request, err error) {
	if _, known := registry.ErrorFor(err); !known {
		s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		err = oci.Errorf(oci.CodeUnknown, "%v", err)
	}
	registry.WriteError(w, r, err)
}

// CacheStats is what `wharf cache stats` shows.
type CacheStats struct {
	Origins       map[string]index.Usage `json:"origins"`
	ProxiedBytes  int64                  `json:"proxiedBytes"`
	ProxiedBlobs  int64                  `json:"proxiedBlobs"`
	HostedBytes   int64                  `json:"hostedBytes"`
	HostedBlobs   int64                  `json:"hostedBlobs"`
	MaxSize       int64                  `json:"maxSize"`
	HighWatermark float64                `json:"highWatermark"`
	LowWatermark  float64                `json:"lowWatermark"`
	MaxUnused     string                 `json:"maxUnused,omitempty"`
	PinnedDigests int                    `json:"pinnedDigests"`
	// ProxyBudgets are the budgets of single proxies (cache.proxies).
	ProxyBudgets map[string]ProxyBudgetStats `json:"proxyBudgets,omitempty"`
}

// ProxyBudgetStats is one proxy's own budget.
type ProxyBudgetStats struct {
	MaxSize   int64  `json:"maxSize,omitempty"`
	MaxUnused string `json:"maxUnused,omitempty"`
}

// CacheStats reports usage against the budget.
func (s *Server) CacheStats() (CacheStats, error) {
	_, done, err := s.use(context.Background())
	if err != nil {
		return CacheStats{}, err
	}
	defer done()
	b := s.life.Budget()
	st := CacheStats{MaxSize: b.MaxSize, HighWatermark: b.High, LowWatermark: b.Low}
	if b.MaxUnused > 0 {
		st.MaxUnused = b.MaxUnused.String()
	}
	for name, pb := range b.Proxies {
		if st.ProxyBudgets == nil {
			st.ProxyBudgets = map[string]ProxyBudgetStats{}
		}
		ps := ProxyBudgetStats{MaxSize: pb.MaxSize}
		if pb.MaxUnused > 0 {
			ps.MaxUnused = pb.MaxUnused.String()
		}
		st.ProxyBudgets[name] = ps
	}
	err = s.idx.View(func(tx index.Txn) error {
		var err error
		if st.Origins, err = tx.Usages(); err != nil {
			return err
		}
		pins, err := tx.PinRules()
		st.PinnedDigests = len(pins)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("cache stats: reading usage and pins from the index: %w", err)
	}
	for origin, u := range st.Origins {
		if (index.BlobRecord{Origin: origin}).Evictable() {
			st.ProxiedBytes += u.Bytes
			st.ProxiedBlobs += u.Count
		} else {
			st.HostedBytes += u.Bytes
			st.HostedBlobs += u.Count
		}
	}
	return st, nil
}

// CacheEntry is one row of `wharf cache ls`.
type CacheEntry struct {
	Digest     oci.Digest `json:"digest"`
	Size       int64      `json:"size"`
	MediaType  string     `json:"mediaType,omitempty"`
	Origin     string     `json:"origin"`
	Created    time.Time  `json:"created"`
	LastAccess time.Time  `json:"lastAccess"`
	Hits       int64      `json:"hits"`
	Pinned     bool       `json:"pinned"`
	Repos      []string   `json:"repos"`
	// Tags are the cached tags pointing at a manifest, as REPO:TAG.
	Tags []string `json:"tags,omitempty"`
}

// CacheList lists cached (proxied) blobs, sorted by size or last use.
func (s *Server) CacheList(sortBy, proxy string, limit int) ([]CacheEntry, error) {
	_, done, err := s.use(context.Background())
	if err != nil {
		return nil, err
	}
	defer done()
	switch sortBy {
	case "", "size", "last-used":
	default:
		return nil, oci.Errorf(oci.CodeParameterInvalid, "sort must be size or last-used, not %q", sortBy)
	}
	if err := s.life.Flush(context.Background()); err != nil {
		return nil, fmt.Errorf("cache ls: writing pending access times to the index: %w", err)
	}
	var out []CacheEntry
	err = s.idx.View(func(tx index.Txn) error {
		return tx.EachBlob(func(r index.BlobRecord) error {
			if !r.Evictable() || (proxy != "" && r.Origin != proxy) {
				return nil
			}
			pinned, err := tx.Pinned(r.Digest)
			if err != nil {
				return err
			}
			repos, err := tx.BlobRepos(r.Digest)
			if err != nil {
				return err
			}
			var tags []string
			if oci.IsManifestMediaType(r.MediaType) {
				for _, repo := range repos {
					t, err := tx.TagsFor(repo, r.Digest)
					if err != nil {
						return err
					}
					for _, tag := range t {
						tags = append(tags, repo+":"+tag)
					}
				}
			}
			out = append(out, CacheEntry{Digest: r.Digest, Size: r.Size, MediaType: r.MediaType, Origin: r.Origin,
				Created: r.Created, LastAccess: r.LastAccess, Hits: r.Hits, Pinned: pinned, Repos: repos, Tags: tags})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cache ls: listing blobs in the index: %w", err)
	}
	if sortBy == "size" {
		sort.Slice(out, func(i, j int) bool { return out[i].Size > out[j].Size })
	} else {
		sort.Slice(out, func(i, j int) bool { return out[i].LastAccess.After(out[j].LastAccess) })
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// PinResult says what a pin or unpin changed.
type PinResult struct {
	Image   string `json:"image"`
	Digests int    `json:"digests"`
}

// PinImage pins (or unpins) a cached image and everything it references.
func (s *Server) PinImage(ctx context.Context, image string, pin bool) (PinResult, error) {
	ctx, done, err := s.use(ctx)
	if err != nil {
		return PinResult{}, err
	}
	defer done()
	if image == "" {
		return PinResult{}, oci.Errorf(oci.CodeParameterInvalid, "name an image, e.g. hub/library/alpine:3.20")
	}
	_, canon, ref, err := parseImage(s.cfg, image)
	if err != nil {
		return PinResult{}, err
	}
	n, err := s.life.PinCached(ctx, canon, ref, canon+":"+ref.String(), pin)
	return PinResult{Image: canon + ":" + ref.String(), Digests: n}, err
}

// EvictImage drops one cached image: its manifest and the blobs only it
// used are fetched again on the next pull.
func (s *Server) EvictImage(ctx context.Context, image string) (any, error) {
	ctx, done, err := s.use(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	if image == "" {
		return nil, oci.Errorf(oci.CodeParameterInvalid, "name an image (wharf cache evict IMAGE) or use --unused-for")
	}
	_, canon, ref, err := parseImage(s.cfg, image)
	if err != nil {
		return nil, err
	}
	return s.life.EvictImage(ctx, canon, ref)
}

// requireAdmin lets only users with the admin role through (Basic
// credentials or a token from /auth/token).
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.auth.Identify(r)
		switch {
		case err != nil || id.Anonymous():
			w.Header().Set("WWW-Authenticate", `Basic realm="wharf admin"`)
			registry.WriteError(w, r, oci.Errorf(oci.CodeUnauthorized, "the admin API needs an admin's credentials"))
		case !s.auth.Policy().IsAdmin(id):
			s.log.Warn("admin API refused", "user", id.User, "remote", r.RemoteAddr, "path", r.URL.Path)
			registry.WriteError(w, r, oci.Errorf(oci.CodeDenied, "user %s is not an admin (auth.admins)", id.User))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// use holds the server open for one in-process call (the desktop app's
// Cache tab, the admin API): it fails unless the server is running, and
// Shutdown waits for the call before it closes the index, so a listing
// racing a Stop gets an error, never a closed index. The context it
// returns ends when Shutdown begins, so a long call (a pre-warm) does not
// hold the stop up.
func (s *Server) use(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	if s.state != StateRunning {
		defer s.mu.Unlock()
		return nil, nil, oci.Errorf(oci.CodeUnavailable, "server is %s", s.state)
	}
	stop := s.stop
	s.bg.Add(1) // under s.mu while running: before Shutdown's Wait
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(); s.bg.Done() }, nil
}
