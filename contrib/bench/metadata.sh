#!/usr/bin/env bash
# shellcheck disable=SC2317  # (cleanup runs from a trap)
# contrib/bench/metadata.sh — metadata cost per byte of data: LMDB pages in use (every database,
# the free list excluded) against the data the pool holds, for two ways of writing:
#   seq    a volume of --size written once with 1 MiB direct writes (fio, QD 8)
#   rand   --random bytes of 4 KiB direct random writes (fio, QD 16) over a volume of --size:
#          the data held is what they left (distinct blocks), and each block is alone in its
#          chunk far more often than sequential data is
# Each case gets a fresh pool, unmounted before it is measured (mdb_stat on meta.mdb).
#
# Usage: contrib/bench/metadata.sh [options]   (as root)
#   --pool-dir DIR      where the work directory goes (default /var/tmp)
#   --size SIZE         volume size (default 4G)
#   --random SIZE       bytes of random 4K writes (default 1G)
#   --extent-size SIZE  pool extent size (default: vvfs's)
#   --cases LIST        seq,rand (default both)
#   --vvfs PATH         the vvfs binary (default $VVFS, else build/cli/vvfs)
# Prints, per case: data held, LMDB pages in use (bytes), their ratio, and per-database pages.
# Needs: fio (libaio), mdb_stat (lmdb-utils), jq.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=/var/tmp
size=4G
random=1G
extent_size=
cases=seq,rand
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
    --random) random=$2; shift 2 ;;
    --extent-size) extent_size=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --vvfs) vvfs=$2; shift 2 ;;
    *) usage ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "metadata.sh: must run as root" >&2; exit 1; }
for c in fio mdb_stat jq; do
    command -v $c >/dev/null || { echo "metadata.sh: needs $c" >&2; exit 1; }
done
[ -x "$vvfs" ] || { echo "metadata.sh: no vvfs binary at $vvfs" >&2; exit 1; }

work=$(mktemp -d "$base/vvfs-meta.XXXXXX")
mnt=
cleanup()
{
    if [ -n "$mnt" ] && mountpoint -q "$mnt"; then
        "$vvfs" umount "$mnt" >/dev/null 2>&1 || fusermount3 -u -z "$mnt" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

bytes() { numfmt --from=iec "$1"; }

# pages in use by every database of the LMDB environment at $1 (main DB included)
lmdb_pages()
{
    mdb_stat -a -n "$1" | awk '
        /^Status of/ { db = $3 }
        /Branch pages:/ { p[db] += $3 }
        /Leaf pages:/ { p[db] += $3 }
        /Overflow pages:/ { p[db] += $3 }
        END { t = 0; for (d in p) { t += p[d]; printf "  %-12s %d pages\n", d, p[d] > "/dev/stderr" } print t }'
}

run_case()
{
    local name=$1 pool=$work/pool-$1 used pages psize meta
    mnt=$work/mnt-$1
    mkdir -p "$mnt"
    local cap=$(( $(bytes "$size") * 2 ))
    "$vvfs" init "$pool" --capacity "$cap" ${extent_size:+--extent-size "$extent_size"} >/dev/null
    "$vvfs" mount "$pool" "$mnt" >/dev/null
    "$vvfs" --pool "$pool" volume create v "$size" >/dev/null
    if [ "$name" = seq ]; then
        fio --name=seq --filename="$mnt/volumes/v" --rw=write --bs=1M --iodepth=8 \
            --ioengine=libaio --direct=1 --size="$size" --output=/dev/null
    else
        fio --name=rand --filename="$mnt/volumes/v" --rw=randwrite --bs=4k --iodepth=16 \
            --ioengine=libaio --direct=1 --size="$size" --io_size="$random" \
            --randrepeat=1 --output=/dev/null
    fi
    "$vvfs" --pool "$pool" sync >/dev/null
    used=$("$vvfs" --pool "$pool" --json status | jq .used)
    "$vvfs" umount "$mnt" >/dev/null
    psize=$(mdb_stat -e -n "$pool/meta.mdb" | awk '/Page size:/ { print $3 }')
    echo "$name: per-database pages:" >&2
    pages=$(lmdb_pages "$pool/meta.mdb")
    meta=$((pages * psize))
    awk -v n="$name" -v u="$used" -v m="$meta" 'BEGIN {
        printf "%-5s data held %8.1f MiB   metadata %8.2f MiB   %.3f%% of the data\n",
               n, u / 1048576, m / 1048576, 100 * m / u }'
}

for c in ${cases//,/ }; do
    case $c in
    seq | rand) run_case "$c" ;;
    *) echo "metadata.sh: unknown case $c" >&2; exit 2 ;;
    esac
done
