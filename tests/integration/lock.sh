#!/usr/bin/env bash
# lock.sh — one pool, one daemon: a second mount (elsewhere or at the same place), an fsck and
# an init of a mounted pool are refused and leave the running mount, its socket and pid file
# alone; mounting what is not a pool fails cleanly; a pool of a newer format is refused.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq curl mdb_dump mdb_load od
set_timeout 240

new_pool --capacity 1G --extent-size 64K
expect_exit 0 vvfs volume create v 64M
vol=$MNT/volumes/v
expect_exit 0 vvio write "$vol" 1000 1M --seed 1 --fsync
pid=$(daemon_pid "$POOL")
pidfile=$(cat "$POOL/vvfs.pid")
assert_eq "$pidfile" "$pid" "vvfs.pid"

step "a second mount of the same pool is refused"
mnt2=$VV_TESTDIR/second
mkdir -p "$mnt2"
cleanup_fn cleanup_umount "$mnt2"   # in case it wrongly succeeds
# The message must say why: the pool is in use (the pool lock) or already mounted (the CLI's
# look at /proc/self/mountinfo).
says_in_use()
{
    grep -qiE "in use|already mounted" <<<"$OUT" ||
        fail "$1: the message should say the pool is in use; it is: $OUT"
}
expect_exit 1 vvfs mount "$POOL" "$mnt2"
says_in_use "second mount elsewhere"
! is_mounted "$mnt2" || fail "the refused second mount left a mount at $mnt2"
expect_exit 1 vvfs mount "$POOL" "$MNT"
says_in_use "second mount at the same mountpoint"
# through another path to the same directory, a look at mountinfo by name may miss it: the
# pool lock itself must refuse
ln -s "$POOL" "$VV_TESTDIR/pool-link"
expect_exit 1 vvfs mount "$VV_TESTDIR/pool-link" "$mnt2"
says_in_use "second mount through a symlink"
! is_mounted "$mnt2" || fail "the refused second mount left a mount at $mnt2"
# a bind mount of the pool directory is another path that no realpath() resolves
bind=$VV_TESTDIR/pool-bind
mkdir -p "$bind"
cleanup_fn cleanup_umount "$bind"
mount --bind "$POOL" "$bind" || fail "mount --bind failed"
expect_exit 1 vvfs mount "$bind" "$mnt2"
says_in_use "second mount through a bind mount"
! is_mounted "$mnt2" || fail "the refused second mount left a mount at $mnt2"
umount "$bind"

step "fsck and init of the mounted pool are refused"
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" "in use" "fsck of a mounted pool"
expect_exit 1 vvfs init "$POOL" --capacity 1G
[ -s "$POOL/meta.mdb" ] || fail "refused init damaged meta.mdb"

step "the first mount is untouched"
assert_eq "$(cat "$POOL/vvfs.pid")" "$pid" "vvfs.pid after the refused mounts"
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died"
[ -S "$POOL/vvfs.sock" ] || fail "vvfs.sock is gone"
assert_eq "$(volume_names)" v "volume list through the socket"
expect_exit 0 vvio verify "$vol" 1000 1M --seed 1
expect_exit 0 vvio write "$vol" 2M 1M --seed 2 --fsync
expect_exit 0 vvio verify "$vol" 2M 1M --seed 2
assert_eq "$(mount_type "$MNT")" fuse.vvfs "type of the first mount"

step "mounting what is not a pool fails and mounts nothing"
notpool=$VV_TESTDIR/notpool
mnt3=$VV_TESTDIR/third
mkdir -p "$notpool" "$mnt3"
cleanup_fn cleanup_umount "$mnt3"
expect_exit 1 vvfs mount "$notpool" "$mnt3"
! is_mounted "$mnt3" || fail "mounting a non-pool mounted something"
expect_exit 1 vvfs mount "$VV_TESTDIR/does-not-exist" "$mnt3"
! is_mounted "$mnt3" || fail "mounting a missing pool mounted something"
umount_pool "$POOL" "$MNT"
pool2=$VV_TESTDIR/pool-b
expect_exit 0 vvfs init "$pool2" --capacity 64M
expect_exit 1 vvfs mount "$pool2" "$VV_TESTDIR/no-such-mountpoint"
if [ -s "$pool2/vvfs.pid" ] && kill -0 "$(cat "$pool2/vvfs.pid")" 2>/dev/null; then
    fail "a failed mount left a daemon running (pid $(cat "$pool2/vvfs.pid"))"
fi

step "after umount: fsck clean, mount again works"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$vol" 1000 1M --seed 1
expect_exit 0 vvio verify "$vol" 2M 1M --seed 2
umount_pool "$POOL" "$MNT"

step "a pool of a newer format version is refused"
# The format version lives in meta.mdb (an LMDB environment opened with MDB_NOSUBDIR), named
# database "config", key "format_version", value a little-endian u64 (meta/pool.c).  Forge a
# newer one with lmdb-utils.  If the layout changes, this must change with it: the step fails
# loudly rather than skip.
key_hex=$(printf format_version | od -An -tx1 | tr -d ' \n')
dump=$VV_TESTDIR/config.dump
mdb_dump -n -s config "$POOL/meta.mdb" >"$dump" || fail "mdb_dump of the config database failed"
grep -qx " $key_hex" "$dump" ||
    fail "no key 'format_version' in the config database of meta.mdb: the test's idea of the layout is stale"
cur=$(grep -A1 -x " $key_hex" "$dump" | tail -n 1 | tr -d ' ')
assert_eq "$cur" 0500000000000000 "stored format version (u64 LE 5)"
sed "/^ $key_hex\$/{n;s/.*/ 6300000000000000/}" "$dump" >"$dump.new"   # 99
expect_exit 0 mdb_load -n -s config -f "$dump.new" "$POOL/meta.mdb"
expect_exit 1 vvfs mount "$POOL" "$MNT"
assert_contains "$OUT" "version" "message for a newer pool format"
! is_mounted "$MNT" || fail "a pool of a newer format was mounted"
expect_exit 1 vvfs fsck "$POOL"
assert_contains "$OUT" "version" "fsck message for a newer pool format"
# put it back: the pool opens again, unharmed
expect_exit 0 mdb_load -n -s config -f "$dump" "$POOL/meta.mdb"
mount_pool "$POOL" "$MNT"
expect_exit 0 vvio verify "$vol" 1000 1M --seed 1
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
