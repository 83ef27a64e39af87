package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

// startProxyServer runs wharf in process as a cache of an in-process
// registry that reports a Docker-Hub-style pull quota, and pulls one
// image through it twice (a miss, then a hit).
func startProxyServer(t *testing.T) *server.Server {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "100;w=21600")
		w.Header().Set("RateLimit-Remaining", "42;w=21600")
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(origin.Close)
	img, err := random.Image(32<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	push, _ := name.ParseReference(strings.TrimPrefix(origin.URL, "http://")+"/library/app:1", name.Insecure)
	if err := remote.Write(push, img); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nlog:\n  access_log: false\nproxies:\n  - name: hub\n    upstream: %s\n    default: true\n", t.TempDir(), origin.URL))
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(cfg, server.WithVersion("1.2.3"), server.WithIndexCountMaxAge(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	// The second pull must find the first one's fills committed to count
	// as hits, and the caller reads the index: pullImage waits for both.
	pullImage(t, s, "app:1")
	pullImage(t, s, "app:1")
	return s
}

func TestStatusCommand(t *testing.T) {
	s := startProxyServer(t)
	code, out, errOut := runCmd("status", "--url", "http://"+s.Addr())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"wharf 1.2.3 on " + s.Addr() + ": running, up ",
		"Cache    3 hits, 3 misses, 0 stale",
		"hit ratio 50.0%",
		"from the cache,",
		"hub: ",
		"hosted: 0 B in 0 blobs",
		"Budget   none: the cache holds 67.",
		"Index    3 blobs, 1 manifests, 1 tags",
		"hub → http://127.0.0.1:",
		"(default): ok (last answer ",
		"rate limit: 42 of 100 pulls left (42%) per 6h",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("wharf status:\n%s", out)

	code, out, errOut = runCmd("status", "--url", s.Addr(), "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut)
	}
	var r server.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	// Without --url, the listen address of --config is asked.
	cfgPath := filepath.Join(t.TempDir(), "wharf.yml")
	os.WriteFile(cfgPath, []byte("listen: "+s.Addr()+"\n"), 0o644)
	if code, out, errOut := runCmd("status", "--config", cfgPath); code != 0 || !strings.Contains(out, "running") {
		t.Errorf("--config: exit %d: %s %s", code, out, errOut)
	}
	if r.Cache.Hits != 3 || len(r.Proxies) != 1 || r.Proxies[0].RateLimit == nil || r.Proxies[0].RateLimit.Remaining != 42 {
		t.Errorf("--json report = %+v", r)
	}
}

func TestStatusCommandErrors(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if code, _, errOut := runCmd("status", "--url", dead.URL); code != 1 || !strings.Contains(errOut, "cannot reach wharf") {
		t.Errorf("nothing listening: exit %d, %q", code, errOut)
	}
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	if code, _, errOut := runCmd("status", "--url", other.URL); code != 1 || !strings.Contains(errOut, "answered 404") {
		t.Errorf("not wharf: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd("status", "extra"); code != 2 || !strings.Contains(errOut, "--url extra") {
		t.Errorf("argument: exit %d, %q", code, errOut)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 12 * time.Second: "12s", 250 * time.Second: "4m10s", 10 * time.Minute: "10m",
		6 * time.Hour: "6h", 2*time.Hour + 5*time.Minute + 3*time.Second: "2h5m", 26*time.Hour + 3*time.Minute: "1d2h", 48 * time.Hour: "2d",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestPrintReport(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ratio := 0.9
	ok, fail := now.Add(-10*time.Minute), now.Add(-30*time.Second)
	r := server.Report{
		Version: "1.0", State: server.StateRunning, Addr: "[::]:5000", MetricsAddr: "127.0.0.1:9090", UptimeSeconds: 93784,
		Cache:        server.CacheReport{Hits: 1234567, Misses: 137174, HitRatio: &ratio, Coalesced: 12},
		ServedBytes:  map[string]int64{"hit": 5 << 30, "stale": 1 << 30, "miss": 512 << 20},
		Storage:      []server.StorageReport{{Owner: "hub", Proxied: true, Bytes: 3 << 30, Blobs: 1204}, {Owner: "hosted", Bytes: 200 << 20, Blobs: 55}},
		Budget:       server.BudgetReport{MaxBytes: 10 << 30, UsedBytes: 3 << 30, HighWatermark: 0.95, LowWatermark: 0.85, Evictions: 3, EvictedBytes: 1 << 20},
		IndexEntries: map[string]int64{"blob": 1259, "manifest": 310, "tag": 42},
		Proxies: []server.ProxyReport{{
			Name: "hub", Upstream: "https://registry-1.docker.io", Default: true,
			Cache:  server.CacheReport{Hits: 1234567, Misses: 137174, HitRatio: &ratio},
			Health: server.HealthRateLimited, LastSuccess: &ok, LastFailure: &fail, LastError: "too_many_requests",
			UpstreamRequests: 140000, FetchedBytes: 600 << 20, UpstreamErrors: map[string]int64{"too_many_requests": 3, "timeout": 5},
			RateLimit: &server.RateLimitReport{Limit: 100, Remaining: 0, WindowSeconds: 21600, Seen: now.Add(-30 * time.Second)},
			Evictions: 3, EvictedBytes: 1 << 20,
		}},
	}
	var b strings.Builder
	printReport(&b, r, now)
	want := `wharf 1.0 on [::]:5000: running, up 1d2h
metrics on 127.0.0.1:9090

Cache    1,234,567 hits, 137,174 misses, 0 stale           hit ratio 90.0%; 12 clients joined a fetch under way
Served   6.0 GiB from the cache, 512.0 MiB from upstreams  0 B hosted
Storage  hub: 3.0 GiB in 1,204 blobs                       evictable
         hosted: 200.0 MiB in 55 blobs                     never evicted
Budget   3.0 GiB of 10.0 GiB used by the cache (30%)       evicts above 95%; evicted 3 blobs, 1.0 MiB
Index    1,259 blobs, 310 manifests, 42 tags

Upstreams
  hub → https://registry-1.docker.io (default): RATE-LIMITED (too many requests 30s ago; last good answer 10m ago)
    cache: 1,234,567 hits, 137,174 misses, 0 stale, hit ratio 90.0%
    traffic: 140,000 requests, 600.0 MiB received, errors: 5 timeout, 3 too many requests
    rate limit: 0 of 100 pulls left (0%) per 6h (reported 30s ago)
    evicted: 3 blobs, 1.0 MiB
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestPrintReplicas(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	rs := []server.ReplicaReport{
		{Replica: pgindex.Replica{ID: "wharf-0-1a2b3c4d", Addr: "10.0.0.5:5000", Version: "1.2.0", Started: now.Add(-3 * time.Hour), LastSeen: now.Add(-2 * time.Second)}, Self: true},
		{Replica: pgindex.Replica{ID: "wharf-1-5e6f7a8b", Addr: "10.0.0.6:5000", Version: "1.2.0", Started: now.Add(-90 * time.Second), LastSeen: now.Add(-4 * time.Second)}},
	}
	var b strings.Builder
	printReplicas(&b, rs, now)
	want := `
Replicas (2 seen in the last 30s)
  10.0.0.5:5000  wharf-0-1a2b3c4d  1.2.0  up 3h, seen 2s ago     this one
  10.0.0.6:5000  wharf-1-5e6f7a8b  1.2.0  up 1m30s, seen 4s ago
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	printReplicas(&b, nil, now)
	if b.String() != "" {
		t.Errorf("single box: %q, want nothing", b.String())
	}
}
