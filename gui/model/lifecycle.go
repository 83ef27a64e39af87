package model

import (
	"fmt"
	"net"
)

// Phase is where the embedded server is in its lifecycle, as the app
// sees it.
type Phase string

// The phases the dashboard shows.
const (
	Stopped  Phase = "stopped"
	Starting Phase = "starting"
	Running  Phase = "running"
	Stopping Phase = "stopping"
	Failed   Phase = "failed"
)

// Action is what happened to the server: the user asked for something,
// or the server answered.
type Action int

// The actions that move a Lifecycle.
const (
	ActStart       Action = iota // the user pressed Start (or the app launched)
	ActStarted                   // server.Start returned nil
	ActStartFailed               // server.Start (or loading the config) failed
	ActStop                      // the user pressed Stop or Quit
	ActStopped                   // server.Shutdown returned nil
	ActStopFailed                // server.Shutdown returned an error
)

func (a Action) String() string {
	switch a {
	case ActStart:
		return "start"
	case ActStarted:
		return "started"
	case ActStartFailed:
		return "start failed"
	case ActStop:
		return "stop"
	case ActStopped:
		return "stopped"
	case ActStopFailed:
		return "stop failed"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Lifecycle is the server's state with the reason of a failure and the
// address it listens on while running.
type Lifecycle struct {
	Phase  Phase
	Reason string // why it failed; empty otherwise
	Addr   string // host:port actually listened on, while running
}

// Apply moves the lifecycle by one action. detail is the address for
// ActStarted and the error text for ActStartFailed and ActStopFailed. An action
// that makes no sense in the current phase (Stop while stopped, a second
// Start) is refused with an error and leaves the lifecycle as it was: the
// buttons that send it are disabled, so it means a bug or a double click.
func (l Lifecycle) Apply(a Action, detail string) (Lifecycle, error) {
	next := func(p Phase) (Lifecycle, error) { return Lifecycle{Phase: p}, nil }
	switch {
	case a == ActStart && (l.Phase == Stopped || l.Phase == Failed || l.Phase == ""):
		return next(Starting)
	case a == ActStarted && l.Phase == Starting:
		return Lifecycle{Phase: Running, Addr: detail}, nil
	case a == ActStartFailed && l.Phase == Starting:
		return Lifecycle{Phase: Failed, Reason: detail}, nil
	case a == ActStop && l.Phase == Running:
		return Lifecycle{Phase: Stopping, Addr: l.Addr}, nil
	case a == ActStopped && l.Phase == Stopping:
		return next(Stopped)
	case a == ActStopFailed && l.Phase == Stopping:
		return Lifecycle{Phase: Failed, Reason: "stopped with an error: " + detail}, nil
	}
	phase := l.Phase
	if phase == "" {
		phase = Stopped
	}
	return l, fmt.Errorf("cannot %s while the server is %s", a, phase)
}

// CanStart says whether Start is offered.
func (l Lifecycle) CanStart() bool {
	return l.Phase == Stopped || l.Phase == Failed || l.Phase == ""
}

// CanStop says whether Stop and Restart are offered.
func (l Lifecycle) CanStop() bool { return l.Phase == Running }

// Busy is true while a start or stop is under way.
func (l Lifecycle) Busy() bool { return l.Phase == Starting || l.Phase == Stopping }

// Title is the one-line state the dashboard and the tray show.
func (l Lifecycle) Title() string {
	switch l.Phase {
	case Running:
		if host, port, err := net.SplitHostPort(l.Addr); err == nil && (host == "" || host == "::" || host == "0.0.0.0") {
			return "Running on port " + port + ", every address"
		}
		return "Running on " + l.Addr
	case Starting:
		return "Starting…"
	case Stopping:
		return "Stopping…"
	case Failed: // the reason is long: the dashboard shows it on its own line
		return "Not running: it failed"
	}
	return "Stopped"
}
