package model

import (
	"net"
	"net/netip"
	"slices"
)

// ClientAddresses are the host:port values other machines' clients
// should use for a server listening on listen (the address it actually
// bound, e.g. [::]:5000): every non-loopback address of this machine when
// it listens on all of them, else the one it listens on. Link-local
// addresses are left out (they need a zone and rarely route). ifaces is
// net.InterfaceAddrs() in the app.
func ClientAddresses(listen string, ifaces []net.Addr) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if host != "" {
		if ip, err := netip.ParseAddr(host); err == nil && !ip.IsUnspecified() {
			return []string{net.JoinHostPort(ip.String(), port)}
		} else if err != nil { // a host name
			return []string{listen}
		}
	}
	var v4, v6 []string
	for _, a := range ifaces {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		if addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsMulticast() || addr.IsUnspecified() {
			continue
		}
		hp := net.JoinHostPort(addr.String(), port)
		if addr.Is4() {
			v4 = append(v4, hp)
		} else {
			v6 = append(v6, hp)
		}
	}
	return slices.Compact(append(v4, v6...))
}
