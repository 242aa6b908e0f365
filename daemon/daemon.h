/*
 * daemon/daemon.h — the vvfs daemon: the composition root that wires meta/, fs/, replication/
 * and api/ together and owns the order in which they start and stop.
 *
 * Files the running daemon keeps in the pool directory:
 *   vvfs.sock   control socket (HTTP/1.1 + JSON, mode 0600), see api/api.h
 *   vvfs.pid    the daemon's pid, written once the mount and the socket are usable
 *   vvfs.log    the daemon's log (when started in the background)
 * and one that an administrator may keep there: vvfs.conf, settings `vvfs mount` takes when
 * its command line does not give them (listen = HOST:PORT, key = /path, threads = N).
 */
#ifndef VV_DAEMON_DAEMON_H
#define VV_DAEMON_DAEMON_H

#include <stdbool.h>

struct vv_daemon_opts {
    const char *pool_dir;   /* absolute path */
    const char *mountpoint; /* absolute path, an existing directory */
    unsigned threads;       /* FUSE worker threads; 0 = default */
    bool debug_fuse;        /* libfuse debug output */
    const char *listen;     /* HOST:PORT on which to accept replication peers, or NULL: none */
    const char *key_path;   /* absolute path of the key file those peers must have, or NULL
                             * (replication refuses a non-loopback LISTEN without one) */
};

/*
 * Run the daemon in this process until it is unmounted (umount/fusermount3 -u) or gets
 * SIGTERM/SIGINT/SIGHUP; then commit everything and return 0 (or 1 on failure).
 *
 * Start-up, in this order: open the pool (taking its lock), start FUSE (mount), start
 * replication (its sessions' workers; listening on LISTEN if set), start the control plane,
 * write vvfs.pid, report readiness.  Shutdown is the reverse: remove vvfs.pid, stop the
 * control plane, stop replication (transfers in flight are cut and resume at the next start),
 * stop FUSE (unmount, close leftover handles), close the pool (which commits the open
 * transaction group).
 *
 * READY_FD (or -1): once the mount and the control socket are usable, the daemon writes "OK\n"
 * to it and closes it; if start-up fails it writes one line "ERR <message>\n", closes it, and
 * returns 1.  `vvfs mount` forks, runs this in the child, and waits on the pipe.  With a
 * READY_FD, stderr is redirected to POOL/vvfs.log first; with -1 (--foreground) logging stays
 * on stderr.
 */
int vv_daemon_run(const struct vv_daemon_opts *opts, int ready_fd);

#endif
