#!/usr/bin/env bash
# Run the whole vvfs test suite: install dependencies, build (warnings are errors), run the
# Criterion unit tests and the real integration tests (FUSE mounts, loop devices, ext4).
#   contrib/run-tests.sh            normal build
#   contrib/run-tests.sh --sanitize ASan+UBSan build
# Must run as root (FUSE mounts, loop devices).  Prints "N passed, N failed" last.
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
log="$dir/meson-logs/testlog.json"
python_free_count() {
    # count results in meson's JSON test log without needing python
    local status=$1
    { grep -o "\"result\": \"$status\"" "$log" || true; } | wc -l
}
ok=$(python_free_count OK)
fail=$(( $(python_free_count FAIL) + $(python_free_count TIMEOUT) + $(python_free_count ERROR) ))
skip=$(python_free_count SKIP)
echo "$ok passed, $fail failed, $skip skipped"
exit $rc
