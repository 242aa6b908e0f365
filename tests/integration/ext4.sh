#!/usr/bin/env bash
# ext4.sh — a real filesystem on a vvfs volume through a direct-I/O loop device: mkfs, copy a
# tree in, fsck.ext4 clean, identical after remount, fstrim returns space to the pool, the
# volume cannot be deleted, shrunk or unmounted while the loop device holds it, and the pool
# checks clean at the end.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires_loop
requires jq mkfs.ext4 fsck.ext4 fstrim diff mount umount
set_timeout 420

MiB=$((1 << 20))
src=${VV_EXT4_SRC:-/usr/share/doc}
[ -d "$src" ] || {
    info "SKIP: no $src to copy"
    exit 77
}
src_kib=$(du -sk "$src" | cut -f1)
info "source tree $src: $((src_kib / 1024)) MiB, $(find "$src" | wc -l) entries"
[ "$src_kib" -ge $((20 * 1024)) ] || info "warning: $src is small; the fstrim check is weak"

new_pool --capacity 4G   # the default extent size: what users get
expect_exit 0 vvfs volume create fs 2G
vol=$MNT/volumes/fs

step "attach a direct-I/O loop device"
attach_loop "$vol" --direct-io=on
loop=$LOOP
info "loop device $loop"
assert_eq "$(losetup -n -O DIO "$loop" | tr -d ' ')" 1 \
    "losetup DIO flag (0: O_DIRECT open of the volume failed and loop fell back to buffered)"
assert_eq "$(blockdev --getsize64 "$loop")" $((2 << 30)) "size of $loop"

step "mkfs.ext4 (discards the whole device first)"
expect_exit 0 mkfs.ext4 -q -F "$loop"
ext=$VV_TESTDIR/ext
mkdir -p "$ext"
cleanup_fn cleanup_umount "$ext"
expect_exit 0 mount -t ext4 "$loop" "$ext"

step "the volume is busy while the loop device holds it"
expect_exit 1 vvfs volume delete fs
expect_exit 1 vvfs volume resize fs 1G
assert_eq "$(stat -c %s "$vol")" $((2 << 30)) "size of the volume after a refused shrink"
expect_exit 1 vvfs umount "$MNT"
is_mounted "$MNT" || fail "vvfs umount of a busy mount unmounted it anyway"
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died after a refused umount"

step "copy $src in"
start=$SECONDS
cp -a "$src" "$ext/src"
# and one large file of offset-tagged data, so a misplaced block names itself
truncate -s 256M "$ext/pattern.img"
expect_exit 0 vvio write "$ext/pattern.img" 0 256M --seed 11
sync
info "copied in $((SECONDS - start)) s"
expect_exit 0 umount "$ext"

step "fsck.ext4 -fn is clean"
expect_exit 0 fsck.ext4 -fn "$loop"

step "restart everything below ext4: detach, umount and mount the pool, attach again"
detach_loop "$loop" "$vol"
umount_pool "$POOL" "$MNT"
mount_pool "$POOL" "$MNT"
attach_loop "$vol" --direct-io=on
loop=$LOOP
assert_eq "$(losetup -n -O DIO "$loop" | tr -d ' ')" 1 "losetup DIO flag after remount"

step "fsck.ext4 -fn is still clean; mounted, the tree is identical"
expect_exit 0 fsck.ext4 -fn "$loop"
expect_exit 0 mount -t ext4 "$loop" "$ext"
diff -r --no-dereference "$src" "$ext/src" >"$VV_TESTDIR/diff.out" 2>&1 ||
    fail "the copy differs from $src: $(head -20 "$VV_TESTDIR/diff.out")"
expect_exit 0 vvio verify "$ext/pattern.img" 0 256M --seed 11
rm "$ext/pattern.img"

step "delete the tree, fstrim: the pool gets the space back"
sync_pool
used_full=$(pool_field used)
info "pool used with the tree: $((used_full / MiB)) MiB"
[ "$used_full" -ge $((src_kib * 1024 / 2)) ] ||
    fail "pool used $used_full is less than half the data copied in ($((src_kib * 1024)))"
rm -rf "$ext/src"
sync
expect_exit 0 fstrim -v "$ext"
sync
sync_pool
sync_pool
used_trim=$(pool_field used)
info "pool used after rm + fstrim: $((used_trim / MiB)) MiB"
# most of the tree's extents must come back (ext4 keeps its metadata and journal)
[ $((used_full - used_trim)) -ge $((src_kib * 1024 / 2)) ] ||
    fail "fstrim returned only $(((used_full - used_trim) / MiB)) MiB of $((src_kib / 1024)) MiB"

step "write again after trim, fsck, detach"
mkdir "$ext/again"
cp -a "$src/." "$ext/again/"
sync
expect_exit 0 umount "$ext"
expect_exit 0 fsck.ext4 -fn "$loop"
expect_exit 0 mount -t ext4 -o ro "$loop" "$ext"
diff -r --no-dereference "$src" "$ext/again" >"$VV_TESTDIR/diff.out" 2>&1 ||
    fail "the second copy differs from $src: $(head -20 "$VV_TESTDIR/diff.out")"
expect_exit 0 umount "$ext"
detach_loop "$loop" "$vol"

step "umount; the pool checks clean (with data checksums)"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
