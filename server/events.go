package server

import "time"

// EventRecord is one server event as GET /-/admin/events lists it: what
// the desktop app shows of a remote wharf under "Recent pulls and pushes".
type EventRecord struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Repo      string    `json:"repo"`
	Reference string    `json:"reference,omitempty"`
	Status    int       `json:"status"`
	Bytes     int64     `json:"bytes"`
	Remote    string    `json:"remote,omitempty"`
	Message   string    `json:"message,omitempty"`
	// Source is hit, miss or stale for a proxied manifest, empty for a
	// hosted repository.
	Source string `json:"source,omitempty"`
}

// Event is the record as the server published it.
func (r EventRecord) Event() Event {
	return Event{Time: r.Time, Type: r.Type, Repo: r.Repo, Reference: r.Reference, Status: r.Status,
		Bytes: r.Bytes, Remote: r.Remote, Message: r.Message, Source: r.Source}
}

// EventsReport is the body of GET /-/admin/events?after=SEQ: the events
// with a larger Seq still kept (the last 256), oldest first, and the Seq
// of the newest. Seq starts again from 1 when the server restarts, so a
// Last smaller than the after a client sent means a new server.
type EventsReport struct {
	Last   uint64        `json:"last"`
	Events []EventRecord `json:"events"`
}

// eventLog keeps the most recent events of every type.
type eventLog struct{ ring seqRing[EventRecord] }

func (l *eventLog) add(e Event) {
	l.ring.add(func(seq uint64) EventRecord {
		return EventRecord{Seq: seq, Time: e.Time, Type: e.Type, Repo: e.Repo, Reference: e.Reference, Status: e.Status,
			Bytes: e.Bytes, Remote: e.Remote, Message: e.Message, Source: e.Source}
	})
}

// RecentEvents returns the events after seq that are still kept.
func (s *Server) RecentEvents(seq uint64) EventsReport {
	last, events := s.events.ring.after(seq)
	return EventsReport{Last: last, Events: events}
}
