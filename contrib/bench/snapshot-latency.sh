#!/usr/bin/env bash
# shellcheck disable=SC2317  # (cleanup runs from a trap)
# contrib/bench/snapshot-latency.sh — what snapshots cost as they pile up and as the volume
# grows: `vvfs snapshot create` latency through the CLI (median of 5) with 1, 100, 1,000 and
# 10,000 snapshots of the volume already there, after writing --written of it sequentially
# (fio, 1M, direct); then the time of `vvfs snapshot delete` of a snapshot that alone holds
# --exclusive of data, against the delete of one that holds nothing; clone create latency;
# the time to list the snapshots with their exclusive bytes, and to count one's.
#
# Usage: contrib/bench/snapshot-latency.sh [options]   (as root)
#   --pool-dir DIR     where the work directory goes (default /var/tmp)
#   --written SIZE     data written before the first snapshot (default 1G)
#   --exclusive SIZE   data only the deleted snapshot holds (default 1G)
#   --counts LIST      snapshot counts to measure at (default 1,100,1000,10000)
#   --vvfs PATH        the vvfs binary (default $VVFS, else build/cli/vvfs)
# Needs: fio, curl.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=/var/tmp
written=1G
exclusive=1G
counts=1,100,1000,10000
vvfs=${VVFS:-$here/../../build/cli/vvfs}

usage()
{
    sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --pool-dir) base=$2; shift 2 ;;
    --written) written=$2; shift 2 ;;
    --exclusive) exclusive=$2; shift 2 ;;
    --counts) counts=$2; shift 2 ;;
    --vvfs) vvfs=$2; shift 2 ;;
    *) usage ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "snapshot-latency.sh: must run as root" >&2; exit 1; }
for c in fio curl; do
    command -v $c >/dev/null || { echo "snapshot-latency.sh: needs $c" >&2; exit 1; }
done

work=$(mktemp -d "$base/vvfs-snap.XXXXXX")
pool=$work/pool
mnt=$work/mnt
cleanup()
{
    if mountpoint -q "$mnt"; then
        "$vvfs" umount "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

wb=$(numfmt --from=iec "$written")
xb=$(numfmt --from=iec "$exclusive")
vsize=$(((wb > xb ? wb : xb) + (1 << 30)))
mkdir -p "$mnt"
"$vvfs" init "$pool" --capacity $((2 * vsize + 2 * xb + (2 << 30))) >/dev/null
"$vvfs" mount "$pool" "$mnt" >/dev/null
export VVFS_POOL=$pool
"$vvfs" volume create v "$vsize" >/dev/null
vol=$mnt/volumes/v
fio --name=fill --filename="$vol" --rw=write --bs=1M --iodepth=8 --ioengine=libaio \
    --direct=1 --size="$wb" >/dev/null

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# US: the median of 5 `vvfs snapshot create` calls, in microseconds (the snapshots stay: the
# count grows by 5)
made=0
us=0
measure()
{
    local t=() i a b
    for i in 1 2 3 4 5; do
        a=$(date +%s%N)
        "$vvfs" snapshot create v "m$made" >/dev/null
        b=$(date +%s%N)
        made=$((made + 1))
        t+=($(((b - a) / 1000)))
    done
    us=$(printf '%s\n' "${t[@]}" | sort -n | sed -n 3p)
}
# add snapshots until there are N (through the API, 200 a curl process)
fill_to()
{
    local n=$1 args
    while [ "$made" -lt "$n" ]; do
        args=()
        while [ "$made" -lt "$n" ] && [ "${#args[@]}" -lt 1200 ]; do
            [ "${#args[@]}" -gt 0 ] && args+=(--next)
            args+=(-s -o /dev/null -X POST -d "{\"name\":\"f$made\"}"
                --unix-socket "$pool/vvfs.sock" http://localhost/v1/volumes/v/snapshots)
            made=$((made + 1))
        done
        curl "${args[@]}"
    done
}

echo "snapshot create latency (CLI, median of 5), $written written:"
printf '%10s %12s\n' snapshots "create (ms)"
first=
for n in ${counts//,/ }; do
    fill_to $((n - 1 > 0 ? n - 1 : 0))
    measure
    [ -n "$first" ] || first=$us
    printf '%10s %12s   (%.2fx the first)\n' "$n" "$(awk -v u="$us" 'BEGIN { printf "%.1f", u / 1000 }')" \
        "$(awk -v u="$us" -v f="$first" 'BEGIN { print u / f }')"
done
echo "(snapshots now: $made)"

# clone create latency (median of 5, each of another snapshot), at the count reached
t=()
for i in 1 2 3 4 5; do
    a=$(date +%s%N)
    "$vvfs" clone create "v@m$((i - 1))" "clone$i" >/dev/null
    b=$(date +%s%N)
    t+=($(((b - a) / 1000)))
done
us=$(printf '%s\n' "${t[@]}" | sort -n | sed -n 3p)
echo "clone create latency (CLI, median of 5) with $made snapshots: $(awk -v u="$us" 'BEGIN { printf "%.1f", u / 1000 }') ms"
for i in 1 2 3 4 5; do "$vvfs" volume delete "clone$i" >/dev/null; done
a=$(date +%s%N)
"$vvfs" --json snapshot list v >/dev/null
b=$(date +%s%N)
echo "snapshot list of $made snapshots with their exclusive bytes (CLI): $(((b - a) / 1000000)) ms"
a=$(date +%s%N)
ls -f "$mnt/snapshots/v" >/dev/null
b=$(date +%s%N)
ls -l "$mnt/snapshots/v" >/dev/null
c=$(date +%s%N)
echo "readdir of the snapshot directory (ls -f): $(((b - a) / 1000000)) ms; ls -l: $(((c - b) / 1000000)) ms"

echo
echo "snapshot delete time:"
"$vvfs" snapshot create v empty-a >/dev/null
t0=$(now_ms)
"$vvfs" snapshot delete v empty-a >/dev/null
t1=$(now_ms)
echo "  a snapshot holding nothing alone:       $((t1 - t0)) ms"
# a snapshot that alone holds EXCLUSIVE: write it, snapshot, overwrite it, snapshot again
fio --name=x --filename="$vol" --rw=write --bs=1M --iodepth=8 --ioengine=libaio --direct=1 \
    --size="$xb" --offset=0 >/dev/null
"$vvfs" snapshot create v excl >/dev/null
fio --name=y --filename="$vol" --rw=write --bs=1M --iodepth=8 --ioengine=libaio --direct=1 \
    --size="$xb" --offset=0 >/dev/null
"$vvfs" snapshot create v after >/dev/null
used0=$("$vvfs" --json status | awk -F: '/"used"/ { gsub(/[ ,]/, "", $2); print $2; exit }')
a=$(date +%s%N)
excl=$("$vvfs" --json snapshot show v excl | awk -F: '/"exclusive"/ { gsub(/[ ,]/, "", $2); print $2 }')
b=$(date +%s%N)
c=$(date +%s%N)
"$vvfs" --json snapshot show v excl >/dev/null
d=$(date +%s%N)
echo "  its exclusive count: $((excl >> 20)) MiB, counted in $(((b - a) / 1000000)) ms (CLI; cached: $(((d - c) / 1000000)) ms)"
t0=$(now_ms)
"$vvfs" snapshot delete v excl >/dev/null
t1=$(now_ms)
used1=$("$vvfs" --json status | awk -F: '/"used"/ { gsub(/[ ,]/, "", $2); print $2; exit }')
echo "  a snapshot holding $exclusive alone: $((t1 - t0)) ms, freed $(((used0 - used1) >> 20)) MiB"
