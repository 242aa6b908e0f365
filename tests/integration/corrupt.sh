#!/usr/bin/env bash
# corrupt.sh — the checks the other tests lean on can fail: after a few bytes of an extent are
# overwritten behind vvfs's back, `vvfs fsck` reports the pool inconsistent (exit 1, the
# checksum named) while `fsck --no-data` still passes, and reads through the mount of the damaged
# extent fail with EIO instead of returning wrong data; the undamaged extents still read back.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq dd
set_timeout 180

E=$((64 << 10))
new_pool --capacity 256M --extent-size 64K
expect_exit 0 vvfs volume create v 16M
vol=$MNT/volumes/v
expect_exit 0 vvio write "$vol" 0 1M --seed 1 --fsync
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"

step "overwrite 16 bytes of one extent slot in the data file(s)"
# Pool data lives in POOL/data or POOL/data.N (sparse): damage the first byte range that holds
# data, 100 bytes into it (inside the extent, whatever the slot layout).
victim=
for f in "$POOL"/data*; do
    [ -f "$f" ] || continue
    off=$(vvio seek "$f" 0 data)
    if [ "$off" != ENXIO ]; then
        victim=$f
        break
    fi
done
[ -n "$victim" ] || fail "no data file in $POOL holds any data after writing 1 MiB"
info "damaging $victim at offset $((off + 100))"
printf 'this is garbage!' | dd of="$victim" bs=1 seek=$((off + 100)) conv=notrunc status=none

step "fsck finds it; fsck --no-data does not look"
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" checksum "fsck report of a damaged extent"
expect_exit 0 vvfs fsck "$POOL" --no-data

step "reading the damaged extent fails with EIO; the others read back"
mount_pool "$POOL" "$MNT"
bad=
for ((x = 0; x < 16; x++)); do
    rc=0
    "$VVIO" verify "$vol" $((x * E)) "$E" --seed 1 >"$VV_TESTDIR/v.out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        assert_contains "$(cat "$VV_TESTDIR/v.out")" "Input/output error" \
            "read of extent $x (it must fail, not return wrong data)"
        bad+="$x "
    fi
done
info "extents that failed to read: ${bad:-none}"
assert_eq "$(wc -w <<<"$bad")" 1 "number of unreadable extents (one was damaged)"
errs=$(pool_field checksum_errors)
[ "$errs" -ge 1 ] || fail "status checksum_errors is $errs after a checksum failure"
