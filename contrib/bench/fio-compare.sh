#!/usr/bin/env bash
# shellcheck disable=SC2317  # (cleanup runs from a trap)
# contrib/bench/fio-compare.sh — fio on a vvfs volume against a plain file on the same disk.
#
# Targets (the same fio jobs on each):
#   plain      a plain file in the same filesystem as the pool
#   vvfs-file  the volume file MNT/volumes/bench, opened by fio with O_DIRECT
#   vvfs-loop  /dev/loopN attached to that file with --direct-io=on
# Jobs: seqwrite/seqread (1 MiB blocks, QD 8) and randwrite/randread (4 KiB, QD 16), libaio,
# direct=1, time_based, over a region of --size.  Every target is filled once before its jobs,
# so reads read data, not holes.  Caches are dropped before each job, and the daemon runs in a
# memory cgroup (--mem-limit, default 512M) so that its page cache cannot pass for disk speed.
#
# Usage: contrib/bench/fio-compare.sh [options]   (as root)
#   --pool-dir DIR      where the work directory goes (default /var/tmp); the pool and the
#                       plain file are created in DIR/vvfs-bench.XXXXXX and removed afterwards
#   --runtime SECS      per job (default 20)
#   --size SIZE         region per target (default 2G); the pool's capacity is twice that
#   --extent-size SIZE  pool extent size (default: vvfs's)
#   --jobs LIST         comma-separated subset of seqwrite,seqread,randwrite,randread
#   --targets LIST      comma-separated subset of plain,file,loop (default all)
#   --mem-limit SIZE    the daemon's cgroup memory limit (default 512M; 0 = no cgroup)
#   --vvfs PATH         the vvfs binary (default $VVFS, else build/cli/vvfs)
#   --keep-json DIR     keep fio's JSON output there
# Prints a table: per job, the plain figure (MB/s for sequential jobs, IOPS for random ones), the
# vvfs figures and their ratio to plain; then the daemon's peak RSS (VmHWM) and the cgroup's
# peak memory.  Needs: fio (with libaio), losetup, awk.  No python.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=/var/tmp
runtime=20
size=2G
extent_size=
jobs=seqwrite,seqread,randwrite,randread
targets=plain,file,loop
mem_limit=512M
vvfs=${VVFS:-$here/../../build/cli/vvfs}
keep_json=

usage()
{
    sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --pool-dir) base=${2:?}; shift 2 ;;
    --runtime) runtime=${2:?}; shift 2 ;;
    --size) size=${2:?}; shift 2 ;;
    --extent-size) extent_size=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --targets) targets=${2:?}; shift 2 ;;
    --mem-limit) mem_limit=${2:?}; shift 2 ;;
    --vvfs) vvfs=${2:?}; shift 2 ;;
    --keep-json) keep_json=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "fio-compare: unknown option $1" >&2; usage ;;
    esac
done

die() { echo "fio-compare: $*" >&2; exit 1; }
log() { echo "fio-compare: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mount, loop device, drop_caches, cgroup)"
command -v fio >/dev/null || die "fio is not installed (apt-get install fio)"
if ! [[ "$runtime" =~ ^[0-9]+$ ]] || [ "$runtime" -eq 0 ]; then die "bad --runtime '$runtime'"; fi

to_bytes() # SIZE with K/M/G/T suffix -> bytes
{
    local n=${1%[KkMmGgTt]} s=${1: -1}
    [[ "$n" =~ ^[0-9]+$ ]] || die "bad size '$1'"
    case $s in
    K | k) echo $((n << 10)) ;;
    M | m) echo $((n << 20)) ;;
    G | g) echo $((n << 30)) ;;
    T | t) echo $((n << 40)) ;;
    *) echo "$1" ;;
    esac
}
size_b=$(to_bytes "$size")
mem_b=$(to_bytes "$mem_limit")
[ $((size_b % (1 << 20))) -eq 0 ] || die "--size must be a multiple of 1M"

has() { [[ ",$1," == *",$2,"* ]]; }
for j in ${jobs//,/ }; do
    case $j in seqwrite | seqread | randwrite | randread) ;; *) die "unknown job '$j'" ;; esac
done
for t in ${targets//,/ }; do
    case $t in plain | file | loop) ;; *) die "unknown target '$t'" ;; esac
done
if has "$targets" file || has "$targets" loop; then
    [ -x "$vvfs" ] || die "vvfs binary $vvfs not found (build it, or --vvfs PATH)"
    [ -c /dev/fuse ] || die "/dev/fuse is missing"
fi
if has "$targets" loop; then
    command -v losetup >/dev/null || die "losetup is not installed"
fi

# ---- cleanup -------------------------------------------------------------------------------

work=
mnt=
pool=
loop=
daemon_pid=
daemon_start=
cgdir=
cg_kind=

# start time of PID (field 22 of /proc/PID/stat), empty if it is gone
proc_start()
{
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    read -ra f <<<"${s##*) }"
    echo "${f[19]}"
}

cleanup()
{
    local rc=$?
    set +e
    trap '' INT TERM
    if [ -n "$loop" ]; then
        local back
        back=$(losetup -n -O BACK-FILE "$loop" 2>/dev/null | sed 's/ *$//')
        [ "$back" = "$mnt/volumes/bench" ] && losetup -d "$loop"
    fi
    if [ -n "$mnt" ] && awk -v d="$mnt" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        timeout 120 "$vvfs" umount "$mnt" >/dev/null 2>&1 ||
            fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    fi
    if [ -n "$daemon_pid" ]; then
        local _
        for _ in $(seq 100); do
            [ "$(proc_start "$daemon_pid")" = "$daemon_start" ] || break
            sleep 0.1
        done
        if [ "$(proc_start "$daemon_pid")" = "$daemon_start" ]; then
            log "daemon $daemon_pid still running after unmount; killing it"
            kill -KILL "$daemon_pid"
            sleep 0.5
        fi
    fi
    if [ -n "$cgdir" ] && [ -d "$cgdir" ]; then
        rmdir "$cgdir" 2>/dev/null || log "could not remove cgroup $cgdir"
    fi
    if [ -n "$work" ] && [ -d "$work" ]; then
        if awk -v d="$work" 'index($5, d "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
            log "not removing $work: something is still mounted below it"
        else
            rm -rf --one-file-system "$work"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$base"
work=$(mktemp -d "$base/vvfs-bench.XXXXXX")
pool=$work/pool
mnt=$work/mnt
plain=$work/plain.img
json_dir=${keep_json:-$work/json}
mkdir -p "$mnt" "$json_dir"
fstype=$(df --output=fstype "$work" | tail -n 1)
log "work directory $work ($fstype), region $size, runtime ${runtime}s per job"

# ---- memory cgroup for the daemon ------------------------------------------------------------

# Sets cgdir and cg_kind (v1 or v2), or leaves them empty (no limit) with a warning.
make_cgroup()
{
    [ "$mem_b" -gt 0 ] || return 0
    local rel parent
    if [ -f /sys/fs/cgroup/cgroup.controllers ] &&
        grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
        # cgroup v2, unified at /sys/fs/cgroup: a child of the root (a cgroup with processes
        # cannot enable controllers for its children)
        grep -qw memory /sys/fs/cgroup/cgroup.subtree_control ||
            echo +memory >/sys/fs/cgroup/cgroup.subtree_control || true
        cgdir=/sys/fs/cgroup/vvfs-bench.$$
        if mkdir "$cgdir" 2>/dev/null && echo "$mem_b" >"$cgdir/memory.max" 2>/dev/null; then
            echo 0 >"$cgdir/memory.swap.max" 2>/dev/null || true
            cg_kind=v2
            return 0
        fi
        rmdir "$cgdir" 2>/dev/null || true
    elif [ -d /sys/fs/cgroup/memory ]; then
        # cgroup v1 memory controller: a child of our own memory cgroup
        rel=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' /proc/self/cgroup)
        parent=/sys/fs/cgroup/memory${rel%/}
        [ -d "$parent" ] || parent=/sys/fs/cgroup/memory
        cgdir=$parent/vvfs-bench.$$
        if mkdir "$cgdir" 2>/dev/null &&
            echo "$mem_b" >"$cgdir/memory.limit_in_bytes" 2>/dev/null; then
            echo "$mem_b" >"$cgdir/memory.memsw.limit_in_bytes" 2>/dev/null || true
            cg_kind=v1
            return 0
        fi
        rmdir "$cgdir" 2>/dev/null || true
    fi
    cgdir=
    log "WARNING: could not make a memory cgroup; the daemon runs without a memory limit"
}

cg_peak()
{
    case $cg_kind in
    v2) cat "$cgdir/memory.peak" 2>/dev/null || echo "n/a (no memory.peak)" ;;
    v1) cat "$cgdir/memory.max_usage_in_bytes" 2>/dev/null || echo n/a ;;
    *) echo "n/a (no cgroup)" ;;
    esac
}

drop_caches()
{
    # Let the previous job's tail settle first: vvfs commits its open txg (vvfs sync) and
    # returns freed space to the host in the background within ~2 s; writeback of the data
    # files' dirty pages is flushed by sync.  Without this a job pays for the one before it.
    if [ -n "${pool:-}" ] && [ -S "$pool/vvfs.sock" ]; then
        "$vvfs" --pool "$pool" sync >/dev/null 2>&1 || true
        sleep 3
    fi
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || {
        [ -n "${warned_drop:-}" ] || log "WARNING: cannot drop caches (/proc/sys/vm/drop_caches)"
        warned_drop=1
    }
}

# ---- fio -------------------------------------------------------------------------------------

# run_fio TARGET FILENAME JOB: run one job; prints the figure (MB/s or IOPS)
run_fio()
{
    local target=$1 file=$2 job=$3 rw bs qd out
    case $job in
    seqwrite) rw=write bs=1M qd=8 ;;
    seqread) rw=read bs=1M qd=8 ;;
    randwrite) rw=randwrite bs=4k qd=16 ;;
    randread) rw=randread bs=4k qd=16 ;;
    esac
    out=$json_dir/$target-$job.json
    drop_caches
    fio --name="$target-$job" --filename="$file" --rw="$rw" --bs="$bs" --iodepth="$qd" \
        --ioengine=libaio --direct=1 --time_based --runtime="$runtime" --size="$size_b" \
        --randrepeat=0 --norandommap --group_reporting --output-format=json \
        --output="$out" >/dev/null || die "fio $target $job failed (see $out)"
    fio_figure "$out" "$rw"
}

# fio_figure JSON RW: MB/s (sequential) or IOPS (random) of the job's read or write side.
# fio's JSON puts "bw_bytes" and "iops" first inside "read" : { ... } / "write" : { ... }.
fio_figure()
{
    local dir="read"
    if [[ "$2" == *write ]]; then dir="write"; fi
    awk -v dir="$dir" -v seq="$([[ "$2" == rand* ]] && echo 0 || echo 1)" '
        $0 ~ "^ *\"" dir "\" : [{]" { in_dir = 1; next }
        in_dir && /^ *"bw_bytes" :/ && bw == "" { v = $3; sub(/,$/, "", v); bw = v }
        in_dir && /^ *"iops" :/ && iops == "" { v = $3; sub(/,$/, "", v); iops = v }
        in_dir && bw != "" && iops != "" { exit }
        END {
            if (bw == "" || iops == "") { print "?"; exit 1 }
            if (seq) printf "%.1f\n", bw / 1e6; else printf "%.0f\n", iops
        }' "$1"
}

# fill FILE: write the whole region once (not measured)
fill()
{
    log "filling $1 ($size)"
    fio --name=fill --filename="$1" --rw=write --bs=1M --iodepth=8 --ioengine=libaio \
        --direct=1 --size="$size_b" --output-format=json --output="$json_dir/fill.json" \
        >/dev/null || die "filling $1 failed"
}

# ---- set up ----------------------------------------------------------------------------------

declare -A result
if has "$targets" plain; then
    log "target plain: $plain"
    fill "$plain"
    for j in ${jobs//,/ }; do
        result[plain,$j]=$(run_fio plain "$plain" "$j")
        log "plain $j: ${result[plain,$j]}"
    done
fi

hwm=n/a
if has "$targets" file || has "$targets" loop; then
    init_args=(--capacity "$((2 * size_b))")
    [ -n "$extent_size" ] && init_args+=(--extent-size "$extent_size")
    "$vvfs" init "$pool" "${init_args[@]}" >/dev/null || die "vvfs init failed"
    make_cgroup
    # start `vvfs mount` inside the cgroup so the daemon it forks is born there
    (
        [ -n "$cgdir" ] && echo "$BASHPID" >"$cgdir/cgroup.procs"
        exec "$vvfs" mount "$pool" "$mnt" </dev/null >"$work/mount.out" 2>&1
    ) || die "vvfs mount failed: $(cat "$work/mount.out")"
    daemon_pid=$(cat "$pool/vvfs.pid")
    daemon_start=$(proc_start "$daemon_pid")
    [ -n "$daemon_start" ] || die "daemon $daemon_pid is not running"
    if [ -n "$cgdir" ]; then
        grep -qx "$daemon_pid" "$cgdir/cgroup.procs" ||
            die "the daemon $daemon_pid is not in $cgdir"
        log "daemon $daemon_pid in memory cgroup $cgdir ($cg_kind, limit $mem_limit)"
    fi
    "$vvfs" --pool "$pool" volume create bench "$size_b" >/dev/null || die "volume create failed"
    vol=$mnt/volumes/bench
    fill "$vol"
    if has "$targets" file; then
        log "target vvfs-file: $vol"
        for j in ${jobs//,/ }; do
            result[file,$j]=$(run_fio vvfs-file "$vol" "$j")
            log "vvfs-file $j: ${result[file,$j]}"
        done
    fi
    if has "$targets" loop; then
        loop=$(losetup -f --show --direct-io=on "$vol") || die "losetup failed"
        [ "$(losetup -n -O DIO "$loop" | tr -d ' ')" = 1 ] ||
            log "WARNING: $loop is not in direct-I/O mode (O_DIRECT open of the volume failed?)"
        log "target vvfs-loop: $loop"
        for j in ${jobs//,/ }; do
            result[loop,$j]=$(run_fio vvfs-loop "$loop" "$j")
            log "vvfs-loop $j: ${result[loop,$j]}"
        done
        losetup -d "$loop"
        loop=
    fi
    hwm=$(awk '/^VmHWM:/ { print $2 " " $3 }' "/proc/$daemon_pid/status")
    cgpeak=$(cg_peak)
fi

# ---- report ----------------------------------------------------------------------------------

ratio()
{
    local a=${1:-} b=${2:-}
    if [[ "$a" =~ ^[0-9.]+$ ]] && [[ "$b" =~ ^[0-9.]+$ ]] && awk -v b="$b" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
    else
        echo -
    fi
}

echo
echo "fio-compare: $(uname -r), $fstype under $base, region $size, ${runtime}s per job${extent_size:+, extent size $extent_size}"
printf '%-10s %6s %12s %12s %6s %12s %6s\n' job unit plain vvfs-file ratio vvfs-loop ratio
for j in ${jobs//,/ }; do
    unit=MB/s
    [[ "$j" == rand* ]] && unit=IOPS
    pv=${result[plain,$j]:--}
    fv=${result[file,$j]:--}
    lv=${result[loop,$j]:--}
    printf '%-10s %6s %12s %12s %6s %12s %6s\n' "$j" "$unit" "$pv" "$fv" "$(ratio "$fv" "$pv")" \
        "$lv" "$(ratio "$lv" "$pv")"
done
if has "$targets" file || has "$targets" loop; then
    echo "daemon peak RSS (VmHWM): $hwm"
    if [[ "${cgpeak:-}" =~ ^[0-9]+$ ]]; then
        echo "daemon cgroup peak memory: $((cgpeak >> 20)) MiB (limit $mem_limit, $cg_kind)"
    else
        echo "daemon cgroup peak memory: ${cgpeak:-n/a}"
    fi
fi
[ -n "$keep_json" ] && echo "fio JSON kept in $keep_json"
exit 0
