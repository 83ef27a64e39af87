package model

import (
	"net/url"
	"strings"
)

// RemoteTitle is the dashboard's state line for a wharf managed through
// its admin API: the address is always in it, so a remote window is never
// mistaken for the server on this machine.
func RemoteTitle(l Lifecycle, addr string) string {
	switch l.Phase {
	case Running:
		return "Remote wharf at " + addr + ": running"
	case Failed:
		return "Remote wharf at " + addr + ": not answering"
	}
	return "Connecting to " + addr + "…"
}

// RemoteBanner is the line across the top of a remote window.
func RemoteBanner(addr, user, version string) string {
	s := "REMOTE — managing the wharf at " + addr + " as " + user
	if version != "" {
		s += " (wharf " + version + ")"
	}
	return s + ". Changes here apply to that machine."
}

// ClientAddress is the address clients of a remote wharf use: its host
// and port, without the scheme.
func ClientAddress(remoteURL string) string {
	if u, err := url.Parse(remoteURL); err == nil && u.Host != "" {
		return u.Host
	}
	return strings.TrimPrefix(strings.TrimPrefix(remoteURL, "https://"), "http://")
}
