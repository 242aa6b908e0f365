/*
 * fs/fs.h — the vvfs daemon: a FUSE mount of one pool, plus its control socket.
 *
 * Mount layout:
 *   MNT/volumes/<vol>            one regular file per volume (mode 0600), size = volume size
 *   MNT/snapshots/               (snapshots arrive in a later release; empty now)
 *
 * The mount's source (as /proc/self/mountinfo shows it) is the pool's absolute directory and
 * its type is "fuse.vvfs"; `vvfs umount` uses that to find the pool.
 *
 * Files the running daemon keeps in the pool directory:
 *   vvfs.sock   control socket (HTTP/1.1 + JSON, mode 0600), see api/api.h
 *   vvfs.pid    the daemon's pid, written once the mount is usable
 *   vvfs.log    the daemon's log
 */
#ifndef VV_FS_FS_H
#define VV_FS_FS_H

#include <stdbool.h>

struct vv_daemon_opts {
    const char *pool_dir;   /* absolute path */
    const char *mountpoint; /* absolute path, an existing directory */
    unsigned threads;       /* FUSE worker threads; 0 = default */
    bool debug_fuse;        /* libfuse debug output */
};

/*
 * Run the daemon in this process until it is unmounted (umount/fusermount3 -u) or gets
 * SIGTERM/SIGINT; then commit everything and return 0 (or 1 on failure).
 *
 * READY_FD (or -1): once the mount and the control socket are usable, the daemon writes "OK\n"
 * to it and closes it; if start-up fails it writes one line "ERR <message>\n" and closes it,
 * and returns 1.  The caller (vvfs mount) forks, runs this in the child, and waits on the pipe.
 * Logging goes to POOL/vvfs.log once the pool is opened (and to stderr before).
 */
int vv_daemon_run(const struct vv_daemon_opts *opts, int ready_fd);

#endif
