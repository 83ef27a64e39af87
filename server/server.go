// Package server is the one place that wires wharf together: storage, the
// index, hosted repositories and the HTTP API, with an explicit lifecycle
// (New, Start, Shutdown) and no package-level state, so a desktop app or a
// test can run several servers in one process.
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
	"sync"
	"syscall"
	"time"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/certs"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/metrics"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/registry"
	"github.com/wharf-registry/wharf/upstream"
)

// State of a server's lifecycle.
type State string

// The states a Server moves through.
const (
	StateNew      State = "new"
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	StateFailed   State = "failed"
)

// Event is a push, pull, delete or error, as the desktop app shows them.
type Event = registry.Event

// Status is a snapshot for `wharf status` and the desktop app.
type Status struct {
	State   State
	Addr    string
	DataDir string
	Started time.Time
	Uptime  time.Duration
	Version string
	Err     string
	Proxies []ProxyStatus
}

// ProxyStatus describes one proxy namespace.
type ProxyStatus struct {
	Name     string
	Upstream string
	Default  bool
	// RateLimit is the upstream's last reported pull limit, if it sends one.
	RateLimit *upstream.RateLimit
}

// Option configures New.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithVersion sets the version reported by metrics and Status.
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithBlobCopy picks "sendfile" or "buffer" for serving stored blobs.
func WithBlobCopy(mode string) Option { return func(s *Server) { s.blobCopy = mode } }

// WithClock makes the server read the time from now instead of time.Now:
// access times (and so LRU order), unused-for eviction, tag TTLs, the
// upstream back-off, event times and uptime. Tests advance a clock of
// their own instead of sleeping.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLDAP replaces the directory the auth section configures with src
// (tests, and embedders with their own user source).
func WithLDAP(src auth.Source) Option { return func(s *Server) { s.ldap = src } }

// WithHealthLoop runs the checks of /readyz every interval while the
// server runs (the first right after Start) and calls report with the
// result: nil when healthy. systemd's watchdog is fed from it, so that a
// wedged server is restarted. report must not block for long.
func WithHealthLoop(every time.Duration, report func(error)) Option {
	return func(s *Server) { s.healthEvery, s.healthReport = every, report }
}

// Server is one wharf instance.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	version  string
	blobCopy string
	metrics  *metrics.Metrics
	now      func() time.Time

	healthEvery  time.Duration // 0: no health loop
	healthReport func(error)

	mu        sync.Mutex
	state     State
	leader    leader          // cluster mode; nil: this process is alone
	replicas  replicaRegistry // cluster mode: heartbeats; nil otherwise
	replicaID string
	// tokenKey signs users' bearer tokens in cluster mode, the same on
	// every replica (nil: the key in the data dir).
	tokenKey []byte
	locks    clusterLocks // cluster mode; nil otherwise
	started  time.Time
	lastErr  error
	addr     string
	lock     *os.File
	idx      index.Index
	store    blobStore
	// blobRedirect answers blob GETs with the store's presigned URLs
	// (cluster mode with storage.s3.redirect); nil serves the bytes.
	blobRedirect func(ctx context.Context, d oci.Digest) (string, error)
	hosted       *hosted.Service
	proxies      []registry.ProxyNamespace
	http         *http.Server
	stop         chan struct{}
	bg           sync.WaitGroup
	life         *cache.Lifecycle
	admin        *adminListener
	lifeCancel   context.CancelFunc
	lifeDone     chan struct{}
	served       chan struct{}
	watches      []*upstreamWatch // one per proxy, in config order
	ops          *opsListener     // nil unless metrics.listen is set
	counts       *countCache
	auth         *auth.Service        // nil: no auth section
	certs        *certs.Manager       // nil: plain HTTP
	acmeHTTP     *http.Server         // ACME HTTP-01 and redirects to https
	ldap         auth.Source          // replaces the configured directory (tests)
	coord        *cluster.Coordinator // nil outside cluster mode
	// noLifecycle leaves the proxies without access times or in-use
	// marks: the baseline of the bookkeeping benchmark (export_test.go).
	noLifecycle bool

	subMu  sync.Mutex
	subs   map[int]chan Event
	nextID int
	pulls  pullLog  // what GET /-/pulls lists
	events eventLog // what GET /-/admin/events lists
}

// New validates cfg and prepares a server; nothing touches the disk or
// the network until Start.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("server: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, state: StateNew, version: "dev", blobCopy: "sendfile", now: time.Now, subs: map[int]chan Event{}, counts: newCountCache()}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.metrics = metrics.New(s.version)
	s.metrics.SetState(s.metricsState)
	return s, nil
}

// Config is the configuration the server runs with.
func (s *Server) Config() *config.Config { return s.cfg }

// Metrics exposes the server's instruments.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Start opens the data dir (taking its lock), reconciles the index with
// the files, listens, and serves in the background. Listen and lock errors
// are returned here, synchronously.
func (s *Server) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != StateNew && s.state != StateStopped && s.state != StateFailed {
		return fmt.Errorf("server is %s", s.state)
	}
	s.state = StateStarting
	defer func() {
		if err != nil {
			s.state, s.lastErr = StateFailed, err
			s.closeStores()
		}
	}()
	dir := s.cfg.DataDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}
	if s.lock, err = lockDir(dir); err != nil {
		return err
	}
	if s.cfg.Clustered() {
		err = s.openCluster(ctx, dir)
	} else {
		err = s.openLocal(ctx, dir)
	}
	if err != nil {
		return err
	}
	s.hosted = hosted.New(s.store, s.idx, s.log)
	if s.replicas != nil {
		// Upload sessions' bytes stay in this replica's scratch area:
		// the others forward their requests here.
		s.hosted.SetOwner(s.replicaID)
	}
	s.life = cache.NewLifecycle(cache.LifecycleOptions{
		Index: s.idx, Store: s.store, Logger: s.log, Metrics: s.metrics, Now: s.now,
		Budget: cache.Budget{
			MaxSize:   int64(s.cfg.Cache.MaxSize),
			High:      s.cfg.Cache.HighWatermark,
			Low:       s.cfg.Cache.LowWatermark,
			MaxUnused: s.cfg.Cache.MaxUnused.Std(),
			Proxies:   proxyBudgets(s.cfg),
		},
		Leading: s.leadingFunc(),
		OnEvict: func(r cache.EvictReport) {
			what := "proxied content"
			if r.Proxy != "" {
				what = "proxy " + r.Proxy
			}
			s.publish(Event{Time: s.now(), Type: "evict", Bytes: r.Bytes, Repo: r.Proxy,
				Message: fmt.Sprintf("evicted %d blobs (%d bytes, reason %s); %s now %d of %d bytes", r.Blobs, r.Bytes, r.Reason, what, r.UsedAfter, r.Budget)})
		},
	})
	if s.proxies, err = s.buildProxies(); err != nil {
		return err
	}
	if s.certs, err = certs.New(s.cfg.TLS, dir, s.log); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if s.auth, err = auth.New(s.cfg.Auth, dir, auth.Options{Logger: s.log, Metrics: s.metrics, LDAP: s.ldap, TokenKey: s.tokenKey}); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if n, err := s.hosted.ExpireUploads(ctx, uploadMaxAge, true); err != nil {
		return err
	} else if n > 0 {
		s.log.Info("removed abandoned uploads", "count", n)
	}

	ops, err := s.listenOps()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		ops.close()
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	s.addr = ln.Addr().String()
	if s.coord != nil {
		s.coord.SetAddr(s.advertise(ln.Addr()))
		s.log.Info("cluster: fills are shared with the other replicas", "advertise", s.coord.Addr())
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         s.certs.TLSConfig(),
	}
	if err := s.listenACMEHTTP(); err != nil {
		ln.Close()
		ops.close()
		return err
	}
	s.stop = make(chan struct{})
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		serve := s.http.Serve
		if s.certs != nil {
			// ServeTLS adds h2 to the protocols; certificates come from
			// TLSConfig.GetCertificate.
			serve = func(l net.Listener) error { return s.http.ServeTLS(l, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serving stopped", "err", err)
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
		}
	}()
	s.ops = ops
	ops.serve(s.log)
	s.bg.Add(2)
	go s.housekeeping()
	if s.replicas != nil {
		me := pgindex.Replica{ID: s.replicaID, Addr: s.coord.Addr(), Version: s.version, Started: s.now()}
		s.beat(s.replicas, me) // listed as soon as it serves
		s.bg.Add(1)
		go s.heartbeats(s.replicas, me, s.stop)
	}
	go func(idx index.Index) {
		defer s.bg.Done()
		s.counts.run(idx, s.stop)
	}(s.idx)
	if s.admin, err = s.listenAdmin(); err != nil {
		s.log.Warn("admin socket unavailable; `wharf cache` commands will not reach this server", "err", err)
	}
	lctx, lcancel := context.WithCancel(context.Background())
	s.lifeCancel, s.lifeDone = lcancel, make(chan struct{})
	go func() {
		defer close(s.lifeDone)
		s.life.Run(lctx, lifecycleInterval)
	}()
	s.state, s.started, s.lastErr = StateRunning, s.now(), nil
	if s.healthEvery > 0 && s.healthReport != nil {
		s.bg.Add(1)
		// Healthy takes s.mu, which Start holds: the loop's first check
		// waits for Start to return.
		go s.healthLoop(s.stop)
	}
	if ops != nil {
		s.log.Info("serving /metrics on its own address", "metrics_addr", ops.addr)
	}
	if s.certs != nil {
		s.log.Info(s.certs.Describe())
		if ca := s.certs.CAFile(); ca != "" {
			s.log.Info("clients must trust the self-signed CA; `wharf tls ca` prints where Docker, containerd and podman want it", "ca", ca)
		}
	}
	s.log.Info("wharf is serving", "scheme", s.scheme(), "addr", s.addr, "data_dir", dir, "hosted", s.hostedDesc(), "proxies", s.proxiesDesc(), "version", s.version)
	return nil
}

const uploadMaxAge = 24 * time.Hour

// cleanMarker is written by a clean Shutdown and removed by Start.
const cleanMarker = "CLEAN"

// lifecycleInterval is how often access times are saved and the cache
// budget checked (a fill that grows the cache also triggers a check).
const lifecycleInterval = 10 * time.Second

// Lifecycle exposes the cache lifecycle (eviction, access times) for the
// admin API and the desktop app.
func (s *Server) Lifecycle() *cache.Lifecycle { return s.life }

func (s *Server) hostedDesc() string {
	if s.cfg.HostAll {
		return "every repository"
	}
	out := ""
	for i, h := range s.cfg.Hosted {
		if i > 0 {
			out += ", "
		}
		out += h.Name + "/"
	}
	if out == "" {
		return "none"
	}
	return out
}

func (s *Server) proxiesDesc() string {
	out := ""
	for i, p := range s.cfg.Proxies {
		if i > 0 {
			out += ", "
		}
		out += p.Name + "/ → " + p.Upstream
		if p.Default {
			out += " (default)"
		}
	}
	if out == "" {
		return "none"
	}
	return out
}

// buildProxies makes one upstream client and one cache per configured proxy.
func (s *Server) buildProxies() ([]registry.ProxyNamespace, error) {
	var out []registry.ProxyNamespace
	pins, err := pinRules(s.cfg)
	if err != nil {
		return nil, err
	}
	s.watches = nil
	for _, pc := range s.cfg.Proxies {
		pw, err := pc.ResolvePassword()
		if err != nil {
			return nil, err
		}
		watch := newUpstreamWatch(s.metrics, pc.Name)
		s.watches = append(s.watches, watch)
		s.metrics.InitProxy(pc.Name)
		up, err := upstream.New(upstream.Config{
			Name:      pc.Name,
			URL:       pc.Upstream,
			Username:  pc.Username,
			Password:  pw,
			CAFile:    pc.CAFile,
			Insecure:  pc.Insecure,
			DockerHub: pc.IsDockerHub(),
			Timeout:   pc.Timeout.Std(),
			// The same bound between body bytes: a stalled stream fails
			// within the configured timeout, not a minute later.
			IdleTimeout: pc.Timeout.Std(),
			Logger:      s.log,
			Observer:    watch,
		})
		if err != nil {
			return nil, fmt.Errorf("proxy %s: %w", pc.Name, err)
		}
		out = append(out, registry.ProxyNamespace{
			Name:          pc.Name,
			Default:       pc.Default,
			DockerHub:     pc.IsDockerHub(),
			Hosts:         pc.Hosts(),
			AnonymousPull: pc.AllowsAnonymousPull(),
			Proxy: cache.New(cache.Options{
				Name:      pc.Name,
				Upstream:  up,
				Store:     s.store,
				Index:     s.idx,
				TagTTL:    pc.TagTTL.Std(),
				Lifecycle: s.proxyLifecycle(),
				Pins:      pins,
				Logger:    s.log,
				Metrics:   s.metrics,
				Now:       s.now,

				Coordinator: s.coordinator(),
			}),
		})
	}
	return out, nil
}

func (s *Server) proxyLifecycle() *cache.Lifecycle {
	if s.noLifecycle {
		return nil
	}
	return s.life
}

func (s *Server) logReconcile(r index.ReconcileReport) {
	s.log.Info("index reconciled with blob files", "blobs", r.BlobsOnDisk, "bytes", r.BytesOnDisk)
	if r.TempFilesRemoved+r.RecordsDropped+r.ManifestsDropped+r.FilesIndexed > 0 {
		s.log.Warn("repaired after an unclean stop",
			"temp_files_removed", r.TempFilesRemoved, "records_without_file", r.RecordsDropped,
			"manifests_without_bytes", r.ManifestsDropped, "files_reindexed", r.FilesIndexed)
	}
	for _, p := range r.UnrecognizedFiles {
		s.log.Warn("unrecognized file in blob store; left alone", "path", p)
	}
}

func (s *Server) routes() http.Handler {
	var forward func(http.ResponseWriter, *http.Request, string) error
	var internal func(*http.Request) bool
	if s.coord != nil {
		forward = func(w http.ResponseWriter, r *http.Request, owner string) error {
			return s.coord.ForwardUpload(w, r, owner, s.replicaAddr)
		}
		internal = s.coord.Internal
	}
	api := registry.New(registry.Options{
		Hosted:           s.hosted,
		HostedNamespaces: hostedNames(s.cfg),
		HostAll:          s.cfg.HostAll,
		Proxies:          s.proxies,
		Logger:           s.log,
		Metrics:          s.metrics,
		AccessLog:        *s.cfg.Log.AccessLog,
		OnEvent:          s.publish,
		BlobCopy:         s.blobCopy,
		BlobRedirect:     s.blobRedirect,
		Auth:             s.auth,
		ForwardUpload:    forward,
		Internal:         internal,

		HostedAnonymousPull: hostedAnonymous(s.cfg),
	})
	mux := http.NewServeMux()
	mux.Handle("/v2/", api)
	mux.Handle("/v2", api)
	if s.auth != nil {
		mux.HandleFunc(registry.TokenPath, api.ServeToken)
		// The admin API over the network, for admins only; the unix
		// socket in the data dir stays for local use without a login.
		mux.Handle("/-/admin/", http.StripPrefix("/-/admin", s.requireAdmin(s.adminRoutes())))
	}
	if s.coord != nil {
		// Other replicas stream fills from here; the cluster token, not
		// a user's login, guards it.
		mux.Handle(cluster.BlobPath, s.coord.Handler(s.cacheProxies))
	}
	// With metrics.listen set, /metrics moves to that listener; health
	// and status answer on both.
	s.opsRoutes(mux, s.cfg.Metrics.Listen == "")
	mux.HandleFunc("/", notFound)
	return mux
}

func proxyBudgets(c *config.Config) map[string]cache.ProxyBudget {
	out := map[string]cache.ProxyBudget{}
	for name, b := range c.Cache.Proxies {
		out[name] = cache.ProxyBudget{MaxSize: int64(b.MaxSize), MaxUnused: b.MaxUnused.Std()}
	}
	return out
}

func hostedAnonymous(c *config.Config) map[string]bool {
	out := map[string]bool{}
	for _, h := range c.Hosted {
		if h.AnonymousPull {
			out[h.Name] = true
		}
	}
	return out
}

func hostedNames(c *config.Config) []string {
	out := make([]string, 0, len(c.Hosted))
	for _, h := range c.Hosted {
		out = append(out, h.Name)
	}
	return out
}

func (s *Server) housekeeping() {
	defer s.bg.Done()
	leading := s.leadingFunc()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	var gcTick <-chan time.Time // nil (never) when gc.schedule is 0
	if every := s.cfg.GC.Schedule.Std(); every > 0 {
		gt := time.NewTicker(every)
		defer gt.Stop()
		gcTick = gt.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-gcTick:
			s.scheduledGC(leading)
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			if n, err := s.hosted.ExpireUploads(ctx, uploadMaxAge, false); err != nil {
				s.log.Warn("expiring uploads failed", "err", err)
			} else if n > 0 {
				s.log.Info("removed abandoned uploads", "count", n)
			}
			s.idx.RunGC()
			cancel()
		}
	}
}

// Addr is the address actually listened on (useful with port 0).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops accepting connections, waits for in-flight requests
// until ctx ends, then closes the index and releases the data dir.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.state != StateRunning {
		st := s.state
		s.mu.Unlock()
		if st == StateStopped || st == StateNew {
			return nil
		}
		return fmt.Errorf("server is %s", st)
	}
	s.state = StateStopping
	s.mu.Unlock()

	s.admin.close(ctx)
	s.admin = nil
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	if s.acmeHTTP != nil {
		s.acmeHTTP.Shutdown(ctx)
		s.acmeHTTP = nil
	}
	<-s.served
	s.ops.shutdown(ctx)
	close(s.stop)
	s.bg.Wait()
	for _, p := range s.proxies {
		p.Proxy.Close()
	}
	s.lifeCancel()
	<-s.lifeDone
	s.auth.Close()

	s.mu.Lock()
	defer s.mu.Unlock()
	if cerr := s.closeStores(); err == nil {
		err = cerr
		if cerr == nil {
			os.WriteFile(filepath.Join(s.cfg.DataDir, cleanMarker), []byte("wharf stopped cleanly; the next start skips the full index check\n"), 0o640)
		}
	}
	s.state = StateStopped
	s.log.Info("wharf stopped")
	return err
}

func (s *Server) closeStores() error {
	var err error
	if s.coord != nil {
		s.coord.Close()
		s.coord = nil
	}
	if s.leader != nil {
		s.leader.Close() // before the index: steps down at once
		s.leader = nil
	}
	s.replicas, s.locks = nil, nil
	if s.idx != nil {
		err = s.idx.Close()
		s.idx = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

// Status reports the lifecycle state.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{State: s.state, Addr: s.addr, DataDir: s.cfg.DataDir, Started: s.started, Version: s.version}
	if s.state == StateRunning {
		st.Uptime = s.now().Sub(s.started)
	}
	if s.lastErr != nil {
		st.Err = s.lastErr.Error()
	}
	for i, pc := range s.cfg.Proxies {
		ps := ProxyStatus{Name: pc.Name, Upstream: pc.Upstream, Default: pc.Default}
		if i < len(s.proxies) {
			if rl, ok := s.proxies[i].Proxy.RateLimit(); ok {
				ps.RateLimit = &rl
			}
		}
		st.Proxies = append(st.Proxies, ps)
	}
	return st
}

// Subscribe returns a channel of events and a function that ends the
// subscription. A subscriber that falls behind misses events rather than
// slowing the registry.
func (s *Server) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer < 1 {
		buffer = 64
	}
	ch := make(chan Event, buffer)
	s.subMu.Lock()
	id := s.nextID
	s.nextID++
	s.subs[id] = ch
	s.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.subMu.Lock()
			delete(s.subs, id)
			s.subMu.Unlock()
			close(ch)
		})
	}
}

func (s *Server) publish(e Event) {
	s.pulls.add(e)
	s.events.add(e)
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// lockDir takes an exclusive lock on DIR/LOCK so two wharf processes never
// share a data dir.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another wharf process; stop it or use another --data-dir", dir)
		}
		return nil, fmt.Errorf("locking data dir: %w", err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}
