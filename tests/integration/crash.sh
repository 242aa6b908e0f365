#!/usr/bin/env bash
# crash.sh — SIGKILL the daemon at random moments under load (the idea of OpenZFS's ztest).
#
# Each round: mount; run crashwriter (random tagged writes, fsync every few, an fsync'd
# acknowledgement log on /var/tmp) on one volume, and a loop creating, writing and deleting small
# volumes beside it; after a random 0.5-3 s SIGKILL the daemon, then the writers; lazily unmount
# the dead mount.  Then `vvfs fsck` must find the pool consistent, and after a remount every
# byte of the volume must hold the last acknowledged write to it or a write issued after it
# (crashwriter verify; the log spans all rounds, so data acknowledged rounds ago is checked too).
#
#   VVFS_CRASH_ROUNDS   rounds (default 8)
#   VVFS_CRASH_EXTENT   the pool's extent size (default 64K: partial writes merge old data;
#                       meson also runs it at 4K, the default, where most writes are batched)
#   VVFS_TEST_SEED      seed for the timings and the writers (default: from the clock; printed)
# The test bounds itself to 90 + 30 * rounds seconds; meson's own limit is 600 s, so for more
# than 16 rounds run it directly (VV_BUILDDIR=build VVFS_CRASH_ROUNDS=50 tests/integration/crash.sh)
# or with meson test --timeout-multiplier.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq
rounds=${VVFS_CRASH_ROUNDS:-8}
seed=${VVFS_TEST_SEED:-$(($(date +%s) % 1000000))}
set_timeout $((90 + rounds * 30))
info "rounds $rounds, extent size ${VVFS_CRASH_EXTENT:-64K}, seed $seed (rerun with VVFS_TEST_SEED=$seed)"
RANDOM=$seed

new_pool --capacity 1G --extent-size "${VVFS_CRASH_EXTENT:-64K}"
expect_exit 0 vvfs volume create c 256M
vol=$MNT/volumes/c
log=$VV_TESTDIR/crash.log
: >"$log"

count() { grep -c "^$1 " "$log" || true; }

# churn: create, write and delete small volumes until killed
churn()
{
    local n=0
    while :; do
        n=$((n + 1))
        if "$VVFS" volume create "tmp$n" 1M; then
            "$VVIO" write "$MNT/volumes/tmp$n" 0 64K --seed 3 || sleep 0.1
            "$VVFS" volume delete "tmp$n" || sleep 0.1
        else
            sleep 0.1
        fi
    done
}

kill_tree() # PID: SIGKILL PID's descendants and PID (all started by this test)
{
    local p
    for p in $(_vv_descendants "$1") "$1"; do
        kill -KILL "$p" 2>/dev/null || true
    done
}

for ((i = 1; i <= rounds; i++)); do
    step "round $i of $rounds"
    issued0=$(count I)
    acked0=$(count A)
    "$CRASHWRITER" write "$vol" "$log" --seed $((seed * 1000 + i)) --seconds 300 \
        >"$VV_TESTDIR/writer.$i.out" 2>&1 &
    wpid=$!
    churn >"$VV_TESTDIR/churn.$i.out" 2>&1 &
    cpid=$!
    ms=$((500 + RANDOM % 2501))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    kill -0 "$wpid" 2>/dev/null || fail "crashwriter exited early: $(cat "$VV_TESTDIR/writer.$i.out")"
    dpid=$(daemon_pid "$POOL")

    crash_pool "$POOL" "$MNT"
    kill_tree "$cpid"
    kill -KILL "$wpid" 2>/dev/null || true
    wait "$wpid" "$cpid" 2>/dev/null || true
    issued=$(($(count I) - issued0))
    acked=$(($(count A) - acked0))
    info "killed daemon $dpid after $ms ms: $issued writes issued, $acked acknowledged," \
        "$(grep -c "created volume" "$VV_TESTDIR/churn.$i.out" || true) small volumes created;" \
        "writer said: $(tail -n 1 "$VV_TESTDIR/writer.$i.out")"
    [ "$issued" -gt 0 ] || fail "round $i: no write was issued in $ms ms"

    expect_exit 0 vvfs fsck "$POOL"
    mount_pool "$POOL" "$MNT"
    [ "$(daemon_pid "$POOL")" != "$dpid" ] || fail "the killed daemon's pid is still recorded"
    expect_exit 0 "$CRASHWRITER" verify "$vol" "$log"
    info "$OUT"
    # the volumes the churn left behind must be whole: a file of their size, readable
    for f in "$MNT"/volumes/tmp*; do
        [ -e "$f" ] || continue
        assert_eq "$(stat -c %s "$f")" $((1 << 20)) "size of $f after the crash"
        cat "$f" >/dev/null || fail "cannot read $f after the crash"
    done
done

acked=$(count A)
[ "$acked" -gt 0 ] || fail "no write was ever acknowledged: the test checked nothing"
info "in all: $(count I) writes issued, $acked acknowledged"

step "clean umount after the crashes; fsck; the data is still right"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 "$CRASHWRITER" verify "$vol" "$log"
umount_pool "$POOL" "$MNT"
