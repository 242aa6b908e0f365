# tests/integration/functions.sh — sourced by every integration test.  -*- shell-script -*-
# shellcheck shell=bash disable=SC2013
#
# Modelled on nbdkit/libnbd tests/functions.sh.  A test does:
#
#   #!/usr/bin/env bash
#   source "$(dirname "$0")/functions.sh"
#   requires mkfs.ext4 losetup        # exit 77 (meson: SKIP) when something is missing
#   set_timeout 300                   # whole-test time bound (default 300 s)
#   new_pool --capacity 1G            # init + mount; sets POOL, MNT, VVFS_POOL
#   ...
#
# Everything a test creates lives under one per-test directory, $VV_TESTDIR
# (/var/tmp/vvfs-test.NAME.XXXXXX, or under $VV_TMPDIR): pools, mount points, scratch files.
#
# Cleanup: `cleanup_fn CMD ARGS...` pushes a command on a stack; the EXIT trap runs the stack in
# reverse order, so register the undo step *before* acting (mount_pool registers its unmount
# before it mounts; a test registers `losetup -d` right after attaching).  The stack always
# ends (first registered, last run) with removing $VV_TESTDIR, which refuses to recurse into a
# filesystem that is still mounted.
#
# Processes: the only processes ever signalled are (a) the descendants of this test's shell and
# (b) vvfs daemons this test mounted, recorded as (pid, start time) when their mount came up,
# and signalled only while /proc/PID/stat still shows that start time.  Never by name.
#
# Time bound: a watchdog subshell sleeps for the test's budget; if the test is still running
# then, it says so, SIGKILLs the test's descendants, and SIGTERMs the test shell, whose EXIT
# trap then cleans up as usual (every cleanup step is itself bounded with `timeout`).  The test
# exits 124.
#
# Environment (meson sets the first three):
#   VVFS, VVIO, CRASHWRITER, APISTRESS   build/cli/vvfs, build/tests/{vvio,crashwriter,apistress}
#   VV_BUILDDIR               where to look for them when unset (default: build/)
#   VV_TMPDIR                 where per-test directories go (default /var/tmp)
#   VV_KEEP=1                 keep $VV_TESTDIR after the test (mounts are still undone)
#   VV_TRACE=1                set -x
#   VV_TIMEOUT                override the test's own time bound (seconds)

set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
[ "${VV_TRACE:-0}" = 1 ] && set -x

_vv_srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_vv_name=$(basename "$0" .sh)
_vv_builddir=${VV_BUILDDIR:-$_vv_srcdir/../../build}

: "${VVFS:=$_vv_builddir/cli/vvfs}"
: "${VVIO:=$_vv_builddir/tests/vvio}"
: "${CRASHWRITER:=$_vv_builddir/tests/crashwriter}"
: "${APISTRESS:=$_vv_builddir/tests/apistress}"
export VVFS VVIO CRASHWRITER APISTRESS
unset VVFS_POOL

# ---- messages ---------------------------------------------------------------------------------

info() { printf '%s: %s\n' "$_vv_name" "$*" >&2; }
step() { printf '\n=== %s: %s\n' "$_vv_name" "$*" >&2; }

# fail MSG...: print and exit 1 (the EXIT trap cleans up).
fail()
{
    printf '%s: FAIL: %s\n' "$_vv_name" "$*" >&2
    if [ -n "${POOL:-}" ] && [ -f "$POOL/vvfs.log" ]; then
        printf '%s: last lines of %s:\n' "$_vv_name" "$POOL/vvfs.log" >&2
        tail -n 30 "$POOL/vvfs.log" | sed 's/^/    /' >&2 || true
    fi
    exit 1
}

# ---- requirements ------------------------------------------------------------------------------

# requires CMD...: skip the test (exit 77) unless every CMD is on PATH.
requires()
{
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            info "SKIP: required command '$c' not found (contrib/deps.sh should install it)"
            exit 77
        fi
    done
}

requires_root()
{
    if [ "$(id -u)" -ne 0 ]; then
        info "SKIP: must run as root"
        exit 77
    fi
}

requires_fuse()
{
    requires fusermount3
    if [ ! -c /dev/fuse ]; then
        info "SKIP: /dev/fuse is missing"
        exit 77
    fi
}

requires_loop()
{
    requires losetup
    if ! losetup -f >/dev/null 2>&1; then
        info "SKIP: no free loop device (losetup -f failed)"
        exit 77
    fi
}

# The binaries under test are not optional: missing ones are a failure, not a skip.
_vv_check_binaries()
{
    local b
    for b in "$VVFS" "$VVIO" "$CRASHWRITER" "$APISTRESS"; do
        [ -x "$b" ] || fail "$b is not built (run ninja -C build, or set its variable)"
    done
}

# ---- cleanup stack -----------------------------------------------------------------------------

_vv_cleanup=()

# cleanup_fn CMD ARGS...: run CMD ARGS at exit (LIFO).  Arguments are quoted now.
cleanup_fn()
{
    local q
    q=$(printf '%q ' "$@")
    _vv_cleanup+=("$q")
}

_vv_exiting=0
_vv_on_exit()
{
    local rc=$? i
    [ "$_vv_exiting" = 1 ] && return
    _vv_exiting=1
    set +e
    trap '' INT TERM HUP
    if [ -n "${VV_TESTDIR:-}" ] && [ -e "$VV_TESTDIR/.timeout" ]; then
        rc=124
    fi
    _vv_stop_watchdog # each cleanup step bounds itself
    for ((i = ${#_vv_cleanup[@]} - 1; i >= 0; i--)); do
        eval "${_vv_cleanup[i]}" </dev/null
    done
    [ -n "${VV_TESTDIR:-}" ] && [ -d "$VV_TESTDIR" ] && [ "${VV_KEEP:-0}" = 1 ] &&
        info "kept $VV_TESTDIR"
    case $rc in
    0) info "PASS" ;;
    77) ;;
    124) info "FAIL: timed out" ;;
    *) info "FAIL (exit $rc)" ;;
    esac
    exit "$rc"
}

_vv_on_signal()
{
    info "got SIG$1"
    case $1 in
    INT) exit 130 ;;
    HUP) exit 129 ;;
    *) exit 143 ;;
    esac
}

trap _vv_on_exit EXIT
trap '_vv_on_signal INT' INT
trap '_vv_on_signal TERM' TERM
trap '_vv_on_signal HUP' HUP

# ---- per-test directory ------------------------------------------------------------------------

# Is anything mounted at DIR, or (with -r) at or below DIR?  Reads /proc/self/mountinfo, which
# (unlike stat/mountpoint) still works on a FUSE mount whose daemon died.
is_mounted()
{
    local recursive=0
    if [ "$1" = -r ]; then
        recursive=1
        shift
    fi
    awk -v d="$1" -v r="$recursive" '
        { gsub(/\\040/, " ", $5) }
        $5 == d || (r && index($5, d "/") == 1) { found = 1 }
        END { exit !found }' /proc/self/mountinfo
}

# The filesystem type of the mount at DIR ("fuse.vvfs", "ext4"), empty if none.
mount_type()
{
    awk -v d="$1" '$5 == d { for (i = 6; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } }
                   END { print t }' /proc/self/mountinfo
}

_vv_rm_testdir()
{
    local m
    if is_mounted -r "$VV_TESTDIR"; then
        # Last resort: something registered no unmount, or its unmount failed.
        for m in $(awk -v d="$VV_TESTDIR" 'index($5, d "/") == 1 { print $5 }' \
            /proc/self/mountinfo | sort -r); do
            info "cleanup: $m is still mounted; lazy unmount"
            timeout 20 umount -l "$m" || true
        done
    fi
    if is_mounted -r "$VV_TESTDIR"; then
        info "cleanup: NOT removing $VV_TESTDIR: something is still mounted below it"
        return
    fi
    if [ "${VV_KEEP:-0}" = 1 ]; then
        return
    fi
    rm -rf --one-file-system "$VV_TESTDIR"
}

_vv_base=${VV_TMPDIR:-/var/tmp}
mkdir -p "$_vv_base"
VV_TESTDIR=$(mktemp -d "$_vv_base/vvfs-test.$_vv_name.XXXXXX")
export VV_TESTDIR
cleanup_fn _vv_rm_testdir
: >"$VV_TESTDIR/.daemons"

# ---- processes ---------------------------------------------------------------------------------

# The start time (clock ticks since boot, field 22 of /proc/PID/stat) of PID, empty if gone.
proc_starttime()
{
    local s rest fields
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    rest=${s##*) }
    read -ra fields <<<"$rest"
    printf "%s\n" "${fields[19]}"
}

# Is PID alive with start time ST (i.e. still the process we recorded)?  Zombies count as gone,
# but not a main thread that has exited while other threads of the process have not yet (one
# still in an uninterruptible fdatasync when SIGKILL came, say): /proc shows the main thread
# as a zombie, yet the process keeps its files, and so the pool's lock, until its last thread
# is gone.
proc_is() # PID ST
{
    local s state tasks
    [ "$(proc_starttime "$1")" = "$2" ] || return 1
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    state=${s##*) }
    state=${state%% *}
    [ "$state" != Z ] && return 0
    tasks=(/proc/"$1"/task/*)
    [ "${#tasks[@]}" -gt 1 ]
}

# Print the pids of all descendants of PID (depth first, children before parents).
_vv_descendants()
{
    local p c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        _vv_descendants "$c"
        echo "$c"
    done
}

# Record the daemon serving POOL (from POOL/vvfs.pid) as ours.  Prints its pid.
_vv_note_daemon()
{
    local pool=$1 pid st
    [ -s "$pool/vvfs.pid" ] || fail "$pool/vvfs.pid missing or empty after mount"
    pid=$(tr -d ' \n' <"$pool/vvfs.pid")
    [[ "$pid" =~ ^[0-9]+$ ]] || fail "$pool/vvfs.pid does not hold a pid: '$pid'"
    st=$(proc_starttime "$pid")
    [ -n "$st" ] || fail "daemon pid $pid from $pool/vvfs.pid is not running"
    echo "$pid $st $pool" >>"$VV_TESTDIR/.daemons"
    echo "$pid"
}

# daemon_pid POOL: pid of the live daemon we started for POOL (empty if none is alive).
daemon_pid()
{
    local pid st pool
    while read -r pid st pool; do
        if [ "$pool" = "$1" ] && proc_is "$pid" "$st"; then
            echo "$pid"
            return 0
        fi
    done <"$VV_TESTDIR/.daemons"
}

# signal_daemons POOL SIG: send SIG to every live daemon we started for POOL.
signal_daemons()
{
    local pid st pool
    while read -r pid st pool; do
        if [ "$pool" = "$1" ] && proc_is "$pid" "$st"; then
            kill -s "$2" "$pid" 2>/dev/null || true
        fi
    done <"$VV_TESTDIR/.daemons"
}

# wait_daemons_gone POOL SECS: wait until no daemon we started for POOL is alive.
wait_daemons_gone()
{
    local end=$((SECONDS + $2))
    while [ -n "$(daemon_pid "$1")" ]; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}

# ---- watchdog ----------------------------------------------------------------------------------

_vv_watchdog_pid=
_vv_stop_watchdog()
{
    if [ -n "$_vv_watchdog_pid" ]; then
        kill "$_vv_watchdog_pid" 2>/dev/null || true
        wait "$_vv_watchdog_pid" 2>/dev/null || true
        _vv_watchdog_pid=
    fi
}

# set_timeout SECS: bound the rest of the test to SECS seconds ($VV_TIMEOUT overrides).
set_timeout()
{
    local secs=${VV_TIMEOUT:-$1} main=$$
    _vv_stop_watchdog
    (
        set +e
        trap - EXIT INT HUP
        sleep "$secs" >/dev/null 2>&1 &
        sp=$!
        trap 'kill $sp 2>/dev/null; exit 0' TERM
        wait $sp || exit 0
        printf '%s: TIMEOUT: still running after %s s; killing it\n' "$_vv_name" "$secs" >&2
        : >"$VV_TESTDIR/.timeout"
        for p in $(_vv_descendants "$main"); do
            [ "$p" = "$BASHPID" ] || kill -KILL "$p" 2>/dev/null
        done
        kill -TERM "$main" 2>/dev/null
    ) &
    _vv_watchdog_pid=$!
}
set_timeout 300

# ---- assertions --------------------------------------------------------------------------------

# assert_eq ACTUAL EXPECTED [WHAT]
assert_eq()
{
    if [ "$1" != "$2" ]; then
        fail "${3:-value}: expected '$2', got '$1'"
    fi
}

# assert_contains HAYSTACK NEEDLE [WHAT]  (case-insensitive)
assert_contains()
{
    if ! grep -qiF -- "$2" <<<"$1"; then
        fail "${3:-output} should contain '$2'; it is: $1"
    fi
}

# assert_lt A B [WHAT] — integers
assert_lt()
{
    if ! [ "$1" -lt "$2" ]; then
        fail "${3:-value}: expected $1 < $2"
    fi
}

# expect_exit CODE CMD ARGS...: run CMD, require exit status CODE.  Its stdout+stderr are left
# in $OUT (and echoed to the log).
OUT=
expect_exit()
{
    local want=$1 rc=0
    shift
    "$@" >"$VV_TESTDIR/.out" 2>&1 </dev/null || rc=$?
    OUT=$(cat "$VV_TESTDIR/.out")
    if [ "$rc" != "$want" ]; then
        fail "expected exit $want from: $*; got $rc; output: $OUT"
    fi
    info "ok (exit $rc): $* ${OUT:+-> $(head -c 300 <<<"$OUT" | tr '\n' ' ')}"
}

# ---- vvfs --------------------------------------------------------------------------------------

vvfs() { "$VVFS" "$@"; }
vvio() { "$VVIO" "$@"; }

# wait_for_mount MNT [SECS]: wait until a FUSE filesystem is mounted at MNT and answers.
wait_for_mount()
{
    local mnt=$1 end=$((SECONDS + ${2:-30}))
    until is_mounted "$mnt" && [[ "$(mount_type "$mnt")" == fuse* ]] && [ -d "$mnt/volumes" ]; do
        [ $SECONDS -lt $end ] || fail "$mnt did not come up as a FUSE mount in ${2:-30} s"
        sleep 0.1
    done
}

_vv_registered=" "

# mount_pool POOL MNT [ARGS...]: mount (registering the unmount first) and wait for it.
mount_pool()
{
    local pool=$1 mnt=$2 rc=0
    shift 2
    if [[ "$_vv_registered" != *" $pool|$mnt "* ]]; then
        cleanup_fn stop_pool "$pool" "$mnt"
        _vv_registered+="$pool|$mnt "
    fi
    mkdir -p "$mnt"
    # No command substitution: a daemon that kept our stdout open would hang it.
    "$VVFS" mount "$pool" "$mnt" "$@" >"$VV_TESTDIR/.mount.out" 2>&1 </dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "vvfs mount $pool $mnt $* exited $rc: $(cat "$VV_TESTDIR/.mount.out")"
    fi
    is_mounted "$mnt" || fail "vvfs mount returned 0 but nothing is mounted at $mnt"
    wait_for_mount "$mnt" 10
    _vv_note_daemon "$pool" >/dev/null
}

# umount_pool POOL MNT: vvfs umount, which must unmount and wait for the daemon to exit.
umount_pool()
{
    local pool=$1 mnt=$2 pid rc=0
    pid=$(daemon_pid "$pool")
    timeout 120 "$VVFS" umount "$mnt" >"$VV_TESTDIR/.umount.out" 2>&1 </dev/null || rc=$?
    [ "$rc" -eq 0 ] || fail "vvfs umount $mnt exited $rc: $(cat "$VV_TESTDIR/.umount.out")"
    ! is_mounted "$mnt" || fail "vvfs umount $mnt returned 0 but it is still mounted"
    if [ -n "$pid" ] && [ -n "$(daemon_pid "$pool")" ]; then
        # The spec says umount waits for the daemon; give it a moment before calling it a bug.
        wait_daemons_gone "$pool" 5 ||
            fail "vvfs umount returned but daemon $pid is still running"
        fail "vvfs umount returned before daemon $pid had exited"
    fi
}

# stop_pool POOL MNT: the cleanup step for a mount; never fails, always bounded.
stop_pool()
{
    local pool=$1 mnt=$2
    if is_mounted "$mnt"; then
        if ! timeout 30 "$VVFS" umount "$mnt" </dev/null >/dev/null 2>&1; then
            info "cleanup: vvfs umount $mnt failed; lazy unmount"
            timeout 20 fusermount3 -u -z "$mnt" 2>/dev/null ||
                timeout 20 umount -l "$mnt" 2>/dev/null || true
        fi
    fi
    if ! wait_daemons_gone "$pool" 20; then
        info "cleanup: daemon for $pool still running; SIGTERM"
        signal_daemons "$pool" TERM
        signal_daemons "$pool" CONT
        if ! wait_daemons_gone "$pool" 5; then
            info "cleanup: SIGKILL"
            signal_daemons "$pool" KILL
            wait_daemons_gone "$pool" 10 || true
        fi
    fi
}

# cleanup_umount DIR: unmount whatever is mounted at DIR (for cleanup_fn; never fails).
cleanup_umount()
{
    if is_mounted "$1"; then
        timeout 60 umount "$1" 2>/dev/null || timeout 20 umount -l "$1" 2>/dev/null ||
            info "cleanup: cannot unmount $1"
    fi
}

# attach_loop FILE [LOSETUP ARGS...]: attach FILE to a free loop device and register its
# detach; sets $LOOP (not printed: a command substitution would lose the registration).
LOOP=
attach_loop()
{
    local file=$1
    shift
    LOOP=$(losetup -f --show "$@" "$file") || fail "losetup $* $file failed"
    cleanup_fn cleanup_loop "$LOOP" "$file"
}

# detach_loop DEV FILE: losetup -d, then wait until no loop device holds FILE (the detach
# completes asynchronously; until then FILE is open and its mount busy).
detach_loop()
{
    local end=$((SECONDS + 30))
    losetup -d "$1" || fail "losetup -d $1 failed"
    while losetup -j "$2" | grep -q .; do
        [ $SECONDS -lt $end ] || fail "$2 is still attached to a loop device 30 s after losetup -d"
        sleep 0.1
    done
}

# cleanup_loop DEV FILE: detach DEV if it is still backed by FILE (never someone else's).
cleanup_loop()
{
    local back
    back=$(losetup -n -O BACK-FILE "$1" 2>/dev/null | sed 's/ *$//') || return 0
    [ "$back" = "$2" ] || [ "$back" = "$2 (deleted)" ] || return 0
    timeout 30 losetup -d "$1" || info "cleanup: losetup -d $1 failed"
}

# crash_pool POOL MNT: SIGKILL the daemon of POOL (a crash), wait for it to die and lazily unmount
# the dead mount at MNT.
crash_pool()
{
    local pool=$1 mnt=$2
    [ -n "$(daemon_pid "$pool")" ] || fail "no live daemon for $pool to kill"
    signal_daemons "$pool" KILL
    wait_daemons_gone "$pool" 10 || fail "daemon of $pool survived SIGKILL for 10 s"
    if is_mounted "$mnt"; then
        timeout 20 fusermount3 -u -z "$mnt" 2>/dev/null || timeout 20 umount -l "$mnt" ||
            fail "cannot unmount dead mount $mnt"
    fi
}

_vv_npools=0

# new_pool [INIT ARGS...]: a fresh pool in $VV_TESTDIR, mounted.  Sets and exports POOL, MNT,
# VVFS_POOL (each call makes another pool; the variables then name the newest).
new_pool()
{
    _vv_npools=$((_vv_npools + 1))
    POOL=$VV_TESTDIR/pool$_vv_npools
    MNT=$VV_TESTDIR/mnt$_vv_npools
    VVFS_POOL=$POOL
    export POOL MNT VVFS_POOL
    local rc=0
    "$VVFS" init "$POOL" "$@" >"$VV_TESTDIR/.init.out" 2>&1 </dev/null || rc=$?
    [ "$rc" -eq 0 ] || fail "vvfs init $POOL $* exited $rc: $(cat "$VV_TESTDIR/.init.out")"
    mount_pool "$POOL" "$MNT"
    info "pool $POOL mounted at $MNT (daemon $(daemon_pid "$POOL"))"
}

# free_port: a TCP port no socket on this machine uses now (from 20000-59999, at random;
# /proc/net/tcp{,6} list every bound one), for a daemon's --listen.
free_port()
{
    local p hex i
    for ((i = 0; i < 100; i++)); do
        p=$((20000 + RANDOM % 40000))
        hex=$(printf ':%04X ' "$p")
        if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{ print $2 }' |
            grep -q -- "${hex% }\$"; then
            echo "$p"
            return 0
        fi
    done
    fail "no free TCP port found"
}

# new_key FILE: a new replication key (vvfs key generate) in FILE, mode 0600.
new_key()
{
    expect_exit 0 vvfs key generate
    printf '%s\n' "$OUT" >"$1"
    chmod 600 "$1"
}

# wait_transfer POOL SESSION BYTES: until the session's transfer has sent more than BYTES
# (for a cut in the middle of it); fails after 60 s.
wait_transfer()
{
    local end=$((SECONDS + 60))
    until [ "$("$VVFS" --pool "$1" --json replication status "$2" | jq .transfer.bytes)" -gt "$3" ]; do
        [ $SECONDS -lt $end ] || fail "the transfer of $2 did not get past $3 bytes within 60 s"
        sleep 0.05
    done
}

# ---- JSON (jq) ---------------------------------------------------------------------------------

# pool_json: `vvfs --json status` of $POOL.  pool_field KEY: one field of it.
pool_json() { "$VVFS" --pool "$POOL" --json status; }
pool_field()
{
    local v
    v=$(pool_json | jq -er ".$1") || fail "vvfs --json status has no field '$1'"
    echo "$v"
}

# volume_field VOL KEY
volume_field()
{
    local v
    v=$("$VVFS" --pool "$POOL" --json volume show "$1" | jq -er ".$2") ||
        fail "vvfs --json volume show $1 has no field '$2'"
    echo "$v"
}

# volume_names: the names in `vvfs --json volume list`, one a line, sorted.
volume_names()
{
    "$VVFS" --pool "$POOL" --json volume list | jq -r '(.volumes? // .)[] | .name' | sort
}

# api METHOD PATH [BODY]: curl the control socket; prints the body, then the HTTP status on the
# last line.
api()
{
    local args=(-s -S --max-time 20 --unix-socket "$POOL/vvfs.sock" -X "$1"
        -w '\n%{http_code}\n' "http://localhost$2")
    if [ $# -ge 3 ]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$3")
    fi
    curl "${args[@]}"
}

# code CURL-ARGS...: the HTTP status of a request to the pool's API (the body is left in
# $VV_TESTDIR/body)
code()
{
    curl -s --max-time 20 -o "$VV_TESTDIR/body" -w '%{http_code}' --unix-socket "$POOL/vvfs.sock" "$@"
}

# file_size FILE
file_size() { stat -c %s "$1"; }

# sync_pool: commit now (vvfs sync) so space accounting is current.
sync_pool() { "$VVFS" --pool "$POOL" sync >/dev/null || fail "vvfs sync failed"; }

_vv_check_binaries
