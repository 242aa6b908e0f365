#!/usr/bin/env bash
# snapshot.sh — snapshots through the CLI, the API and the mount.  Generations of pattern
# writes with a snapshot after each: every snapshot reads back byte for byte as it was taken,
# after a remount, after restores and after its neighbours are deleted; a restore makes the
# volume read as the snapshot (also through the kernel's cache) and is refused while the
# volume is open; snapshot files are read-only regular
# files of the volume's size then, with mtime = creation and SEEK_DATA; deleting a snapshot
# returns what only it held to the pool and to the host; snapshots rename, and a volume is
# deleted with them (--recursive) but not without; refusals (names, duplicates, a volume with
# snapshots, an open snapshot) are clear errors that change nothing; an ext4 frozen and snapshotted mounts
# read-only from its snapshot through a loop device and checks clean; vvfs fsck is clean.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires_loop
requires jq curl mkfs.ext4 fsck.ext4 fsfreeze mount umount diff
set_timeout 420

MiB=$((1 << 20))
new_pool --capacity 2G
expect_exit 0 vvfs volume create data 64M
vol=$MNT/volumes/data
snaps=$MNT/snapshots/data

step "generations of writes with a snapshot after each"
# generation g writes 8 MiB at (g * 5 MiB) with seed g: they overlap, so every snapshot sees
# a different mix; gen 3 also punches a hole that later generations fill
for g in 1 2 3 4 5; do
    expect_exit 0 vvio write "$vol" $((g * 5 * MiB)) 8M --seed "$g"
    [ "$g" != 3 ] || expect_exit 0 vvio punch "$vol" $((5 * MiB)) 2M
    expect_exit 0 vvfs snapshot create data "g$g"
done
expect_exit 0 vvio write "$vol" 0 64M --seed 9 # the live volume moves on

# verify_gen G FILE: FILE holds what the volume held right after generation G
verify_gen()
{
    local g=$1 f=$2 k lo hi
    # walk 1 MiB pieces: the newest generation <= G that wrote a piece decides it
    for ((m = 0; m < 64; m++)); do
        local seed=0
        for ((k = 1; k <= g; k++)); do
            lo=$((k * 5)) hi=$((k * 5 + 8))
            [ "$m" -ge "$lo" ] && [ "$m" -lt "$hi" ] && seed=$k
            [ "$k" = 3 ] && [ "$m" -ge 5 ] && [ "$m" -lt 7 ] && seed=0
        done
        if [ "$seed" = 0 ]; then
            "$VVIO" zero "$f" $((m * MiB)) 1M || fail "$f: MiB $m should be zeros (gen $g)"
        else
            "$VVIO" verify "$f" $((m * MiB)) 1M --seed "$seed" ||
                fail "$f: MiB $m should have seed $seed (gen $g)"
        fi
    done
    info "$f reads as after generation $g"
}
verify_all()
{
    local g
    for g in "$@"; do verify_gen "$g" "$snaps/g$g"; done
    expect_exit 0 vvio verify "$vol" 0 64M --seed 9
}
verify_all 1 2 3 4 5

step "snapshot files: read-only regular files of the volume's size, mtime = creation"
assert_eq "$(ls "$snaps" | tr '\n' ' ')" "g1 g2 g3 g4 g5 " "snapshot directory"
assert_eq "$(ls "$MNT/snapshots")" "data" "snapshots/"
assert_eq "$(stat -c '%F %a %s' "$snaps/g1")" "regular file 400 $((64 * MiB))" "stat of g1"
created=$(vvfs --json snapshot show data g1 | jq -r .created)
assert_eq "$(stat -c %Y "$snaps/g1")" "$created" "mtime of g1"
expect_exit 1 vvio write "$snaps/g1" 0 4096
assert_contains "$OUT" "read-only" "writing a snapshot"
if (exec 3<>"$snaps/g1") 2>/dev/null; then fail "O_RDWR open of a snapshot succeeded"; fi
if truncate -s 1M "$snaps/g1" 2>/dev/null; then fail "truncate of a snapshot succeeded"; fi
if rm -f "$snaps/g1" 2>/dev/null && [ ! -e "$snaps/g1" ]; then fail "rm removed a snapshot"; fi
expect_exit 0 vvio seek "$snaps/g1" 0 data
assert_eq "$OUT" $((5 * MiB)) "SEEK_DATA on g1"
expect_exit 0 vvio seek "$snaps/g1" $((5 * MiB)) hole
assert_eq "$OUT" $((13 * MiB)) "SEEK_HOLE on g1"

step "refusals change nothing"
before=$(vvfs --json snapshot list | jq -S .)
expect_exit 1 vvfs snapshot create data g1
assert_contains "$OUT" "already has a snapshot 'g1'" "duplicate snapshot"
expect_exit 2 vvfs snapshot create data 'a/b'
expect_exit 2 vvfs snapshot create data ..
expect_exit 1 vvfs snapshot create nosuch s
assert_contains "$OUT" "does not exist" "snapshot of a missing volume"
expect_exit 1 vvfs snapshot delete data nosuch
expect_exit 1 vvfs volume delete data
assert_contains "$OUT" "has 5 snapshots" "deleting a volume with snapshots"
expect_exit 1 vvfs volume resize data 32M
assert_contains "$OUT" "snapshot" "shrinking a volume with snapshots"
assert_eq "$(code -X POST -d '{"name":"x/y"}' http://localhost/v1/volumes/data/snapshots)" 400 \
    "POST a bad snapshot name"
assert_eq "$(code -X POST -d '{"name":"g2"}' http://localhost/v1/volumes/data/snapshots)" 409 \
    "POST a duplicate"
assert_eq "$(code -X POST -d '{"name":"s","x":1}' http://localhost/v1/volumes/data/snapshots)" \
    400 "POST an unknown field"
assert_eq "$(code -X POST -d '{"name":"s"}' http://localhost/v1/volumes/nosuch/snapshots)" 404 \
    "POST to a missing volume"
assert_eq "$(code http://localhost/v1/volumes/data/snapshots/nosuch)" 404 "GET a missing one"
assert_eq "$(code -X DELETE http://localhost/v1/volumes/data/snapshots/a%2Fb)" 400 \
    "DELETE a bad name"
assert_eq "$(code -X DELETE http://localhost/v1/volumes/data)" 409 "DELETE a volume with snapshots"
jq -e '.error.message | test("snapshot")' "$VV_TESTDIR/body" >/dev/null ||
    fail "the 409 does not say why: $(cat "$VV_TESTDIR/body")"
assert_eq "$(code -X PUT http://localhost/v1/volumes/data/snapshots/g1)" 405 "PUT a snapshot"
assert_eq "$(vvfs --json snapshot list | jq -S .)" "$before" "snapshots after the refusals"
verify_all 1 2 3 4 5

step "every snapshot survives a remount"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
verify_all 1 2 3 4 5

step "restore: the volume reads as the snapshot again, and every snapshot stays"
cat "$vol" >/dev/null # the kernel now caches the volume file's pages
attach_loop "$vol"
expect_exit 1 vvfs snapshot restore data g2
assert_contains "$OUT" "open" "restoring an open volume"
detach_loop "$LOOP" "$vol"
expect_exit 1 vvfs snapshot restore data nosuch
expect_exit 2 vvfs snapshot restore data 'a/b'
expect_exit 0 vvfs snapshot restore data g2
verify_gen 2 "$vol" # (through the page cache: the restore dropped what it held)
verify_gen 2 "$snaps/g2"
verify_gen 5 "$snaps/g5"
verify_gen 1 "$snaps/g1"
expect_exit 0 vvfs snapshot restore data g4
verify_gen 4 "$vol"
assert_eq "$(code -X POST http://localhost/v1/volumes/data/snapshots/g1/restore)" 200 \
    "POST .../restore"
verify_gen 1 "$vol"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
verify_gen 1 "$vol"
expect_exit 0 vvio write "$vol" 0 64M --seed 9 # the live volume moves on again
verify_all 1 2 3 4 5

step "deleting snapshots (middle, oldest, newest) frees what only they held"
sync_pool
used0=$(pool_field used)
du0=$(du -sk "$POOL" | cut -f1)
snapped=$(volume_field data snapshots_used)
assert_eq "$(pool_field snapshots)" "$snapped" "pool snapshot space vs the volume's"
[ "$snapped" -gt 0 ] && [ "$snapped" -lt "$used0" ] ||
    fail "snapshots_used $snapped of used $used0"
# delete_exact G: what G holds alone (its "exclusive") is exactly what its delete frees
freed_total=0
delete_exact()
{
    local excl before after
    excl=$(vvfs --json snapshot show data "$1" | jq -e .exclusive) || fail "no exclusive for $1"
    before=$(pool_field used)
    expect_exit 0 vvfs snapshot delete data "$1"
    sync_pool
    after=$(pool_field used)
    assert_eq $((before - after)) "$excl" "bytes freed by deleting $1 vs what it held alone"
    freed_total=$((freed_total + excl))
}
sleep 1.1 # (the kernel caches attributes for a second)
assert_eq $(($(stat -c %b "$snaps/g3") * 512)) "$(vvfs --json snapshot show data g3 | jq .exclusive)" \
    "st_blocks of a snapshot file: what it holds alone"
delete_exact g3
verify_all 1 2 4 5
delete_exact g1
verify_all 2 4 5
delete_exact g5
verify_all 2 4
[ "$freed_total" -gt 0 ] || fail "the deleted snapshots held nothing alone: the check checked nothing"
expect_exit 0 vvfs snapshot list data
assert_contains "$OUT" "EXCLUSIVE" "snapshot list header"
used1=$(pool_field used)
du1=$(du -sk "$POOL" | cut -f1)
info "pool used $((used0 / MiB)) -> $((used1 / MiB)) MiB; du $((du0 / 1024)) -> $((du1 / 1024)) MiB"
assert_lt "$used1" "$used0" "pool space used after deleting snapshots"
assert_lt "$du1" "$du0" "du of the pool after deleting snapshots"
expect_exit 0 vvfs snapshot delete data g2
expect_exit 0 vvfs snapshot delete data g4
sync_pool
assert_eq "$(pool_field used)" $((64 * MiB)) "pool used with no snapshot left (the live 64 MiB)"
assert_eq "$(ls "$snaps" | wc -l)" 0 "snapshot directory after deleting all"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$vol" 0 64M --seed 9

step "an ext4 frozen, snapshotted, and mounted read-only from its snapshot"
expect_exit 0 vvfs volume create fs 512M
attach_loop "$MNT/volumes/fs" --direct-io=on
loop=$LOOP
expect_exit 0 mkfs.ext4 -q -F "$loop"
ext=$VV_TESTDIR/ext
mkdir -p "$ext"
cleanup_fn cleanup_umount "$ext"
expect_exit 0 mount -t ext4 "$loop" "$ext"
cp -a /usr/share/doc/bash "$ext/before" 2>/dev/null || cp -a /etc "$ext/before"
truncate -s 32M "$ext/pattern.img"
expect_exit 0 vvio write "$ext/pattern.img" 0 32M --seed 21
expect_exit 0 fsfreeze -f "$ext"
cleanup_fn fsfreeze -u "$ext"
expect_exit 0 vvfs snapshot create fs frozen
expect_exit 0 fsfreeze -u "$ext"
# the live filesystem moves on
rm -rf "$ext/before"
expect_exit 0 vvio write "$ext/pattern.img" 0 32M --seed 22
mkdir "$ext/after"
sync
attach_loop "$MNT/snapshots/fs/frozen" -r
sloop=$LOOP
expect_exit 0 fsck.ext4 -n -f "$sloop"
sext=$VV_TESTDIR/sext
mkdir -p "$sext"
cleanup_fn cleanup_umount "$sext"
expect_exit 0 mount -t ext4 -o ro,noload "$sloop" "$sext"
[ -d "$sext/before" ] || fail "the snapshot lacks what was there when it was taken"
[ ! -e "$sext/after" ] || fail "the snapshot has what was made after it"
expect_exit 0 vvio verify "$sext/pattern.img" 0 32M --seed 21
expect_exit 0 vvio verify "$ext/pattern.img" 0 32M --seed 22
src=/usr/share/doc/bash
[ -d "$src" ] || src=/etc
diff -r "$src" "$sext/before" >/dev/null 2>&1 || [ "$src" = /etc ] ||
    fail "the snapshot's copy of $src differs"
expect_exit 0 umount "$sext"
detach_loop "$sloop" "$MNT/snapshots/fs/frozen"
expect_exit 0 umount "$ext"
detach_loop "$loop" "$MNT/volumes/fs"
expect_exit 0 vvfs snapshot delete fs frozen

step "rename a snapshot; delete a volume with its snapshots"
expect_exit 0 vvfs snapshot create data r1
expect_exit 0 vvfs snapshot create data r2
expect_exit 0 vvfs snapshot rename data r1 first
assert_eq "$(ls "$snaps" | tr '\n' ' ')" "first r2 " "snapshot directory after a rename"
expect_exit 0 vvio verify "$snaps/first" 0 64M --seed 9
expect_exit 1 vvfs snapshot rename data first r2
assert_contains "$OUT" "already has a snapshot 'r2'" "renaming onto another snapshot"
expect_exit 2 vvfs snapshot rename data first 'x/y'
expect_exit 1 vvfs snapshot rename data nosuch x
expect_exit 1 vvfs volume delete data
assert_contains "$OUT" "--recursive" "deleting a volume with snapshots"
attach_loop "$snaps/r2" -r
expect_exit 1 vvfs volume delete data --recursive
assert_contains "$OUT" "open" "deleting a volume whose snapshot is open"
detach_loop "$LOOP" "$snaps/r2"
assert_eq "$(code -X DELETE 'http://localhost/v1/volumes/data?recursive=maybe')" 400 \
    "?recursive=maybe"
assert_eq "$(code -X DELETE 'http://localhost/v1/volumes/data?force=true')" 400 "?force=true"
assert_eq "$(code -X DELETE 'http://localhost/v1/volumes/data?recursive=true&x=1')" 400 \
    "two query parameters"
assert_eq "$(vvfs --json snapshot list data | jq '.snapshots | length')" 2 \
    "snapshots after the refusals"
expect_exit 0 vvfs volume delete data --recursive
[ ! -e "$vol" ] || fail "the volume file is still there"
assert_eq "$(ls "$MNT/snapshots")" "fs" "snapshots/ after deleting data with its snapshots"
assert_eq "$(vvfs --json snapshot list | jq '.snapshots | length')" 0 "snapshots left"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
