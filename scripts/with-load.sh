#!/usr/bin/env bash
# Runs a command with stress-ng loading the machine beside it (two CPU
# hogs and one sync(2) loop, as a busy build machine would), and stops
# stress-ng when the command ends, whether it passed, failed or was
# interrupted. Prints how long the command took and its result.
#
#   scripts/with-load.sh make test-run
#   STRESS="--cpu 4 --io 2" scripts/with-load.sh go test ./e2e/...
set -uo pipefail

STRESS=${STRESS:---cpu 2 --io 1}
command -v stress-ng >/dev/null || { echo "with-load: stress-ng missing (scripts/test-deps.sh installs it)" >&2; exit 1; }

# Its own session and process group, so its workers go with it; in a
# non-interactive shell the background job is not a group leader, so
# setsid runs stress-ng in place and $! is stress-ng's pid and group.
# shellcheck disable=SC2086
setsid stress-ng $STRESS --quiet &
stress=$!
stop() {
	kill -TERM -- "-$stress" 2>/dev/null
	wait "$stress" 2>/dev/null
	kill -KILL -- "-$stress" 2>/dev/null
	return 0
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "with-load: stress-ng $STRESS (pid $stress) beside: $*"
start=$(date +%s)
"$@"
rc=$?
echo "with-load: $* exited $rc after $(($(date +%s) - start)) s under stress-ng $STRESS"
exit $rc
