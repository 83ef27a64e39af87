package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/registry"
)

// recentPullsKept bounds GET /-/pulls: enough for `wharf setup` to find
// its own proof pull on a busy server, small enough to never matter.
const recentPullsKept = 256

// Pull is one manifest GET (Type pull) or HEAD (Type resolve: Docker
// only asks that of an image it has already) that wharf answered, as GET
// /-/pulls lists it.
// Seq grows by one per pull from server start, so a client that noted
// Last before acting can ask for what came after without trusting clocks
// (`wharf setup` may run on another machine than wharf).
type Pull struct {
	Seq       uint64    `json:"seq"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	Repo      string    `json:"repo"`
	Reference string    `json:"reference"`
	Status    int       `json:"status"`
	Remote    string    `json:"remote,omitempty"`
}

// PullsReport is the body of GET /-/pulls?after=SEQ: the pulls with a
// larger Seq still kept, oldest first, and the Seq of the newest pull.
type PullsReport struct {
	Last  uint64 `json:"last"`
	Pulls []Pull `json:"pulls"`
}

// pullLog keeps the most recent pulls in a ring.
type pullLog struct {
	mu   sync.Mutex
	last uint64
	ring [recentPullsKept]Pull
}

func (l *pullLog) add(e Event) {
	if e.Type != "pull" && e.Type != "resolve" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last++
	l.ring[l.last%recentPullsKept] = Pull{Seq: l.last, Type: e.Type, Time: e.Time, Repo: e.Repo, Reference: e.Reference, Status: e.Status, Remote: e.Remote}
}

// after returns the kept pulls with Seq > seq.
func (l *pullLog) after(seq uint64) PullsReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := PullsReport{Last: l.last, Pulls: []Pull{}}
	first := seq + 1
	if l.last >= recentPullsKept && first <= l.last-recentPullsKept {
		first = l.last - recentPullsKept + 1
	}
	for s := first; s <= l.last; s++ {
		r.Pulls = append(r.Pulls, l.ring[s%recentPullsKept])
	}
	return r
}

// RecentPulls returns the manifest pulls after seq that are still kept
// (the last 256).
func (s *Server) RecentPulls(seq uint64) PullsReport { return s.pulls.after(seq) }

func (s *Server) servePulls(w http.ResponseWriter, r *http.Request) {
	var seq uint64
	if a := r.URL.Query().Get("after"); a != "" {
		var err error
		if seq, err = strconv.ParseUint(a, 10, 64); err != nil {
			registry.WriteError(w, r, oci.Errorf(oci.CodeParameterInvalid, "after: want a sequence number from an earlier answer's last, not %q", a))
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.RecentPulls(seq))
}
