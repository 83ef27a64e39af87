package server

import "testing"

func TestPullLogAfter(t *testing.T) {
	var l pullLog
	l.add(Event{Type: "push", Repo: "team/x"}) // not a pull: not kept
	for i := 0; i < recentPullsKept+10; i++ {
		typ := "pull"
		if i%2 == 1 {
			typ = "resolve" // a HEAD: Docker's only request for an image it has
		}
		l.add(Event{Type: typ, Repo: "library/busybox"})
	}
	last := uint64(recentPullsKept + 10)
	for _, tc := range []struct {
		after    uint64
		first, n uint64
	}{
		{after: last, first: 0, n: 0},
		{after: last - 1, first: last, n: 1},
		{after: 5, first: 11, n: recentPullsKept}, // the oldest are gone
		{after: 0, first: 11, n: recentPullsKept},
		{after: last + 7, first: 0, n: 0}, // a seq from before a restart
	} {
		r := l.after(tc.after)
		if r.Last != last || uint64(len(r.Pulls)) != tc.n {
			t.Errorf("after(%d): last %d, %d pulls; want %d, %d", tc.after, r.Last, len(r.Pulls), last, tc.n)
			continue
		}
		for i, p := range r.Pulls {
			if p.Seq != tc.first+uint64(i) {
				t.Errorf("after(%d): pull %d has seq %d, want %d", tc.after, i, p.Seq, tc.first+uint64(i))
				break
			}
		}
	}
}
