#!/usr/bin/env bash
# Run the whole vvfs test suite: install dependencies, build (warnings are errors), run the
# Criterion unit tests and the real integration tests (FUSE mounts, loop devices, ext4).
#   contrib/run-tests.sh            normal build
#   contrib/run-tests.sh --sanitize ASan+UBSan build
# Must run as root (FUSE mounts, loop devices).  Prints "N passed, N failed, N skipped" last.
# A test skips (exit 77) when something it needs is missing (a command, /dev/fuse, a loop
# device).  With CI=true in the environment a skip is a failure: the skipped tests are listed,
# counted as failed, and the script exits 1, so a CI machine that lacks a requirement cannot
# pass by running nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
san=false
for a in "$@"; do
    case "$a" in
    --sanitize) san=true ;;
    *) echo "usage: $0 [--sanitize]" >&2; exit 2 ;;
    esac
done
bash contrib/deps.sh
dir=build
if $san; then dir=build-san; fi
if [ ! -d "$dir" ]; then
    meson setup "$dir" -Dsanitize=$san -Dtests=enabled >/dev/null
fi
ninja -C "$dir"
rc=0
meson test -C "$dir" --print-errorlogs --num-processes 1 || rc=$?
exec bash contrib/test-summary.sh "$dir/meson-logs/testlog.json" "$rc"
