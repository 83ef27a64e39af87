#!/usr/bin/env bash
# CPU-seconds a cold pull costs the cache: wharf's proxy against
# Distribution's (docker-registry in proxy mode), same origin, same blob.
#
#   make build && bash scripts/bench-cold-cpu.sh [MiB] [rounds]
#
# The origin is a Distribution registry holding one random blob (512 MiB by
# default). Each round starts both caches empty, GETs the blob once through
# each with curl (checking its sha256), and reads the cache process's
# user+system CPU from /proc before and after. Prints CPU-seconds per GiB
# and the wall time of each pull next to a direct pull from the origin.
set -euo pipefail
MIB=${1:-512}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WHARF=${WHARF_BIN:-$ROOT/bin/wharf}
[ -x "$WHARF" ] || { echo "build wharf first: make build" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)" >&2; exit 1; }

TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
TCK=$(getconf CLK_TCK)

# port PID: the TCP port PID listens on (from /proc, once it is listening).
port() {
	local pid=$1 inodes ino line i
	for i in $(seq 1 200); do
		inodes=$(ls -l /proc/"$pid"/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p')
		for ino in $inodes; do
			line=$(awk -v ino="$ino" '$4 == "0A" && $10 == ino {print $2}' /proc/net/tcp /proc/net/tcp6 | head -1)
			[ -n "$line" ] && { printf '%d\n' "0x${line##*:}"; return; }
		done
		sleep 0.05
	done
	echo "no listener for pid $pid" >&2; return 1
}
# settled PID: its CPU seconds once it stopped using CPU (the cache's own
# fsync and commit after the response count too).
settled() {
	local a b; a=$(cpu "$1")
	while sleep 0.3; b=$(cpu "$1"); [ "$a" != "$b" ]; do a=$b; done
	echo "$b"
}
cpu() { awk -v t="$TCK" '{printf "%.3f\n", ($14+$15)/t}' /proc/"$1"/stat; }
registry() { # NAME [REMOTE]: start a docker-registry, print its pid
	mkdir -p "$TMP/$1"
	{ printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n'
	  printf 'storage: {filesystem: {rootdirectory: %s}, maintenance: {uploadpurging: {enabled: false}}}\n' "$TMP/$1/data"
	  printf 'http: {addr: "127.0.0.1:0"}\n'
	  [ -n "${2:-}" ] && printf 'proxy: {remoteurl: "%s"}\n' "$2"; true; } > "$TMP/$1/config.yml"
	docker-registry serve "$TMP/$1/config.yml" >"$TMP/$1/log" 2>&1 &
	echo $!
}

head -c $((MIB << 20)) /dev/urandom > "$TMP/blob"
DIGEST=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
opid=$(registry origin); pids+=("$opid"); ORIGIN=http://127.0.0.1:$(port "$opid")
loc=$(curl -fsS -X POST -o /dev/null -w '%header{location}' "$ORIGIN/v2/bench/cold/blobs/uploads/")
case $loc in http*) ;; *) loc=$ORIGIN$loc ;; esac
sep='?'; case $loc in *\?*) sep='&' ;; esac
curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$TMP/blob" -o /dev/null "$loc${sep}digest=$DIGEST"

pull() { # URL: wall seconds of a GET whose body hashes to DIGEST
	local out; out=$(curl -fsS -w '%{time_total}' -o >(sha256sum > "$TMP/sum") "$1"; wait $!)
	[ "sha256:$(cut -d' ' -f1 < "$TMP/sum")" = "$DIGEST" ] || { echo "wrong bytes from $1" >&2; exit 1; }
	echo "$out"
}

echo "blob: $MIB MiB, $ROUNDS rounds; sha_ni: $(grep -o -m1 sha_ni /proc/cpuinfo || echo no)"
printf '%-6s %-13s %9s %9s %12s\n' round target wall_s cpu_s cpu_s/GiB
for r in $(seq 1 "$ROUNDS"); do
	printf '%-6s %-13s %9.2f\n' "$r" direct "$(pull "$ORIGIN/v2/bench/cold/blobs/$DIGEST")"
	dpid=$(registry "dist$r" "$ORIGIN"); pids+=("$dpid"); D=http://127.0.0.1:$(port "$dpid")
	mkdir -p "$TMP/wharf$r"
	printf 'listen: 127.0.0.1:0\ndata_dir: %s\nlog: {access_log: false}\nproxies: [{name: origin, upstream: "%s", default: true}]\n' \
		"$TMP/wharf$r/data" "$ORIGIN" > "$TMP/wharf$r/wharf.yml"
	"$WHARF" serve --config "$TMP/wharf$r/wharf.yml" >"$TMP/wharf$r/log" 2>&1 &
	wpid=$!; pids+=("$wpid"); W=http://127.0.0.1:$(port "$wpid")
	for t in distribution wharf; do
		if [ $t = wharf ]; then pid=$wpid url=$W; else pid=$dpid url=$D; fi
		c0=$(cpu "$pid"); wall=$(pull "$url/v2/bench/cold/blobs/$DIGEST"); c1=$(settled "$pid")
		awk -v r="$r" -v t="$t" -v w="$wall" -v c0="$c0" -v c1="$c1" -v m="$MIB" \
			'BEGIN {printf "%-6s %-13s %9.2f %9.2f %12.2f\n", r, t, w, c1-c0, (c1-c0)*1024/m}'
	done
	kill "$dpid" "$wpid"; wait "$dpid" "$wpid" 2>/dev/null || true
done
