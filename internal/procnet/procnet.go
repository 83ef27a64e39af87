//go:build linux

// Package procnet asks the kernel which TCP addresses a process listens
// on: the socket inodes among /proc/PID/fd matched against the LISTEN
// entries of /proc/net/tcp and tcp6. Programs started on port 0 that do
// not say which port they got (docker-registry, slapd, pebble,
// prometheus) are found this way by the tests and the benchmark tools.
package procnet

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// tcpListen is the state column value of a listening socket in
// /proc/net/tcp (include/net/tcp_states.h).
const tcpListen = "0A"

// ListenAddrs returns the TCP addresses process pid listens on, as
// "IP:PORT", ordered by file descriptor number (the order a program opened
// them in, unless it closed descriptors in between).
func ListenAddrs(pid int) ([]string, error) {
	listening := map[string]string{} // socket inode → address
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := readListening(f, listening); err != nil {
			return nil, err
		}
	}
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	type sock struct {
		fd   int
		addr string
	}
	var socks []sock
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed in between
		}
		ino, ok := strings.CutPrefix(target, "socket:[")
		if !ok {
			continue
		}
		if addr, ok := listening[strings.TrimSuffix(ino, "]")]; ok {
			fd, _ := strconv.Atoi(e.Name())
			socks = append(socks, sock{fd, addr})
		}
	}
	slices.SortFunc(socks, func(a, b sock) int { return a.fd - b.fd })
	addrs := make([]string, len(socks))
	for i, s := range socks {
		addrs[i] = s.addr
	}
	return addrs, nil
}

// readListening adds the LISTEN sockets of a /proc/net/tcp-format file to
// m, by inode.
func readListening(path string, m map[string]string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil // no IPv6
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		addr, err := parseProcAddr(fields[1])
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		m[fields[9]] = addr
	}
	return sc.Err()
}

// parseProcAddr turns /proc/net/tcp's "0100007F:1F90" (the IP as 32-bit
// words in host byte order, the port in hex) into "127.0.0.1:8080".
func parseProcAddr(s string) (string, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("address %q", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("address %q", s)
	}
	// Each 32-bit word is in host order; these machines are little-endian.
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return "", fmt.Errorf("port in %q", s)
	}
	ip, _ := netip.AddrFromSlice(raw)
	return net.JoinHostPort(ip.Unmap().String(), strconv.FormatUint(port, 10)), nil
}
