/*
 * daemon/daemon.c — the composition root: start the layers in order, serve, stop them in
 * reverse order (see daemon.h).
 *
 * Design notes
 *   This is the only place that knows both fs/ and api/; they do not know each other.  Both,
 *   and replication, borrow the pool opened here, which is closed only after all have
 *   stopped:
 *     vv_pool_open -> vv_fs_start (mount) -> vv_repl_start -> vv_api_start -> vvfs.pid -> "OK"
 *     -> vv_fs_run_loop ... unlink vvfs.pid -> vv_repl_shutdown -> vv_api_stop -> vv_repl_stop
 *     -> vv_fs_stop
 *     (unmount) -> vv_pool_close (commit)
 *   Replication starts before the API, which borrows it too, and after the mount: it needs
 *   nothing of FUSE, but a mount that fails then does so before any peer is let in or any
 *   session's worker starts.  vv_api_stop() joins every handler thread, so no control-plane
 *   call reaches replication, the pool or the FUSE session once it returns; vv_repl_shutdown()
 *   before it cuts transfers in flight (they resume at the next start) and wakes a sync
 *   waited for in a handler, so that handler ends at once; vv_repl_stop() then joins the
 *   workers and connections before the final commit.  Any failure before "OK" unwinds the steps already done (the fail ladder
 *   mirrors the shutdown path) and reports one line on the ready pipe, so `vvfs mount` can
 *   say why; when it has reaped the child, the pool lock is free again.
 */
#include "daemon/daemon.h"

#include "api/api.h"
#include "fs/fs.h"
#include "meta/pool.h"
#include "replication/repl.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Write one line (FMT + "\n") to *FD and close it; no-op once closed or when -1. */
static void ready_say(int *fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ready_say(int *fd, const char *fmt, ...)
{
    if (*fd < 0)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(*fd, line, (size_t)n);
    (void)w;
    close(*fd);
    *fd = -1;
}

/* In the background everything goes to the pool's log; start-up errors also go to the ready
 * pipe, where `vvfs mount` shows them. */
static void log_to_pool(const char *pool_dir)
{
    char lp[PATH_MAX + 16];
    snprintf(lp, sizeof(lp), "%s/vvfs.log", pool_dir);
    int lfd = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (lfd >= 0) {
        dup2(lfd, STDERR_FILENO);
        close(lfd);
    }
}

int vv_daemon_run(const struct vv_daemon_opts *o, int ready_fd)
{
    struct vv_fs_opts fo = {
        .mountpoint = o->mountpoint, .threads = o->threads, .debug_fuse = o->debug_fuse};
    struct vv_err e = {0};
    struct vv_pool *pool = NULL;
    struct vv_fs *fs = NULL;
    struct vv_repl *repl = NULL;
    struct vv_api *api = NULL;
    char path[PATH_MAX + 32];
    int rc = 1;

    vv_log_init();
    vv_log_set_level(VV_LOG_INFO);
    if (ready_fd >= 0)
        log_to_pool(o->pool_dir);
    /* cheap checks first, so a bad mount point does not cost a pool open and commit */
    if (vv_fs_check(o->pool_dir, &fo, &e) != 0) {
        ready_say(&ready_fd, "ERR %s", e.msg);
        return 1;
    }
    /* a file size limit must give writes EFBIG (the pool then says why it stopped), not kill
     * the daemon that serves every volume */
    signal(SIGXFSZ, SIG_IGN);
    if (vv_pool_open(o->pool_dir, 0, &pool, &e) != 0) {
        ready_say(&ready_fd, "ERR %s", e.msg);
        return 1;
    }
    const char *pool_dir = vv_pool_dir(pool);
    if (vv_fs_start(pool, &fo, &fs, &e) != 0) {
        ready_say(&ready_fd, "ERR %s", e.msg);
        goto fail_pool;
    }
    struct vv_repl_opts ro = {.listen = o->listen, .key_path = o->key_path};
    if (vv_repl_start(pool, &ro, &repl, &e) != 0) {
        ready_say(&ready_fd, "ERR replication: %s", e.msg);
        goto fail_fs;
    }
    if (o->listen)
        vv_info(VV_SS_MAIN, "accepting replication peers on %s%s%s", o->listen,
                o->key_path ? " with the key in " : "", o->key_path ? o->key_path : "");
    snprintf(path, sizeof(path), "%s/vvfs.sock", pool_dir);
    if (vv_api_start(pool, repl, path, &api, &e) != 0) {
        ready_say(&ready_fd, "ERR control socket: %s", e.msg);
        goto fail_repl;
    }
    snprintf(path, sizeof(path), "%s/vvfs.pid", pool_dir);
    FILE *pf = fopen(path, "w");
    if (!pf || fprintf(pf, "%d\n", (int)getpid()) < 0 || fclose(pf) != 0) {
        ready_say(&ready_fd, "ERR cannot write %s: %s", path, strerror(errno));
        goto fail_api;
    }
    vv_info(VV_SS_MAIN, "daemon of pool %s ready at %s (pid %d)", pool_dir, o->mountpoint,
            (int)getpid());
    ready_say(&ready_fd, "OK");

    int err = vv_fs_run_loop(fs);
    vv_info(VV_SS_MAIN, "session ended%s%s; committing and shutting down", err ? ": " : "",
            err ? strerror(err) : "");
    rc = err ? 1 : 0;
    unlink(path);

fail_api:
    vv_repl_shutdown(repl); /* a sync waited for in a handler returns: the API can stop */
    vv_api_stop(api);
fail_repl:
    vv_repl_stop(repl);
fail_fs:
    vv_fs_stop(fs);
fail_pool:;
    int cerr = vv_pool_close(pool);
    if (cerr) {
        vv_err(VV_SS_MAIN, "final commit failed: %s; the pool is at its last committed state",
               strerror(cerr));
        rc = 1;
    } else if (rc == 0) {
        vv_info(VV_SS_MAIN, "all data committed; daemon exits");
    }
    return rc;
}
