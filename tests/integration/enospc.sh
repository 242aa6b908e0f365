#!/usr/bin/env bash
# enospc.sh — a thin pool runs out of space: writes fail with ENOSPC (and nothing else breaks:
# the daemon lives, other data stays intact), and work again once a volume is deleted or a range
# punched; the pool checks clean afterwards.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq dd
set_timeout 300

MiB=$((1 << 20))
new_pool --capacity 64M --extent-size 64K
assert_eq "$(pool_field capacity)" $((64 * MiB)) "capacity"
expect_exit 0 vvfs volume create big 256M
expect_exit 0 vvfs volume create small 32M
big=$MNT/volumes/big
small=$MNT/volumes/small

step "fill 16 MiB of 'small'"
expect_exit 0 vvio write "$small" 0 16M --seed 1 --fsync

step "write 'big' until the pool is full: ENOSPC"
expect_exit 1 vvio write "$big" 0 256M --seed 2 --fsync
assert_contains "$OUT" "No space left on device" "error when the pool is full"
sync_pool
used=$(pool_field used)
free=$(pool_field free)
info "pool used $used, free $free"
[ "$used" -ge $((60 * MiB)) ] || fail "ENOSPC with only $used of $((64 * MiB)) bytes used"
[ "$used" -le $((64 * MiB)) ] || fail "pool used $used exceeds its capacity"
assert_eq "$(pool_field available)" 0 "space available for new data when full"
[ "$(pool_field reserve)" -gt 0 ] || fail "no reserve kept for overwrites"

step "a full pool still takes overwrites of data already written (the reserve)"
expect_exit 0 vvio write "$small" 0 4M --seed 11 --fsync
expect_exit 0 vvio write "$small" 0 4M --seed 12 --fsync
expect_exit 0 vvio verify "$small" 0 4M --seed 12
expect_exit 0 vvio write "$small" 0 4M --seed 1 --fsync
df_avail=$(df -B1 --output=avail "$MNT" | tail -n 1 | tr -d ' ')
assert_eq "$df_avail" 0 "df's available space on a full pool (statfs f_bavail)"

step "dd sees ENOSPC too, and the mount still works"
expect_exit 1 dd if="$small" of="$big" bs=1M count=8 seek=200 conv=notrunc,fsync status=none
assert_contains "$OUT" "No space left on device" "dd into a full pool"
expect_exit 0 vvio verify "$small" 0 16M --seed 1
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died at ENOSPC"
expect_exit 0 vvfs volume list

step "delete 'small': 16 MiB come back and writes work again"
expect_exit 0 vvfs volume delete small
sync_pool
# the delete returns at once; its blocks are freed in the background (status: freeing)
end=$((SECONDS + 20))
while [ "$(pool_field freeing)" != 0 ]; do
    [ $SECONDS -lt $end ] || fail "the deleted volume's space was not freed within 20 s"
    sleep 0.1
done
free2=$(pool_field free)
[ $((free2 - free)) -ge $((16 * MiB)) ] || fail "deleting 'small' freed only $((free2 - free)) bytes"
expect_exit 0 vvio write "$big" 200M 8M --seed 3 --fsync
expect_exit 0 vvio verify "$big" 200M 8M --seed 3

step "full again; punching 4 MiB makes room for 4 MiB"
expect_exit 1 vvio write "$big" 100M 100M --seed 4 --fsync
assert_contains "$OUT" "No space left on device" "error when the pool is full again"
expect_exit 0 vvio punch "$big" 200M 4M
sync_pool
expect_exit 0 vvio write "$big" 250M 4M --seed 5 --fsync
expect_exit 0 vvio verify "$big" 250M 4M --seed 5
expect_exit 0 vvio verify "$big" 204M 4M --seed 3
expect_exit 0 vvio zero "$big" 200M 4M

step "data survives a remount after ENOSPC; the pool checks clean"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$big" 250M 4M --seed 5
expect_exit 0 vvio verify "$big" 204M 4M --seed 3
umount_pool "$POOL" "$MNT"
