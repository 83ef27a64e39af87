package auth

import (
	"sync"
	"time"
)

// limiter slows and then stops password guessing. Failed logins are
// counted per client address and per user name within a window:
//
//   - every failure past the third is answered a little later (doubling
//     from 250 ms up to 2 s), whether counted for the address or the user;
//   - an address that reaches max failures gets 429 for every login,
//     right or wrong, until its window passes.
//
// A user name is never locked out by failures alone: anyone can type
// someone else's name, and locking the account would let them keep its
// owner out. So the owner logging in from another address still works,
// only slowed while the guessing goes on.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	addrs map[string]*failures
	users map[string]*failures
}

type failures struct {
	n     int
	first time.Time
}

const (
	slowAfter   = 3
	firstDelay  = 250 * time.Millisecond
	maxDelay    = 2 * time.Second
	maxTracked  = 100_000
	sweepPeriod = time.Minute
)

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, now: time.Now, addrs: map[string]*failures{}, users: map[string]*failures{}}
}

func (l *limiter) count(m map[string]*failures, k string, now time.Time) int {
	f := m[k]
	if f == nil {
		return 0
	}
	if now.Sub(f.first) >= l.window {
		delete(m, k)
		return 0
	}
	return f.n
}

// blocked reports whether addr must be answered 429, and for how long.
func (l *limiter) blocked(addr string) (time.Duration, bool) {
	if l.max <= 0 {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.count(l.addrs, addr, now) < l.max {
		return 0, false
	}
	return l.addrs[addr].first.Add(l.window).Sub(now), true
}

// fail records a failed login and returns how long to wait before
// answering it.
func (l *limiter) fail(addr, user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	n := 0
	for _, e := range []struct {
		m map[string]*failures
		k string
	}{{l.addrs, addr}, {l.users, user}} {
		c := l.count(e.m, e.k, now)
		if c == 0 {
			if len(e.m) >= maxTracked {
				l.sweep(e.m, now)
			}
			e.m[e.k] = &failures{first: now}
		}
		e.m[e.k].n++
		n = max(n, e.m[e.k].n)
	}
	if n <= slowAfter {
		return 0
	}
	d := firstDelay << min(n-slowAfter-1, 8)
	return min(d, maxDelay)
}

// success forgets the user's failures (the owner got in); the address's
// count stays, so one good account cannot launder guesses at others.
func (l *limiter) success(user string) {
	l.mu.Lock()
	delete(l.users, user)
	l.mu.Unlock()
}

func (l *limiter) sweep(m map[string]*failures, now time.Time) {
	for k, f := range m {
		if now.Sub(f.first) >= l.window {
			delete(m, k)
		}
	}
	if len(m) >= maxTracked { // all fresh: drop arbitrary ones rather than grow
		for k := range m {
			delete(m, k)
			if len(m) < maxTracked/2 {
				break
			}
		}
	}
}
