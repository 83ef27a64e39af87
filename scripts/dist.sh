#!/usr/bin/env bash
# `make dist`: builds wharf's release artefacts into $DIST_DIR (default dist/):
#   wharf                          the static server binary
#   wharf_PKGVER_amd64.deb         the server package (nfpm)
#   wharf-PKGVER.x86_64.rpm        the same as an RPM
#   wharf-image_PKGVER.tar         the FROM scratch container image (docker load)
#   wharf-desktop_PKGVER_linux_amd64.tar.xz  the desktop app bundle (fyne package)
#   SHA256SUMS
# VERSION (default: git describe) is what `wharf version` prints; PKGVER is
# it made valid for dpkg and rpm (digits first: v1.2.3-4-gabc -> 1.2.3+4.gabc,
# no tag -> 0.0.0+git.HASH). DIST_TARGETS picks a subset of
# "bin deb rpm image desktop" (the tests build "deb rpm image").
# Go tools run pinned, installed into .cache/bin once (module proxy only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
DIST_DIR=$(mkdir -p "${DIST_DIR:-$ROOT/dist}" && cd "${DIST_DIR:-$ROOT/dist}" && pwd)
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
DIST_TARGETS=${DIST_TARGETS:-bin deb rpm image desktop}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
# The project has not published a license yet; change both when it does.
PKG_LICENSE=${PKG_LICENSE:-Proprietary}
COPYRIGHT_LICENSE_TEXT=" All rights reserved: the wharf authors have not published a license yet."

NFPM_MOD=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
FYNE_MOD=fyne.io/tools/cmd/fyne@v1.7.4
TOOLBIN=$ROOT/.cache/bin

log() { printf 'dist: %s\n' "$*"; }
want() { [[ " $DIST_TARGETS " == *" $1 "* ]]; }

# tool BIN MOD: $TOOLBIN/BIN built from MOD, installed when missing or when
# MOD's version changed (as scripts/test-deps.sh does for its tools).
tool() {
	local bin=$1 mod=$2
	if ! [ -x "$TOOLBIN/$bin" ] ||
		[ "$("$GO" version -m "$TOOLBIN/$bin" 2>/dev/null | awk '$1=="mod"{print $2"@"$3}')" != "${mod%%/cmd/*}@${mod##*@}" ]; then
		mkdir -p "$TOOLBIN"
		GOBIN="$TOOLBIN" GOFLAGS=-buildvcs=false "$GO" install "$mod"
		log "installed $bin ($mod)" >&2 # stdout is the path
	fi
	echo "$TOOLBIN/$bin"
}

pkgver() {
	local v=${1#v}
	if [[ $v =~ ^[0-9]+\.[0-9] ]]; then
		echo "${v//-/+}" | sed 's/+/./2g'
	else
		echo "0.0.0+git.${v//-/.}"
	fi
}
PKGVER=$(pkgver "$VERSION")
export PKG_VERSION=$PKGVER PKG_LICENSE

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log "version $VERSION (packages $PKGVER) into $DIST_DIR"
BIN=$DIST_DIR/wharf
CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$GO" build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION" -o "$BIN" ./cmd/wharf

# man_page: wharf.1 from `wharf help` and each command's --help.
man_page() {
	local date cmd
	date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
	roff() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
	printf '.TH WHARF 1 "%s" "wharf %s" "User Commands"\n' "$date" "$VERSION"
	printf '.SH NAME\nwharf \\- private container registry and Docker Hub cache\n'
	printf '.SH SYNOPSIS\n.B wharf\n.I command\n[flags]\n'
	printf '.SH DESCRIPTION\n.nf\n'
	"$BIN" help | roff
	printf '.fi\n.SH COMMANDS\n'
	for cmd in $("$BIN" help | awk '$1=="wharf" && $2 ~ /^[a-z]+$/ {print $2}' | sort -u); do
		[ "$cmd" = help ] || [ "$cmd" = version ] && continue
		printf '.SS %s\n.nf\n' "$cmd"
		"$BIN" "$cmd" --help 2>&1 | roff || true
		printf '.fi\n'
	done
	printf '.SH FILES\n.TP\n/etc/wharf/wharf.yml\nthe configuration (systemd unit wharf.service)\n.TP\n/var/lib/wharf\ncached and pushed images\n'
	printf '.SH SEE ALSO\n/usr/share/doc/wharf/install.md, https://github.com/wharf-registry/wharf\n'
}

stage_server() {
	local s=$WORK/stage
	mkdir -p "$s/extra"
	cp "$BIN" "$s/wharf"
	# DIST_CONFIG: another default config, for the conffile upgrade test.
	cp "${DIST_CONFIG:-packaging/wharf.yml}" "$s/wharf.yml"
	cp packaging/systemd/wharf.service "$s/wharf.service"
	if [ -e packaging/systemd/wharf-low-port.conf ]; then cp packaging/systemd/wharf-low-port.conf "$s/extra/"; fi
	cp packaging/polkit/org.wharf.setup.policy "$s/"
	cp packaging/compose.yaml "$s/extra/"
	cp -r packaging/deb packaging/rpm "$s/"
	cp README.md docs/install.md "$s/"
	"$BIN" completion bash >"$s/completion.bash"
	"$BIN" completion zsh >"$s/completion.zsh"
	"$BIN" help >"$s/wharf-help.txt"
	man_page | gzip -9n >"$s/wharf.1.gz"
	cat >"$s/copyright" <<-COPYRIGHT
	Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
	Upstream-Name: wharf
	Source: https://github.com/wharf-registry/wharf

	Files: *
	Copyright: $(date -u -d "@$SOURCE_DATE_EPOCH" +%Y) the wharf authors
	License: $PKG_LICENSE
	$COPYRIGHT_LICENSE_TEXT
	COPYRIGHT
	{
		printf 'wharf (%s-1) unstable; urgency=medium\n\n' "$PKGVER"
		printf '  * wharf %s, built from %s.\n\n' "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
		printf ' -- wharf authors <wharf@users.noreply.github.com>  %s\n' "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
	} | gzip -9n >"$s/changelog.Debian.gz"
	# nfpm expands no variables in license: write it in.
	sed "s/^license: .*/license: $PKG_LICENSE/" packaging/nfpm.yaml >"$s/nfpm.yaml"
}

nfpm_pkg() { # packager target
	(cd "$WORK/stage" && "$NFPM" pkg --config nfpm.yaml --packager "$1" --target "$2" >/dev/null)
	log "built $(basename "$2")"
}

if want deb || want rpm; then
	NFPM=$(tool nfpm "$NFPM_MOD")
	stage_server
	want deb && nfpm_pkg deb "$DIST_DIR/wharf_${PKGVER}_amd64.deb"
	want rpm && nfpm_pkg rpm "$DIST_DIR/wharf-${PKGVER}.x86_64.rpm"
fi

if want image; then
	"$GO" run ./packaging/image -binary "$BIN" -config packaging/image/image.yml \
		-version "$VERSION" -revision "$(git rev-parse HEAD 2>/dev/null || true)" \
		-o "$DIST_DIR/wharf-image_${PKGVER}.tar"
	log "built wharf-image_${PKGVER}.tar (docker load -i; tags wharf-registry/wharf:latest and the version)"
fi

if want desktop; then
	FYNE=$(tool fyne "$FYNE_MOD")
	d=$WORK/desktop
	# fyne package builds in the source dir and leaves its bundle there.
	(cd cmd/wharf-desktop && CGO_ENABLED=1 "$FYNE" package -os linux --release \
		--app-version "$(echo "$PKGVER" | sed 's/[^0-9.].*//')" --name wharf-desktop >/dev/null)
	mkdir -p "$d/fyne"
	tar -xJf cmd/wharf-desktop/wharf-desktop.tar.xz -C "$d/fyne"
	rm -f cmd/wharf-desktop/wharf-desktop.tar.xz
	# fyne package bumps Build in FyneApp.toml on every run; keep the tree clean.
	git checkout -q -- cmd/wharf-desktop/FyneApp.toml 2>/dev/null || true
	# Only fyne's binary is kept: the bundle is ours, one desktop entry
	# (wharf-desktop.desktop, which the metainfo names), the icon set, the
	# metainfo, the polkit action, and a Makefile that installs them all.
	bash scripts/desktop-bundle.sh "$d/fyne/wharf-desktop/usr/local/bin/wharf-desktop" "$d/out" "$PKGVER" \
		"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)"
	d=$d/out
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
		-C "$d" -cJf "$DIST_DIR/wharf-desktop_${PKGVER}_linux_amd64.tar.xz" .
	log "built wharf-desktop_${PKGVER}_linux_amd64.tar.xz"
fi

want bin || rm -f "$BIN"
(cd "$DIST_DIR" && rm -f SHA256SUMS && find . -maxdepth 1 -type f ! -name SHA256SUMS -printf '%P\n' | sort | xargs -r sha256sum >SHA256SUMS)
log "wrote SHA256SUMS"
