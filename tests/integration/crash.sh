#!/usr/bin/env bash
# crash.sh — SIGKILL the daemon at random moments under load (the idea of OpenZFS's ztest).
#
# Each round: mount; run crashwriter (random tagged writes, fsync every few, an fsync'd
# acknowledgement log on /var/tmp) on one volume, a loop creating, writing and deleting small
# volumes beside it, and one taking snapshots of the volume, cloning some and writing the
# clones, and deleting snapshots; after a random 0.5-3 s SIGKILL the daemon, then the writers;
# lazily unmount the dead mount.  Then `vvfs fsck` must find the pool consistent, and after a
# remount every byte of the volume must hold the last acknowledged write to it or a write
# issued after it (crashwriter verify; the log spans all rounds, so data acknowledged rounds
# ago is checked too); every acknowledged snapshot and clone must exist (unless its delete
# was acknowledged), every snapshot must read as it read the first time it was seen after a
# crash, every acknowledged write to a clone must be there, and an acknowledged delete must
# have happened.
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

# snapper ROUND: snapshots of c, clones of some written with a pattern, deletes of older
# snapshots, until killed.  $slog gets "S snap" / "C clone" / "W clone off seed" / "D snap"
# once the step was acknowledged, and "d snap" before a delete is tried.
slog=$VV_TESTDIR/snaps.log
: >"$slog"
snapper()
{
    local n=0 s k old
    while :; do
        n=$((n + 1))
        s=r$1s$n
        "$VVFS" snapshot create c "$s" >/dev/null && echo "S $s" >>"$slog"
        if [ $((n % 3)) = 1 ] && "$VVFS" clone create "c@$s" "k$1n$n" >/dev/null; then
            k=k$1n$n
            echo "C $k" >>"$slog"
            "$VVIO" write "$MNT/volumes/$k" $((n * 65536)) 64K --seed "$n" --fsync &&
                echo "W $k $((n * 65536)) $n" >>"$slog"
        elif [ $((n % 3)) = 2 ]; then
            # delete this round's oldest snapshot that is not deleted and no clone holds
            old=$(awk '$1 == "S" { print $2 }' "$slog" | grep "^r$1s" | while read -r o; do
                grep -q "^[dD] $o\$" "$slog" || { echo "$o"; break; }; done)
            if [ -n "$old" ] && [ "$("$VVFS" --json clone list c | jq --arg s "$old" \
                '[.clones[] | select(.origin.snapshot == $s)] | length')" = 0 ]; then
                echo "d $old" >>"$slog"
                "$VVFS" snapshot delete c "$old" >/dev/null && echo "D $old" >>"$slog"
            fi
        fi
        sleep 0.1
    done
}

# check_snaps: what the snapper's log says, against the mounted pool
check_snaps()
{
    local t name rest sum
    while read -r t name rest; do
        case $t in
        S)
            if grep -q "^D $name\$" "$slog"; then
                [ ! -e "$MNT/snapshots/c/$name" ] || fail "snapshot $name is back after its delete"
            elif ! grep -q "^d $name\$" "$slog"; then
                [ -e "$MNT/snapshots/c/$name" ] || fail "acknowledged snapshot $name is gone"
            fi
            if [ -e "$MNT/snapshots/c/$name" ]; then
                # (the first 64 MiB: enough to catch a change, at a quarter of the reading)
                sum=$(head -c 64M "$MNT/snapshots/c/$name" | md5sum | cut -d' ' -f1)
                if [ -f "$VV_TESTDIR/sum.$name" ]; then
                    assert_eq "$sum" "$(cat "$VV_TESTDIR/sum.$name")" "snapshot $name after a crash"
                else
                    echo "$sum" >"$VV_TESTDIR/sum.$name"
                fi
            fi
            ;;
        C) [ -e "$MNT/volumes/$name" ] || fail "acknowledged clone $name is gone" ;;
        W)
            read -r off seed <<<"$rest"
            "$VVIO" verify "$MNT/volumes/$name" "$off" 64K --seed "$seed" ||
                fail "acknowledged write to clone $name is not there"
            ;;
        esac
    done <"$slog"
}

# tidy: between rounds (no crash then), delete the clones and all but the newest two
# snapshots, so that the rounds do not pile them up
tidy()
{
    local k s
    # (also the clones a kill left unacknowledged: they hold their snapshots)
    for k in $(vvfs --json clone list c | jq -r '.clones[].name'); do
        expect_exit 0 vvfs volume delete "$k"
        echo "X $k" >>"$slog"
    done
    sed -i '/^[CW] /d' "$slog"
    for s in $(ls "$MNT/snapshots/c" 2>/dev/null | sort -V | head -n -2); do
        echo "d $s" >>"$slog"
        expect_exit 0 vvfs snapshot delete c "$s"
        echo "D $s" >>"$slog"
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
    snapper "$i" >"$VV_TESTDIR/snapper.$i.out" 2>&1 &
    spid=$!
    ms=$((500 + RANDOM % 2501))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    kill -0 "$wpid" 2>/dev/null || fail "crashwriter exited early: $(cat "$VV_TESTDIR/writer.$i.out")"
    dpid=$(daemon_pid "$POOL")

    crash_pool "$POOL" "$MNT"
    kill_tree "$cpid"
    kill_tree "$spid"
    kill -KILL "$wpid" 2>/dev/null || true
    wait "$wpid" "$cpid" "$spid" 2>/dev/null || true
    issued=$(($(count I) - issued0))
    acked=$(($(count A) - acked0))
    info "killed daemon $dpid after $ms ms: $issued writes issued, $acked acknowledged," \
        "$(grep -c "created volume" "$VV_TESTDIR/churn.$i.out" || true) small volumes created;" \
        "snapshots so far $(grep -c '^S ' "$slog" || true), deleted $(grep -c '^D ' "$slog" || true);" \
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
    check_snaps
    tidy
done
[ "$(grep -c '^S ' "$slog")" -gt 0 ] || fail "no snapshot was ever acknowledged"
[ "$(grep -c '^X ' "$slog")" -gt 0 ] || fail "no clone was ever made"

acked=$(count A)
[ "$acked" -gt 0 ] || fail "no write was ever acknowledged: the test checked nothing"
info "in all: $(count I) writes issued, $acked acknowledged"

step "clean umount after the crashes; fsck; the data is still right"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
expect_exit 0 "$CRASHWRITER" verify "$vol" "$log"
check_snaps
umount_pool "$POOL" "$MNT"
