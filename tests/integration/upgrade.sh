#!/usr/bin/env bash
# upgrade.sh — pools made by the format-1, format-2 and format-3 code (built from this
# repository's history) are refused by fsck with the command that upgrades them, upgraded in
# place by a mount or `vvfs upgrade` (the log and the status say so), and then hold every byte
# they held, clean under fsck, across remounts; the format-2 pool then takes snapshots, the
# format-3 pool keeps its snapshots and takes clones of them.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq git meson ninja
set_timeout 480

# The last commits whose code writes format 1 (one extent entry per block), format 2 (chunk
# versions, no snapshots), format 3 (snapshots, no clones) and format 4 (clones and groups,
# no replicas).
FORMAT1_COMMIT=55f9e9489260ff15f216464ef8ff4784ffc5ea7b
FORMAT2_COMMIT=7ea20e0868015d203d025d7806e6cbe2f7f5ed4d
FORMAT3_COMMIT=e7f351c10b5074a82e2b2ec3edde0fdb5a31b11c
FORMAT4_COMMIT=d316d2b27865434bb9ad71a3ab7abdb40c45f408
src=$(cd "$(dirname "$0")/../.." && pwd)

# old_vvfs N COMMIT: build the format-N vvfs once per machine (outside the tree; a few tens of
# seconds) and print its path
old_vvfs()
{
    local n=$1 commit=$2 dir
    git -C "$src" cat-file -e "$commit^{commit}" 2>/dev/null ||
        fail "commit $commit is not in $src: this test needs the repository's history"
    dir=/var/tmp/vvfs-format$n-${commit:0:12}
    if [ ! -x "$dir/build/cli/vvfs" ]; then
        step "build the format-$n vvfs from $commit"
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        git -C "$src" archive "$commit" | tar -x -C "$dir.tmp" ||
            fail "git archive of $commit failed"
        (cd "$dir.tmp" && meson setup build -Dtests=disabled >/dev/null &&
            ninja -C build cli/vvfs >/dev/null) || fail "building the format-$n vvfs failed"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    [ -x "$dir/build/cli/vvfs" ] || fail "no format-$n vvfs in $dir"
    echo "$dir/build/cli/vvfs"
}
OLD=$(old_vvfs 1 "$FORMAT1_COMMIT")
OLD2=$(old_vvfs 2 "$FORMAT2_COMMIT")
OLD3=$(old_vvfs 3 "$FORMAT3_COMMIT")
OLD4=$(old_vvfs 4 "$FORMAT4_COMMIT")
NEW=$VVFS

MiB=$((1 << 20))
POOL=$VV_TESTDIR/pool
MNT=$VV_TESTDIR/mnt
export POOL VVFS_POOL=$POOL

step "make and fill a pool with the format-1 code"
VVFS=$OLD
expect_exit 0 vvfs init "$POOL" --capacity 2G
mount_pool "$POOL" "$MNT"
expect_exit 0 vvfs volume create a 256M
expect_exit 0 vvfs volume create b 1G
expect_exit 0 vvfs volume create empty 16M
a=$MNT/volumes/a
b=$MNT/volumes/b
expect_exit 0 vvio write "$a" 0 64M --seed 1
expect_exit 0 vvio write "$a" 100000 5000 --seed 2          # partial blocks
expect_exit 0 vvio write "$a" $((70 * MiB + 4096 * 63)) 8192 --seed 3   # across a chunk edge
expect_exit 0 vvio punch "$a" 10M 2M
expect_exit 0 vvio write "$b" 900M 4M --seed 4 --fsync
expect_exit 0 vvio write "$b" $((1024 * MiB - 4096)) 4096 --seed 5 --fsync   # the last block
used_before=$(pool_field used)
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"

step "the new fsck refuses a format-1 pool and names the upgrade command"
VVFS=$NEW
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" "vvfs upgrade" "fsck message for a format-1 pool"
assert_contains "$OUT" "format version 1" "fsck message for a format-1 pool"

step "mounting upgrades it in place, and says so"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field format_version)" 5 "format after the upgrade"
assert_eq "$(pool_field upgraded_from)" 1 "status: upgraded from"
grep -q "upgrading it in place to format 5" "$POOL/vvfs.log" || fail "the log does not say it upgrades"
grep -q "upgraded pool .* to format 5" "$POOL/vvfs.log" || fail "the log does not say it upgraded"
expect_exit 0 vvfs status
assert_contains "$OUT" "upgraded from format 1" "vvfs status after the upgrade"
assert_eq "$(pool_field used)" "$used_before" "pool space used across the upgrade"

step "every byte is where the format-1 code put it"
verify_all()
{
    expect_exit 0 vvio verify "$a" 0 100000 --seed 1
    expect_exit 0 vvio verify "$a" 100000 5000 --seed 2
    expect_exit 0 vvio verify "$a" 105000 $((10 * MiB - 105000)) --seed 1
    expect_exit 0 vvio zero "$a" 10M 2M
    expect_exit 0 vvio verify "$a" 12M 52M --seed 1
    expect_exit 0 vvio zero "$a" 64M $((70 * MiB + 4096 * 63 - 64 * MiB))
    expect_exit 0 vvio verify "$a" $((70 * MiB + 4096 * 63)) 8192 --seed 3
    expect_exit 0 vvio zero "$b" 0 900M
    expect_exit 0 vvio verify "$b" 900M 4M --seed 4
    expect_exit 0 vvio verify "$b" $((1024 * MiB - 4096)) 4096 --seed 5
    expect_exit 0 vvio zero "$MNT/volumes/empty" 0 16M
}
verify_all
expect_exit 0 vvio seek "$b" 0 data
assert_eq "$OUT" $((900 * MiB)) "SEEK_DATA on b after the upgrade"

step "the upgraded pool takes writes and survives a remount; fsck is clean"
expect_exit 0 vvio write "$a" 200M 8M --seed 6 --fsync
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
expect_exit 0 vvfs upgrade "$POOL"
assert_contains "$OUT" "already has format 5" "vvfs upgrade of a format-5 pool"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field upgraded_from)" 0 "status of a pool that was already format 5"
verify_all
expect_exit 0 vvio verify "$a" 200M 8M --seed 6
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"

step "vvfs upgrade upgrades an unmounted format-1 pool"
POOL=$VV_TESTDIR/pool2
MNT=$VV_TESTDIR/mnt2
VVFS_POOL=$POOL
VVFS=$OLD
expect_exit 0 vvfs init "$POOL" --capacity 256M --extent-size 64K
mount_pool "$POOL" "$MNT"
expect_exit 0 vvfs volume create c 64M
expect_exit 0 vvio write "$MNT/volumes/c" 1M 10M --seed 7 --fsync
umount_pool "$POOL" "$MNT"
VVFS=$NEW
expect_exit 0 vvfs upgrade "$POOL"
assert_contains "$OUT" "from format 1 to format 5" "vvfs upgrade"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$MNT/volumes/c" 1M 10M --seed 7
expect_exit 0 vvio zero "$MNT/volumes/c" 0 1M
umount_pool "$POOL" "$MNT"

step "a format-2 pool is upgraded by a mount and then takes snapshots"
POOL=$VV_TESTDIR/pool3
MNT=$VV_TESTDIR/mnt3
VVFS_POOL=$POOL
VVFS=$OLD2
expect_exit 0 vvfs init "$POOL" --capacity 512M
mount_pool "$POOL" "$MNT"
expect_exit 0 vvfs volume create d 64M
expect_exit 0 vvio write "$MNT/volumes/d" 0 8M --seed 8
expect_exit 0 vvio write "$MNT/volumes/d" 3M 5000 --seed 9 --fsync
umount_pool "$POOL" "$MNT"
VVFS=$NEW
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" "format version 2" "fsck message for a format-2 pool"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field format_version)" 5 "format after the upgrade from 2"
assert_eq "$(pool_field upgraded_from)" 2 "status: upgraded from 2"
d=$MNT/volumes/d
expect_exit 0 vvio verify "$d" 0 3M --seed 8
expect_exit 0 vvio verify "$d" 3M 5000 --seed 9
expect_exit 0 vvio verify "$d" $((3 * MiB + 5000)) $((5 * MiB - 5000)) --seed 8
expect_exit 0 vvfs snapshot create d s1
expect_exit 0 vvio write "$d" 0 8M --seed 10 --fsync
expect_exit 0 vvio verify "$MNT/snapshots/d/s1" 0 3M --seed 8
expect_exit 0 vvio verify "$d" 0 8M --seed 10
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"

step "a format-3 pool keeps its snapshots through the upgrade and takes clones of them"
POOL=$VV_TESTDIR/pool4
MNT=$VV_TESTDIR/mnt4
VVFS_POOL=$POOL
VVFS=$OLD3
expect_exit 0 vvfs init "$POOL" --capacity 512M
mount_pool "$POOL" "$MNT"
expect_exit 0 vvfs volume create e 64M
e=$MNT/volumes/e
expect_exit 0 vvio write "$e" 0 16M --seed 11
expect_exit 0 vvfs snapshot create e old1
expect_exit 0 vvio write "$e" 4M 4M --seed 12
expect_exit 0 vvio punch "$e" 12M 1M
expect_exit 0 vvfs snapshot create e old2
expect_exit 0 vvio write "$e" 0 16M --seed 13 --fsync
umount_pool "$POOL" "$MNT"
VVFS=$NEW
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" "format version 3" "fsck message for a format-3 pool"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field format_version)" 5 "format after the upgrade from 3"
assert_eq "$(pool_field upgraded_from)" 3 "status: upgraded from 3"
assert_eq "$(vvfs --json snapshot list e | jq -r '[.snapshots[].name] | join(" ")')" \
    "old1 old2" "snapshots after the upgrade"
expect_exit 0 vvio verify "$MNT/snapshots/e/old1" 0 16M --seed 11
expect_exit 0 vvio verify "$MNT/snapshots/e/old2" 4M 4M --seed 12
expect_exit 0 vvio zero "$MNT/snapshots/e/old2" 12M 1M
expect_exit 0 vvio verify "$e" 0 16M --seed 13
snapped=$(volume_field e snapshots_used)
[ "$snapped" -ge $((16 * 1048576)) ] || fail "after the upgrade, e's snapshots hold $snapped bytes alone"
assert_eq "$(pool_field snapshots)" "$snapped" "pool snapshot space after the upgrade"
expect_exit 0 vvfs clone create e@old2 e2
expect_exit 0 vvio verify "$MNT/volumes/e2" 0 4M --seed 11
expect_exit 0 vvio verify "$MNT/volumes/e2" 4M 4M --seed 12
expect_exit 0 vvio write "$MNT/volumes/e2" 0 1M --seed 14 --fsync
expect_exit 0 vvio verify "$MNT/snapshots/e/old2" 0 4M --seed 11
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"

step "a format-4 pool keeps its clones and groups through the upgrade and gets an id"
POOL=$VV_TESTDIR/pool5
MNT=$VV_TESTDIR/mnt5
VVFS_POOL=$POOL
VVFS=$OLD4
expect_exit 0 vvfs init "$POOL" --capacity 512M
mount_pool "$POOL" "$MNT"
expect_exit 0 vvfs volume create f 64M
expect_exit 0 vvio write "$MNT/volumes/f" 0 8M --seed 15
expect_exit 0 vvfs snapshot create f s1
expect_exit 0 vvfs clone create f@s1 f2
expect_exit 0 vvio write "$MNT/volumes/f2" 0 1M --seed 16 --fsync
expect_exit 0 vvfs group create g f
umount_pool "$POOL" "$MNT"
VVFS=$NEW
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" "format version 4" "fsck message for a format-4 pool"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field format_version)" 5 "format after the upgrade from 4"
assert_eq "$(pool_field upgraded_from)" 4 "status: upgraded from 4"
id=$(pool_field id)
[[ "$id" =~ ^[0-9a-f]{32}$ ]] && [ "$id" != 00000000000000000000000000000000 ] ||
    fail "the upgraded pool has no id: '$id'"
expect_exit 0 vvio verify "$MNT/volumes/f" 0 8M --seed 15
expect_exit 0 vvio verify "$MNT/volumes/f2" 0 1M --seed 16
expect_exit 0 vvio verify "$MNT/volumes/f2" 1M 7M --seed 15
assert_eq "$(volume_field f group)" g "group after the upgrade"
umount_pool "$POOL" "$MNT"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field id)" "$id" "the pool id is kept"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
info PASS
