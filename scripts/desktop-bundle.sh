#!/usr/bin/env bash
# scripts/desktop-bundle.sh BINARY DIR PKGVER DATE
# Lays out the desktop app bundle in DIR/wharf-desktop: the binary, the
# desktop entry, the hicolor icon set, the AppStream metainfo, the polkit
# action and the Makefile that installs them (sudo make install, or make
# user-install). scripts/dist.sh runs it on the binary `fyne package`
# built; the tests run it on any executable and install the result.
set -euo pipefail
bin=$1 dir=$2 pkgver=$3 date=$4
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
b=$dir/wharf-desktop
share=$b/usr/local/share
rm -rf "$b"
mkdir -p "$b/usr/local/bin" "$share/applications" "$share/metainfo" "$share/polkit-1/actions" "$share/icons/hicolor/scalable/apps"
install -m 0755 "$bin" "$b/usr/local/bin/wharf-desktop"
install -m 0644 "$ROOT/packaging/desktop/Makefile" "$b/Makefile"
install -m 0644 "$ROOT/packaging/desktop/wharf-desktop.desktop" "$share/applications/"
sed -e "s/@VERSION@/$pkgver/" -e "s/@DATE@/$date/" \
	"$ROOT/packaging/desktop/io.github.wharf_registry.wharf_desktop.metainfo.xml" \
	>"$share/metainfo/io.github.wharf_registry.wharf_desktop.metainfo.xml"
install -m 0644 "$ROOT/packaging/polkit/org.wharf.setup.policy" "$share/polkit-1/actions/"
install -m 0644 "$ROOT/packaging/desktop/icons/wharf.svg" "$share/icons/hicolor/scalable/apps/wharf.svg"
for png in "$ROOT"/packaging/desktop/icons/*x*/wharf.png; do
	size=$(basename "$(dirname "$png")")
	mkdir -p "$share/icons/hicolor/$size/apps"
	install -m 0644 "$png" "$share/icons/hicolor/$size/apps/wharf.png"
done
