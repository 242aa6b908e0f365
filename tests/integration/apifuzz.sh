#!/usr/bin/env bash
# apifuzz.sh — malformed control-API input stays harmless.  Over the socket (curl
# --unix-socket) send truncated JSON, wrong JSON types, negative and overflowing sizes, bad
# names (/, .., NUL, too long, non-ASCII), empty and huge bodies, unknown fields and query
# parameters, unknown methods and paths, %-encoded names.  Each must get a JSON error body
# ({"error":{"code","message"}}) with the fitting status (400/404/405/413), never a 5xx; an
# unknown field or parameter must be named in the message.  Afterwards the volume list and
# the pool status must be exactly as before and the daemon alive.  The CLI must refuse the
# same bad arguments (exit 2) before sending anything.
# shellcheck source=tests/integration/functions.sh
source "$(dirname "$0")/functions.sh"
requires_root
requires_fuse
requires jq curl
set_timeout 240

new_pool --capacity 1G
expect_exit 0 vvfs volume create good 64M
expect_exit 0 vvfs volume create other 4M
expect_exit 0 vvio write "$MNT/volumes/good" 0 1M --seed 1 --fsync
sync_pool

# The state that must not change: every volume as listed, and the pool status (without the
# counters that move by themselves).
state()
{
    "$VVFS" --pool "$POOL" --json volume list | jq -S '.volumes'
    "$VVFS" --pool "$POOL" --json snapshot list | jq -S '.snapshots'
    "$VVFS" --pool "$POOL" --json status |
        jq -S 'del(.commits, .dirty_bytes, .committed_gen, .bounced_writes, .batched_ios)'
}
before=$(state)
pid=$(daemon_pid "$POOL")
n=0

# send WANT METHOD PATH [BODYFILE [CURL ARGS...]]: one request; WANT is a status or a |-list
# of statuses; never a 5xx.  Leaves the body in $BODY and queues it for check_bodies.
BODY=
mkdir -p "$VV_TESTDIR/resp"
send()
{
    local want=$1 method=$2 path=$3 file=${4:-} code
    shift 3
    [ $# -gt 0 ] && shift
    n=$((n + 1))
    local out=$VV_TESTDIR/resp/$n.json
    local args=(-s -S --path-as-is --max-time 20 --unix-socket "$POOL/vvfs.sock" -X "$method"
        -o "$out" -w '%{http_code}' "$@")
    if [ -n "$file" ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "@$file")
    fi
    code=$(curl "${args[@]}" "http://localhost$path" 2>"$VV_TESTDIR/.curlerr") ||
        fail "curl $method $path failed: $(cat "$VV_TESTDIR/.curlerr")"
    BODY=$(<"$out")
    printf '%s %s\n' "$method" "${path:0:100}" >"$VV_TESTDIR/resp/$n.req"
    [[ "$code" =~ ^[0-9]{3}$ ]] || fail "$method $path: no HTTP status (got '$code')"
    [ "$code" -lt 500 ] || fail "$method $path: server error $code: $BODY"
    [[ "|$want|" == *"|$code|"* ]] || fail "$method $path: expected HTTP $want, got $code: $BODY"
    info "ok: $method ${path:0:80} -> $code ${BODY:0:160}"
}

# check_bodies: every answer queued since the last call is a JSON error body,
# {"error":{"code":"<slug>","message":"<sentence>"}} (one jq for all: this runs ~400 requests)
check_bodies()
{
    local f files=("$VV_TESTDIR"/resp/*.json) is_error
    [ -e "${files[0]}" ] || return 0
    is_error='(.error.code | type == "string" and length > 0) and
              (.error.message | type == "string" and length > 0)'
    if ! jq -e -s "length == $((${#files[@]})) and all(.[]; $is_error)" "${files[@]}" \
        >/dev/null 2>&1; then
        for f in "${files[@]}"; do
            [ -s "$f" ] || fail "$(cat "${f%.json}.req") -> the answer has no body"
            jq -e "$is_error" "$f" >/dev/null 2>&1 ||
                fail "$(cat "${f%.json}.req") -> the body is not a JSON error: $(head -c 300 "$f")"
        done
        fail "check_bodies: jq failed on the answers, but on none alone"
    fi
    info "${#files[@]} answers are JSON error bodies"
    rm -f "$VV_TESTDIR"/resp/*
}

# body TEXT: write TEXT (printf %b: \xff and such are bytes) to a file and print its name
_nb=0
body()
{
    _nb=$((_nb + 1))
    printf '%b' "$1" >"$VV_TESTDIR/body.$_nb"
    echo "$VV_TESTDIR/body.$_nb"
}

# post WANT JSON / patch WANT JSON: to /v1/volumes and /v1/volumes/good
post() { send "$1" POST /v1/volumes "$(body "$2")"; }
patch() { send "$1" PATCH /v1/volumes/good "$(body "$2")"; }

check_bodies
step "truncated and malformed JSON"
for j in '{' '{"name":"x","size":"1G"' '{"name":"x","si' '{"name":"x","size":' '{"name":' '{"na' \
    '"' '[' '{"name":"x","size":"1G"}}' '{"name":"x","size":"1G"} x' '{}{}' \
    '{"name":"x","name":"y","size":"1G"}' "{'name':'x','size':'1G'}" '{name:"x",size:"1G"}' \
    'null' '17' '"x"' '[{"name":"x","size":"1G"}]' '{"name":"x\\q","size":"1G"}' \
    '{"name":"x","size":"1G",}' '\xff\xfe{}' '{"name":"\xc3","size":"1G"}' \
    '{"name":"\\ud800","size":"1G"}'; do
    post 400 "$j"
    patch 400 "$j"
done
# nested far deeper than any parser should follow, still under the size cap
deep=$VV_TESTDIR/deep.json
{ printf '%.0s[' {1..20000}; printf '%.0s]' {1..20000}; } >"$deep"
send 400 POST /v1/volumes "$deep"

check_bodies
step "wrong JSON types"
for v in '{}' '[]' 'true' 'false' 'null' '1.5' '4096.0' '-0.5' '"1.5G"' '["1G"]' '{"bytes":4096}'; do
    post 400 "{\"name\":\"x\",\"size\":$v}"
    patch 400 "{\"size\":$v}"
done
for v in '17' '0' 'null' 'true' '[]' '{}' '["x"]' '1.5'; do
    post 400 "{\"name\":$v,\"size\":\"1G\"}"
    patch 400 "{\"name\":$v}"
done

check_bodies
step "negative and overflowing sizes"
for v in '-1' '-4096' '"-1"' '"-1G"' '"1e30"' '1e30' '"1E3"' '18446744073709551616' \
    '"18446744073709551616"' '18446744073709551615' '9223372036854775808' \
    '-9223372036854775808' '"99999999999P"' '"16384P"' '"9999999999999999999999"' \
    '0' '"0"' '"0G"' '1000' '"4097"' '" 1G"' '"1G "' '"1 G"' '"0x1000"' '"1GG"' '""' \
    '"1Q"' '"G"' '"+1G"'; do
    post 400 "{\"name\":\"x\",\"size\":$v}"
    patch 400 "{\"size\":$v}"
done

check_bodies
step "bad names"
name65=$(printf 'n%.0s' {1..65})
name300=$(printf 'n%.0s' {1..300})
for v in 'a/b' '/x' 'x/' '..' '.' '../x' '../../etc/passwd' 'a\\u0000b' '\\u0000' 'x\\u0000' \
    "$name65" "$name300" '' ' ' 'a b' '.hidden' '-x' '_x' 'a;b' 'a%2Fb' '%2e%2e' 'a\\nb' \
    'a\\tb' 'v\\u00f6l' '\\u2603' 'a?b' 'a#b' 'a\\\\b' 'a*'; do
    post 400 "{\"name\":\"$v\",\"size\":\"1G\"}"
    patch 400 "{\"name\":\"$v\"}"
    send 400 POST /v1/volumes/good/snapshots "$(body "{\"name\":\"$v\"}")"
done

check_bodies
step "malformed snapshot requests"
for j in '{' '{"name":' '[]' 'null' '{}' '{"name":17}' '{"name":null}' '{"name":["x"]}' \
    '{"name":"s","size":"1G"}' '{"name":"s","x":1}' '{"name":"s","name":"t"}'; do
    send 400 POST /v1/volumes/good/snapshots "$(body "$j")"
done
send 404 POST /v1/volumes/nosuch/snapshots "$(body '{"name":"s"}')"
send 404 GET /v1/volumes/nosuch/snapshots
send 404 GET /v1/volumes/good/snapshots/nosuch
send 404 DELETE /v1/volumes/good/snapshots/nosuch
send 400 GET /v1/volumes/good/snapshots/a%2Fb
send 400 GET "/v1/volumes/good/snapshots/$name65"
send 400 DELETE /v1/volumes/good/snapshots/%2e%2e
send 400 GET '/v1/volumes/good/snapshots?all=1'
send 400 DELETE /v1/volumes/good/snapshots/s "$(body '{}')"
send 400 PATCH /v1/volumes/good/snapshots/s "$(body "{}")"
send 404 PATCH /v1/volumes/good/snapshots/s "$(body "{\"name\":\"t\"}")"
send 400 PATCH /v1/volumes/good/snapshots/s "$(body "{\"name\":\"t/u\"}")"
send 405 PUT /v1/volumes/good/snapshots/s
send 405 DELETE /v1/volumes/good/snapshots

check_bodies
step "empty and missing bodies"
post 400 ''
patch 400 ''
post 400 '{}'
patch 400 '{}'
post 400 '   '
post 400 '{"name":"x"}'
post 400 '{"size":"1G"}'
send 400 POST /v1/volumes
send 400 PATCH /v1/volumes/good

check_bodies
step "bodies over the 64 KiB cap"
huge=$VV_TESTDIR/huge.json
{ printf '{"name":"x","size":"1G","pad":"'; head -c $((65 << 10)) /dev/zero | tr '\0' a; printf '"}'; } >"$huge"
send 413 POST /v1/volumes "$huge"
send 413 PATCH /v1/volumes/good "$huge"
# no Content-Length: the cap must hold for a chunked body too
send 413 POST /v1/volumes "$huge" -H 'Transfer-Encoding: chunked'
# over a MiB curl asks "Expect: 100-continue" and must get the 413 without sending the body
big=$VV_TESTDIR/big.json
{ printf '{"name":"x","size":"1G","pad":"'; head -c $((2 << 20)) /dev/zero | tr '\0' a; printf '"}'; } >"$big"
send 413 POST /v1/volumes "$big"
# whitespace is no way around it either
ws=$VV_TESTDIR/ws.json
{ printf '{"name":"x",'; head -c $((70 << 10)) /dev/zero | tr '\0' ' '; printf '"size":"1G"}'; } >"$ws"
send 413 POST /v1/volumes "$ws"

check_bodies
step "unknown fields are refused and named"
post 400 '{"name":"x","size":"1G","sise":"2G"}'
assert_contains "$BODY" sise "message for an unknown field"
post 400 '{"name":"x","size":"1G","Name":"y"}'
assert_contains "$BODY" '\"Name\"' "message for a field of the wrong case"
post 400 '{"nmae":"x","size":"1G"}'
assert_contains "$BODY" nmae "message for a misspelt name field"
patch 400 '{"size":"2G","force":true}'
assert_contains "$BODY" force "message for an unknown PATCH field"
patch 400 '{"nmae":"y"}'
assert_contains "$BODY" nmae "message for a misspelt PATCH field"
post 400 '{"name":"x","size":"1G","":1}'
# a body on a request that takes none is not silently ignored either
send 400 DELETE /v1/volumes/good "$(body '{"force":true}')"
send 400 POST /v1/pool/sync "$(body '{"wait":false}')"
send 400 GET /v1/volumes/good "$(body '{"x":1}')"
# nor are query parameters, which no resource takes
for q in '?force=1' '?force' '?name=x&size=1G' '?a=%00' '?=1'; do
    send 400 DELETE "/v1/volumes/good$q"
    send 400 GET "/v1/volumes$q"
    send 400 POST "/v1/volumes$q" "$(body '{"name":"x","size":"1G"}')"
done
send 400 DELETE '/v1/volumes/good?force=1'
assert_contains "$BODY" force "message for an unknown query parameter"

check_bodies
step "unknown methods"
for m in PUT OPTIONS TRACE FOO get Delete; do
    send 405 "$m" /v1/volumes
    send 405 "$m" /v1/volumes/good
    send 405 "$m" /v1/pool
done
send 405 PUT /v1/volumes "$(body '{"name":"x","size":"1G"}')"
send 405 DELETE /v1/volumes
send 405 PATCH /v1/volumes "$(body '{"size":"1G"}')"
send 405 POST /v1/volumes/good "$(body '{"size":"1G"}')"
send 405 DELETE /v1/pool
send 405 PATCH /v1/pool "$(body '{}')"
send 405 GET /v1/pool/sync
send 405 DELETE /v1/pool/sync

check_bodies
step "unknown paths"
for p in / /v1 /v1/ /v2/volumes /V1/volumes /v1/Volumes /v1/volumes/ /v1/volumes// \
    /v1/volumes//good /v1/volumes/good/ /v1/volumes/good/x /v1/volumes/good/../other \
    /v1/pool/ /v1/pool/x /v1/pools //v1/volumes /v1//volumes /v1/volumes/good/snapshot \
    /v1/volumes/good/snapshots/ /v1/volumes/good/snapshots/x/y /v1/volumes/good/snapshots//x \
    /v1/volume /.. /v1/volumes/../pool "/v1/volumes/good;x"; do
    send '404|400' GET "$p"
    send '404|400|405' DELETE "$p"
done
long=/v1/volumes/$(printf 'x%.0s' {1..3000})
send 400 GET "$long"
send 400 DELETE "$long"

check_bodies
step "%-encoded names"
for s in %2F a%2Fb %2Fgood good%2F %2e%2e %2E%2E %2e %2e%2e%2Fpool %00 good%00 a%00b % %2 %zz \
    %C3%A9 v%C3%B6l a%20b %20good good%20 %2Fetc%2Fpasswd %25 a%25b %3F %23 %2A \
    "$name65" "$(printf '%%61%.0s' {1..65})" %FF; do
    send 400 GET "/v1/volumes/$s"
    send 400 DELETE "/v1/volumes/$s"
    send 400 PATCH "/v1/volumes/$s" "$(body '{"size":"2G"}')"
done
# a %-encoded valid name is that name: GET works, so the 400s above are about the names
resp=$(api GET /v1/volumes/%67ood)
assert_eq "${resp##*$'\n'}" 200 "GET /v1/volumes/%67ood (= good)"

check_bodies
step "requests libmicrohttpd refuses itself: a fitting 4xx, never a 5xx"
# (their bodies are libmicrohttpd's built-in HTML, which it does not let us replace)
# raw VAR STATUS-REGEX CURL-ARGS...: status only
raw()
{
    local want=$1 code
    shift
    code=$(curl -s -S --path-as-is --max-time 20 --unix-socket "$POOL/vvfs.sock" -o /dev/null \
        -w '%{http_code}' "$@" 2>"$VV_TESTDIR/.curlerr") ||
        fail "curl $*: $(cat "$VV_TESTDIR/.curlerr")"
    n=$((n + 1))
    [[ "$code" =~ ^($want)$ ]] || fail "curl $(head -c 100 <<<"$*"): expected HTTP $want, got $code"
    info "ok: $(head -c 60 <<<"$*") -> $code"
}
raw '414|431' "http://localhost/v1/volumes/$(printf 'x%.0s' {1..40000})"
raw '431|413' -H "X-Big: $(printf 'y%.0s' {1..40000})" http://localhost/v1/pool
raw 400 -X POST -H 'Content-Length: abc' http://localhost/v1/volumes
raw 400 -X POST -H 'Content-Length: -1' http://localhost/v1/volumes
raw 404 -I http://localhost/v1/volumes/nope
raw 200 -I http://localhost/v1/volumes

check_bodies
step "nothing changed; the daemon is alive"
info "$n requests"
assert_eq "$(daemon_pid "$POOL")" "$pid" "daemon"
assert_eq "$(state)" "$before" "volumes and pool status"
expect_exit 0 vvio verify "$MNT/volumes/good" 0 1M --seed 1
assert_eq "$(ls "$MNT/volumes" | sort | tr '\n' ' ')" "good other " "files in the mount"

check_bodies
step "the CLI refuses the same arguments before sending anything"
for s in -1 1e30 18446744073709551616 99999999999P 16384P 1.5G " 1G" 0x1000 +1G; do
    expect_exit 2 vvfs volume create x "$s"
    expect_exit 2 vvfs volume resize good "$s"
done
for v in a/b .. ../x "$name65" a%2Fb %2e%2e 'a?b' 'a#b' 'a b' '' "v$(printf '\xc3\xb6')l"; do
    expect_exit 2 vvfs volume create "$v" 1G
    expect_exit 2 vvfs volume show "$v"
    expect_exit 2 vvfs volume delete "$v"
    expect_exit 2 vvfs volume resize "$v" 1G
    expect_exit 2 vvfs volume rename good "$v"
done
assert_eq "$(state)" "$before" "volumes and pool status after the CLI's refusals"

check_bodies
step "the happy path through the same helper, so the checks above are not vacuous"
resp=$(api POST /v1/volumes '{"name":"fz","size":"8M"}')
assert_eq "${resp##*$'\n'}" 201 "create through the API"
resp=$(api PATCH /v1/volumes/fz '{"size":16777216,"name":"fz2"}')
assert_eq "${resp##*$'\n'}" 200 "resize+rename through the API"
resp=$(api DELETE /v1/volumes/fz2)
assert_eq "${resp##*$'\n'}" 204 "delete through the API"
assert_eq "$(state)" "$before" "state after the round trip"

umount_pool "$POOL" "$MNT"
expect_exit 0 vvfs fsck "$POOL"
