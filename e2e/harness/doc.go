//go:build linux

// Package harness starts the real things that wharf's end-to-end tests talk
// to — the wharf binary itself, Distribution (docker-registry) as an origin, a
// Docker-Hub-shaped token server, dockerd, containerd, skopeo and the OCI
// conformance program — each on 127.0.0.1, in temp dirs, owned by one test and
// stopped by t.Cleanup. It also seeds registries with images built by
// go-containerregistry, including a runnable busybox made from Debian's
// busybox-static, so nothing needs the internet.
//
// A missing tool skips the test, unless WHARF_E2E_REQUIRE=1, which turns the
// skip into a failure so that `make test` never passes by skipping.
package harness
