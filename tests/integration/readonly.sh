#!/usr/bin/env bash
# readonly.sh — when a commit fails, the pool turns read-only and says so: `vvfs status` and
# GET /v1/pool show the state, the reason and since when, the log says it once, writes fail;
# a remount brings the pool back at its last committed state, and fsck is clean.  The commit
# is made to fail by a file-size limit on the running daemon (prlimit), so LMDB's page writes
# get EFBIG.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq prlimit
set_timeout 180

export VVFS_TXG_INTERVAL_MS=600000 # nothing commits behind the test's back
new_pool --capacity 256M
expect_exit 0 vvfs volume create v 64M
vol=$MNT/volumes/v
expect_exit 0 vvio write "$vol" 0 4M --seed 1 --fsync
assert_eq "$(pool_field state)" ok "state of a healthy pool"

step "a commit fails: the pool turns read-only and says why"
# written and held open (a close that wrote would commit), not yet committed
"$VVIO" write "$vol" 0 4M --seed 2 --hold >"$VV_TESTDIR/hold.out" 2>&1 &
holder=$!
cleanup_fn kill "$holder"
for _ in $(seq 1 100); do grep -q held "$VV_TESTDIR/hold.out" 2>/dev/null && break; sleep 0.1; done
grep -q held "$VV_TESTDIR/hold.out" || fail "vvio --hold did not finish writing"
[ "$(pool_field dirty_bytes)" -gt 0 ] || fail "the held write is already committed"
pid=$(daemon_pid "$POOL")
expect_exit 0 prlimit --pid "$pid" --fsize=8192:unlimited
expect_exit 1 vvfs sync
expect_exit 0 prlimit --pid "$pid" --fsize=unlimited:unlimited
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died when its commit failed"
assert_eq "$(pool_field state)" read-only "state after a failed commit"
assert_contains "$(pool_field state_reason)" "File too large" "state_reason"
since=$(pool_field state_since)
[ "$since" -gt $(($(date +%s) - 120)) ] || fail "state_since $since is not recent"
expect_exit 0 vvfs status
assert_contains "$OUT" "read-only since" "vvfs status of a read-only pool"
grep -q "commit failed (File too large)" "$POOL/vvfs.log" || fail "the log does not say why"
expect_exit 1 vvio write "$vol" 8M 4096 --seed 3 --fsync
expect_exit 0 vvfs volume list

kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true

step "a remount brings it back at its last committed state"
timeout 60 "$VVFS" umount "$MNT" >/dev/null 2>&1 || info "umount reported the failed commit"
wait_daemons_gone "$POOL" 20 || fail "the daemon did not exit"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
assert_eq "$(pool_field state)" ok "state after the remount"
expect_exit 0 vvio verify "$vol" 0 4M --seed 1
umount_pool "$POOL" "$MNT"
info PASS
