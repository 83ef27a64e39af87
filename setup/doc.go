// Package setup points Docker, containerd and podman at a wharf mirror:
// the code behind `wharf setup docker|containerd|podman` and, later, the
// desktop app's "Use with Docker" button.
//
// Each client has three steps, kept apart so the pure part is table-tested:
// Plan computes the change from the file's current bytes (no I/O), Apply
// writes it (backup next to the file first, then an atomic rename, and
// only if the file still holds what was planned from), and Verify proves
// the client's pulls reach wharf.
package setup
