#!/usr/bin/env bash
# shellcheck disable=SC2317  # (cleanup runs from a trap)
# contrib/bench/delete-latency.sh — how long fsyncs on one volume wait while another, big and
# fully written, is deleted: a writer does 4 KiB write+fdatasync in a loop on volume "small"
# (fio, sync engine, QD 1) while volume "big" (--size, written sequentially first) is deleted.
# Reports the delete command's own time, fio's worst and 99.9th-percentile fsync latency
# during the delete, the same before it (baseline), and how long the space took to come back.
#
# Usage: contrib/bench/delete-latency.sh [options]   (as root)
#   --pool-dir DIR   where the work directory goes (default /var/tmp)
#   --size SIZE      the volume that is deleted (default 12G)
#   --vvfs PATH      the vvfs binary (default $VVFS, else build/cli/vvfs)
# Needs: fio, jq.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=/var/tmp
size=12G
vvfs=${VVFS:-$here/../../build/cli/vvfs}

usage()
{
    sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --pool-dir) base=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --vvfs) vvfs=$2; shift 2 ;;
    *) usage ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "delete-latency.sh: must run as root" >&2; exit 1; }
for c in fio jq; do
    command -v $c >/dev/null || { echo "delete-latency.sh: needs $c" >&2; exit 1; }
done

work=$(mktemp -d "$base/vvfs-del.XXXXXX")
pool=$work/pool
mnt=$work/mnt
fio_pid=
cleanup()
{
    [ -n "$fio_pid" ] && kill "$fio_pid" 2>/dev/null && wait "$fio_pid" 2>/dev/null
    if mountpoint -q "$mnt"; then
        "$vvfs" umount "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

bytes=$(numfmt --from=iec "$size")
mkdir -p "$mnt"
"$vvfs" init "$pool" --capacity $((bytes + (4 << 30))) >/dev/null
"$vvfs" mount "$pool" "$mnt" >/dev/null
export VVFS_POOL=$pool
"$vvfs" volume create big "$size" >/dev/null
"$vvfs" volume create small 1G >/dev/null
echo "delete-latency: writing $size to 'big'" >&2
fio --name=fill --filename="$mnt/volumes/big" --rw=write --bs=1M --iodepth=8 --ioengine=libaio \
    --direct=1 --size="$size" --output=/dev/null
"$vvfs" sync >/dev/null

lat()
{
    # fio sync-latency figures (ns) of a JSON result: max and p99.9
    jq -r '.jobs[0].sync.lat_ns | "\(.max) \(.percentile["99.900000"] // 0)"' "$1"
}
run_writer()
{
    fio --name=fsync --filename="$mnt/volumes/small" --rw=randwrite --bs=4k --ioengine=sync \
        --fdatasync=1 --size=1G --time_based --runtime="$1" --output-format=json \
        --output="$2" &
    fio_pid=$!
}

echo "delete-latency: baseline, 5 s of write+fdatasync" >&2
run_writer 5 "$work/base.json"
wait "$fio_pid"
fio_pid=
echo "delete-latency: the same while 'big' is deleted" >&2
run_writer 10 "$work/del.json"
sleep 2
t0=$(date +%s.%N)
"$vvfs" volume delete big >/dev/null
t1=$(date +%s.%N)
while [ "$("$vvfs" --json status | jq .freeing)" != 0 ]; do sleep 0.05; done
t2=$(date +%s.%N)
wait "$fio_pid"
fio_pid=
read -r bmax bp < <(lat "$work/base.json")
read -r dmax dp < <(lat "$work/del.json")
awk -v t0="$t0" -v t1="$t1" -v t2="$t2" -v bmax="$bmax" -v bp="$bp" -v dmax="$dmax" -v dp="$dp" \
    -v size="$size" 'BEGIN {
    printf "delete of a %s volume: command %.0f ms, space back after %.2f s\n", size,
           (t1 - t0) * 1000, t2 - t0
    printf "fdatasync latency on another volume: baseline max %.1f ms (p99.9 %.1f ms); during the delete max %.1f ms (p99.9 %.1f ms)\n",
           bmax / 1e6, bp / 1e6, dmax / 1e6, dp / 1e6 }'
