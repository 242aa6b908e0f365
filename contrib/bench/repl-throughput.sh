#!/usr/bin/env bash
# contrib/bench/repl-throughput.sh — initial-sync throughput of a volume over the replication
# channel (TLS 1.3 on loopback, the receiver writing the replica into a second pool on the same
# disk and committing it) against raw TCP on the same path, in the same run
# (tests/tools/replbench.c).
#
# Usage: contrib/bench/repl-throughput.sh [--pool-dir DIR] [--size MiB] [--replbench PATH]
#   --pool-dir DIR   where the two pools go (default /var/tmp; removed afterwards)
#   --size MiB       data written to the source volume, then sent (default 2048)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=/var/tmp
size=2048
bin=${REPLBENCH:-$here/../../build/tests/replbench}
while [ $# -gt 0 ]; do
    case $1 in
    --pool-dir) base=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --replbench) bin=$2; shift 2 ;;
    *) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "repl-throughput.sh: no $bin (build first)" >&2; exit 1; }
work=$(mktemp -d "$base/vvfs-repl.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$bin" "$work" "$size" 2> >(grep -v ' info ' >&2)
