#!/usr/bin/env bash
# hostfull.sh — a thin pool over-provisioned on its host: when the filesystem under the pool
# fills up, writers get ENOSPC (not EIO) before their writes are acknowledged, the pool is not
# poisoned (commits, deletes and discards go on), the status says how little can be written,
# and writes resume by themselves once space is freed; fsck is clean after.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires_loop
requires jq mkfs.ext4 mount umount df
set_timeout 300

MiB=$((1 << 20))
img=$VV_TESTDIR/host.img
truncate -s 320M "$img"
expect_exit 0 mkfs.ext4 -q -F -m 0 "$img"
attach_loop "$img"
host=$VV_TESTDIR/host
mkdir -p "$host"
cleanup_fn cleanup_umount "$host"
expect_exit 0 mount -t ext4 "$LOOP" "$host"

POOL=$host/pool
MNT=$VV_TESTDIR/mnt
export POOL VVFS_POOL=$POOL
expect_exit 0 vvfs init "$POOL" --capacity 1G
mount_pool "$POOL" "$MNT"
expect_exit 0 vvfs volume create a 512M
expect_exit 0 vvfs volume create b 512M
a=$MNT/volumes/a
b=$MNT/volumes/b

step "the pool's available space is the host's, not the pool's"
host_avail=$(df -B1 --output=avail "$host" | tail -n 1 | tr -d ' ')
avail=$(pool_field available)
[ "$avail" -le "$host_avail" ] ||
    fail "pool says $avail bytes available, its filesystem has $host_avail"

step "fill the host: the writer gets ENOSPC, not EIO"
expect_exit 0 vvio write "$a" 0 100M --seed 1 --fsync
expect_exit 1 vvio write "$b" 0 400M --seed 2 --fsync
assert_contains "$OUT" "No space left on device" "error when the host filesystem is full"
case $OUT in *"Input/output error"*) fail "a full host gave EIO: $OUT" ;; esac
expect_exit 1 dd if=/dev/zero of="$b" bs=1M count=300 seek=100 conv=notrunc,fsync status=none
assert_contains "$OUT" "No space left on device" "dd on a full host"
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died when its host filled up"
sync_pool
info "status on a full host: available $(pool_field available), host_full $(pool_json | jq -r .host_full)"
[ "$(pool_field available)" -lt $((16 * MiB)) ] ||
    fail "a full host still shows $(pool_field available) bytes available"

step "committed data is intact; discards and deletes work on the full host"
expect_exit 0 vvio verify "$a" 0 100M --seed 1
expect_exit 0 vvio punch "$a" 50M 10M
expect_exit 0 vvio zero "$a" 50M 10M
expect_exit 0 vvfs volume delete b
end=$((SECONDS + 30))
while [ "$(pool_field freeing)" != 0 ]; do
    [ $SECONDS -lt $end ] || fail "the deleted volume's space was not freed within 30 s"
    sleep 0.2
done

step "writes resume by themselves once the host has room again (no remount)"
end=$((SECONDS + 30))
until "$VVIO" write "$a" 200M 32M --seed 3 --fsync >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "writes did not resume within 30 s after space was freed"
    sleep 0.5
done
expect_exit 0 vvio verify "$a" 200M 32M --seed 3
expect_exit 0 vvio verify "$a" 0 50M --seed 1
expect_exit 0 vvio verify "$a" 60M 40M --seed 1
assert_eq "$(pool_json | jq -r .host_full)" false "host_full once there is room"

step "umount; fsck is clean"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
info PASS
