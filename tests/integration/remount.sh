#!/usr/bin/env bash
# remount.sh — `vvfs mount` right after the mount was taken away behind vvfs's back
# (fusermount3 -u, umount, umount -l).  The old daemon holds the pool lock until it has
# committed and exited; mount must wait for it (saying so once) and then mount, and the data
# must read back.  A pool whose daemon still has its mount is still refused, at once, with
# "in use by process N" / "already mounted".
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq
set_timeout 300
# no time-driven commits: what is not flushed stays dirty until the daemon closes the pool
export VVFS_TXG_INTERVAL_MS=60000

new_pool --capacity 2G
expect_exit 0 vvfs volume create v 1G
vol=$MNT/volumes/v
waitmsg="waiting for the previous daemon of $POOL"

# stop_holder PID: end the vvio --hold we started (our child), if it is still there
stop_holder()
{
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# mount_again: mount_pool, then show what it said
mount_again()
{
    mount_pool "$POOL" "$MNT"
    info "vvfs mount said: $(tr '\n' ' ' <"$VV_TESTDIR/.mount.out")"
}

step "fusermount3 -u after writing 300 MiB without fsync, then mount at once"
expect_exit 0 vvio write "$vol" 0 300M --seed 1
old=$(daemon_pid "$POOL")
fusermount3 -u "$MNT" || fail "fusermount3 -u $MNT failed"
st=$(proc_starttime "$old")
mount_again
if grep -qF "$waitmsg" "$VV_TESTDIR/.mount.out"; then
    info "mount waited for daemon $old"
elif [ -n "$st" ]; then
    info "daemon $old was still there right after the unmount, but gone by the time mount looked"
fi
[ "$(daemon_pid "$POOL")" != "$old" ] || fail "the old daemon $old is still serving"
expect_exit 0 vvio verify "$vol" 0 300M --seed 1

step "umount(8), then mount at once"
expect_exit 0 vvio write "$vol" 300M 100M --seed 2
umount "$MNT" || fail "umount $MNT failed"
mount_again
expect_exit 0 vvio verify "$vol" 0 300M --seed 1
expect_exit 0 vvio verify "$vol" 300M 100M --seed 2

step "lazy unmount while a writer holds a volume open: mount waits until the old daemon is done"
# After umount -l the mount is gone from mountinfo, but the daemon serves the open descriptor
# (and holds the pool) until it is closed: a deterministic "previous daemon still busy".
old=$(daemon_pid "$POOL")
"$VVIO" write "$vol" 400M 64M --seed 3 --hold >"$VV_TESTDIR/hold.out" 2>&1 </dev/null &
holder=$!
cleanup_fn stop_holder "$holder"
for _ in $(seq 1 200); do grep -q held "$VV_TESTDIR/hold.out" 2>/dev/null && break; sleep 0.1; done
grep -q held "$VV_TESTDIR/hold.out" || fail "vvio --hold did not finish writing"
umount -l "$MNT" || fail "umount -l $MNT failed"
! is_mounted "$MNT" || fail "$MNT is still in mountinfo after umount -l"
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon exited while a descriptor was still open"
"$VVFS" mount "$POOL" "$MNT" >"$VV_TESTDIR/mount2.out" 2>&1 </dev/null &
mounter=$!
for _ in $(seq 1 100); do
    grep -qF "$waitmsg" "$VV_TESTDIR/mount2.out" && break
    kill -0 "$mounter" 2>/dev/null || break
    sleep 0.1
done
grep -qF "$waitmsg (pid $old)" "$VV_TESTDIR/mount2.out" ||
    fail "vvfs mount did not say it waits for daemon $old: $(cat "$VV_TESTDIR/mount2.out")"
sleep 1
kill -0 "$mounter" 2>/dev/null ||
    fail "vvfs mount gave up while the old daemon was busy: $(cat "$VV_TESTDIR/mount2.out")"
! is_mounted "$MNT" || fail "mounted while the old daemon still held the pool"
stop_holder "$holder"
rc=0
wait "$mounter" || rc=$?
out=$(cat "$VV_TESTDIR/mount2.out")
info "vvfs mount said: $(tr '\n' ' ' <<<"$out")"
[ "$rc" = 0 ] || fail "vvfs mount after the old daemon finished exited $rc: $out"
assert_eq "$(grep -cF "$waitmsg" <<<"$out")" 1 "times the wait was announced"
wait_for_mount "$MNT" 10
_vv_note_daemon "$POOL" >/dev/null
[ "$(daemon_pid "$POOL")" != "$old" ] || fail "the old daemon $old is still serving"
expect_exit 0 vvio verify "$vol" 0 300M --seed 1
expect_exit 0 vvio verify "$vol" 300M 100M --seed 2
expect_exit 0 vvio verify "$vol" 400M 64M --seed 3

step "a daemon with a live mount is still refused, at once"
pid=$(daemon_pid "$POOL")
mnt2=$VV_TESTDIR/second
mkdir -p "$mnt2"
cleanup_fn cleanup_umount "$mnt2" # in case it wrongly succeeds
ln -s "$POOL" "$VV_TESTDIR/pool-link"
# a bind mount of the pool directory is a path that realpath() does not resolve to the pool:
# the CLI's look at mountinfo by name misses it, so the lock decides, and must not wait
bind=$VV_TESTDIR/pool-bind
mkdir -p "$bind"
cleanup_fn cleanup_umount "$bind"
mount --bind "$POOL" "$bind" || fail "mount --bind failed"
for p in "$POOL" "$VV_TESTDIR/pool-link" "$bind"; do
    t0=$SECONDS
    expect_exit 1 vvfs mount "$p" "$mnt2"
    grep -qiE "in use by process $pid|already mounted" <<<"$OUT" ||
        fail "second mount through $p: the message should say the pool is in use: $OUT"
    ! grep -qF "waiting" <<<"$OUT" || fail "second mount through $p waited for a live mount: $OUT"
    assert_lt $((SECONDS - t0)) 5 "seconds to refuse a second mount through $p"
    ! is_mounted "$mnt2" || fail "the refused second mount left a mount at $mnt2"
done
umount "$bind"
assert_eq "$(daemon_pid "$POOL")" "$pid" "daemon after the refused mounts"
expect_exit 0 vvio verify "$vol" 400M 64M --seed 3

umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
