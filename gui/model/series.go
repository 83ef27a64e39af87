package model

import "time"

// Point is one sample of the bytes saved since the app started.
type Point struct {
	T     time.Time
	Bytes int64
}

// Series is the bytes the cache saved over time, for the chart. It sums
// across server restarts: each server counts from zero, so NewServer
// keeps what the previous one counted.
type Series struct {
	Max  int // samples kept; the oldest go first (default 240)
	pts  []Point
	base int64 // what servers before the current one saved
	last int64 // the current server's last counter value
}

// Observe records the current server's saved-bytes counter at t.
func (s *Series) Observe(t time.Time, counter int64) {
	s.last = counter
	total := s.base + counter
	max := s.Max
	if max <= 0 {
		max = 240
	}
	s.pts = append(s.pts, Point{T: t, Bytes: total})
	if len(s.pts) > max {
		s.pts = append(s.pts[:0:0], s.pts[len(s.pts)-max:]...)
	}
}

// NewServer says the next counters come from a new server, counting from
// zero.
func (s *Series) NewServer() {
	s.base += s.last
	s.last = 0
}

// Points returns the samples, oldest first.
func (s *Series) Points() []Point { return s.pts }

// Total is the bytes saved since the app started.
func (s *Series) Total() int64 { return s.base + s.last }
