# contrib/bench/lib-cgroup.sh — sourced by the benchmarks: a memory cgroup for the daemons
# they start, so that the daemons' page cache never passes for the disk.  -*- shell-script -*-
# The caller sets mem_b (bytes; 0: no cgroup) and defines log; then make_cgroup sets cgdir
# (write a pid to "$cgdir/cgroup.procs" to put a process in it) and cg_kind, and cg_peak
# prints its peak memory.  The caller removes the cgroup (rmdir "$cgdir") when done.
# shellcheck shell=bash
cgdir=
cg_kind=
cg_tried=

# Sets cgdir and cg_kind (v1 or v2), or leaves them empty (no limit) with a warning.  Only the
# first call does anything: the vvfs daemon and qemu-storage-daemon share the cgroup.
make_cgroup()
{
    [ -z "$cg_tried" ] || return 0
    cg_tried=1
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
    log "WARNING: could not make a memory cgroup; the daemons run without a memory limit"
}

cg_peak()
{
    case $cg_kind in
    v2) cat "$cgdir/memory.peak" 2>/dev/null || echo "n/a (no memory.peak)" ;;
    v1) cat "$cgdir/memory.max_usage_in_bytes" 2>/dev/null || echo n/a ;;
    *) echo "n/a (no cgroup)" ;;
    esac
}

