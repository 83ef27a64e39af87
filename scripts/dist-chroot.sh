#!/usr/bin/env bash
# Makes the throwaway Debian root the package tests install wharf's .deb
# into (e2e/dist_deb_test.go): a minbase bookworm with adduser, bootstrapped
# once from the Debian mirror into .cache/debroot and reused read-only (each
# test copies it). Idempotent: does nothing when the root is complete.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$ROOT/.cache/debroot}
SUITE=${DIST_CHROOT_SUITE:-bookworm}
MIRROR=${DIST_CHROOT_MIRROR:-http://deb.debian.org/debian}

# The stamp is written last, so an interrupted bootstrap is redone.
[ -e "$DEST/.wharf-ready" ] && exit 0
command -v debootstrap >/dev/null || { echo "dist-chroot: debootstrap missing" >&2; exit 1; }
rm -rf "$DEST.tmp"
mkdir -p "$(dirname "$DEST")"
debootstrap --variant=minbase --include=adduser "$SUITE" "$DEST.tmp" "$MIRROR" >"$DEST.log" 2>&1 ||
	{ tail -20 "$DEST.log" >&2; exit 1; }
# Nothing the maintainer scripts run may start a daemon in the root.
printf '#!/bin/sh\nexit 101\n' >"$DEST.tmp/usr/sbin/policy-rc.d"
chmod 755 "$DEST.tmp/usr/sbin/policy-rc.d"
apt_clean() { rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages; }
apt_clean "$DEST.tmp"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
touch "$DEST/.wharf-ready"
echo "dist-chroot: bootstrapped $SUITE into $DEST"
