#!/usr/bin/env bash
# apiconc.sh — the control plane under concurrent requests.  Eight clients (apistress, each a
# thread with its own connections: the API serves each connection on its own thread) send
# create / resize / rename / delete / show / list, snapshot create / delete, clone create and
# group create / add / remove / snapshot / delete, replication session create / sync / delete
# (to a peer nobody listens at) on five shared names for VVFS_CONC_SECONDS
# (default 30 s); a FUSE client lists the mount and opens and writes those volumes (so that
# delete and shrink meet open volumes), while a writer fills and verifies a volume of its own.
# Every request must get a JSON answer with a status the operation can have (no 5xx but 507;
# apistress checks each), the writer must read back every byte, the daemon must stay up, the
# volumes left must agree between the API and the mount, and `vvfs fsck` must be clean after.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq curl
secs=${VVFS_CONC_SECONDS:-30}
set_timeout $((secs + 240))

new_pool --capacity 512M
expect_exit 0 vvfs volume create data 64M
pid=$(daemon_pid "$POOL")
stop=$VV_TESTDIR/stop
names=(s0 s1 s2 s3 s4)

# the FUSE client: list the directory, open a volume and write to it (either may find the
# volume gone or going: only the mount's survival is checked here, the data by the writer)
fuse_client()
{
    local n=0
    while [ ! -e "$stop" ]; do
        local a=${names[RANDOM % 5]}
        ls -l "$MNT/volumes" >/dev/null 2>&1 || true
        "$VVIO" write "$MNT/volumes/$a" 0 64K --seed "$n" >/dev/null 2>&1 || true
        n=$((n + 1))
    done
    echo "$n" >"$VV_TESTDIR/fuse.count"
}

# the writer: 1 MiB pieces of its own volume, each read back at once and all again at the end
writer()
{
    local k=0 off
    while [ ! -e "$stop" ]; do
        off=$(((k % 64) * 1048576))
        "$VVIO" write "$MNT/volumes/data" "$off" 1M --seed $((k + 1)) ||
            { echo "write $k at $off failed" >"$VV_TESTDIR/writer.bad"; return; }
        "$VVIO" verify "$MNT/volumes/data" "$off" 1M --seed $((k + 1)) >/dev/null ||
            { echo "piece $k at $off reads back wrong" >"$VV_TESTDIR/writer.bad"; return; }
        k=$((k + 1))
        [ $((k % 16)) -ne 0 ] || sync_pool
    done
    echo "$k" >"$VV_TESTDIR/writer.count"
}

stop_clients() { : >"$stop"; wait 2>/dev/null || true; }
cleanup_fn stop_clients

step "8 API clients, a FUSE client and a writer for $secs s"
fuse_client &
fpid=$!
writer &
wpid=$!
rc=0
new_key "$VV_TESTDIR/peer.key" # (replication sessions to a peer that is not there)
APISTRESS_KEY=$VV_TESTDIR/peer.key "$APISTRESS" "$POOL/vvfs.sock" "$secs" 8 "${names[@]}" \
    >"$VV_TESTDIR/stress.out" || rc=$?
: >"$stop"
wait "$fpid" || fail "the FUSE client exited with an error"
wait "$wpid" || fail "the writer exited with an error"
[ "$rc" -eq 0 ] || fail "apistress exited $rc (its first complaint is above)"

step "every request got an answer it may have"
[ ! -e "$VV_TESTDIR/writer.bad" ] || fail "writer: $(cat "$VV_TESTDIR/writer.bad")"
info "answers: $(tr '\n' ';' <"$VV_TESTDIR/stress.out")"
info "writer wrote $(cat "$VV_TESTDIR/writer.count") MiB pieces, the FUSE client made" \
    "$(cat "$VV_TESTDIR/fuse.count") rounds"
total=$(awk '$1 == "total" { print $2 }' "$VV_TESTDIR/stress.out")
assert_lt 3000 "$total" "requests in $secs s"
# every kind of answer happened: otherwise the test did not exercise what it claims
for c in 'POST 201' 'POST 409' 'DELETE 204' 'DELETE 404' 'PATCH-size 200' 'PATCH-name 200' \
    'PATCH-name 409' 'GET 404' 'POST-snap 201' 'POST-snap 409' 'DELETE-snap 204' \
    'DELETE 409' 'POST-clone 201' 'POST-clone 409' 'POST-group 201' 'PATCH-group 200' \
    'POST-gsnap 201' 'DELETE-group 204' 'POST-repl 201' 'POST-repl 409' 'POST-rsync 200' \
    'DELETE-repl 204'; do
    grep -q " $c\$" "$VV_TESTDIR/stress.out" || fail "no request answered '$c'"
done

step "the daemon is up and its volumes are consistent"
assert_eq "$(daemon_pid "$POOL")" "$pid" "daemon pid"
k=$(cat "$VV_TESTDIR/writer.count")
for ((j = k - 1; j >= 0 && j >= k - 64; j--)); do
    expect_exit 0 vvio verify "$MNT/volumes/data" $(((j % 64) * 1048576)) 1M --seed $((j + 1))
done
api_names=$(vvfs --json volume list | jq -r '.volumes[].name' | sort)
fuse_names=$(ls "$MNT/volumes" | sort)
assert_eq "$fuse_names" "$api_names" "volumes in the mount vs the API"
for v in $api_names; do
    assert_eq "$(file_size "$MNT/volumes/$v")" "$(volume_field "$v" size)" "size of $v"
    assert_eq "$(ls "$MNT/snapshots/$v" | sort | tr '\n' ' ')" \
        "$(vvfs --json snapshot list "$v" | jq -r '.snapshots[].name' | sort | tr '\n' ' ')" \
        "snapshots of $v in the mount vs the API"
done

step "fsck is clean after unmount"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
assert_eq "$(ls "$MNT/volumes" | sort)" "$api_names" "volumes after a remount"
