package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/server"
)

// TestAdminAPIForARemoteApp drives what the desktop app uses to manage a
// wharf elsewhere: users (added, reset, removed, each effective with the
// next request), the events of the dashboard, transfers and whoami.
func TestAdminAPIForARemoteApp(t *testing.T) {
	s, _ := startAuthServer(t)
	base := "http://" + s.Addr()
	call := func(method, path, auth, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode == 200 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, b)
			}
		}
		return resp.StatusCode
	}
	v2 := func(user, pw string) int {
		req, _ := http.NewRequest("GET", base+"/v2/", nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	var who server.WhoAmI
	if st := call("GET", "/-/admin/whoami", rootAuth, "", &who); st != 200 || who.User != "root" || who.Source != "htpasswd" {
		t.Fatalf("whoami: %d %+v", st, who)
	}
	var users server.UsersReport
	if st := call("GET", "/-/admin/users", rootAuth, "", &users); st != 200 || !slices.Equal(users.Users, []string{"alice", "carol", "root"}) {
		t.Fatalf("users: %d %+v", st, users)
	}

	var ch server.UserChange
	if st := call("PUT", "/-/admin/users/dave", rootAuth, `{"password":"dave-pw"}`, &ch); st != 200 || !ch.Added {
		t.Fatalf("add dave: %d %+v", st, ch)
	}
	if st := v2("dave", "dave-pw"); st != 200 {
		t.Fatalf("dave's first request after being added: %d", st)
	}
	if st := call("PUT", "/-/admin/users/dave", rootAuth, `{"password":"new-pw"}`, &ch); st != 200 || ch.Added {
		t.Fatalf("reset dave: %d %+v", st, ch)
	}
	if st := v2("dave", "dave-pw"); st != 401 {
		t.Fatalf("dave's old password after the reset: %d", st)
	}
	if st := v2("dave", "new-pw"); st != 200 {
		t.Fatalf("dave's new password: %d", st)
	}
	if st := call("DELETE", "/-/admin/users/dave", rootAuth, "", nil); st != 200 {
		t.Fatalf("remove dave: %d", st)
	}
	if st := v2("dave", "new-pw"); st != 401 {
		t.Fatalf("dave after removal: %d", st)
	}

	// A pull shows in the events, with its source; after= pages.
	var first server.EventsReport
	call("GET", "/-/admin/events", rootAuth, "", &first)
	ref, _ := name.ParseReference(s.Addr()+"/hub/library/busybox:latest", name.Insecure)
	if _, err := remote.Get(ref, basic("alice", "alice-pw")); err != nil {
		t.Fatal(err)
	}
	var next server.EventsReport
	if st := call("GET", "/-/admin/events?after="+itoa(first.Last), rootAuth, "", &next); st != 200 || len(next.Events) == 0 {
		t.Fatalf("events after %d: %d %+v", first.Last, st, next)
	}
	e := next.Events[len(next.Events)-1]
	if e.Type != "pull" || e.Repo != "hub/library/busybox" || e.Source != "miss" || e.Seq != next.Last {
		t.Errorf("last event %+v", e)
	}
	var tr []server.Transfer
	if st := call("GET", "/-/admin/transfers", rootAuth, "", &tr); st != 200 || tr == nil {
		t.Errorf("transfers: %d %v", st, tr)
	}
}

// TestInProcessCallsAfterShutdown: the desktop app may ask for a listing
// just as the server stops; the answer is an error, never a closed index.
func TestInProcessCallsAfterShutdown(t *testing.T) {
	s, _ := startAuthServer(t)
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, e1 := s.CacheList("size", "", 0)
	_, e2 := s.CacheStats()
	_, e3 := s.PinImage(t.Context(), "busybox:latest", true)
	_, e4 := s.EvictImage(t.Context(), "busybox:latest")
	_, e5 := s.Prewarm(t.Context(), "busybox:latest", nil)
	for i, err := range []error{e1, e2, e3, e4, e5} {
		if err == nil || !strings.Contains(err.Error(), "server is stopped") {
			t.Errorf("call %d after Shutdown: %v", i+1, err)
		}
	}
}
