#!/usr/bin/env bash
# group.sh — consistency groups through the CLI, the API and the mount: a group of two
# volumes is snapshotted as one point in time (every member's snapshot of one gen, all in
# the snapshots/ directories), restored as a whole (refused while a member is open), changed
# (add, remove) and deleted (its volumes and snapshots stay); a volume is in one group at
# most; refusals are clear errors that change nothing; groups survive a remount; fsck is clean.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq curl
set_timeout 300

new_pool --capacity 1G
for v in db logs spare; do expect_exit 0 vvfs volume create $v 32M; done
db=$MNT/volumes/db
logs=$MNT/volumes/logs

step "a group of two volumes, snapshotted together"
expect_exit 0 vvfs group create app db logs
assert_contains "$OUT" "created group app (2 volumes)" "group create"
assert_eq "$(volume_field db group)" app "group of db"
assert_eq "$(vvfs --json volume show spare | jq -r .group)" null "group of spare"
expect_exit 0 vvio write "$db" 0 8M --seed 1
expect_exit 0 vvio write "$logs" 0 8M --seed 2
expect_exit 0 vvfs group snapshot app nightly
expect_exit 0 vvio write "$db" 0 8M --seed 3
expect_exit 0 vvio write "$logs" 0 8M --seed 4
gen_db=$(vvfs --json snapshot show db nightly | jq .gen)
gen_logs=$(vvfs --json snapshot show logs nightly | jq .gen)
assert_eq "$gen_db" "$gen_logs" "the members' snapshots are of one gen"
expect_exit 0 vvio verify "$MNT/snapshots/db/nightly" 0 8M --seed 1
expect_exit 0 vvio verify "$MNT/snapshots/logs/nightly" 0 8M --seed 2
assert_eq "$(vvfs --json group show app | jq -c '[.volumes, .snapshots]')" \
    '[["db","logs"],["nightly"]]' "group show"
expect_exit 0 vvfs group list
assert_contains "$OUT" "db logs" "group list"

step "refusals change nothing"
before=$(vvfs --json group list | jq -S .)
expect_exit 1 vvfs group create other db
assert_contains "$OUT" "is in group 'app'" "a volume in two groups"
expect_exit 1 vvfs group create app spare
assert_contains "$OUT" "already exists" "a group name taken"
expect_exit 1 vvfs group add app nosuch
expect_exit 1 vvfs group add app spare db
assert_contains "$OUT" "already" "adding a member again (and spare with it)"
expect_exit 1 vvfs group remove app spare
assert_contains "$OUT" "not in group" "removing a volume that is not a member"
expect_exit 1 vvfs group snapshot app nightly
assert_contains "$OUT" "already has a snapshot 'nightly'" "a group snapshot name taken"
expect_exit 2 vvfs group create 'a/b'
expect_exit 2 vvfs group add app 'x y'
expect_exit 2 vvfs group snapshot app 'n/1'
expect_exit 1 vvfs group show nosuch
assert_eq "$(code -X POST -d '{"name":"x","volumes":"db"}' http://localhost/v1/groups)" 400 \
    "API: volumes not an array"
assert_eq "$(code -X POST -d '{"name":"x","members":[]}' http://localhost/v1/groups)" 400 \
    "API: an unknown field"
assert_eq "$(code -X PATCH -d '{}' http://localhost/v1/groups/app)" 400 "API: empty change"
assert_eq "$(code -X POST -d '{"name":"y","volumes":["db"]}' http://localhost/v1/groups)" 409 \
    "API: a member of another group"
assert_eq "$(code http://localhost/v1/groups/a%2Fb)" 400 "API: a bad group name"
assert_contains "$(cat "$VV_TESTDIR/body")" "invalid group name" "API message for a bad name"
assert_eq "$(code http://localhost/v1/groups/nosuch)" 404 "API: no such group"
assert_eq "$(vvfs --json group list | jq -S .)" "$before" "groups after the refusals"
assert_eq "$(vvfs --json snapshot list | jq '.snapshots | length')" 2 "snapshots after the refusals"

step "restore the group: refused while a member is open, then every member is back"
exec 7<"$logs"
expect_exit 1 vvfs group restore app nightly
assert_contains "$OUT" "open" "restoring a group with an open member"
exec 7<&-
expect_exit 0 vvio verify "$db" 0 8M --seed 3 # (the refusal changed nothing)
expect_exit 0 vvfs group restore app nightly
expect_exit 0 vvio verify "$db" 0 8M --seed 1
expect_exit 0 vvio verify "$logs" 0 8M --seed 2
expect_exit 0 vvfs snapshot create db solo
expect_exit 0 vvio write "$logs" 0 1M --seed 5
expect_exit 0 vvfs snapshot create logs solo
expect_exit 1 vvfs group restore app solo
assert_contains "$OUT" "not a group snapshot" "restoring from snapshots taken apart"

step "membership changes; groups survive a remount"
expect_exit 0 vvfs group add app spare
expect_exit 0 vvfs group remove app logs
assert_eq "$(vvfs --json group show app | jq -c .volumes)" '["db","spare"]' "members"
assert_eq "$(api PATCH /v1/groups/app '{"add":["logs"],"remove":["spare"]}' | tail -n 1)" 200 \
    "API: add and remove at once"
assert_eq "$(vvfs --json group show app | jq -c .volumes)" '["db","logs"]' "members after PATCH"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
mount_pool "$POOL" "$MNT"
assert_eq "$(vvfs --json group show app | jq -c '[.volumes, .snapshots]')" \
    '[["db","logs"],["nightly"]]' "the group after a remount"

step "a deleted volume leaves its group; a deleted group leaves its volumes"
expect_exit 0 vvfs volume delete logs --recursive
assert_eq "$(vvfs --json group show app | jq -c .volumes)" '["db"]' "members after a delete"
expect_exit 0 vvfs group delete app
expect_exit 0 vvfs volume show db
assert_contains "$OUT" "group:       -" "db after its group was deleted"
assert_eq "$(vvfs --json snapshot list db | jq -r '[.snapshots[].name] | join(" ")')" \
    "nightly solo" "db keeps its snapshots"
assert_eq "$(vvfs --json group list | jq '.groups | length')" 0 "groups left"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
