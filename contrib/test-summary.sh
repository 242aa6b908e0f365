#!/usr/bin/env bash
# contrib/test-summary.sh TESTLOG RC — the closing lines of contrib/run-tests.sh.
#   TESTLOG  meson's build/meson-logs/testlog.json (one JSON object a line, "name" first)
#   RC       meson test's exit status
# Prints "N passed, N failed, N skipped" last and exits RC, or 1.  With CI=true a skipped test
# (exit 77: a missing command, /dev/fuse, a loop device) counts as failed: the skipped tests
# are listed with their reason and the exit status is 1, so CI cannot pass by running nothing.
# Needs only grep and sed (no python, no jq: they may be what is missing).
set -euo pipefail
log=${1:?usage: test-summary.sh TESTLOG RC}
rc=${2:?usage: test-summary.sh TESTLOG RC}
if [ ! -f "$log" ]; then
    echo "no test log at $log: no test ran"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi
count() { { grep -o "\"result\": \"$1\"" "$log" || true; } | wc -l; }
ok=$(count OK)
fail=$(($(count FAIL) + $(count TIMEOUT) + $(count ERROR) + $(count UNEXPECTEDPASS)))
skip=$(count SKIP)
if [ "${CI:-}" = true ] && [ "$skip" -gt 0 ]; then
    echo "CI=true: $skip test(s) skipped for a missing requirement; CI counts them as failed:"
    grep '"result": "SKIP"' "$log" | while IFS= read -r line; do
        name=$(sed -n 's/^{"name": "\([^"]*\)".*/\1/p' <<<"$line")
        why=$(grep -o 'SKIP: [^"\\]*' <<<"$line" | head -n 1 || true)
        echo "  SKIPPED ${name:-?}${why:+ ($why)}"
    done
    fail=$((fail + skip))
    skip=0
    rc=1
fi
if [ "$ok" -eq 0 ] && [ "$fail" -eq 0 ] && [ "${CI:-}" = true ]; then
    echo "CI=true: no test passed"
    fail=1
    rc=1
fi
echo "$ok passed, $fail failed, $skip skipped"
exit "$rc"
