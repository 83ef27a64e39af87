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

// pullLog keeps the most recent pulls.
type pullLog struct{ ring seqRing[Pull] }

func (l *pullLog) add(e Event) {
	if e.Type != "pull" && e.Type != "resolve" {
		return
	}
	l.ring.add(func(seq uint64) Pull {
		return Pull{Seq: seq, Type: e.Type, Time: e.Time, Repo: e.Repo, Reference: e.Reference, Status: e.Status, Remote: e.Remote}
	})
}

// after returns the kept pulls with Seq > seq.
func (l *pullLog) after(seq uint64) PullsReport {
	last, pulls := l.ring.after(seq)
	return PullsReport{Last: last, Pulls: pulls}
}

// seqRing keeps the last recentPullsKept items, numbered from 1 by the
// order they were added.
type seqRing[T any] struct {
	mu   sync.Mutex
	last uint64
	ring [recentPullsKept]T
}

// add numbers the next item and keeps what build makes of it.
func (r *seqRing[T]) add(build func(seq uint64) T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last++
	r.ring[r.last%recentPullsKept] = build(r.last)
}

// after returns the newest number and the items still kept numbered
// above seq, oldest first (never nil, so JSON says []).
func (r *seqRing[T]) after(seq uint64) (uint64, []T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []T{}
	first := seq + 1
	if r.last >= recentPullsKept && first <= r.last-recentPullsKept {
		first = r.last - recentPullsKept + 1
	}
	for s := first; s <= r.last; s++ {
		out = append(out, r.ring[s%recentPullsKept])
	}
	return r.last, out
}

// RecentPulls returns the manifest pulls after seq that are still kept
// (the last 256).
func (s *Server) RecentPulls(seq uint64) PullsReport { return s.pulls.after(seq) }

func (s *Server) servePulls(w http.ResponseWriter, r *http.Request) {
	seq, err := afterParam(r)
	if err != nil {
		registry.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.RecentPulls(seq))
}

// afterParam reads ?after=SEQ of GET /-/pulls and /-/admin/events.
func afterParam(r *http.Request) (uint64, error) {
	a := r.URL.Query().Get("after")
	if a == "" {
		return 0, nil
	}
	seq, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return 0, oci.Errorf(oci.CodeParameterInvalid, "after: want a sequence number from an earlier answer's last, not %q", a)
	}
	return seq, nil
}
