//go:build linux

package harness

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// HTTPRoundRobin is an HTTP front for replicas, as nginx's or HAProxy's
// HTTP mode is without any affinity: each request, not each connection,
// goes to the next backend in turn, so the requests of one push land on
// different replicas. The Host header is kept, as `proxy_set_header Host
// $host` does.
type HTTPRoundRobin struct {
	Addr string // 127.0.0.1:PORT
	URL  string // http://127.0.0.1:PORT
	next atomic.Uint64

	mu          sync.Mutex
	perBackend  map[string]map[string]int // backend → method → requests
	backendURLs []*url.URL
}

// StartHTTPRoundRobin serves on a free loopback port in front of backends
// (base URLs, http or https; a backend's certificate is not checked).
func StartHTTPRoundRobin(t testing.TB, backends ...string) *HTTPRoundRobin {
	t.Helper()
	rr := &HTTPRoundRobin{perBackend: map[string]map[string]int{}}
	for _, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		rr.backendURLs = append(rr.backendURLs, u)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // replicas' own certificates
	proxy := &httputil.ReverseProxy{
		Transport:     tr,
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			b := rr.backendURLs[(rr.next.Add(1)-1)%uint64(len(rr.backendURLs))]
			rr.mu.Lock()
			if rr.perBackend[b.String()] == nil {
				rr.perBackend[b.String()] = map[string]int{}
			}
			rr.perBackend[b.String()][pr.In.Method]++
			rr.mu.Unlock()
			pr.SetURL(b)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
	}
	ln, err := net.Listen("tcp", AnyLoopback)
	if err != nil {
		t.Fatal(err)
	}
	rr.Addr, rr.URL = ln.Addr().String(), "http://"+ln.Addr().String()
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return rr
}

// Requests reports how many requests of each method each backend was
// given.
func (rr *HTTPRoundRobin) Requests() map[string]map[string]int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make(map[string]map[string]int, len(rr.perBackend))
	for b, m := range rr.perBackend {
		out[b] = map[string]int{}
		for k, v := range m {
			out[b][k] = v
		}
	}
	return out
}
