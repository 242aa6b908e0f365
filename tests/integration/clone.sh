#!/usr/bin/env bash
# clone.sh — clones through the CLI, the API and the mount.  An ext4 frozen and snapshotted
# is cloned: the clone checks clean, mounts read-write, takes changes that neither the
# snapshot nor the origin see, and is itself snapshotted and cloned.  A clone holds only what
# it wrote (used), reads the rest from its origin (SEEK_DATA sees both), survives remounts,
# keeps what it cut off by a shrink from coming back, and pins the snapshot it was made from
# (409 naming it, for the snapshot and for its volume) until it is deleted.  Bad requests are
# clear errors that change nothing; vvfs fsck is clean throughout.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires_loop
requires jq curl mkfs.ext4 fsck.ext4 fsfreeze mount umount cmp
set_timeout 420

MiB=$((1 << 20))
new_pool --capacity 2G

step "an ext4, frozen and snapshotted, then cloned"
expect_exit 0 vvfs volume create fs 256M
attach_loop "$MNT/volumes/fs" --direct-io=on
loop=$LOOP
expect_exit 0 mkfs.ext4 -q -F "$loop"
ext=$VV_TESTDIR/ext
mkdir -p "$ext"
cleanup_fn cleanup_umount "$ext"
expect_exit 0 mount -t ext4 "$loop" "$ext"
mkdir "$ext/before"
cp -a /etc/. "$ext/before/" 2>/dev/null
truncate -s 32M "$ext/pattern.img"
expect_exit 0 vvio write "$ext/pattern.img" 0 32M --seed 21
expect_exit 0 fsfreeze -f "$ext"
cleanup_fn fsfreeze -u "$ext"
expect_exit 0 vvfs snapshot create fs frozen
expect_exit 0 fsfreeze -u "$ext"
expect_exit 0 vvfs clone create fs@frozen fs-test
assert_contains "$OUT" "clone of fs@frozen" "clone create"
assert_eq "$(volume_field fs-test used)" 0 "a new clone holds nothing of its own"
assert_eq "$(volume_field fs-test size)" $((256 * MiB)) "a clone has the snapshot's size"
assert_eq "$(vvfs --json volume show fs-test | jq -r '.origin.volume + "@" + .origin.snapshot')" \
    "fs@frozen" "origin of the clone"
expect_exit 0 vvfs clone list
assert_contains "$OUT" "fs@frozen" "clone list"
assert_eq "$(vvfs --json clone list fs | jq '.clones | length')" 1 "clones of fs"
assert_eq "$(vvfs --json clone list fs-test | jq '.clones | length')" 0 "clones of fs-test"
cmp "$MNT/volumes/fs-test" "$MNT/snapshots/fs/frozen" || fail "the clone differs from its snapshot"

step "the origin moves on; the clone mounts read-write and changes on its own"
rm -rf "$ext/before"
expect_exit 0 vvio write "$ext/pattern.img" 0 32M --seed 22
mkdir "$ext/after-origin"
sync
attach_loop "$MNT/volumes/fs-test" --direct-io=on
cloop=$LOOP
expect_exit 0 fsck.ext4 -n -f "$cloop"
cext=$VV_TESTDIR/cext
mkdir -p "$cext"
cleanup_fn cleanup_umount "$cext"
expect_exit 0 mount -t ext4 "$cloop" "$cext"
[ -d "$cext/before" ] || fail "the clone lacks what its snapshot had"
[ ! -e "$cext/after-origin" ] || fail "the clone has what the origin made after the snapshot"
expect_exit 0 vvio verify "$cext/pattern.img" 0 32M --seed 21
expect_exit 0 vvio write "$cext/pattern.img" 8M 8M --seed 23
rm -rf "$cext/before/default"
mkdir "$cext/after-clone"
expect_exit 0 umount "$cext"
expect_exit 0 fsck.ext4 -n -f "$cloop"
detach_loop "$cloop" "$MNT/volumes/fs-test"
used=$(volume_field fs-test used)
[ "$used" -gt $((8 * MiB)) ] && [ "$used" -lt $((48 * MiB)) ] ||
    fail "the clone holds $used bytes after 8 MiB of data and some metadata"
expect_exit 0 vvio verify "$ext/pattern.img" 0 32M --seed 22 # the origin: untouched
[ ! -e "$ext/after-clone" ] || fail "the origin sees what the clone made"
expect_exit 0 umount "$ext"
detach_loop "$loop" "$MNT/volumes/fs"
attach_loop "$MNT/snapshots/fs/frozen" -r
expect_exit 0 fsck.ext4 -n -f "$LOOP"
detach_loop "$LOOP" "$MNT/snapshots/fs/frozen"

step "a clone of a snapshot of a clone"
expect_exit 0 vvfs snapshot create fs-test t1
expect_exit 0 vvfs clone create fs-test@t1 fs-test2
cmp "$MNT/volumes/fs-test2" "$MNT/snapshots/fs-test/t1" || fail "the second clone differs"
expect_exit 0 vvio write "$MNT/volumes/fs-test2" 200M 1M --seed 31
cmp -s "$MNT/volumes/fs-test2" "$MNT/volumes/fs-test" && fail "a write to the second clone shows in the first"
attach_loop "$MNT/volumes/fs-test" -r
expect_exit 0 fsck.ext4 -n -f "$LOOP"
detach_loop "$LOOP" "$MNT/volumes/fs-test"

step "a sparse origin: SEEK_DATA and SEEK_HOLE see the clone's data and the origin's"
expect_exit 0 vvfs volume create sparse 64M
expect_exit 0 vvio write "$MNT/volumes/sparse" 16M 1M --seed 41
expect_exit 0 vvfs snapshot create sparse s
expect_exit 0 vvfs clone create sparse@s sc
sc=$MNT/volumes/sc
expect_exit 0 vvio seek "$sc" 0 data
assert_eq "$OUT" $((16 * MiB)) "SEEK_DATA on a clone finds the origin's data"
expect_exit 0 vvio write "$sc" 4M 1M --seed 42
expect_exit 0 vvio seek "$sc" 0 data
assert_eq "$OUT" $((4 * MiB)) "SEEK_DATA on a clone finds its own data"
expect_exit 0 vvio seek "$sc" $((4 * MiB)) hole
assert_eq "$OUT" $((5 * MiB)) "SEEK_HOLE after the clone's data"
expect_exit 0 vvio seek "$sc" $((5 * MiB)) data
assert_eq "$OUT" $((16 * MiB)) "SEEK_DATA past the clone's data"
expect_exit 0 vvio punch "$sc" 16M 1M
expect_exit 0 vvio zero "$sc" 16M 1M
expect_exit 0 vvio verify "$MNT/snapshots/sparse/s" 16M 1M --seed 41
expect_exit 0 vvio verify "$MNT/volumes/sparse" 16M 1M --seed 41

step "a shrunk clone does not get its origin's blocks back when it grows"
expect_exit 0 vvfs volume resize sc 10M
expect_exit 0 vvfs volume resize sc 64M
expect_exit 0 vvio zero "$sc" 10M 54M
expect_exit 0 vvio verify "$sc" 4M 1M --seed 42

step "refusals change nothing"
before=$(vvfs --json volume list | jq -S .)
expect_exit 1 vvfs snapshot delete fs frozen
assert_contains "$OUT" "volume 'fs-test' is a clone of it" "deleting a pinned snapshot"
expect_exit 1 vvfs volume delete fs --recursive
assert_contains "$OUT" "fs-test" "deleting the origin with its snapshots"
expect_exit 1 vvfs volume delete fs-test --recursive
assert_contains "$OUT" "fs-test2" "deleting a clone whose snapshot has a clone"
assert_eq "$(code -X DELETE http://localhost/v1/volumes/fs/snapshots/frozen)" 409 \
    "API status for a pinned snapshot"
assert_eq "$(jq -r .error.code "$VV_TESTDIR/body")" busy "API: deleting a pinned snapshot"
assert_contains "$(jq -r .error.message "$VV_TESTDIR/body")" fs-test "API message"
expect_exit 2 vvfs clone create fs fs-x
assert_contains "$OUT" "VOLUME@SNAPSHOT" "a source without a snapshot"
expect_exit 2 vvfs clone create fs@frozen 'a/b'
expect_exit 2 vvfs clone create 'f s@frozen' x
expect_exit 1 vvfs clone create fs@nosuch fs-x
assert_contains "$OUT" "no snapshot 'nosuch'" "cloning a missing snapshot"
expect_exit 1 vvfs clone create nosuch@frozen fs-x
expect_exit 1 vvfs clone create fs@frozen fs-test2
assert_contains "$OUT" "already exists" "cloning onto a taken name"
assert_eq "$(code -X POST -d '{}' http://localhost/v1/volumes/fs/snapshots/frozen/clone)" 400 \
    "API: clone without a name"
assert_eq "$(code -X POST -d '{"name":"x","size":"1G"}' \
    http://localhost/v1/volumes/fs/snapshots/frozen/clone)" 400 "API: clone with a size"
assert_eq "$(code -X POST -d '{"name":"fs-test"}' \
    http://localhost/v1/volumes/fs/snapshots/frozen/clone)" 409 "API: clone onto a taken name"
assert_eq "$(code -X POST -d '{"name":"x"}' \
    http://localhost/v1/volumes/fs/snapshots/nosuch/clone)" 404 "API: clone of no snapshot"
assert_eq "$(vvfs --json volume list | jq -S .)" "$before" "volumes after the refusals"

step "clones survive a remount; fsck is clean"
sum_test=$(md5sum <"$MNT/volumes/fs-test")
sum_test2=$(md5sum <"$MNT/volumes/fs-test2")
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
assert_eq "$(md5sum <"$MNT/volumes/fs-test")" "$sum_test" "fs-test after a remount"
assert_eq "$(md5sum <"$MNT/volumes/fs-test2")" "$sum_test2" "fs-test2 after a remount"
cmp "$MNT/volumes/fs-test2" "$MNT/snapshots/fs-test/t1" >/dev/null &&
    fail "fs-test2 lost its own write"
expect_exit 0 vvio verify "$MNT/volumes/fs-test2" 200M 1M --seed 31
expect_exit 0 vvio zero "$sc" 10M 54M

step "deleting the clones unpins their snapshots and frees what they held"
sync_pool
du_before=$(du -sk "$POOL" | cut -f1)
expect_exit 0 vvfs volume delete fs-test2
expect_exit 0 vvfs volume delete fs-test --recursive
expect_exit 0 vvfs snapshot delete fs frozen
expect_exit 0 vvfs volume delete sc
expect_exit 0 vvfs snapshot delete sparse s
for _ in $(seq 50); do [ "$(pool_field freeing)" = 0 ] && break; sleep 0.2; done
sync_pool
du_after=$(du -sk "$POOL" | cut -f1)
[ "$du_after" -lt $((du_before - 8 * 1024)) ] ||
    fail "the pool's files use ${du_after}K after deleting the clones, ${du_before}K before"
assert_eq "$(vvfs --json clone list | jq '.clones | length')" 0 "clones left"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
