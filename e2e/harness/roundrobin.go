//go:build linux

package harness

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// RoundRobin is a TCP front for replicas, as a load balancer in TCP mode
// (HAProxy, a Kubernetes Service) is: each new connection goes to the
// next backend in turn, and its bytes are copied both ways untouched.
type RoundRobin struct {
	Addr string // 127.0.0.1:PORT
	ln   net.Listener
	next atomic.Uint64
	// PerBackend counts the connections each backend was given.
	mu         sync.Mutex
	perBackend map[string]int
	backends   []string
	conns      []net.Conn // every connection, closed at the end
	closed     bool
	wg         sync.WaitGroup
}

// track records c for closing at the end; after the end it closes c and
// reports false.
func (rr *RoundRobin) track(c net.Conn) bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if rr.closed {
		c.Close()
		return false
	}
	rr.conns = append(rr.conns, c)
	return true
}

// StartRoundRobin listens on a free loopback port and spreads connections
// over backends (host:port), closing everything when the test ends.
func StartRoundRobin(t testing.TB, backends ...string) *RoundRobin {
	t.Helper()
	ln, err := net.Listen("tcp", AnyLoopback)
	if err != nil {
		t.Fatal(err)
	}
	rr := &RoundRobin{Addr: ln.Addr().String(), ln: ln, backends: backends, perBackend: map[string]int{}}
	rr.wg.Add(1)
	go func() {
		defer rr.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b := backends[(rr.next.Add(1)-1)%uint64(len(backends))]
			rr.mu.Lock()
			rr.perBackend[b]++
			rr.mu.Unlock()
			if !rr.track(c) {
				return
			}
			rr.wg.Add(1)
			go func() {
				defer rr.wg.Done()
				defer c.Close()
				up, err := net.Dial("tcp", b)
				if err != nil || !rr.track(up) {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					io.Copy(up, c)
					up.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(c, up)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		rr.mu.Lock()
		rr.closed = true
		for _, c := range rr.conns {
			c.Close()
		}
		rr.mu.Unlock()
		rr.wg.Wait()
	})
	return rr
}

// Connections reports how many connections each backend was given.
func (rr *RoundRobin) Connections() map[string]int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make(map[string]int, len(rr.perBackend))
	for k, v := range rr.perBackend {
		out[k] = v
	}
	return out
}
