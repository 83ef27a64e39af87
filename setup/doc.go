// Package setup points Docker, containerd and podman at a wharf mirror:
// the code behind `wharf setup docker|containerd|podman` and, later, the
// desktop app's "Use with Docker" button.
//
// Each client has three steps, kept apart so the pure part is table-tested:
// PlanDocker, PlanContainerd and PlanPodman compute the change from the
// file's current bytes (no I/O); Apply writes it (backup next to the file
// first, then an atomic rename, and only if the file still holds what was
// planned from); ProveDocker and ProveResolve prove that pulls reach wharf.
//
// The proof asks wharf, not the client: wharf's GET /-/pulls lists the
// manifest requests it answered, numbered, so setup notes the latest
// number, has the client pull, and looks for the test image after it. A
// pull that works is no proof by itself: Docker falls back to Docker Hub
// when a mirror fails.
package setup
