#!/usr/bin/env bash
# discard.sh — fallocate PUNCH_HOLE|KEEP_SIZE and ZERO_RANGE on a volume file: the range reads
# as zeros, the data around it is untouched, the size does not change, whole extents go back to
# the pool; SEEK_DATA/SEEK_HOLE at extent granularity, before and after.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq
set_timeout 240

E=$((64 << 10))
MiB=$((1 << 20))
new_pool --capacity 1G --extent-size 64K
expect_exit 0 vvfs volume create d 64M
vol=$MNT/volumes/d

step "SEEK_DATA/SEEK_HOLE on an empty volume"
expect_exit 0 vvio seek "$vol" 0 data
assert_eq "$OUT" ENXIO "SEEK_DATA 0 on an empty volume"
expect_exit 0 vvio seek "$vol" 0 hole
assert_eq "$OUT" 0 "SEEK_HOLE 0 on an empty volume"
expect_exit 0 vvio seek "$vol" $((64 * MiB)) hole
assert_eq "$OUT" ENXIO "SEEK_HOLE at the end"

step "write 8 MiB"
expect_exit 0 vvio write "$vol" 0 8M --seed 1 --fsync
sync_pool
sync_pool
used0=$(pool_field used)
assert_eq "$used0" $((8 * MiB)) "pool used after writing 8 MiB"

step "punch an extent-aligned 2 MiB hole at 1 MiB"
expect_exit 0 vvio punch "$vol" 1M 2M
expect_exit 0 vvio zero "$vol" 1M 2M
expect_exit 0 vvio verify "$vol" 0 1M --seed 1
expect_exit 0 vvio verify "$vol" 3M 5M --seed 1
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size after punch (KEEP_SIZE)"

step "punch an unaligned hole (5 MiB + 100, 200000 bytes)"
expect_exit 0 vvio punch "$vol" $((5 * MiB + 100)) 200000
expect_exit 0 vvio verify "$vol" $((5 * MiB)) 100 --seed 1
expect_exit 0 vvio zero "$vol" $((5 * MiB + 100)) 200000
expect_exit 0 vvio verify "$vol" $((5 * MiB + 100 + 200000)) $((MiB - 100 - 200000)) --seed 1

step "zero an unaligned range (6 MiB + 7, 300000 bytes)"
expect_exit 0 vvio zerorange "$vol" $((6 * MiB + 7)) 300000
expect_exit 0 vvio verify "$vol" $((6 * MiB)) 7 --seed 1
expect_exit 0 vvio zero "$vol" $((6 * MiB + 7)) 300000
expect_exit 0 vvio verify "$vol" $((6 * MiB + 7 + 300000)) $((2 * MiB - 7 - 300000)) --seed 1
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size after zero range"

step "punch the volume's last byte, and past the end"
expect_exit 0 vvio write "$vol" $((64 * MiB - E)) $E --seed 2
expect_exit 0 vvio punch "$vol" $((64 * MiB - 1)) 1
expect_exit 0 vvio zero "$vol" $((64 * MiB - 1)) 1
expect_exit 0 vvio verify "$vol" $((64 * MiB - E)) $((E - 1)) --seed 2
# a range that runs past the end is clipped (KEEP_SIZE): no error, no growth
expect_exit 0 vvio punch "$vol" $((64 * MiB - 100)) 4096
expect_exit 0 vvio zero "$vol" $((64 * MiB - 100)) 100
expect_exit 0 vvio verify "$vol" $((64 * MiB - E)) $((E - 100)) --seed 2
assert_eq "$(stat -c %s "$vol")" $((64 * MiB)) "size after a punch past the end"
expect_exit 0 vvio punch "$vol" $((64 * MiB - E)) $E   # drop that extent again

step "whole extents went back to the pool"
sync_pool
sync_pool
used1=$(pool_field used)
# 1M..3M: 32 whole extents; 5M+100 (+200000): extents 81, 82; 6M+7 (+300000): 97, 98, 99
freed=$((used0 - used1))
info "freed $freed bytes ($((freed / E)) extents)"
[ "$freed" -ge $(((32 + 2) * E)) ] ||
    fail "punching 34 whole extents freed only $freed bytes (pool used $used0 -> $used1)"
assert_eq "$freed" $(((32 + 2 + 3) * E)) "bytes freed by the punches and the zero range"

step "SEEK_DATA/SEEK_HOLE at extent granularity"
# data: [0,1M) [3M,5M+64K) [5M+192K,6M+64K) [6M+256K,8M); holes elsewhere up to 64M
check_seek()
{
    expect_exit 0 vvio seek "$vol" "$1" "$2"
    assert_eq "$OUT" "$3" "SEEK_${2^^} from $1"
}
check_seek 0 data 0
check_seek 0 hole $((1 * MiB))
check_seek $((1 * MiB)) data $((3 * MiB))
check_seek $((2 * MiB + 5)) data $((3 * MiB))
check_seek $((3 * MiB)) hole $((5 * MiB + E))
check_seek $((5 * MiB + E + 1)) data $((5 * MiB + 3 * E))
check_seek $((5 * MiB + 3 * E)) hole $((6 * MiB + E))
check_seek $((6 * MiB + E)) data $((6 * MiB + 4 * E))
check_seek $((7 * MiB + 3)) data $((7 * MiB + 3))
check_seek $((7 * MiB + 3)) hole $((8 * MiB))
check_seek $((8 * MiB)) data ENXIO
check_seek $((64 * MiB - 1)) hole $((64 * MiB - 1))

step "punch everything: no data left"
expect_exit 0 vvio punch "$vol" 0 64M
expect_exit 0 vvio zero "$vol" 0 64M
check_seek 0 data ENXIO
sync_pool
sync_pool
assert_eq "$(pool_field used)" 0 "pool used after punching the whole volume"

step "umount; the pool checks clean"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
