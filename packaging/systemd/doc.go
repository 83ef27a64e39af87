// Package systemd holds wharf's systemd unit (wharf.service) and the
// drop-in for ports below 1024 (wharf-low-port.conf). It has no code; its
// tests run systemd-analyze verify and security on the unit as shipped.
package systemd
