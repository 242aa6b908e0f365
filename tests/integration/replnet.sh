#!/usr/bin/env bash
# replnet.sh — replication over a link that a test can cut: the destination daemon runs in a
# network namespace of its own, reached through a veth pair (the source stays in this one).
# A sync is started, the link is taken down in the middle of the transfer (ip link set
# down), the source reports the error and keeps retrying; the link comes back, the sync
# resumes from the destination's checkpoint (not from the start) and the replica then reads
# as the source (md5); while the link was down the replica kept its previous point.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq md5sum ip nsenter
set_timeout 300

export VVFS_REPL_CHECKPOINT_MB=16
ns=vvfs-repl-$$
va=vvra$$
vb=vvrb$$
net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
cleanup_fn ip netns del "$ns"
ip netns add "$ns" || { info "SKIP: cannot make a network namespace"; exit 77; }
cleanup_fn ip link del "$va"
ip link add "$va" type veth peer name "$vb" || fail "cannot make a veth pair"
ip link set "$vb" netns "$ns"
ip addr add "$net.1/24" dev "$va"
ip link set "$va" up
ip -n "$ns" addr add "$net.2/24" dev "$vb"
ip -n "$ns" link set "$vb" up
ip -n "$ns" link set lo up

port=$(free_port)
key=$VV_TESTDIR/peer.key
new_key "$key"

new_pool --capacity 2G
A=$POOL
MA=$MNT
B=$VV_TESTDIR/poolB
MB=$VV_TESTDIR/mntB
expect_exit 0 vvfs init "$B" --capacity 2G
# the destination's daemon in the namespace (its network only: mounts stay shared)
innet=$VV_TESTDIR/vvfs-in-ns
printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %q "$@"\n' "$ns" "$VVFS" >"$innet"
chmod +x "$innet"
VVFS=$innet mount_pool "$B" "$MB" --listen "$net.2:$port" --key "$key"

a() { "$VVFS" --pool "$A" "$@"; }
md5() { md5sum <"$1" | cut -d' ' -f1; }
sjson() { "$VVFS" --pool "$1" --json replication status dr; }

step "a first sync through the veth pair"
expect_exit 0 a volume create data 512M
expect_exit 0 vvio write "$MA/volumes/data" 0 16M --seed 1
expect_exit 0 a replication create dr --volume data --peer "$net.2:$port" --key "$key" --rpo 1h
expect_exit 0 a replication sync dr --wait --timeout 60
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica after the first sync"
point_md5=$(md5 "$MA/volumes/data")

step "the link goes down in the middle of a transfer"
expect_exit 0 vvio write "$MA/volumes/data" 0 300M --seed 2
expect_exit 0 a replication sync dr
wait_transfer "$B" dr $((64 << 20))
ip link set "$va" down
end=$((SECONDS + 90))
until [ "$(sjson "$A" | jq -r .state)" = error ]; do
    [ $SECONDS -lt $end ] || fail "the source did not notice the cut link within 90 s"
    sleep 0.5
done
info "source: $(sjson "$A" | jq -r .error)"
assert_eq "$(md5 "$MB/volumes/data")" "$point_md5" "the replica while the link is down"

step "the link comes back: the sync resumes from the checkpoint"
ip link set "$va" up
expect_exit 0 a replication sync dr --wait --timeout 120
assert_eq "$(md5 "$MB/volumes/data")" "$(md5 "$MA/volumes/data")" "replica after the resumed sync"
grep -q "resuming the delta" "$B/vvfs.log" || fail "the sync started over instead of resuming"
assert_eq "$(sjson "$B" | jq .point.gen)" "$(sjson "$A" | jq .point.gen)" "both sides' point"

expect_exit 0 a replication delete dr
umount_pool "$B" "$MB"
umount_pool "$A" "$MA"
expect_exit 0 vvfs fsck "$A"
expect_exit 0 vvfs fsck "$B"
