#!/usr/bin/env bash
# basic.sh — the life of a volume through the CLI and the FUSE mount: create, pattern I/O at
# unaligned offsets, zeros where nothing was written, no writes past the end, no truncate, data
# across umount/mount, list/show --json, resize, rename, delete (space returns), statfs.
# shellcheck source=tests/integration/functions.sh disable=SC2012
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq df stat truncate mountpoint findmnt
set_timeout 300

E=$((64 << 10))   # extent size
MiB=$((1 << 20))
GiB=$((1 << 30))
new_pool --capacity 1G --extent-size 64K

step "the mount"
assert_eq "$(mount_type "$MNT")" fuse.vvfs "mount type of $MNT"
[ -d "$MNT/volumes" ] || fail "$MNT/volumes is missing"
assert_eq "$(ls -A "$MNT/volumes")" "" "volumes/ of a new pool"
[ -S "$POOL/vvfs.sock" ] || fail "$POOL/vvfs.sock is not a socket"
assert_eq "$(pool_field capacity)" "$GiB" "status capacity"
assert_eq "$(pool_field volumes)" 0 "status volumes"

step "create"
expect_exit 0 vvfs volume create v1 64M
vol=$MNT/volumes/v1
[ -f "$vol" ] || fail "$vol is not a regular file after create"
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size of $vol"
assert_eq "$(stat -c %a "$vol")" 600 "mode of $vol"
assert_eq "$(ls -l "$MNT/volumes" | awk '$NF == "v1" { print $1, $5 }')" "-rw------- 67108864" \
    "ls -l of v1"

step "a new volume reads as zeros"
expect_exit 0 vvio zero "$vol" 0 64M

step "pattern writes at unaligned offsets and sizes"
# (offset length seed) — each region checked afterwards, and the gaps between them must stay zero
regions=(
    "12345 1 1"                                 # one byte
    "$((E - 200)) 511 2"                        # 511 bytes across an extent boundary
    "$((3 * E + 5)) $((MiB + 3)) 3"             # 1 MiB + 3 at an odd offset
    "$((40 * MiB - 4095)) $((2 * E + 1)) 4"     # spans three extents, odd both ends
    "$((64 * MiB - 1)) 1 5"                     # the last byte
)
for r in "${regions[@]}"; do
    read -r off len seed <<<"$r"
    expect_exit 0 vvio write "$vol" "$off" "$len" --seed "$seed"
done
# The one-byte writes must not be zero by chance, or the check below proves nothing.
expect_exit 1 vvio zero "$vol" 12345 1
expect_exit 1 vvio zero "$vol" $((64 * MiB - 1)) 1

# overwrite the middle of region 3 with another seed, unaligned, and a direct-I/O block
expect_exit 0 vvio write "$vol" $((3 * E + 1000)) 70001 --seed 6
# Whole extents go to the data files with O_DIRECT (where the pool's filesystem takes it),
# straight from the FUSE request buffer when the request is aligned: the payload is
# page-aligned there, so nothing is copied to a bounce buffer first.  (The unaligned writes
# above did bounce: their whole extents start at odd addresses.)
bounced=$(pool_field bounced_writes)
expect_exit 0 vvio write "$vol" $((8 * MiB)) $((256 << 10)) --seed 7 --direct --fsync
if dd if=/dev/zero of="$POOL/dio-probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
    assert_eq "$(pool_field direct_io)" true "status direct_io"
    assert_eq "$(pool_field bounced_writes)" "$bounced" "bounced writes after an aligned write"
else
    assert_eq "$(pool_field direct_io)" false "status direct_io on a filesystem without O_DIRECT"
fi
rm -f "$POOL/dio-probe"

check_all()
{
    local what=$1
    info "checking every region ($what)"
    expect_exit 0 vvio zero "$vol" 0 12345
    expect_exit 0 vvio verify "$vol" 12345 1 --seed 1
    expect_exit 0 vvio zero "$vol" 12346 $((E - 200 - 12346))
    expect_exit 0 vvio verify "$vol" $((E - 200)) 511 --seed 2
    expect_exit 0 vvio zero "$vol" $((E + 311)) $((3 * E + 5 - E - 311))
    expect_exit 0 vvio verify "$vol" $((3 * E + 5)) $((1000 - 5)) --seed 3
    expect_exit 0 vvio verify "$vol" $((3 * E + 1000)) 70001 --seed 6
    expect_exit 0 vvio verify "$vol" $((3 * E + 1000 + 70001)) $((MiB + 3 - 995 - 70001)) --seed 3
    expect_exit 0 vvio zero "$vol" $((3 * E + 5 + MiB + 3)) $((8 * MiB - 3 * E - 8 - MiB))
    expect_exit 0 vvio verify "$vol" $((8 * MiB)) $((256 << 10)) --seed 7 --direct
    expect_exit 0 vvio verify "$vol" $((8 * MiB)) $((256 << 10)) --seed 7
    expect_exit 0 vvio zero "$vol" $((8 * MiB + (256 << 10))) $((32 * MiB - 4095 - (256 << 10)))
    expect_exit 0 vvio verify "$vol" $((40 * MiB - 4095)) $((2 * E + 1)) --seed 4
    expect_exit 0 vvio zero "$vol" $((40 * MiB - 4095 + 2 * E + 1)) \
        $((24 * MiB - 1 - 2 * E - 1 + 4095))
    expect_exit 0 vvio verify "$vol" $((64 * MiB - 1)) 1 --seed 5
}
check_all "after writing"

step "writes past the end fail with ENOSPC and do not grow the file"
expect_exit 1 vvio write "$vol" $((64 * MiB)) 1
assert_contains "$OUT" "No space left on device" "error of a write at the end"
expect_exit 1 vvio write "$vol" $((64 * MiB + 12345)) 4096
assert_contains "$OUT" "No space left on device" "error of a write past the end"
# its first byte is the volume's last, where region 5 already holds the same data
expect_exit 1 vvio write "$vol" $((64 * MiB - 1)) 20 --seed 5
assert_contains "$OUT" "No space left on device" "error of a write across the end"
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size after writes past the end"

step "truncate to another size is refused (EPERM); the data stays"
expect_exit 1 truncate -s 32M "$vol"
assert_contains "$OUT" "Operation not permitted" "truncate -s 32M"
expect_exit 1 truncate -s 128M "$vol"
assert_contains "$OUT" "Operation not permitted" "truncate -s 128M"
# shellcheck disable=SC2016
expect_exit 1 bash -c ': >"$1"' _ "$vol"   # O_TRUNC open
assert_contains "$OUT" "Operation not permitted" "open with O_TRUNC"
expect_exit 0 truncate -s 64M "$vol"      # to its own size: a no-op
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size after truncate attempts"
check_all "after truncate attempts"

step "data survives umount and mount"
umount_pool "$POOL" "$MNT"
[ ! -e "$POOL/vvfs.sock" ] || fail "vvfs.sock still exists after umount"
mount_pool "$POOL" "$MNT"
check_all "after remount"

step "mtime and ctime follow writes; the creation time stays in volume show"
created=$(volume_field v1 created)
m0=$(stat -c %Y "$vol")
sleep 1.1
expect_exit 0 vvio write "$vol" 1M 4096 --seed 5 --fsync
m1=$(stat -c %Y "$vol")
c1=$(stat -c %Z "$vol")
[ "$m1" -gt "$m0" ] || fail "mtime did not move with a write ($m0 -> $m1)"
assert_eq "$c1" "$m1" "ctime after a write"
assert_eq "$(volume_field v1 created)" "$created" "creation time after a write"
assert_eq "$(volume_field v1 modified)" "$m1" "modified in the API"
sleep 1.1
expect_exit 0 vvio punch "$vol" 1M 4096
sync_pool
[ "$(stat -c %Y "$vol")" -gt "$m1" ] || fail "mtime did not move with a discard"
expect_exit 0 vvio write "$vol" 1M 4096 --seed 5 --fsync
m2=$(stat -c %Y "$vol")
umount_pool "$POOL" "$MNT"
mount_pool "$POOL" "$MNT"
assert_eq "$(stat -c %Y "$vol")" "$m2" "mtime across a remount"

step "space accounting"
# The writes touched extents 0 (regions 1, 2), 1 (region 2), 3..19 (region 3, 1 MiB + 3 at
# 3E+5), 128..131 (the direct 256K at 8M), 639..641 (region 4) and 1023 (the last byte):
# 27 extents.  Copy-on-write replaced some of them; after two commits the old copies are free.
sync_pool
sync_pool
used=$(pool_field used)
assert_eq "$used" $((27 * E)) "pool used after writing 27 extents"
assert_eq "$(volume_field v1 used)" "$used" "used of v1 (the only volume) vs pool used"
assert_eq "$(pool_field free)" $((GiB - used)) "status free"

step "the FUSE connection lets every worker have a request"
# Async direct I/O counts against the connection's background limit (12 by default), which
# would hold fio at QD16 or a loop device to 12 requests in flight.
fusectl=/sys/fs/fuse/connections
if ! findmnt -rn "$fusectl" >/dev/null; then
    mount -t fusectl none "$fusectl" || fail "cannot mount fusectl on $fusectl"
    cleanup_fn umount "$fusectl"
fi
conn=$(mountpoint -d "$MNT" | cut -d: -f2)
[ -d "$fusectl/$conn" ] || fail "no fusectl entry $fusectl/$conn for $MNT"
assert_eq "$(cat "$fusectl/$conn/max_background")" 32 "max_background of the connection"
assert_eq "$(cat "$fusectl/$conn/congestion_threshold")" 24 "congestion_threshold"

step "statfs (df) reports the pool"
read -r dsize davail < <(df -B1 --output=size,avail "$MNT" | tail -n 1)
assert_eq "$dsize" "$GiB" "df size of $MNT"
free=$(pool_field available) # free less the reserve kept for overwrites
diff=$((davail > free ? davail - free : free - davail))
[ "$diff" -le "$MiB" ] ||
    fail "df avail $davail differs from the pool's available space $free by more than 1 MiB"

step "list and show, text and --json"
expect_exit 0 vvfs volume create v2 2G   # thin: larger than the pool
assert_eq "$(volume_names | tr '\n' ' ')" "v1 v2 " "volume list --json names"
assert_eq "$(volume_field v1 name)" v1 "show v1 .name"
assert_eq "$(volume_field v1 size)" $((64 * MiB)) "show v1 .size"
assert_eq "$(volume_field v2 size)" $((2 * GiB)) "show v2 .size"
assert_eq "$(pool_field volumes)" 2 "status volumes"
assert_eq "$(pool_field provisioned)" $((2 * GiB + 64 * MiB)) "status provisioned"
expect_exit 0 vvfs volume list
assert_contains "$OUT" v1 "volume list"
assert_contains "$OUT" v2 "volume list"
expect_exit 0 vvfs volume show v1
assert_contains "$OUT" v1 "volume show v1"
expect_exit 0 vvfs --json volume list   # pool from $VVFS_POOL
assert_eq "$(jq -r '(.volumes? // .) | length' <<<"$OUT")" 2 "volumes in list --json via VVFS_POOL"
expect_exit 0 env -u VVFS_POOL "$VVFS" --pool "$POOL" --json volume show v2
assert_eq "$(jq -r .size <<<"$OUT")" $((2 * GiB)) "show --json with --pool"

step "resize grows and shrinks; shrinking discards the data past the new end"
# Each change made through the control plane must show in the mount at once: the files are
# looked at just before each change, so a kernel cache the daemon did not invalidate would
# show the old state here.
stat "$MNT/volumes/v2" "$vol" >/dev/null
expect_exit 0 vvfs volume resize v2 3G
assert_eq "$(stat -c %s "$MNT/volumes/v2")" $((3 * GiB)) "size of v2 after grow"
assert_eq "$(volume_field v2 size)" $((3 * GiB)) "show v2 .size after grow"
expect_exit 0 vvfs volume resize v1 32M
assert_eq "$(stat -c %s "$vol")" $((32 * MiB)) "size of v1 after shrink"
assert_eq "$(ls -l "$MNT/volumes" | awk '$NF == "v1" { print $5 }')" $((32 * MiB)) "ls -l v1"
expect_exit 0 vvio verify "$vol" 12345 1 --seed 1
expect_exit 0 vvio verify "$vol" $((8 * MiB)) $((256 << 10)) --seed 7
expect_exit 1 vvio write "$vol" $((32 * MiB)) 1
assert_contains "$OUT" "No space left on device" "write past the new end"
stat "$vol" >/dev/null
expect_exit 0 vvfs volume resize v1 64M
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size of v1 after growing back"
expect_exit 0 vvio zero "$vol" $((32 * MiB)) $((32 * MiB))   # the old data there is gone
expect_exit 0 vvio verify "$vol" $((3 * E + 1000)) 70001 --seed 6
sync_pool
sync_pool
# shrinking to 32M dropped region 4 (3 extents) and the last byte (1)
assert_eq "$(pool_field used)" $((used - 4 * E)) "pool used after shrinking v1 to 32M"

step "rename moves the file"
expect_exit 0 vvio write "$MNT/volumes/v2" $((2 * GiB + 17)) 100000 --seed 9
stat "$MNT/volumes/v2" >/dev/null
expect_exit 0 vvfs volume rename v2 data.2
[ ! -e "$MNT/volumes/v2" ] || fail "v2 still exists after rename"
[ -f "$MNT/volumes/data.2" ] || fail "data.2 missing after rename"
assert_eq "$(ls "$MNT/volumes" | tr '\n' ' ')" "data.2 v1 " "ls volumes after rename"
assert_eq "$(stat -c %s "$MNT/volumes/data.2")" $((3 * GiB)) "size of data.2"
expect_exit 0 vvio verify "$MNT/volumes/data.2" $((2 * GiB + 17)) 100000 --seed 9
expect_exit 1 vvfs volume show v2
assert_eq "$(volume_names | tr '\n' ' ')" "data.2 v1 " "names after rename"

step "delete removes the file and returns its space"
expect_exit 0 vvio write "$MNT/volumes/data.2" 0 16M --seed 10 --fsync
sync_pool
used_before=$(pool_field used)
free_before=$(pool_field free)
stat "$MNT/volumes/data.2" >/dev/null
expect_exit 0 vvfs volume delete data.2
[ ! -e "$MNT/volumes/data.2" ] || fail "data.2 still exists after delete"
assert_eq "$(ls "$MNT/volumes")" v1 "ls volumes after delete"
sync_pool
used_after=$(pool_field used)
free_after=$(pool_field free)
[ $((used_before - used_after)) -ge $((16 * MiB)) ] ||
    fail "delete of a volume holding >= 16 MiB freed only $((used_before - used_after)) bytes"
[ $((free_after - free_before)) -ge $((16 * MiB)) ] ||
    fail "free grew by only $((free_after - free_before)) bytes after delete"
assert_eq "$(pool_field volumes)" 1 "status volumes after delete"
expect_exit 0 vvio verify "$vol" 12345 1 --seed 1

step "a directory of many volumes lists each one once, across several readdir calls"
for i in $(seq 1 120); do vvfs volume create "many-$i" 1M >/dev/null || fail "create many-$i"; done
for i in $(seq 3 7 120); do vvfs volume delete "many-$i" >/dev/null || fail "delete many-$i"; done
# the kernel asks the daemon for one page of entries per readdir: 100+ entries take several
assert_eq "$(ls -f "$MNT/volumes" | grep -v '^\.\{1,2\}$' | sort | tr '\n' ' ')" \
    "$(volume_names | sort | tr '\n' ' ')" "directory listing vs volume list"
assert_eq "$(ls "$MNT/volumes" | wc -l)" $((1 + 120 - 17)) "number of volume files"
for i in $(seq 1 120); do vvfs volume delete "many-$i" >/dev/null 2>&1 || true; done

step "SIGTERM: the daemon commits what was written, unmounts and exits"
umount_pool "$POOL" "$MNT"
# no timed commit for 10 minutes: only the shutdown can make this data durable
VVFS_TXG_INTERVAL_MS=600000 mount_pool "$POOL" "$MNT"
# the writer keeps its descriptor open: closing it would flush, which commits
"$VVIO" write "$vol" 5M 3M --seed 77 --hold >"$VV_TESTDIR/hold.out" 2>&1 &
holder=$!
cleanup_fn kill "$holder"
for _ in $(seq 1 100); do grep -q held "$VV_TESTDIR/hold.out" 2>/dev/null && break; sleep 0.1; done
grep -q held "$VV_TESTDIR/hold.out" || fail "vvio --hold did not finish writing"
assert_eq "$(pool_field dirty_bytes)" $((3 * MiB)) "dirty bytes before SIGTERM"
pid=$(daemon_pid "$POOL")
kill -TERM "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || fail "daemon $pid still running 30 s after SIGTERM"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
! findmnt -rn "$MNT" >/dev/null || fail "$MNT still mounted after the daemon exited"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$vol" 5M 3M --seed 77

step "umount; the pool checks clean"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
