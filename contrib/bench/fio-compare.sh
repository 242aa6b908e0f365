#!/usr/bin/env bash
# shellcheck disable=SC2317  # (cleanup runs from a trap)
# contrib/bench/fio-compare.sh — fio on a vvfs volume against a plain file on the same disk.
#
# Targets (the same fio jobs on each):
#   plain      a plain file in the same filesystem as the pool
#   vvfs-file  the volume file MNT/volumes/bench, opened by fio with O_DIRECT
#   vvfs-loop  /dev/loopN attached to that file with --direct-io=on
#   qsd        reference: qemu-storage-daemon exporting a raw file over FUSE (cache.direct=on,
#              aio=native), the floor a FUSE storage daemon must beat
#   snap       the vvfs volume file again, with a snapshot taken (vvfs snapshot create) just
#              before each job: every block is then shared with a snapshot
#   clone      a clone (vvfs clone create) of a snapshot of the filled volume: its reads fall
#              through to the origin until it writes them, its writes are its own
#   qcow2      reference: the same with a qcow2 image that is filled, and snapshotted anew
#              (qemu-img snapshot -c) before each job, so that its writes copy whole 64 KiB
#              clusters: what vvfs must crush
#   qcow2x     reference: qcow2 with subclusters (extended_l2=on, cluster_size=128k) as a
#              fresh overlay over a filled backing file before each job: qcow2's fastest
#              setup for writes after a snapshot
# Jobs: seqwrite/seqread (1 MiB blocks, QD 8) and randwrite/randread (4 KiB, QD 16), libaio,
# direct=1, time_based, over a region of --size.  Every target is filled once before its jobs,
# so reads read data, not holes.  Caches are dropped before each job, and the daemons (vvfs, then
# qemu-storage-daemon) run in a memory cgroup (--mem-limit, default 512M) so that their page
# cache cannot pass for disk speed.  The vvfs daemon is stopped before the qemu targets run.
#
# Usage: contrib/bench/fio-compare.sh [options]   (as root)
#   --pool-dir DIR      where the work directory goes (default /var/tmp); the pool, the plain
#                       file and the qemu images are created in DIR/vvfs-bench.XXXXXX and
#                       removed afterwards
#   --runtime SECS      per job (default 20)
#   --size SIZE         region per target (default 2G); the pool's capacity is four times that
#   --extent-size SIZE  pool extent size (default: vvfs's)
#   --jobs LIST         comma-separated subset of seqwrite,seqread,randwrite,randread
#   --targets LIST      comma-separated subset of plain,file,snap,clone,loop,qsd,qcow2,qcow2x
#                       (default plain,file,loop,qsd,qcow2; the qemu targets are skipped
#                       with a warning if qemu is not installed,
#                       unless they are asked for explicitly)
#   --mem-limit SIZE    the daemons' cgroup memory limit (default 512M; 0 = no cgroup)
#   --vvfs PATH         the vvfs binary (default $VVFS, else build/cli/vvfs)
#   --keep-json DIR     keep fio's JSON output there
#   --rounds N          with targets plain and file: run each job N times on each of them,
#                       plain and vvfs-file in turn (which goes first alternates), and report
#                       the medians and each round's ratio.  The plain file's own figure moves
#                       by up to 2x between runs on a shared disk; a ratio of neighbours in
#                       time is what says something then (default 1: each target once)
# Prints a table: per job, the plain figure (MB/s for sequential jobs, IOPS for random ones), the
# other targets' figures and their ratio to plain; then, if both ran, vvfs-file / qsd per job;
# then the daemons' peak RSS (VmHWM) and the vvfs daemon's cgroup peak memory.
# Needs: fio (with libaio), losetup, awk; for qsd and qcow2, qemu-storage-daemon and qemu-img
# (apt-get install qemu-system-common qemu-utils).  No python.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=/var/tmp
runtime=20
size=2G
extent_size=
jobs=seqwrite,seqread,randwrite,randread
targets=plain,file,loop,qsd,qcow2
targets_set=
mem_limit=512M
vvfs=${VVFS:-$here/../../build/cli/vvfs}
keep_json=
rounds=1

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
    --targets) targets=${2:?} targets_set=1; shift 2 ;;
    --mem-limit) mem_limit=${2:?}; shift 2 ;;
    --vvfs) vvfs=${2:?}; shift 2 ;;
    --keep-json) keep_json=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "fio-compare: unknown option $1" >&2; usage ;;
    esac
done

die() { echo "fio-compare: $*" >&2; exit 1; }
log() { echo "fio-compare: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "must run as root (FUSE mount, loop device, drop_caches, cgroup)"
command -v fio >/dev/null || die "fio is not installed (apt-get install fio)"
if ! [[ "$runtime" =~ ^[0-9]+$ ]] || [ "$runtime" -eq 0 ]; then die "bad --runtime '$runtime'"; fi
if ! [[ "$rounds" =~ ^[0-9]+$ ]] || [ "$rounds" -eq 0 ]; then die "bad --rounds '$rounds'"; fi

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

# ratio A B: A / B to two places, or - if either is not a number
ratio()
{
    local a=${1:-} b=${2:-}
    if [[ "$a" =~ ^[0-9.]+$ ]] && [[ "$b" =~ ^[0-9.]+$ ]] && awk -v b="$b" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
    else
        echo -
    fi
}

# median X...: the middle of the numbers (the mean of the two middle ones for an even count)
median()
{
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
        END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
for j in ${jobs//,/ }; do
    case $j in seqwrite | seqread | randwrite | randread) ;; *) die "unknown job '$j'" ;; esac
done
for t in ${targets//,/ }; do
    case $t in plain | file | snap | clone | loop | qsd | qcow2 | qcow2x) ;; *) die "unknown target '$t'" ;; esac
done
drop_target() { local t=",$targets,"; t=${t//,$1,/,}; t=${t#,}; targets=${t%,}; }
for t in qsd qcow2 qcow2x; do
    has "$targets" "$t" || continue
    missing=
    command -v qemu-storage-daemon >/dev/null || missing=qemu-storage-daemon
    if [ "$t" != qsd ] && ! command -v qemu-img >/dev/null; then
        missing="${missing:+$missing and }qemu-img"
    fi
    [ -n "$missing" ] || continue
    msg="$missing not found: install qemu-system-common qemu-utils (apt-get install qemu-system-common qemu-utils)"
    [ -z "$targets_set" ] || die "target $t: $msg"
    log "WARNING: skipping target $t: $msg"
    drop_target "$t"
done
if [ "$rounds" -gt 1 ] && ! { has "$targets" plain && has "$targets" file; }; then
    die "--rounds needs the targets plain and file"
fi
if has "$targets" file || has "$targets" loop; then
    [ -x "$vvfs" ] || die "vvfs binary $vvfs not found (build it, or --vvfs PATH)"
fi
if has "$targets" file || has "$targets" snap || has "$targets" clone || has "$targets" loop ||
    has "$targets" qsd ||
    has "$targets" qcow2 || has "$targets" qcow2x; then
    [ -c /dev/fuse ] || die "/dev/fuse is missing"
fi
if has "$targets" loop; then
    command -v losetup >/dev/null || die "losetup is not installed"
fi

# ---- cleanup -------------------------------------------------------------------------------

# the memory cgroup for the daemons: make_cgroup, cg_peak (sets cgdir, cg_kind)
# shellcheck source=contrib/bench/lib-cgroup.sh
source "$(dirname "$0")/lib-cgroup.sh"
work=
mnt=
pool=
loop=
daemon_pid=
daemon_start=
qsd_pid=
qsd_start=
qsd_mp=

# start time of PID (field 22 of /proc/PID/stat), empty if it is gone
proc_start()
{
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    read -ra f <<<"${s##*) }"
    echo "${f[19]}"
}

# proc_running PID START: is PID still the process started at START, and not a zombie?
proc_running()
{
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -ra f <<<"${s##*) }"
    [ "${f[19]}" = "$2" ] && [ "${f[0]}" != Z ]
}

# mounted PATH: is something mounted on PATH?
mounted() { awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; }

# stop_vvfs: detach the loop device, unmount the pool, wait for the daemon to exit (or kill it)
stop_vvfs()
{
    if [ -n "$loop" ]; then
        local back
        back=$(losetup -n -O BACK-FILE "$loop" 2>/dev/null | sed 's/ *$//')
        if [ "$back" = "$mnt/volumes/bench" ]; then losetup -d "$loop"; fi
        loop=
    fi
    if [ -n "$mnt" ] && mounted "$mnt"; then
        timeout 120 "$vvfs" umount "$mnt" >/dev/null 2>&1 ||
            fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null ||
            log "WARNING: could not unmount $mnt"
    fi
    if [ -n "$daemon_pid" ]; then
        local _
        for _ in $(seq 100); do
            [ "$(proc_start "$daemon_pid")" = "$daemon_start" ] || break
            sleep 0.1
        done
        if [ "$(proc_start "$daemon_pid")" = "$daemon_start" ]; then
            log "daemon $daemon_pid still running after unmount; killing it"
            kill -KILL "$daemon_pid" 2>/dev/null || true
            sleep 0.5
        fi
        daemon_pid=
    fi
}

# stop_qsd: unmount the qemu-storage-daemon export and stop the daemon.  It does not exit when
# its export is unmounted (it spins), so it is sent SIGTERM (which lets it close its images
# cleanly), then SIGKILL after 10 s, and reaped.  Returns 1 if it had to be killed.
stop_qsd()
{
    local _ rc=0
    if [ -n "$qsd_mp" ] && mounted "$qsd_mp"; then
        fusermount3 -u "$qsd_mp" 2>/dev/null || umount "$qsd_mp" 2>/dev/null ||
            fusermount3 -u -z "$qsd_mp" 2>/dev/null || umount -l "$qsd_mp" 2>/dev/null ||
            log "WARNING: could not unmount $qsd_mp"
    fi
    if [ -n "$qsd_pid" ]; then
        # (interrupted right after starting it, before its start time was recorded)
        [ -n "$qsd_start" ] || qsd_start=$(proc_start "$qsd_pid")
        if proc_running "$qsd_pid" "$qsd_start"; then
            kill -TERM "$qsd_pid" 2>/dev/null || true
            for _ in $(seq 100); do
                proc_running "$qsd_pid" "$qsd_start" || break
                sleep 0.1
            done
            if proc_running "$qsd_pid" "$qsd_start"; then
                log "WARNING: qemu-storage-daemon $qsd_pid still running 10 s after SIGTERM; killing it"
                kill -KILL "$qsd_pid" 2>/dev/null || true
                rc=1
            fi
        fi
        wait "$qsd_pid" 2>/dev/null || true
    fi
    qsd_pid='' qsd_start='' qsd_mp=''
    return "$rc"
}

cleanup()
{
    local rc=$?
    set +e
    trap '' INT TERM
    stop_qsd
    stop_vvfs
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

# run_jobs TARGET LABEL FILE: run the selected jobs on FILE, into result[TARGET,JOB]
run_jobs()
{
    local j
    log "target $2: $3"
    for j in ${jobs//,/ }; do
        result[$1,$j]=$(run_fio "$2" "$3" "$j")
        log "$2 $j: ${result[$1,$j]}"
    done
}

# run_pairs VOLUME: each job ROUNDS times on the plain file and on VOLUME, one after the other
# (odd rounds plain first, even rounds the volume first), into result[plain|file,JOB] (medians)
# and pairs[JOB] (each round's ratio)
run_pairs()
{
    local j k p v ps rs vs
    log "paired rounds: plain $plain and vvfs-file $1, $rounds rounds per job"
    for j in ${jobs//,/ }; do
        ps=() vs=() rs=()
        for k in $(seq "$rounds"); do
            if [ $((k % 2)) -eq 1 ]; then
                p=$(run_fio "plain-r$k" "$plain" "$j")
                v=$(run_fio "vvfs-file-r$k" "$1" "$j")
            else
                v=$(run_fio "vvfs-file-r$k" "$1" "$j")
                p=$(run_fio "plain-r$k" "$plain" "$j")
            fi
            ps+=("$p") vs+=("$v") rs+=("$(ratio "$v" "$p")")
            log "round $k $j: plain $p, vvfs-file $v (${rs[-1]})"
        done
        result[plain,$j]=$(median "${ps[@]}")
        result[file,$j]=$(median "${vs[@]}")
        pairs[$j]="${rs[*]}"
    done
}

# ---- qemu-storage-daemon -----------------------------------------------------------------------

# start_qsd MOUNTPOINT NODE BLOCKDEV...: start qemu-storage-daemon in the background with these
# --blockdev options, exporting node NODE over FUSE on MOUNTPOINT (an existing regular file), in
# the memory cgroup if there is one; wait until the export is mounted.
start_qsd()
{
    local mp=$1 node=$2 _ bd args=()
    shift 2
    for bd; do args+=(--blockdev "$bd"); done
    args+=(--export "type=fuse,id=e,node-name=$node,mountpoint=$(qarg "$mp"),writable=on")
    qsd_mp=$mp
    (
        exec </dev/null >"$work/qsd.out" 2>&1
        if [ -n "$cgdir" ]; then echo "$BASHPID" >"$cgdir/cgroup.procs" || exit 1; fi
        exec qemu-storage-daemon "${args[@]}"
    ) &
    qsd_pid=$!
    qsd_start=$(proc_start "$qsd_pid")
    for _ in $(seq 100); do
        mounted "$mp" && break
        proc_running "$qsd_pid" "$qsd_start" || break
        sleep 0.1
    done
    if ! mounted "$mp"; then
        if proc_running "$qsd_pid" "$qsd_start"; then
            die "qemu-storage-daemon $qsd_pid has not mounted its FUSE export on $mp within 10 s: $(cat "$work/qsd.out")"
        fi
        die "qemu-storage-daemon exited without mounting its FUSE export on $mp: $(cat "$work/qsd.out")"
    fi
    if [ -n "$cgdir" ]; then
        grep -qx "$qsd_pid" "$cgdir/cgroup.procs" ||
            die "qemu-storage-daemon $qsd_pid is not in $cgdir"
    fi
    log "qemu-storage-daemon $qsd_pid exports $mp"
}

# qarg VALUE: VALUE with its commas doubled, for a qemu option value
qarg() { echo "${1//,/,,}"; }

# qsd_hwm: the running qemu-storage-daemon's peak RSS
qsd_hwm() { awk '/^VmHWM:/ { print $2 " " $3 }' "/proc/$qsd_pid/status" 2>/dev/null || echo n/a; }

# ---- set up ----------------------------------------------------------------------------------

declare -A result pairs
paired=
if [ "$rounds" -gt 1 ]; then paired=1; fi
if has "$targets" plain; then
    fill "$plain"
    [ -n "$paired" ] || run_jobs plain plain "$plain"
fi

hwm=n/a
if has "$targets" file || has "$targets" snap || has "$targets" clone || has "$targets" loop; then
    init_args=(--capacity "$((4 * size_b))")
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
    if [ -n "$paired" ]; then
        run_pairs "$vol"
    elif has "$targets" file; then
        run_jobs file vvfs-file "$vol"
    fi
    if has "$targets" snap; then
        nsnap=0
        for j in ${jobs//,/ }; do
            nsnap=$((nsnap + 1))
            "$vvfs" --pool "$pool" snapshot create bench "s$nsnap" >/dev/null ||
                die "vvfs snapshot create bench s$nsnap failed"
            result[snap,$j]=$(run_fio snap "$vol" "$j")
            log "vvfs-snap $j: ${result[snap,$j]} (after snapshot s$nsnap)"
        done
    fi
    if has "$targets" clone; then
        # a clone of the filled volume: reads fall through to it, writes are the clone's own
        "$vvfs" --pool "$pool" snapshot create bench c0 >/dev/null ||
            die "vvfs snapshot create bench c0 failed"
        "$vvfs" --pool "$pool" clone create bench@c0 bench-clone >/dev/null ||
            die "vvfs clone create failed"
        run_jobs clone vvfs-clone "$mnt/volumes/bench-clone"
    fi
    if has "$targets" loop; then
        loop=$(losetup -f --show --direct-io=on "$vol") || die "losetup failed"
        [ "$(losetup -n -O DIO "$loop" | tr -d ' ')" = 1 ] ||
            log "WARNING: $loop is not in direct-I/O mode (O_DIRECT open of the volume failed?)"
        run_jobs loop vvfs-loop "$loop"
        losetup -d "$loop"
        loop=
    fi
    hwm=$(awk '/^VmHWM:/ { print $2 " " $3 }' "/proc/$daemon_pid/status")
    cgpeak=$(cg_peak)
    # out of the way of the qemu targets (its memory, its background work)
    stop_vvfs
fi

declare -A qhwm
if has "$targets" qsd || has "$targets" qcow2 || has "$targets" qcow2x; then
    make_cgroup
    if [ -n "$cgdir" ]; then
        log "qemu-storage-daemon in memory cgroup $cgdir ($cg_kind, limit $mem_limit)"
    fi
fi
if has "$targets" qsd; then
    raw=$work/qsd.raw
    truncate -s "$size_b" "$raw"
    : >"$work/qsd.exp"
    start_qsd "$work/qsd.exp" f \
        "driver=file,node-name=f,filename=$(qarg "$raw"),cache.direct=on,aio=native"
    fill "$work/qsd.exp"
    run_jobs qsd qsd "$work/qsd.exp"
    qhwm[qsd]=$(qsd_hwm)
    stop_qsd || log "WARNING: qemu-storage-daemon had to be killed"
    rm -f "$raw"
fi
if has "$targets" qcow2; then
    qcow=$work/q.qcow2
    qemu-img create -q -f qcow2 "$qcow" "$size_b" || die "qemu-img create $qcow failed"
    : >"$work/qcow2.exp"
    qcow_bds=("driver=file,node-name=f,filename=$(qarg "$qcow"),cache.direct=on,aio=native"
        "driver=qcow2,node-name=q,file=f")
    start_qsd "$work/qcow2.exp" q "${qcow_bds[@]}"
    fill "$work/qcow2.exp"
    # A fresh snapshot before each job: every cluster is then shared with it, so a write
    # copies its whole 64K cluster the first time it touches it.  (With one snapshot for all
    # jobs, seqwrite would already have copied every cluster and randwrite would pay nothing.)
    log "target qcow2: $work/qcow2.exp"
    nsnap=0
    for j in ${jobs//,/ }; do
        stop_qsd || die "qemu-storage-daemon had to be killed: $qcow may not be consistent"
        nsnap=$((nsnap + 1))
        qemu-img snapshot -c "s$nsnap" "$qcow" || die "qemu-img snapshot -c s$nsnap $qcow failed"
        start_qsd "$work/qcow2.exp" q "${qcow_bds[@]}"
        result[qcow2,$j]=$(run_fio qcow2 "$work/qcow2.exp" "$j")
        log "qcow2 $j: ${result[qcow2,$j]} (after snapshot s$nsnap)"
    done
    qhwm[qcow2]=$(qsd_hwm)
    stop_qsd || log "WARNING: qemu-storage-daemon had to be killed"
    rm -f "$qcow"
fi
if has "$targets" qcow2x; then
    base_img=$work/base.raw
    over=$work/over.qcow2
    truncate -s "$size_b" "$base_img"
    : >"$work/qcow2x.exp"
    start_qsd "$work/qcow2x.exp" f \
        "driver=file,node-name=f,filename=$(qarg "$base_img"),cache.direct=on,aio=native"
    fill "$work/qcow2x.exp"
    stop_qsd || die "qemu-storage-daemon had to be killed"
    log "target qcow2x: $work/qcow2x.exp"
    for j in ${jobs//,/ }; do
        rm -f "$over"
        qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k -b "$base_img" \
            -F raw "$over" || die "qemu-img create $over failed"
        start_qsd "$work/qcow2x.exp" q \
            "driver=file,node-name=f,filename=$(qarg "$over"),cache.direct=on,aio=native" \
            "driver=qcow2,node-name=q,file=f"
        result[qcow2x,$j]=$(run_fio qcow2x "$work/qcow2x.exp" "$j")
        log "qcow2x $j: ${result[qcow2x,$j]} (fresh overlay)"
        qhwm[qcow2x]=$(qsd_hwm)
        stop_qsd || log "WARNING: qemu-storage-daemon had to be killed"
    done
    rm -f "$over" "$base_img"
fi

# ---- report ----------------------------------------------------------------------------------

# the table's columns: the targets that ran, in this order, and their names
cols=()
for t in plain file snap clone loop qsd qcow2 qcow2x; do
    if has "$targets" "$t"; then cols+=("$t"); fi
done
declare -A label=([plain]=plain [file]=vvfs-file [snap]=vvfs-snap [clone]=vvfs-clone
    [loop]=vvfs-loop [qsd]=qsd
    [qcow2]=qcow2 [qcow2x]=qcow2x)
unit_of() { if [[ "$1" == rand* ]]; then echo IOPS; else echo MB/s; fi; }

echo
echo "fio-compare: $(uname -r), $fstype under $base, region $size, ${runtime}s per job${extent_size:+, extent size $extent_size}"
line=$(printf '%-10s %5s' job unit)
for t in "${cols[@]}"; do
    line+=$(printf ' %10s' "${label[$t]}")
    if [ "$t" != plain ] && has "$targets" plain; then line+=$(printf ' %6s' ratio); fi
done
echo "$line"
for j in ${jobs//,/ }; do
    line=$(printf '%-10s %5s' "$j" "$(unit_of "$j")")
    for t in "${cols[@]}"; do
        v=${result[$t,$j]:--}
        line+=$(printf ' %10s' "$v")
        if [ "$t" != plain ] && has "$targets" plain; then
            line+=$(printf ' %6s' "$(ratio "$v" "${result[plain,$j]:-}")")
        fi
    done
    echo "$line"
done
if [ "${#cols[@]}" -gt 1 ] && has "$targets" plain; then
    echo "(ratio: the figure to its left divided by plain's${paired:+; plain and vvfs-file: medians of $rounds rounds})"
fi
if [ -n "$paired" ]; then
    echo
    echo "vvfs-file / plain, round by round (the two ran one after the other):"
    for j in ${jobs//,/ }; do
        read -ra rs <<<"${pairs[$j]}"
        printf '%-10s %s   median %s\n' "$j" "${pairs[$j]}" "$(median "${rs[@]}")"
    done
fi
if has "$targets" file && has "$targets" qsd; then
    echo
    echo "vvfs-file / qsd (above 1: vvfs beats the FUSE floor):"
    printf '%-10s %5s %10s %10s %6s\n' job unit vvfs-file qsd ratio
    for j in ${jobs//,/ }; do
        printf '%-10s %5s %10s %10s %6s\n' "$j" "$(unit_of "$j")" "${result[file,$j]:--}" \
            "${result[qsd,$j]:--}" "$(ratio "${result[file,$j]:-}" "${result[qsd,$j]:-}")"
    done
fi
if has "$targets" file || has "$targets" snap || has "$targets" loop || [ "${#qhwm[@]}" -gt 0 ]; then echo; fi
if has "$targets" file || has "$targets" loop; then
    echo "daemon peak RSS (VmHWM): $hwm"
    if [[ "${cgpeak:-}" =~ ^[0-9]+$ ]]; then
        echo "daemon cgroup peak memory: $((cgpeak >> 20)) MiB (limit $mem_limit, $cg_kind)"
    else
        echo "daemon cgroup peak memory: ${cgpeak:-n/a}"
    fi
fi
for t in qsd qcow2 qcow2x; do
    if [ -n "${qhwm[$t]:-}" ]; then echo "qemu-storage-daemon ($t) peak RSS (VmHWM): ${qhwm[$t]}"; fi
done
[ -n "$keep_json" ] && echo "fio JSON kept in $keep_json"
exit 0
