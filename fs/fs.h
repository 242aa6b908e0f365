/*
 * fs/fs.h — the FUSE side of the daemon: a mount of one open pool.
 *
 * Mount layout:
 *   MNT/volumes/<vol>            one regular file per volume (mode 0600), size = volume size
 *   MNT/snapshots/               (snapshots arrive in a later release; empty now)
 *
 * The mount's source (as /proc/self/mountinfo shows it) is the pool's absolute directory and
 * its type is "fuse.vvfs"; `vvfs umount` and `vvfs mount` use that to find the pool's mount.
 *
 * fs/ knows nothing of the control plane or of how the process was started: daemon/ (the
 * composition root) opens the pool, calls vv_fs_start(), starts api/, and finally
 * vv_fs_run_loop(); see daemon/daemon.h.
 *
 * Life of a struct vv_fs: vv_fs_start() -> vv_fs_run_loop() (at most once) -> vv_fs_stop().
 * None of the three may run concurrently with another on the same vv_fs.  The pool must stay
 * open until vv_fs_stop() has returned.
 */
#ifndef VV_FS_FS_H
#define VV_FS_FS_H

#include "meta/pool.h"

#include <stdbool.h>

struct vv_fs;

struct vv_fs_opts {
    const char *mountpoint; /* absolute path, an existing directory */
    unsigned threads;       /* FUSE worker threads; 0 = default (16) */
    bool debug_fuse;        /* libfuse debug output */
};

/*
 * Check, before anything is opened, that POOL_DIR and O->mountpoint can be used for a mount:
 * the mount point is a directory, and neither path holds ',' or '\\' (libfuse's option
 * syntax).  Returns 0, or EINVAL/ENOTDIR with E filled.
 */
int vv_fs_check(const char *pool_dir, const struct vv_fs_opts *o, struct vv_err *e);

/*
 * Create the FUSE session for POOL (borrowed, not owned), install the SIGTERM/SIGINT/SIGHUP
 * handlers that end it, register the pool observer, and mount it at O->mountpoint.  On return
 * 0 the mount is visible, but requests are served only once vv_fs_run_loop() runs.  Returns 0
 * and *OUT (free with vv_fs_stop), or an errno with E filled; on failure nothing is left
 * mounted or installed.  libfuse's own messages go to the vvfs log.
 */
int vv_fs_start(struct vv_pool *pool, const struct vv_fs_opts *o, struct vv_fs **out,
                struct vv_err *e);

/*
 * Serve requests until the mount goes away (umount, fusermount3 -u) or one of the signals
 * above arrives.  Returns 0, or an errno if the session failed.
 */
int vv_fs_run_loop(struct vv_fs *fs);

/*
 * Unmount (if still mounted), remove the signal handlers and the pool observer, destroy the
 * session, and close every volume handle the kernel never released (lazy unmount, aborted
 * connection), so that the pool can be closed.  Accepts NULL.
 */
void vv_fs_stop(struct vv_fs *fs);

#endif
