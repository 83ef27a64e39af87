package certs

import (
	"fmt"
	"net"
	"strings"
)

// ClientInstructions tells an operator how to make Docker, containerd and
// podman/skopeo trust the self-signed CA in caFile when they pull from
// hostPort (the name and port clients use, e.g. "registry.lan:5000").
func ClientInstructions(caFile, hostPort string) string {
	// Clients look up certs.d/NAME by the registry part of the image
	// reference, which has no port when it is 443.
	dirName := hostPort
	if host, port, err := net.SplitHostPort(hostPort); err == nil && port == "443" {
		dirName = host
	}
	src := shellQuote(caFile)
	var b strings.Builder
	fmt.Fprintf(&b, "wharf serves a certificate from its own CA. Make clients of %s trust %s:\n", hostPort, caFile)
	fmt.Fprintf(&b, "\nDocker (no restart needed):\n")
	fmt.Fprintf(&b, "  sudo mkdir -p /etc/docker/certs.d/%s\n", dirName)
	fmt.Fprintf(&b, "  sudo cp %s /etc/docker/certs.d/%s/ca.crt\n", src, dirName)
	fmt.Fprintf(&b, "\ncontainerd (config_path = \"/etc/containerd/certs.d\" in its registry config):\n")
	fmt.Fprintf(&b, "  sudo mkdir -p /etc/containerd/certs.d/%s\n", dirName)
	fmt.Fprintf(&b, "  sudo cp %s /etc/containerd/certs.d/%s/ca.crt\n", src, dirName)
	fmt.Fprintf(&b, "  and in /etc/containerd/certs.d/%s/hosts.toml:\n", dirName)
	fmt.Fprintf(&b, "    server = \"https://%s\"\n", hostPort)
	fmt.Fprintf(&b, "    [host.\"https://%s\"]\n", hostPort)
	fmt.Fprintf(&b, "      ca = \"/etc/containerd/certs.d/%s/ca.crt\"\n", dirName)
	fmt.Fprintf(&b, "\npodman, skopeo, buildah:\n")
	fmt.Fprintf(&b, "  sudo mkdir -p /etc/containers/certs.d/%s\n", dirName)
	fmt.Fprintf(&b, "  sudo cp %s /etc/containers/certs.d/%s/ca.crt\n", src, dirName)
	return b.String()
}

// shellQuote quotes s for sh when it holds anything but plain path
// characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
