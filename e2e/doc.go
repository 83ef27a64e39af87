//go:build linux

// Package e2e runs the wharf binary as a real process and points real clients
// at it: go-containerregistry, skopeo, a test-owned dockerd, and the OCI
// conformance suite. The tests need root and Debian's docker.io,
// docker-registry, skopeo, containerd and busybox-static
// (scripts/test-deps.sh installs them); they are skipped under -short.
package e2e
