package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWharf serves /-/pulls; a pull recorded with see() shows after the
// mark taken before it.
type fakeWharf struct {
	mu    sync.Mutex
	repos []string
}

func (f *fakeWharf) see(repo string) {
	f.mu.Lock()
	f.repos = append(f.repos, repo)
	f.mu.Unlock()
}

func (f *fakeWharf) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var after int
	fmt.Sscan(r.URL.Query().Get("after"), &after)
	type pull struct {
		Seq  int    `json:"seq"`
		Repo string `json:"repo"`
	}
	out := struct {
		Last  int    `json:"last"`
		Pulls []pull `json:"pulls"`
	}{Last: len(f.repos), Pulls: []pull{}}
	for i := after; i < len(f.repos); i++ {
		out.Pulls = append(out.Pulls, pull{i + 1, f.repos[i]})
	}
	json.NewEncoder(w).Encode(out)
}

// fakeDocker is a daemon API on a unix socket whose pull runs pull().
func fakeDocker(t *testing.T, mirrors []string, pull func() string) *DockerAPI {
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"RegistryConfig": map[string]any{"Mirrors": mirrors}})
	})
	mux.HandleFunc("POST /images/create", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"status":"Pulling from library/hello-world"}`)
		if msg := pull(); msg != "" {
			fmt.Fprintf(w, "{\"errorDetail\":{\"message\":%q},\"error\":%q}\n", msg, msg)
		}
	})
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
	srv.Start()
	t.Cleanup(srv.Close)
	d, err := NewDockerAPI("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestProveDocker(t *testing.T) {
	img := Image{Repo: "library/hello-world", Tag: "latest"}
	for _, tc := range []struct {
		name    string
		pull    func(w *fakeWharf) string // what the daemon does; returns an error message
		deadW   bool
		wantErr string // "" for proof
	}{
		{name: "through wharf", pull: func(w *fakeWharf) string { w.see("library/hello-world"); return "" }},
		{name: "through a prefixed proxy", pull: func(w *fakeWharf) string { w.see("hub/library/hello-world"); return "" }},
		{name: "from Docker Hub directly", pull: func(w *fakeWharf) string { w.see("library/other"); return "" }, wantErr: "without asking wharf"},
		{name: "failed, not through wharf", pull: func(*fakeWharf) string { return "connection refused" }, wantErr: "daemon's pull failed: connection refused"},
		{name: "wharf served, pull failed", pull: func(w *fakeWharf) string { w.see("library/hello-world"); return "no space left" }, wantErr: "no space left"},
		{name: "wharf down", pull: func(*fakeWharf) string { return "" }, deadW: true, wantErr: "does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw := &fakeWharf{}
			fw.see("library/hello-world") // before the mark: must not count
			ws := httptest.NewServer(fw)
			t.Cleanup(ws.Close)
			if tc.deadW {
				ws.Close()
			}
			d := fakeDocker(t, []string{ws.URL + "/"}, func() string { return tc.pull(fw) })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := d.WaitMirror(ctx, ws.URL); err != nil {
				t.Fatal(err)
			}
			err := ProveDocker(ctx, d, WharfPulls{HC: ws.Client(), Base: ws.URL}, img, 500*time.Millisecond)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
			}
			if tc.name != "wharf served, pull failed" && !errors.Is(err, ErrNotUsed) {
				t.Errorf("err %v is not ErrNotUsed", err)
			}
		})
	}
}

func TestWaitMirrorTimesOut(t *testing.T) {
	d := fakeDocker(t, []string{"https://other.example/"}, func() string { return "" })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := d.WaitMirror(ctx, "http://127.0.0.1:5000")
	if err == nil || !strings.Contains(err.Error(), "did not reload") {
		t.Fatalf("err %v", err)
	}
}
