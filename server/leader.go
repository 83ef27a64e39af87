package server

import (
	"context"
	"time"
)

// leader says whether this replica does what one replica at a time does
// for the whole cluster: enforcing the cache budget (eviction) and
// scheduled hosted GC. In cluster mode it is pgindex's Leader (an
// advisory lock held on a connection of its own); nil in single-box mode,
// where this process is always the one.
type leader interface {
	Leading() bool
	Close()
}

// leaderInterval is how often a follower tries to take the lead, and how
// often the leader checks it still holds it.
const leaderInterval = 5 * time.Second

// leadingFunc reads the leader chosen at Start, so that the loops it
// starts need not read s.leader, which closeStores clears.
func (s *Server) leadingFunc() func() bool {
	l := s.leader
	if l == nil {
		return func() bool { return true }
	}
	return l.Leading
}

// clusterLocks serialises work across replicas (pgindex's session-level
// advisory locks); nil in single-box mode, where in-process exclusion is
// enough.
type clusterLocks interface {
	TryLock(ctx context.Context, key int64) (release func(), ok bool, err error)
}
