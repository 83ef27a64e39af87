#!/usr/bin/env bash
# Installs what the end-to-end tests start as real processes: Debian packages
# (docker, Distribution, skopeo, containerd, a static busybox, Prometheus,
# OpenLDAP, Pebble, the GL/X11 headers and Xvfb of the desktop app) and the OCI
# conformance program. Idempotent: installs only what is missing, prints one
# line per thing installed, and runs `apt-get update` at most once.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the tests need, one per line, with what the tests use from
# each. Add a line to add a package; presence is checked with dpkg.
DEB_PACKAGES=(
	docker.io        # /usr/sbin/dockerd, /usr/bin/docker (20.10)
	docker-registry  # /usr/bin/docker-registry (Distribution 2.8), the origin
	skopeo           # /usr/bin/skopeo
	containerd       # /usr/bin/containerd, /usr/bin/ctr
	busybox-static   # /bin/busybox, packed into the runnable test image
	prometheus       # /usr/bin/prometheus scrapes wharf, /usr/bin/promtool lints /metrics
	slapd            # /usr/sbin/slapd, /usr/sbin/slapadd: the OpenLDAP directory of the auth tests
	ldap-utils       # ldapwhoami, ldapsearch: checks of the seeded directory
	pebble           # /usr/bin/pebble: the ACME server wharf gets certificates from
	podman           # /usr/bin/podman (4.3): pulls through the drop-in `wharf setup podman` writes
	stress-ng        # /usr/bin/stress-ng: the load beside `make test-loaded`
	postgresql       # /usr/lib/postgresql/15/bin: the index database of the cluster tests
	curl             # /usr/bin/curl: SigV4-signed requests to versitygw in the harness's own test
	util-linux       # /usr/bin/setpriv: runs PostgreSQL as the postgres user when the tests run as root
	# The desktop app (cmd/wharf-desktop, gui/) builds with cgo against GL and X11:
	libgl1-mesa-dev  # GL headers and libGL for Fyne's go-gl
	libx11-dev       # X11 headers for GLFW
	libxcursor-dev   # GLFW: cursors
	libxrandr-dev    # GLFW: monitors
	libxinerama-dev  # GLFW: multi-monitor layout
	libxi-dev        # GLFW: input
	libxxf86vm-dev   # GLFW: video modes
	pkg-config       # cgo's #cgo pkg-config lines
	xvfb             # /usr/bin/Xvfb: the display `make screenshots` runs wharf-desktop on
	imagemagick      # /usr/bin/import: screenshots of the Xvfb root window; `compare` for checks
	xdotool          # /usr/bin/xdotool: clicks the desktop app's tabs under Xvfb
	# The release packages (scripts/dist.sh, e2e/dist_*_test.go):
	lintian            # /usr/bin/lintian: the .deb is lintian clean
	rpm                # /usr/bin/rpm: queries the .rpm's files, flags and scriptlets
	debootstrap        # the Debian root the .deb is installed into (scripts/dist-chroot.sh)
	desktop-file-utils # /usr/bin/desktop-file-validate
	appstream          # /usr/bin/appstreamcli validate of the metainfo
	librsvg2-bin       # /usr/bin/rsvg-convert: renders the icon PNGs from wharf.svg
	zsh              # /usr/bin/zsh: runs the zsh script of `wharf completion zsh`
	systemd          # /usr/bin/systemd-analyze: verify and security of packaging/systemd/wharf.service (no systemd needs to run)
)

# Go programs installed into $ROOT/.cache/bin: "binary module@version [package]"
# (package: the program's directory inside the module, when not its root).
GO_TOOLS=(
	"conformance github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"
	# the S3-compatible server of the cluster tests (posix backend on a temp
	# dir); about 3 minutes to build the first time
	"versitygw github.com/versity/versitygw@v1.8.0 cmd/versitygw"
)

GO=$(command -v go || echo /usr/local/go/bin/go)

log() { printf 'test-deps: %s\n' "$*"; }

deb_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

install_debs() {
	local missing=() p
	for p in "${DEB_PACKAGES[@]}"; do
		deb_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0

	if ! command -v apt-get >/dev/null; then
		log "missing packages ${missing[*]} and no apt-get: install them by hand" >&2
		return 1
	fi
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { log "missing packages ${missing[*]}: run as root" >&2; return 1; }
		sudo=(sudo)
	fi

	# Package maintainer scripts must not start system daemons (dockerd,
	# containerd): the tests start their own, isolated ones. A policy-rc.d that
	# exits 101 tells invoke-rc.d to start nothing. Keep one that is already there.
	local policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		"${sudo[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
		trap "${sudo[*]} rm -f $policy" EXIT
	fi

	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for p in "${missing[@]}"; do
		log "installed package $p"
	done
}

install_go_tools() {
	local bindir="$ROOT/.cache/bin" entry bin mod pkg target
	mkdir -p "$bindir"
	for entry in "${GO_TOOLS[@]}"; do
		read -r bin mod pkg <<<"$entry"
		target=$mod
		[ -n "$pkg" ] && target="${mod%@*}/$pkg@${mod#*@}"
		# `go version -m` names the module version the binary was built from,
		# so bumping the version above reinstalls.
		if [ -x "$bindir/$bin" ] &&
			[ "$("$GO" version -m "$bindir/$bin" 2>/dev/null | awk '$1=="mod"{print $2"@"$3}')" = "$mod" ]; then
			continue
		fi
		# `go install PKG@VERSION` builds the tool in its own module: the
		# project's go.mod is neither read nor changed.
		GOBIN="$bindir" "$GO" install "$target"
		log "installed $bin ($target)"
	done
}

install_debs
install_go_tools
# The Debian root for the .deb test, bootstrapped once into .cache/debroot.
bash "$ROOT/scripts/dist-chroot.sh"
