#!/usr/bin/env bash
# replication.sh — two daemons on this machine (two pools, a loopback port), through the CLI
# and the mounts: a session replicates a volume; after each sync the replica's file on the
# destination reads exactly as the source volume did (md5); the replica refuses writes
# (EROFS) and users' changes; both sides' --json status name the same point; a transfer cut
# by kill -9 of the destination leaves the replica at its previous point and the next attempt
# resumes from the destination's checkpoint; user snapshots travel (same names, same md5),
# and so does a named point in time (sync --pit); replication's own show with --all only,
# one made before a cut too; kill -9 of the source: the session resumes by itself after the
# remount; a group session replicates its members; continuous mode follows each write; a peer with another key is refused,
# logged, and gets nothing; deleting the sessions gives back an ordinary volume; fsck is clean on both.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq md5sum
set_timeout 420

# staged deltas checkpoint every 16 MiB here (not 256), so a cut transfer resumes mid-way
export VVFS_REPL_CHECKPOINT_MB=16

port=$(free_port)
key=$VV_TESTDIR/peer.key
new_key "$key"

new_pool --capacity 2G
A=$POOL
MA=$MNT
B=$VV_TESTDIR/poolB
MB=$VV_TESTDIR/mntB
expect_exit 0 vvfs init "$B" --capacity 2G
mount_pool "$B" "$MB" --listen "127.0.0.1:$port" --key "$key"
grep -q "listening for replication peers on 127.0.0.1:$port" "$B/vvfs.log" ||
    fail "the destination does not say that it listens"

a() { "$VVFS" --pool "$A" "$@"; }
b() { "$VVFS" --pool "$B" "$@"; }
md5() { md5sum <"$1" | cut -d' ' -f1; }
sjson() { "$VVFS" --pool "$1" --json replication status dr; }

step "a first (full) sync: the replica reads as the source"
expect_exit 0 a volume create data 256M
expect_exit 0 vvio write "$MA/volumes/data" 0 40M --seed 1
expect_exit 0 vvio write "$MA/volumes/data" 200M 1M --seed 2
# (at 32 MB/s, so that the kills below come before the end of the transfer they cut)
expect_exit 0 a replication create dr --volume data --peer "127.0.0.1:$port" --key "$key" \
    --mode periodic --rpo 1h --bwlimit 32M
expect_exit 0 a replication sync dr --wait --timeout 120
assert_eq "$(sjson "$A" | jq -r .state)" ok "source state after the first sync"
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica after the first sync"
sent=$(sjson "$A" | jq .bytes_sent)
assert_lt "$sent" $((44 << 20)) "a thin 256 MiB volume with 41 MiB written sends ~41 MiB"
assert_lt $((40 << 20)) "$sent" "the data was sent"
assert_eq "$(sjson "$B" | jq -r '.role, .state')" "$(printf 'destination\nok')" "destination"
assert_eq "$(sjson "$B" | jq .point.gen)" "$(sjson "$A" | jq .point.gen)" \
    "both sides name the same point"
# the last transfer's duration and average rate, which --bwlimit 32M bounds
sjson "$A" | jq -e '.transfer.seconds > 0 and .transfer.rate > 0 and .transfer.rate < 36000000' \
    >/dev/null || fail "the last transfer's seconds and rate: $(sjson "$A" | jq -c .transfer)"
ls -a "$MB/snapshots/data" | grep -q '^\.' && ls -a "$MB/snapshots/data" | grep -q '^\.p-' &&
    fail "the replica's points show in snapshots/"
ls "$MA/snapshots/data" | grep -q . && fail "the source's replication snapshot shows"
expect_exit 0 a snapshot list data
[[ "$OUT" != *".r-"* ]] || fail "snapshot list shows the replication snapshot: $OUT"

step "the replica refuses writes and changes"
if dd if=/dev/zero of="$MB/volumes/data" bs=4k count=1 conv=notrunc 2>"$VV_TESTDIR/dd.err"; then
    fail "a write to the replica's file succeeded"
fi
assert_contains "$(cat "$VV_TESTDIR/dd.err")" "Read-only file system" "write to the replica"
expect_exit 1 b volume delete data
assert_contains "$OUT" "replica" "delete of the replica"
expect_exit 1 b volume resize data 512M
expect_exit 1 b snapshot create data mine
expect_exit 1 b replication sync dr
expect_exit 1 b replication pause dr

step "an incremental sync sends what changed"
expect_exit 0 vvio write "$MA/volumes/data" 100M 1M --seed 3
expect_exit 0 a replication sync dr --wait --timeout 120
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica after an increment"
sent2=$(sjson "$A" | jq .bytes_sent)
assert_lt $((sent2 - sent)) $((1100 << 10)) "1 MiB changed: the sync sent about 1 MiB"
point_md5=$(md5 "$MA/volumes/data")

step "snapshots travel: the destination has them, under their names, with their content"
expect_exit 0 a snapshot create data monday
expect_exit 0 vvio write "$MA/volumes/data" 2M 1M --seed 7
expect_exit 0 a replication sync dr --wait --timeout 120
assert_eq "$(md5 "$MB/snapshots/data/monday")" "$(md5 "$MA/snapshots/data/monday")" \
    "a snapshot that travelled"
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica with a snapshot"
# a named point in time (VASA's SyncReplicationGroup): a snapshot now, carried by this sync
expect_exit 0 vvio write "$MA/volumes/data" 3M 1M --seed 14
expect_exit 0 a replication sync dr --pit before-migration --wait --timeout 60
assert_eq "$(md5 "$MB/snapshots/data/before-migration")" \
    "$(md5 "$MA/snapshots/data/before-migration")" "the named point in time on the replica"
expect_exit 1 a replication sync dr --pit before-migration
assert_contains "$OUT" "already has a snapshot" "a point in time whose name is taken"
expect_exit 2 a replication sync dr --pit 'a/b'
# replication's own snapshots: hidden, unless asked for
assert_eq "$(a --json snapshot list data | jq -r '[.snapshots[].name] | join(" ")')" \
    "monday before-migration" "the users' snapshots"
a --json snapshot list data --all | jq -r '.snapshots[].name' | grep -q '^\.r-' ||
    fail "snapshot list --all does not show the replication snapshot"
point_md5=$(md5 "$MA/volumes/data")

step "kill -9 of the destination mid-transfer: the replica keeps its point, the retry resumes"
# two deltas in this sync: to snapshot tuesday (80 MiB), then to now (80 MiB more); the
# cut comes in the second, so the retry skips the first and resumes the second
expect_exit 0 vvio write "$MA/volumes/data" 0 80M --seed 4
expect_exit 0 a snapshot create data tuesday
expect_exit 0 vvio write "$MA/volumes/data" 80M 80M --seed 8
expect_exit 0 a replication sync dr
wait_transfer "$B" dr $((120 << 20)) # (received: the destination has checkpointed)
crash_pool "$B" "$MB"
expect_exit 0 a replication pause dr
mount_pool "$B" "$MB" --listen "127.0.0.1:$port" --key "$key"
assert_eq "$(md5 "$MB/volumes/data")" "$point_md5" "the replica after the cut: its old point"
expect_exit 0 a replication resume dr
expect_exit 0 a replication sync dr --wait --timeout 120
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica after the resumed sync"
grep -q "resuming the delta" "$B/vvfs.log" || fail "the sync started over instead of resuming"
assert_eq "$(md5 "$MB/snapshots/data/tuesday")" "$(md5 "$MA/snapshots/data/tuesday")" \
    "the snapshot that travelled before the cut"

step "kill -9 of the source mid-transfer: the session resumes by itself"
expect_exit 0 vvio write "$MA/volumes/data" 0 160M --seed 5
syncs=$(sjson "$A" | jq .syncs)
expect_exit 0 a replication sync dr
wait_transfer "$B" dr $((40 << 20))
crash_pool "$A" "$MA"
mount_pool "$A" "$MA"
end=$((SECONDS + 120))
until [ "$(sjson "$A" | jq .syncs)" -gt "$syncs" ]; do
    [ $SECONDS -lt $end ] || fail "the session did not complete a sync within 120 s of the remount"
    sleep 0.2
done
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica after the source's crash"

step "a group session: every member at one point in time"
expect_exit 0 a volume create g1 32M
expect_exit 0 a volume create g2 32M
expect_exit 0 a group create app g1 g2
expect_exit 0 vvio write "$MA/volumes/g1" 0 4M --seed 9
expect_exit 0 vvio write "$MA/volumes/g2" 0 4M --seed 10
expect_exit 2 a replication create app-dr --group app --peer "127.0.0.1:$port" --key "$key" \
    --compress lz4
expect_exit 2 a replication create app-dr --group app --peer "127.0.0.1:$port" --key "$key" \
    --bwlimit 1K
expect_exit 0 a replication create app-dr --group app --peer "127.0.0.1:$port" --key "$key" \
    --compress zstd --bwlimit 100M
assert_contains "$OUT" "group app" "create message"
assert_eq "$("$VVFS" --pool "$A" --json replication status app-dr | jq -r '.compress, .bwlimit')" \
    "$(printf 'zstd\n%s' $((100 << 20)))" "compression and limit"
expect_exit 0 a replication sync app-dr --wait --timeout 60
assert_eq "$(md5 "$MB/volumes/g1")" "$(md5 "$MA/volumes/g1")" "group member g1"
assert_eq "$(md5 "$MB/volumes/g2")" "$(md5 "$MA/volumes/g2")" "group member g2"
assert_eq "$("$VVFS" --pool "$A" --json replication status app-dr | jq -r .group)" app "group"
expect_exit 1 a replication create again --group app --peer "127.0.0.1:$port" --key "$key"
assert_contains "$OUT" "already" "a group replicated twice"
expect_exit 2 a replication create both --group app --volume g1 --peer "127.0.0.1:$port" \
    --key "$key"
expect_exit 0 a replication delete app-dr
expect_exit 0 b replication delete app-dr

step "continuous mode: each change follows by itself"
expect_exit 0 a volume create cont 32M
expect_exit 0 a replication create cont-dr --volume cont --peer "127.0.0.1:$port" --key "$key" \
    --mode continuous
for seed in 11 12 13; do
    expect_exit 0 vvio write "$MA/volumes/cont" $((seed % 4))M 1M --seed $seed --fsync
    want=$(md5 "$MA/volumes/cont")
    end=$((SECONDS + 30))
    until [ -e "$MB/volumes/cont" ] && [ "$(md5 "$MB/volumes/cont" 2>/dev/null)" = "$want" ]; do
        [ $SECONDS -lt $end ] || fail "a write did not reach the replica within 30 s by itself"
        sleep 0.2
    done
done
syncs=$("$VVFS" --pool "$A" --json replication status cont-dr | jq .syncs)
sleep 2
assert_eq "$("$VVFS" --pool "$A" --json replication status cont-dr | jq .syncs)" "$syncs" \
    "no sync while nothing changes"
expect_exit 0 a replication delete cont-dr
expect_exit 0 b replication delete cont-dr

step "a peer with another key is refused, and gets nothing"
C=$VV_TESTDIR/poolC
MC=$VV_TESTDIR/mntC
port2=$(free_port)
new_key "$VV_TESTDIR/other.key"
expect_exit 0 vvfs init "$C" --capacity 1G
mount_pool "$C" "$MC" --listen "127.0.0.1:$port2" --key "$VV_TESTDIR/other.key"
expect_exit 0 a volume create other 16M
expect_exit 0 a replication create wrong --volume other --peer "127.0.0.1:$port2" --key "$key"
expect_exit 1 a replication sync wrong --wait --timeout 30
assert_contains "$OUT" "key" "the refusal names the key"
assert_eq "$("$VVFS" --pool "$A" --json replication status wrong | jq -r .state)" error "state"
grep -q "refused a connection" "$C/vvfs.log" || fail "the refusal is not in the peer's log"
assert_eq "$("$VVFS" --pool "$C" --json volume list | jq '.volumes | length')" 0 "C's volumes"
expect_exit 0 a replication delete wrong

step "the sessions survive a clean remount of both (the destination's settings from its vvfs.conf); deleting them gives back a volume"
umount_pool "$B" "$MB"
umount_pool "$A" "$MA"
# this time the destination's listen address and key come from its pool's vvfs.conf
printf '# replication peers\nlisten = 127.0.0.1:%s\nkey = %s\n' "$port" "$key" >"$B/vvfs.conf"
mount_pool "$B" "$MB"
[ "$(grep -c "listening for replication peers on 127.0.0.1:$port" "$B/vvfs.log")" -ge 2 ] ||
    fail "the destination does not listen as its vvfs.conf says"
mount_pool "$A" "$MA"
assert_eq "$(sjson "$B" | jq .point.gen)" "$(sjson "$A" | jq .point.gen)" "points after remount"
expect_exit 0 a replication list
assert_contains "$OUT" "dr" "replication list"
expect_exit 0 a replication delete dr
expect_exit 0 b replication delete dr
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "the released volume"
expect_exit 0 vvio write "$MB/volumes/data" 0 1M --seed 6
expect_exit 0 a snapshot list data
assert_eq "$(a --json snapshot list data | jq -r '[.snapshots[].name] | join(" ")')" \
    "monday before-migration tuesday" "the source's replication snapshots are gone, the users' stay"
assert_eq "$(ls "$MB/snapshots/data" | tr '\n' ' ')" "before-migration monday tuesday " \
    "the released volume keeps the snapshots that travelled"

umount_pool "$C" "$MC"
umount_pool "$B" "$MB"
echo "listen = 127.0.0.1:$port" >"$B/vvfs.conf"
echo "colour = blue" >>"$B/vvfs.conf"
expect_exit 1 vvfs mount "$B" "$MB"
assert_contains "$OUT" "vvfs.conf:2: unknown setting" "a bad vvfs.conf"
umount_pool "$A" "$MA"
expect_exit 0 vvfs fsck "$A"
expect_exit 0 vvfs fsck "$B"
