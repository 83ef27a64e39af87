package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/registry"
)

// opsRoutes adds the endpoints for operators and their tools: /healthz,
// /readyz, /-/status and, when withMetrics, /metrics.
func (s *Server) opsRoutes(mux *http.ServeMux, withMetrics bool) {
	if withMetrics {
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("GET /-/status", s.serveStatus)
	mux.HandleFunc("GET /-/pulls", s.servePulls)
}

// notFound answers a path that names no endpoint on the main listener, in
// the OCI envelope like every other error.
func notFound(w http.ResponseWriter, r *http.Request) {
	registry.WriteError(w, r, oci.Errorf(oci.CodeNotFound, "wharf is a container registry; its API is under /v2/ (try: docker pull %s/NAME:TAG)", r.Host))
}

// opsNotFound is notFound on the metrics.listen listener.
func opsNotFound(w http.ResponseWriter, r *http.Request) {
	registry.WriteError(w, r, oci.Errorf(oci.CodeNotFound, "this is wharf's metrics listener: /metrics, /healthz, /readyz and /-/status"))
}

// ready answers 200 when the server can do its work: running, the index
// answers reads, the data dir takes writes and every listener is serving.
// Each check gets a line, so a 503 says what is wrong.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	checks, err := s.readiness()
	var b strings.Builder
	status := http.StatusOK
	if err != nil {
		status = http.StatusServiceUnavailable
		fmt.Fprintf(&b, "not ready: %v\n", err)
	}
	for _, c := range checks {
		if c.err != nil {
			status = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "%s: %v\n", c.name, c.err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", c.name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

type readinessCheck struct {
	name string
	err  error
}

// readiness runs the checks of /readyz; err is set, and no check run,
// when the server is not running.
func (s *Server) readiness() ([]readinessCheck, error) {
	s.mu.Lock()
	st, idx, store, served := s.state, s.idx, s.store, s.served
	var opsServed chan struct{}
	if s.ops != nil {
		opsServed = s.ops.served
	}
	s.mu.Unlock()
	if st != StateRunning {
		return nil, errors.New("server is " + string(st))
	}
	if s.cfg.Clustered() {
		// The shared engines, and this replica's own scratch area.
		return []readinessCheck{
			{"index", checkIndex(idx)},
			{"blob_store", checkStore(store)},
			{"scratch", checkWritable(filepath.Join(s.cfg.DataDir, "scratch", "tmp"))},
			{"listeners", checkServing(served, opsServed)},
		}, nil
	}
	return []readinessCheck{
		{"index", checkIndex(idx)},
		{"data_dir", checkWritable(filepath.Join(s.cfg.DataDir, "tmp"))},
		{"listeners", checkServing(served, opsServed)},
	}, nil
}

// Healthy runs the checks of /readyz in process: nil when the server is
// running and every check passes, else the first failure.
func (s *Server) Healthy() error {
	checks, err := s.readiness()
	if err != nil {
		return err
	}
	for _, c := range checks {
		if c.err != nil {
			return fmt.Errorf("%s: %w", c.name, c.err)
		}
	}
	return nil
}

// healthLoop runs Healthy every interval until the server stops and
// hands each result to report. A check that hangs (a wedged index) holds
// the loop, so report is not called: a watchdog fed from it starves, as
// it should.
func (s *Server) healthLoop(stop <-chan struct{}) {
	defer s.bg.Done()
	t := time.NewTicker(s.healthEvery)
	defer t.Stop()
	for {
		err := s.Healthy()
		s.mu.Lock()
		stopping := s.state == StateStopping
		s.mu.Unlock()
		if !stopping { // a server shutting down is not sick
			s.healthReport(err)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// checkIndex reads one (absent) record: a closed or broken index fails.
func checkIndex(idx index.Index) error {
	if idx == nil {
		return errors.New("not open")
	}
	return idx.View(func(tx index.Txn) error {
		_, err := tx.Blob(oci.FromBytes(nil))
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		return err
	})
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, "ready-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func checkServing(chans ...chan struct{}) error {
	for _, ch := range chans {
		if ch == nil {
			continue
		}
		select {
		case <-ch:
			return errors.New("a listener stopped serving")
		default:
		}
	}
	return nil
}

// opsListener is the separate listener of metrics.listen.
type opsListener struct {
	ln     net.Listener
	addr   string
	http   *http.Server
	served chan struct{}
}

// listenOps binds metrics.listen, when set; serving starts with serve.
func (s *Server) listenOps() (*opsListener, error) {
	if s.cfg.Metrics.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", s.cfg.Metrics.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (metrics.listen): %w", s.cfg.Metrics.Listen, err)
	}
	mux := http.NewServeMux()
	s.opsRoutes(mux, true)
	mux.HandleFunc("/", opsNotFound)
	return &opsListener{
		ln:   ln,
		addr: ln.Addr().String(),
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		},
		served: make(chan struct{}),
	}, nil
}

func (o *opsListener) serve(log *slog.Logger) {
	if o == nil {
		return
	}
	go func() {
		defer close(o.served)
		if err := o.http.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "addr", o.addr, "err", err)
		}
	}()
}

// close releases a listener that never served.
func (o *opsListener) close() {
	if o != nil {
		o.ln.Close()
	}
}

func (o *opsListener) shutdown(ctx context.Context) {
	if o == nil {
		return
	}
	if err := o.http.Shutdown(ctx); err != nil {
		o.http.Close()
	}
	<-o.served
}

// MetricsAddr is the address /metrics is served on: the metrics.listen
// address actually bound, or Addr when metrics share the main listener.
func (s *Server) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops != nil {
		return s.ops.addr
	}
	return s.addr
}
