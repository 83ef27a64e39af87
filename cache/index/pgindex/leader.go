package pgindex

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Advisory lock keys of the leader elections: one per kind of work that
// one replica at a time does for the whole cluster.
const (
	// LeaderHousekeeping elects the replica that enforces the cache
	// budget (eviction) and runs scheduled hosted GC.
	LeaderHousekeeping int64 = 0x7768_6172_665f_6c64 // "wharf_ld"
)

// leaderTimeout bounds one try: connecting, taking or checking the lock.
const leaderTimeout = 10 * time.Second

// Leader elects one replica among those sharing the database: the one
// holding a session-level advisory lock (pg_try_advisory_lock) on a
// connection of its own, outside the pool. The lock lasts as long as the
// session, so a replica that dies or loses its connection stops leading
// when PostgreSQL notices (at once for a closed socket, after TCP
// keepalives for a vanished host), and another takes over at its next
// try. Followers try again every interval; the leader checks its
// connection as often, and stops leading when the check fails.
type Leader struct {
	cfg     *pgx.ConnConfig
	key     int64
	every   time.Duration
	log     *slog.Logger
	leading atomic.Bool
	tries   atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// NewLeader starts trying, at once and then every interval, to become
// the leader of key. Close stops it and steps down.
func (x *Index) NewLeader(key int64, every time.Duration) *Leader {
	l := &Leader{cfg: x.pool.Config().ConnConfig.Copy(), key: key, every: every, log: x.log,
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l
}

// Leading reports whether this replica holds the lock now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Tries counts the attempts to take the lock (tests wait on it).
func (l *Leader) Tries() int64 { return l.tries.Load() }

// Close steps down (closing the connection releases the lock) and waits
// for the loop to end.
func (l *Leader) Close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

func (l *Leader) run() {
	defer close(l.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), max(l.every, leaderTimeout))
		conn = l.try(ctx, conn)
		cancel()
		select {
		case <-l.stop:
			l.leading.Store(false)
			return
		case <-t.C:
		}
	}
}

// try takes or checks the lock on conn, opening a connection if there is
// none, and returns the connection to keep (nil after a failure).
func (l *Leader) try(ctx context.Context, conn *pgx.Conn) *pgx.Conn {
	fail := func(err error) *pgx.Conn {
		if l.leading.Swap(false) {
			l.log.Warn("no longer the leader: the connection that held the lock failed", "err", err)
		}
		if conn != nil {
			conn.Close(context.Background())
		}
		return nil
	}
	if conn == nil {
		var err error
		if conn, err = pgx.ConnectConfig(ctx, l.cfg); err != nil {
			return fail(err)
		}
	}
	if l.leading.Load() {
		// Still our session: the lock is still ours.
		if err := conn.Ping(ctx); err != nil {
			return fail(err)
		}
		return conn
	}
	var got bool
	defer l.tries.Add(1)
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got); err != nil {
		return fail(err)
	}
	if got {
		l.leading.Store(true)
		l.log.Info("this replica is now the leader: it runs eviction and scheduled GC for the cluster")
	}
	return conn
}

// LockGC is the advisory lock key that makes hosted garbage collections
// of the cluster run one at a time, whichever replica is asked.
const LockGC int64 = 0x7768_6172_665f_6763 // "wharf_gc"

// TryLock takes the session-level advisory lock key on a pooled
// connection, held until release is called; ok is false when another
// session holds it. If the unlock fails, the connection is closed, which
// ends the session and so releases the lock too.
func (x *Index) TryLock(ctx context.Context, key int64) (release func(), ok bool, err error) {
	conn, err := x.pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("index: lock %x: %w", key, err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil || !ok {
		conn.Release()
		if err != nil {
			return nil, false, fmt.Errorf("index: lock %x: %w", key, err)
		}
		return nil, false, nil
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), leaderTimeout)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}, true, nil
}
