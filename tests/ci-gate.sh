#!/usr/bin/env bash
# ci-gate.sh SRCDIR — the CI gate cannot pass empty.
#   contrib/test-summary.sh (the end of contrib/run-tests.sh), on synthetic meson test logs:
#   with CI=true a skipped test is a failure, named with its reason; without CI it is counted
#   as skipped; a missing log is a failure.
#   .ci/run, in a scratch tree with a stub contrib/run-tests.sh: runs the normal suite, then
#   --sanitize, even when the first fails; its last line sums both as "N passed, N failed";
#   a suite that ends without a result line counts as failed; CI defaults to true.
set -euo pipefail
src=${1:?usage: ci-gate.sh SRCDIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vvfs-ci-gate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bad=0
no() { echo "ci-gate: FAIL: $*" >&2; bad=1; }

entry() # NAME RESULT [STDERR]: one line of meson's testlog.json
{
    printf '{"name": "%s", "stdout": "", "result": "%s", "returncode": 0, "env": {"CI": "x"}, "stderr": "%s"}\n' \
        "$1" "$2" "${3:-}"
}
entry "vvfs:unit / unit-util" OK >"$tmp/ok.json"
entry "vvfs:integration / integ-basic" OK >>"$tmp/ok.json"
cp "$tmp/ok.json" "$tmp/skip.json"
entry "vvfs:integration / integ-ext4" SKIP \
    "ext4: SKIP: required command 'mkfs.ext4' not found (contrib/deps.sh should install it)\\n" \
    >>"$tmp/skip.json"
cp "$tmp/ok.json" "$tmp/fail.json"
entry "vvfs:integration / integ-crash" FAIL "crash: FAIL: x\\n" >>"$tmp/fail.json"

summary() # EXPECTED-RC EXPECTED-LAST-LINE CI LOG RC
{
    local out rc=0
    out=$(CI=$3 bash "$src/contrib/test-summary.sh" "$4" "$5" 2>&1) || rc=$?
    [ "$rc" = "$1" ] || no "test-summary CI=$3 $(basename "$4") $5: exit $rc, expected $1: $out"
    [ "$(tail -n 1 <<<"$out")" = "$2" ] ||
        no "test-summary CI=$3 $(basename "$4"): last line '$(tail -n 1 <<<"$out")', expected '$2'"
    OUT=$out
}
summary 0 "2 passed, 0 failed, 0 skipped" true "$tmp/ok.json" 0
summary 0 "2 passed, 0 failed, 1 skipped" "" "$tmp/skip.json" 0
summary 1 "2 passed, 1 failed, 0 skipped" true "$tmp/skip.json" 0
grep -q "SKIPPED vvfs:integration / integ-ext4 (SKIP: required command 'mkfs.ext4' not found" <<<"$OUT" ||
    no "CI=true with a skip: the skipped test and its reason are not named: $OUT"
summary 1 "2 passed, 1 failed, 0 skipped" true "$tmp/fail.json" 1
summary 1 "2 passed, 1 failed, 0 skipped" "" "$tmp/fail.json" 1
summary 1 "0 passed, 1 failed, 0 skipped" true "$tmp/missing.json" 0
: >"$tmp/empty.json"
summary 1 "0 passed, 1 failed, 0 skipped" true "$tmp/empty.json" 0

# .ci/run against a stub runner: STUB_<suite> is "LAST-LINE|EXIT" ("" for no result line)
mkdir -p "$tmp/tree/.ci" "$tmp/tree/contrib"
cp "$src/.ci/run" "$tmp/tree/.ci/run"
cat >"$tmp/tree/contrib/run-tests.sh" <<'STUB'
#!/usr/bin/env bash
suite=normal
[ "${1:-}" = --sanitize ] && suite=sanitize
echo "$suite CI=${CI:-unset}" >>"$STUB_CALLS"
spec=STUB_$suite
spec=${!spec}
echo "running the $suite suite"
[ -n "${spec%|*}" ] && echo "${spec%|*}"
exit "${spec#*|}"
STUB
ci() # EXPECTED-RC EXPECTED-LAST-LINE NORMAL SANITIZE
{
    local out rc=0
    : >"$tmp/calls"
    out=$(env -u CI STUB_CALLS="$tmp/calls" STUB_normal="$3" STUB_sanitize="$4" \
        bash "$tmp/tree/.ci/run" 2>&1) || rc=$?
    [ "$rc" = "$1" ] || no ".ci/run ($3 / $4): exit $rc, expected $1: $out"
    [ "$(tail -n 1 <<<"$out")" = "$2" ] ||
        no ".ci/run ($3 / $4): last line '$(tail -n 1 <<<"$out")', expected '$2'"
    [ "$(cat "$tmp/calls")" = $'normal CI=true\nsanitize CI=true' ] ||
        no ".ci/run ($3 / $4) ran: $(tr '\n' ';' <"$tmp/calls") (expected normal, then sanitize, CI=true)"
}
ci 0 "25 passed, 0 failed" "13 passed, 0 failed, 0 skipped|0" "12 passed, 0 failed, 0 skipped|0"
ci 1 "23 passed, 2 failed" "11 passed, 2 failed, 0 skipped|1" "12 passed, 0 failed, 0 skipped|0"
ci 1 "24 passed, 1 failed" "13 passed, 0 failed, 0 skipped|0" "11 passed, 1 failed, 0 skipped|1"
ci 1 "12 passed, 1 failed" "|1" "12 passed, 0 failed, 0 skipped|0"
ci 1 "26 passed, 1 failed" "13 passed, 0 failed, 0 skipped|0" "13 passed, 0 failed, 0 skipped|2"

[ "$bad" = 0 ] && echo "ci-gate: ok"
exit "$bad"
