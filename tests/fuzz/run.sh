#!/usr/bin/env bash
# tests/fuzz/run.sh SRCDIR BUILDDIR DRIVER — the wire decoder under fuzzing, bounded in time:
#   1. DRIVER (tests/fuzz/wire_driver.c, built like the rest: with ASan+UBSan in the sanitize
#      build) checks valid conversations and feeds VVFS_FUZZ_ITERATIONS (default 200000)
#      mutations of them to the target, and writes them as a seed corpus;
#   2. with clang, the same target is built with -fsanitize=fuzzer,address,undefined and
#      libFuzzer runs on that corpus for VVFS_FUZZ_SECONDS (default 30).  Without clang this
#      step is skipped, which under CI=true is a failure (contrib/deps.sh installs clang).
set -euo pipefail
src=${1:?usage: run.sh SRCDIR BUILDDIR DRIVER}
build=${2:?}
driver=${3:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/vvfs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
"$driver" --iterations "${VVFS_FUZZ_ITERATIONS:-200000}" --seeds "$work/corpus"

if ! command -v clang >/dev/null; then
    echo "fuzz: clang is not installed: the libFuzzer run is skipped"
    [ "${CI:-}" = true ] && { echo "fuzz: CI=true: a skipped step is a failure" >&2; exit 1; }
    exit 77
fi
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -D_GNU_SOURCE -I"$src" -o "$work/fuzz_wire" \
    "$src/tests/fuzz/fuzz_wire.c" "$src/replication/wire.c" "$src/util/name.c" ||
    { echo "fuzz: building the libFuzzer target failed" >&2; exit 1; }
secs=${VVFS_FUZZ_SECONDS:-30}
# (the target never leaks on its own; LSan's exit hook would blame libFuzzer's)
if ! ASAN_OPTIONS=detect_leaks=0 "$work/fuzz_wire" -max_total_time="$secs" -max_len=70000 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" >"$work/fuzz.log" 2>&1; then
    tail -n 40 "$work/fuzz.log" >&2
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
        [ -e "$a" ] && { echo "fuzz: input that failed (hex):" >&2; od -An -tx1 "$a" | head -20 >&2; }
    done
    exit 1
fi
grep -E '^stat::number_of_executed_units|^stat::peak_rss' "$work/fuzz.log" || true
echo "fuzz: libFuzzer ran $secs s on the wire decoder without a failure"
