#!/usr/bin/env bash
# badinput.sh — bad input is refused cleanly and changes nothing: CLI usage errors exit 2,
# failed operations exit 1; the HTTP API answers 400/404/405/409 with a JSON error body; the
# volume list is the same before and after; the control socket is mode 0600.  Replication is
# covered as far as the CLI and the API check it themselves: no session is ever created (a
# create that passed their checks would need a peer).
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq curl
set_timeout 240

new_pool --capacity 1G --extent-size 64K
expect_exit 0 vvfs volume create good 1G
expect_exit 0 vvfs volume create other 64M
expect_exit 0 vvio write "$MNT/volumes/good" 4095 10000 --seed 1 --fsync

snapshot()
{
    "$VVFS" --pool "$POOL" --json volume list | jq -S '(.volumes? // .) | map({name, size, id})'
    ls -A "$MNT/volumes"
}
before=$(snapshot)
info "state: $(tr '\n' ' ' <<<"$before")"

step "control socket"
[ -S "$POOL/vvfs.sock" ] || fail "$POOL/vvfs.sock is not a socket"
assert_eq "$(stat -c %a "$POOL/vvfs.sock")" 600 "mode of vvfs.sock"

step "CLI usage errors exit 2"
name70=$(printf 'a%.0s' {1..70})
name65=$(printf 'b%.0s' {1..65})
name64=$(printf 'c%.0s' {1..64})
expect_exit 2 vvfs
expect_exit 2 vvfs frobnicate
expect_exit 2 vvfs volume
expect_exit 2 vvfs volume frobnicate
expect_exit 2 vvfs volume create
expect_exit 2 vvfs volume create onlyname
expect_exit 2 vvfs volume create x 1G extra-arg
expect_exit 2 vvfs --pool
expect_exit 2 vvfs --frobnicate status
for size in 12Q -1G 1.5G "" G 1GG " 1G" 0x; do
    expect_exit 2 vvfs volume create sz "$size"
done
for name in ../x "" "$name70" "$name65" "völ" "a/b" ".hidden" "-x" "_x" "a b" "x;y" $'a\nb'; do
    expect_exit 2 vvfs volume create "$name" 1G
done
expect_exit 2 vvfs volume resize good 12Q
expect_exit 2 vvfs volume resize good
expect_exit 2 vvfs volume rename good ../x
expect_exit 2 vvfs volume rename good "$name70"
expect_exit 2 vvfs volume rename good
expect_exit 2 vvfs volume show
expect_exit 2 vvfs volume delete
expect_exit 2 vvfs init
expect_exit 2 vvfs init "$VV_TESTDIR/newpool" --capacity 12Q
expect_exit 2 vvfs init "$VV_TESTDIR/newpool" --extent-size banana
[ ! -e "$VV_TESTDIR/newpool/meta.mdb" ] || fail "init with bad arguments created a pool"
expect_exit 2 vvfs mount
expect_exit 2 vvfs mount "$POOL"
expect_exit 2 vvfs umount
expect_exit 2 vvfs fsck
assert_eq "$(snapshot)" "$before" "state after usage errors"

step "replication: CLI usage errors exit 2"
key=$VV_TESTDIR/peer.key
"$VVFS" key generate >"$key" || fail "vvfs key generate failed"
peer=127.0.0.1:7700
create_ok=(--volume good --peer "$peer" --key "$key")
expect_exit 2 vvfs replication
expect_exit 2 vvfs replication frobnicate
expect_exit 2 vvfs replication create
expect_exit 2 vvfs replication create r1 extra-arg "${create_ok[@]}"
for name in ../x "" "$name65" "a b" ".hidden" "völ"; do
    expect_exit 2 vvfs replication create "$name" "${create_ok[@]}"
    for op in status sync pause resume delete; do
        expect_exit 2 vvfs replication "$op" "$name"
    done
done
expect_exit 2 vvfs replication create r1 --peer "$peer" --key "$key"
assert_contains "$OUT" --volume "error for a create without --volume"
expect_exit 2 vvfs replication create r1 --volume ../x --peer "$peer" --key "$key"
expect_exit 2 vvfs replication create r1 --volume good --key "$key"
expect_exit 2 vvfs replication create r1 --volume good --peer "$peer"
for p in nohost host: :7700 host:0 host:65536 host:port ::1:7700 '[::1]7700' '[::1]' 'a b:1'; do
    expect_exit 2 vvfs replication create r1 --volume good --peer "$p" --key "$key"
done
for mode in hourly "" Periodic; do
    expect_exit 2 vvfs replication create r1 "${create_ok[@]}" --mode "$mode"
done
for rpo in 5x 0 -1 8d "" 1.5h 5M 1h1h 99999999999999999999; do
    expect_exit 2 vvfs replication create r1 "${create_ok[@]}" --rpo "$rpo"
done
expect_exit 2 vvfs replication list --volume good
expect_exit 2 vvfs replication list extra-arg
expect_exit 2 vvfs replication sync r1 --timeout 10
for t in 0 3601 2h banana; do
    expect_exit 2 vvfs replication sync r1 --wait --timeout "$t"
done
expect_exit 2 vvfs replication status
expect_exit 2 vvfs replication delete
expect_exit 2 vvfs volume list --peer "$peer"
expect_exit 2 vvfs mount "$POOL" "$MNT" --listen nope
expect_exit 2 vvfs mount "$POOL" "$MNT" --listen 127.0.0.1:99999
expect_exit 2 vvfs mount "$POOL" "$MNT" --key "$key"
# well-formed: past the CLI's checks, refused because the pool is mounted already
expect_exit 1 vvfs mount "$POOL" "$MNT" --listen '[::1]:7700' --key "$key"
assert_contains "$OUT" "already mounted" "mount with a good --listen"
assert_eq "$(snapshot)" "$before" "state after replication usage errors"

step "valid names at the limits work"
expect_exit 0 vvfs volume create "$name64" 4K
expect_exit 0 vvfs volume create "A1._-z" 4K
[ -f "$MNT/volumes/$name64" ] || fail "64-character volume has no file"
expect_exit 0 vvfs volume delete "$name64"
expect_exit 0 vvfs volume delete "A1._-z"
assert_eq "$(snapshot)" "$before" "state after creating and deleting limit names"

step "failed operations exit 1"
expect_exit 1 vvfs volume show nope
assert_contains "$OUT" nope "error for show of a missing volume"
expect_exit 1 vvfs volume delete nope
expect_exit 1 vvfs volume resize nope 1G
expect_exit 1 vvfs volume rename nope nope2
expect_exit 1 vvfs volume create good 1G
assert_contains "$OUT" exists "error for a duplicate create"
expect_exit 1 vvfs volume create good 2G
expect_exit 1 vvfs volume rename good other
expect_exit 1 vvfs --pool "$VV_TESTDIR/no-such-pool" status
expect_exit 1 vvfs --pool "$VV_TESTDIR/no-such-pool" volume list
# parsable but unacceptable sizes: the CLI may refuse them itself (2) or pass the daemon's
# refusal on (1); either way nothing may change
expect_exit_1_or_2()
{
    local rc=0
    "$@" >/dev/null 2>&1 || rc=$?
    case $rc in
    1 | 2) info "ok (exit $rc): $*" ;;
    *) fail "$*: expected exit 1 or 2, got $rc" ;;
    esac
}
for size in 0 1000 4097 2P; do
    expect_exit_1_or_2 vvfs volume create badsize "$size"
done
expect_exit_1_or_2 vvfs volume resize good 4097
expect_exit_1_or_2 vvfs volume resize good 0
assert_eq "$(snapshot)" "$before" "state after failed operations"
expect_exit 0 vvio verify "$MNT/volumes/good" 4095 10000 --seed 1

step "HTTP API errors"
# api_expect STATUS METHOD PATH [BODY]: the status must match and, for errors, the body must be
# {"error":{"code":"<string>","message":"<non-empty string>"}}.
api_expect()
{
    local want=$1 resp code body
    shift
    resp=$(api "$@") || fail "curl $* failed"
    code=${resp##*$'\n'}
    body=${resp%$'\n'*}
    [ "$code" = "$want" ] || fail "API $1 $2: expected HTTP $want, got $code: $body"
    if [ "$want" -ge 400 ]; then
        jq -e '(.error.code | type == "string" and length > 0) and
               (.error.message | type == "string" and length > 0)' <<<"$body" >/dev/null ||
            fail "API $1 $2 -> $code: body is not a JSON error: $body"
    fi
    info "ok: $1 $2 -> $code $(head -c 200 <<<"$body")"
}
api_expect 200 GET /v1/volumes
api_expect 400 POST /v1/volumes '{bad json'
api_expect 400 POST /v1/volumes ''
api_expect 400 POST /v1/volumes '[]'
api_expect 400 POST /v1/volumes '{"name":"x"}'
api_expect 400 POST /v1/volumes '{"size":"1G"}'
api_expect 400 POST /v1/volumes '{"name":"../x","size":"1G"}'
api_expect 400 POST /v1/volumes "{\"name\":\"$name70\",\"size\":\"1G\"}"
api_expect 400 POST /v1/volumes '{"name":"x","size":"12Q"}'
api_expect 400 POST /v1/volumes '{"name":"x","size":-5}'
api_expect 400 POST /v1/volumes '{"name":"x","size":1000}'
api_expect 400 POST /v1/volumes '{"name":"x","size":true}'
api_expect 400 POST /v1/volumes '{"name":17,"size":"1G"}'
api_expect 409 POST /v1/volumes '{"name":"good","size":"1G"}'
api_expect 404 GET /v1/volumes/nope
api_expect 404 DELETE /v1/volumes/nope
api_expect 404 PATCH /v1/volumes/nope '{"size":"2G"}'
api_expect 400 PATCH /v1/volumes/good '{bad json'
api_expect 400 PATCH /v1/volumes/good '{"size":"12Q"}'
api_expect 400 PATCH /v1/volumes/good '{"name":"../x"}'
api_expect 409 PATCH /v1/volumes/good '{"name":"other"}'
api_expect 404 GET /v1/nothing-here
api_expect 404 GET /v2/volumes
api_expect 405 PUT /v1/volumes '{}'
api_expect 405 DELETE /v1/pool
# a body far larger than any request needs: refused, the daemon survives
big=$VV_TESTDIR/big.json
{
    printf '{"name":"x","size":"1G","pad":"'
    head -c $((4 << 20)) /dev/zero | tr '\0' a
    printf '"}'
} >"$big"
resp=$(curl -s -S --max-time 20 --unix-socket "$POOL/vvfs.sock" -X POST \
    -H 'Content-Type: application/json' --data-binary @"$big" -w '\n%{http_code}\n' \
    http://localhost/v1/volumes) || true
code=${resp##*$'\n'}
case $code in
400 | 413) info "ok: 4 MiB body -> $code" ;;
*) fail "4 MiB request body: expected 400 or 413, got '$code'" ;;
esac
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died"
assert_eq "$(snapshot)" "$before" "state after API errors"

step "replication: failed operations exit 1, HTTP API errors"
expect_exit 0 vvfs replication list
assert_eq "$("$VVFS" --json replication list | jq -r '.sessions | type')" array "sessions"
for op in status sync pause resume delete; do
    expect_exit 1 vvfs replication "$op" nope
    assert_contains "$OUT" nope "error for $op of a missing session"
done
expect_exit 1 vvfs replication sync nope --wait --timeout 5s
# repl_body JQ: a create body that passes every check, changed by the jq expression JQ
repl_body()
{
    jq -cn --arg key "$key" --arg peer "$peer" \
        "{name: \"r1\", volume: \"good\", peer: \$peer, key: \$key} | $1"
}
api_expect 200 GET /v1/replication
api_expect 400 POST /v1/replication '{bad json'
api_expect 400 POST /v1/replication ''
api_expect 400 POST /v1/replication '[]'
api_expect 400 POST /v1/replication '{}'
api_expect 400 POST /v1/replication "$(repl_body '.frobnicate = 1')"
for field in name volume peer key; do
    api_expect 400 POST /v1/replication "$(repl_body "del(.$field)")"
done
for change in '.name = "../x"' '.name = 17' ".name = \"$name65\"" '.volume = "a b"' \
    '.volume = null' '.peer = "nohost"' '.peer = "::1:7700"' '.peer = "h:0"' '.peer = ""' \
    '.key = "relative.key"' '.key = ""' '.key = 5' '.mode = "hourly"' '.mode = 1' \
    '.rpo = "5x"' '.rpo = 0' '.rpo = -1' '.rpo = "8d"' '.rpo = 604801' '.rpo = true' \
    '.rpo = "1.5h"' '.rpo = 1.5' '.rpo = "99999999999999999999"'; do
    api_expect 400 POST /v1/replication "$(repl_body "$change")"
done
api_expect 400 POST '/v1/replication?force=1' "$(repl_body .)"
api_expect 404 GET /v1/replication/nope
api_expect 400 GET /v1/replication/..%2Fx
api_expect 400 GET "/v1/replication/$name65"
api_expect 404 DELETE /v1/replication/nope
api_expect 404 POST /v1/replication/nope/pause
api_expect 404 POST /v1/replication/nope/resume
api_expect 404 POST /v1/replication/nope/sync
api_expect 404 POST /v1/replication/nope/sync '{"wait":true,"timeout":5}'
api_expect 400 POST /v1/replication/nope/pause '{}'
api_expect 400 DELETE '/v1/replication/nope?force=1'
api_expect 400 POST /v1/replication/nope/sync '{"frobnicate":true}'
api_expect 400 POST /v1/replication/nope/sync '{"wait":"yes"}'
api_expect 400 POST /v1/replication/nope/sync '{"timeout":5}'
api_expect 400 POST /v1/replication/nope/sync '{"wait":true,"timeout":0}'
api_expect 400 POST /v1/replication/nope/sync '{"wait":true,"timeout":3601}'
api_expect 400 POST /v1/replication/nope/sync '[]'
api_expect 405 PUT /v1/replication '{}'
api_expect 405 PATCH /v1/replication/nope '{}'
api_expect 405 GET /v1/replication/nope/pause
api_expect 404 GET /v1/replication/nope/frobnicate
[ -n "$(daemon_pid "$POOL")" ] || fail "the daemon died"
assert_eq "$("$VVFS" --json replication list | jq -c .sessions)" "[]" "sessions after errors"
assert_eq "$(snapshot)" "$before" "state after replication errors"

step "the API's happy path, so the checks above are not vacuous"
api_expect 201 POST /v1/volumes '{"name":"api1","size":"1G"}'
[ -f "$MNT/volumes/api1" ] || fail "volume created through the API has no file"
api_expect 200 GET /v1/volumes/api1
stat "$MNT/volumes/api1" >/dev/null   # (cached attributes must not hide the resize)
api_expect 200 PATCH /v1/volumes/api1 '{"size":2147483648}'
assert_eq "$(stat -c %s "$MNT/volumes/api1")" $((2 << 30)) "size after PATCH"
api_expect 204 DELETE /v1/volumes/api1
[ ! -e "$MNT/volumes/api1" ] || fail "volume deleted through the API still has a file"
api_expect 404 GET /v1/volumes/api1
api_expect 200 GET /v1/pool
api_expect 200 POST /v1/pool/sync
assert_eq "$(snapshot)" "$before" "state after the API round trip"

step "umount; the pool checks clean"
umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
