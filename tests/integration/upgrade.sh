#!/usr/bin/env bash
# upgrade.sh — a pool made by the format-1 code (built from this repository's history) is
# refused by fsck with the command that upgrades it, upgraded in place by a mount (the log and
# the status say so), and then holds every byte it held, clean under fsck, across remounts.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq git meson ninja
set_timeout 480

# The last commit whose code writes format 1 (one extent entry per block).
FORMAT1_COMMIT=55f9e9489260ff15f216464ef8ff4784ffc5ea7b
src=$(cd "$(dirname "$0")/../.." && pwd)
git -C "$src" cat-file -e "$FORMAT1_COMMIT^{commit}" 2>/dev/null ||
    fail "commit $FORMAT1_COMMIT is not in $src: this test needs the repository's history"

# Build the format-1 vvfs once per machine (outside the tree; a few tens of seconds).
old_dir=/var/tmp/vvfs-format1-${FORMAT1_COMMIT:0:12}
OLD=$old_dir/build/cli/vvfs
if [ ! -x "$OLD" ]; then
    step "build the format-1 vvfs from $FORMAT1_COMMIT"
    rm -rf "$old_dir.tmp"
    mkdir -p "$old_dir.tmp"
    git -C "$src" archive "$FORMAT1_COMMIT" | tar -x -C "$old_dir.tmp" ||
        fail "git archive of $FORMAT1_COMMIT failed"
    (cd "$old_dir.tmp" && meson setup build -Dtests=disabled >/dev/null &&
        ninja -C build cli/vvfs >/dev/null) || fail "building the format-1 vvfs failed"
    rm -rf "$old_dir"
    mv "$old_dir.tmp" "$old_dir"
fi
[ -x "$OLD" ] || fail "no format-1 vvfs at $OLD"
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
assert_eq "$(pool_field format_version)" 2 "format after the upgrade"
assert_eq "$(pool_field upgraded_from)" 1 "status: upgraded from"
grep -q "upgrading it in place to format 2" "$POOL/vvfs.log" || fail "the log does not say it upgrades"
grep -q "upgraded pool .* to format 2" "$POOL/vvfs.log" || fail "the log does not say it upgraded"
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
assert_contains "$OUT" "already has format 2" "vvfs upgrade of a format-2 pool"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field upgraded_from)" 0 "status of a pool that was already format 2"
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
assert_contains "$OUT" "from format 1 to format 2" "vvfs upgrade"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$MNT/volumes/c" 1M 10M --seed 7
expect_exit 0 vvio zero "$MNT/volumes/c" 0 1M
umount_pool "$POOL" "$MNT"
info PASS
