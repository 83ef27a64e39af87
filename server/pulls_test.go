package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/server"
)

// TestRecentPulls: a client notes last, pulls, and finds its pull in
// GET /-/pulls?after=last, and no pull from before.
func TestRecentPulls(t *testing.T) {
	s := start(t, testConfig(t, ""))
	img, _ := random.Image(1024, 1)
	for _, r := range []string{"team/before:1", "team/proof:1"} {
		if err := remote.Write(ref(t, s, r), img); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := remote.Image(ref(t, s, "team/before:1")); err != nil {
		t.Fatal(err)
	}
	get := func(q string) server.PullsReport {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr() + "/-/pulls" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r server.PullsReport
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	// The event is published when the handler returns, which may be just
	// after the client has its answer.
	var mark uint64
	for deadline := time.Now().Add(5 * time.Second); ; {
		if mark = get("").Last; mark > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if mark == 0 {
		t.Fatal("the first pull never showed in /-/pulls")
	}
	if _, err := remote.Image(ref(t, s, "team/proof:1")); err != nil {
		t.Fatal(err)
	}
	var got []server.Pull
	for deadline := time.Now().Add(5 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = get("?after=" + itoa(mark)).Pulls
	}
	if len(got) == 0 {
		t.Fatalf("no pull after %d", mark)
	}
	for _, p := range got {
		if p.Repo != "team/proof" || p.Seq <= mark || p.Status != http.StatusOK {
			t.Errorf("pull after %d: %+v, want team/proof with a larger seq", mark, p)
		}
	}
	resp, err := http.Get("http://" + s.Addr() + "/-/pulls?after=x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"PARAMETER_INVALID"`) {
		t.Errorf("after=x: %s %s, want 400 PARAMETER_INVALID", resp.Status, body)
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }
