#!/usr/bin/env bash
# contrib/bench/repl-sessions.sh — replication between two real daemons, as a user runs it,
# beside the reference on the same path in the same run:
#   initial  a first sync of SIZE MiB of written data (a thin volume twice that size), through
#            loopback and through a veth pair into a network namespace, against raw TCP
#            (nc, the same bytes, the same path; the median of three runs): MB/s and the ratio;
#            beside the same bytes copied from file to file on this disk (both pools
#            share it here, so its read and write bound the sync as the network does); and
#            beside raw TCP between the disks (that file read direct into nc, nc's output
#            written direct at the other end: a bare copy of the data over the same path);
#   incr     an incremental sync after changing 1% of an INCR MiB volume in random 64 KiB
#            blocks: bytes on the wire and time, beside `btrfs send -p | btrfs receive` and
#            `rsync --inplace --no-whole-file` of the same change (btrfs on loop files);
#   lag      continuous mode under a steady write load of RATE MB/s for 30 s: the lag the
#            source's status reports, sampled every second (max and mean).
# The daemons run in one memory cgroup (--mem-limit, default 1G), so that their page cache
# does not pass for the disk.
#
# Usage: contrib/bench/repl-sessions.sh [--dir DIR] [--size MiB] [--incr MiB] [--rate MB/s]
#            [--only initial|incr|lag] [--mem-limit BYTES]
# Needs root, nc (netcat-openbsd), fio, btrfs-progs, rsync and bc (Debian packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
VVFS=${VVFS:-$here/../../build/cli/vvfs}
VVIO=${VVIO:-$here/../../build/tests/vvio}
base=/var/tmp
size=2048
incr=8192
rate=50
only=
mem_b=$((1 << 30))
while [ $# -gt 0 ]; do
    case $1 in
    --dir) base=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --incr) incr=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --mem-limit) mem_b=$2; shift 2 ;;
    *) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
for c in nc fio btrfs rsync ip nsenter jq bc; do
    command -v $c >/dev/null || { echo "repl-sessions.sh: needs $c" >&2; exit 1; }
done
[ -x "$VVFS" ] && [ -x "$VVIO" ] || { echo "repl-sessions.sh: build first" >&2; exit 1; }
log() { printf 'repl-sessions: %s\n' "$*" >&2; }

work=$(mktemp -d "$base/vvfs-replbench.XXXXXX")
ns=vvfs-rb-$$
va=vvba$$
vb=vvbb$$
net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
mounts=()
cleanup()
{
    set +e
    for m in "${mounts[@]}"; do timeout 60 "$VVFS" umount "$m" >/dev/null 2>&1; done
    for m in "$work"/btrfs*; do mountpoint -q "$m" && umount "$m"; done
    ip link del "$va" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    [ -n "$cgdir" ] && rmdir "$cgdir" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# ---- setup -------------------------------------------------------------------------------------
# shellcheck source=contrib/bench/lib-cgroup.sh
source "$here/lib-cgroup.sh"
make_cgroup

ip netns add "$ns"
ip link add "$va" type veth peer name "$vb"
ip link set "$vb" netns "$ns"
ip addr add "$net.1/24" dev "$va"
ip link set "$va" up
ip -n "$ns" addr add "$net.2/24" dev "$vb"
ip -n "$ns" link set "$vb" up
ip -n "$ns" link set lo up

key=$work/peer.key
"$VVFS" key generate >"$key"
chmod 600 "$key"
port=$((20000 + RANDOM % 30000))

# mount POOL MNT [IN-NS] [ARGS...]: a daemon, in the cgroup (and the namespace's network)
mount_daemon()
{
    local pool=$1 mnt=$2 in=$3
    shift 3
    mkdir -p "$mnt"
    (
        [ -n "$cgdir" ] && echo $BASHPID >"$cgdir/cgroup.procs"
        if [ "$in" = ns ]; then
            exec nsenter --net=/run/netns/"$ns" "$VVFS" mount "$pool" "$mnt" "$@"
        else
            exec "$VVFS" mount "$pool" "$mnt" "$@"
        fi
    )
    mounts+=("$mnt")
}

# a fresh source and destination; DEST_NS: the destination in the namespace
pair()
{
    local where=$1 i=${#mounts[@]}
    A=$work/a$i B=$work/b$i MA=$work/ma$i MB=$work/mb$i
    "$VVFS" init "$A" --capacity $((incr * 2 + size * 2 + 1024))M >/dev/null
    "$VVFS" init "$B" --capacity $((incr * 2 + size * 2 + 1024))M >/dev/null
    if [ "$where" = veth ]; then
        peer=$net.2:$port
        mount_daemon "$B" "$MB" ns --listen "$peer" --key "$key"
    else
        peer=127.0.0.1:$port
        mount_daemon "$B" "$MB" - --listen "$peer" --key "$key"
    fi
    mount_daemon "$A" "$MA" -
}

unpair()
{
    timeout 120 "$VVFS" umount "$MA" >/dev/null
    timeout 120 "$VVFS" umount "$MB" >/dev/null
    rm -rf "$A" "$B"
}

status() { "$VVFS" --pool "$A" --json replication status "$1"; }
now() { date +%s.%N; }

# wait until session NAME has completed N syncs (asking twice a second: a CLI and a jq run
# cost CPU that this 2-core machine's daemons would miss)
wait_syncs()
{
    until [ "$(status "$1" | jq .syncs)" -ge "$2" ]; do sleep 0.5; done
}

# write back what is dirty, then drop the page cache: what is read next comes from the disk
drop_caches()
{
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# raw TCP on the loopback or the veth path: SIZE MiB from /dev/zero into nc's /dev/null
# (raw_tcp WHERE), or between the disks (raw_tcp WHERE disks: $work/copy-src read direct,
# caches dropped, into nc, and nc's output written direct to $work/copy-dst at the other end:
# a bare TCP copy of the data on this machine, where both ends share one disk); prints seconds
raw_tcp()
{
    local where=$1 disks=${2:-} p=$((port + 1)) host=127.0.0.1 t0 lpid
    local src=(dd if=/dev/zero bs=1M count="$size" status=none) rcv
    [ "$where" = veth ] && host=$net.2
    rcv="nc -l -N $host $p >/dev/null"
    if [ -n "$disks" ]; then
        rm -f "$work/copy-dst"
        drop_caches
        src=(dd if="$work/copy-src" iflag=direct bs=1M status=none)
        rcv="nc -l -N $host $p | dd of=$work/copy-dst oflag=direct iflag=fullblock bs=1M status=none"
    fi
    if [ "$where" = veth ]; then
        nsenter --net=/run/netns/"$ns" bash -c "$rcv" &
    else
        bash -c "$rcv" &
    fi
    lpid=$!
    sleep 0.5
    t0=$(now)
    "${src[@]}" | nc -N "$host" "$p"
    wait $lpid
    echo "$(now) - $t0" | bc -l
}

# run "$@" (it prints seconds) three times; the three go to the log as LABEL, the median out
# (one run moves by +-20% here)
median3()
{
    local label=$1 ts=()
    shift
    for _ in 1 2 3; do ts+=("$("$@")"); done
    log "$label: ${ts[0]} s, ${ts[1]} s, ${ts[2]} s"
    printf '%s\n' "${ts[@]}" | sort -g | sed -n 2p
}

# the same bytes copied on this disk, no network: $work/copy-src read direct (caches dropped)
# and written direct to another file, as the two daemons here read and write them on one disk
disk_copy_once()
{
    local t0
    rm -f "$work/copy-dst"
    drop_caches
    t0=$(now)
    dd if="$work/copy-src" iflag=direct bs=1M status=none |
        dd of="$work/copy-dst" oflag=direct iflag=fullblock bs=1M status=none
    echo "$(now) - $t0" | bc -l
}

mbs() { echo "scale=1; $1 / 1.048576 / $2" | bc -l; }

# ---- initial sync --------------------------------------------------------------------------------
initial()
{
    local where=$1 t traw tdisk tnet
    pair "$where"
    "$VVFS" --pool "$A" volume create v $((size * 2))M >/dev/null
    "$VVIO" write "$MA/volumes/v" 0 "${size}M" --seed 1 >/dev/null
    drop_caches
    traw=$(median3 "raw TCP $where" raw_tcp "$where")
    dd if=/dev/urandom of="$work/copy-src" bs=1M count="$size" oflag=direct status=none
    tdisk=$(median3 "disk copy" disk_copy_once)
    tnet=$(median3 "raw TCP between the disks $where" raw_tcp "$where" disks)
    rm -f "$work/copy-src" "$work/copy-dst"
    drop_caches
    "$VVFS" --pool "$A" replication create s --volume v --peer "$peer" --key "$key" \
        --rpo 1h >/dev/null
    wait_syncs s 1
    local sent
    t=$(status s | jq .transfer.seconds) # (the source's clock: from WELCOME to the COMMIT's ACK)
    sent=$(status s | jq .bytes_sent)
    [ "$(md5sum <"$MB/volumes/v")" = "$(md5sum <"$MA/volumes/v")" ] || log "REPLICA DIFFERS"
    printf 'initial %-8s %6d MiB: vvfs %6.2f s %7.1f MB/s (%d bytes on the wire), raw TCP %6.2f s %7.1f MB/s, ratio %.2f\n' \
        "$where" "$size" "$t" "$(mbs "$size" "$t")" "$sent" "$traw" "$(mbs "$size" "$traw")" \
        "$(echo "$traw / $t" | bc -l)"
    printf 'initial %-8s %6d MiB: the same bytes copied on this disk (no network) %6.2f s %7.1f MB/s, vvfs/copy %.2f\n' \
        "$where" "$size" "$tdisk" "$(mbs "$size" "$tdisk")" "$(echo "$tdisk / $t" | bc -l)"
    printf 'initial %-8s %6d MiB: raw TCP between the disks (dd | nc | dd, direct) %6.2f s %7.1f MB/s, vvfs/that %.2f\n' \
        "$where" "$size" "$tnet" "$(mbs "$size" "$tnet")" "$(echo "$tnet / $t" | bc -l)"
    "$VVFS" --pool "$A" replication delete s >/dev/null
    "$VVFS" --pool "$B" replication delete s >/dev/null
    unpair
}

# ---- incremental: vvfs, btrfs send, rsync ----------------------------------------------------
changes=$work/changes
make_changes() # N64K random offsets (as 64 KiB block numbers) in a volume of INCR MiB
{
    local n=$((incr * 16 / 100)) # 1% of the 64 KiB blocks
    awk -v n="$n" -v max=$((incr * 16)) 'BEGIN { srand(7); for (i = 0; i < n; i++) print int(rand() * max) }' |
        sort -un >"$changes"
}
apply_changes() # FILE: the changed 64 KiB blocks, random data (the same blocks each time)
{
    local f=$1 b
    while read -r b; do
        dd if=/dev/urandom of="$f" bs=64k count=1 seek="$b" conv=notrunc status=none
    done <"$changes"
    sync
}

incremental()
{
    make_changes
    local nch bytes
    nch=$(wc -l <"$changes")
    bytes=$((nch * 65536))
    log "incremental: $incr MiB volume, $nch blocks of 64 KiB changed ($bytes bytes)"
    # vvfs
    pair loop
    "$VVFS" --pool "$A" volume create v "${incr}M" >/dev/null
    "$VVIO" write "$MA/volumes/v" 0 "${incr}M" --seed 2 >/dev/null
    "$VVFS" --pool "$A" replication create s --volume v --peer "$peer" --key "$key" \
        --rpo 1h >/dev/null
    wait_syncs s 1
    local s0 t sent
    s0=$(status s | jq .bytes_sent)
    apply_changes "$MA/volumes/v"
    t=$( { /usr/bin/time -f %e "$VVFS" --pool "$A" replication sync s --wait --timeout 3600 >/dev/null; } 2>&1 )
    sent=$(( $(status s | jq .bytes_sent) - s0 ))
    [ "$(md5sum <"$MB/volumes/v")" = "$(md5sum <"$MA/volumes/v")" ] || log "REPLICA DIFFERS"
    printf 'incr vvfs   %6.2f s  %12d bytes on the wire (%.3f of the change)\n' "$t" "$sent" \
        "$(echo "$sent / $bytes" | bc -l)"
    "$VVFS" --pool "$A" replication delete s >/dev/null
    "$VVFS" --pool "$B" replication delete s >/dev/null
    unpair
    # btrfs send -p | btrfs receive, between two btrfs on loop files
    local f1=$work/btrfs1.img f2=$work/btrfs2.img m1=$work/btrfs1 m2=$work/btrfs2
    truncate -s $((incr * 3))M "$f1" "$f2"
    mkfs.btrfs -q "$f1" >/dev/null 2>&1
    mkfs.btrfs -q "$f2" >/dev/null 2>&1
    mkdir -p "$m1" "$m2"
    mount -o loop "$f1" "$m1"
    mount -o loop "$f2" "$m2"
    btrfs subvolume create "$m1/vol" >/dev/null
    dd if=/dev/urandom of="$m1/vol/img" bs=1M count="$incr" status=none
    sync
    btrfs subvolume snapshot -r "$m1/vol" "$m1/s1" >/dev/null
    btrfs send -q "$m1/s1" | btrfs receive -q "$m2"
    apply_changes "$m1/vol/img"
    sync
    btrfs subvolume snapshot -r "$m1/vol" "$m1/s2" >/dev/null
    local t0 bsent
    t0=$(now)
    bsent=$(btrfs send -q -p "$m1/s1" "$m1/s2" | tee >(btrfs receive -q "$m2") | wc -c)
    sync
    t=$(echo "$(now) - $t0" | bc -l)
    printf 'incr btrfs  %6.2f s  %12d bytes in the stream (%.3f of the change)\n' "$t" "$bsent" \
        "$(echo "$bsent / $bytes" | bc -l)"
    # rsync --inplace --no-whole-file of the same file, over a local pipe
    cp "$m2/s1/img" "$work/rsync-dst.img"
    t0=$(now)
    local rs
    rs=$(rsync --inplace --no-whole-file --stats "$m1/s2/img" "$work/rsync-dst.img" 2>/dev/null |
        awk '/Total bytes sent/ { gsub(",", "", $4); print $4 }' || true)
    t=$(echo "$(now) - $t0" | bc -l)
    printf 'incr rsync  %6.2f s  %12s bytes sent (local, --no-whole-file)\n' "$t" "${rs:-?}"
    umount "$m1" "$m2"
    rm -f "$f1" "$f2" "$work/rsync-dst.img"
}

# ---- continuous lag --------------------------------------------------------------------------------
lag()
{
    pair loop
    "$VVFS" --pool "$A" volume create v 4G >/dev/null
    "$VVFS" --pool "$A" replication create s --volume v --peer "$peer" --key "$key" \
        --mode continuous >/dev/null
    wait_syncs s 1
    fio --name=load --filename="$MA/volumes/v" --rw=randwrite --bs=64k --size=4G \
        --rate="${rate}m" --time_based --runtime=30 --direct=1 --output=/dev/null &
    local fpid=$! max=0 sum=0 n=0 l
    sleep 2
    while kill -0 $fpid 2>/dev/null; do
        l=$(status s | jq .lag)
        n=$((n + 1))
        sum=$((sum + l))
        [ "$l" -gt "$max" ] && max=$l
        sleep 1
    done
    printf 'lag continuous at %d MB/s: max %d s, mean %.1f s over %d samples; %d syncs\n' \
        "$rate" "$max" "$(echo "$sum / $n" | bc -l)" "$n" "$(status s | jq .syncs)"
    "$VVFS" --pool "$A" replication delete s >/dev/null
    "$VVFS" --pool "$B" replication delete s >/dev/null
    unpair
}

case $only in
'') initial loop; initial veth; incremental; lag ;;
initial) initial loop; initial veth ;;
incr) incremental ;;
lag) lag ;;
*) echo "--only initial|incr|lag" >&2; exit 2 ;;
esac
