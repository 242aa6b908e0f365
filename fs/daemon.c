/*
 * fs/daemon.c — the vvfs daemon: open the pool, mount it, serve FUSE and the control socket,
 * and commit everything on the way out.
 *
 * Design notes
 *   Start-up order: pool (takes the pool lock, so a second daemon fails here), FUSE session
 *   and mount, control socket, pid file, then "OK" on the ready pipe and the session loop.
 *   Any failure before "OK" undoes what was done and reports one line on the pipe, so
 *   `vvfs mount` can say why.
 *   Shutdown (unmount, or SIGTERM/SIGINT/SIGHUP through libfuse's handlers): the session loop
 *   returns, the control socket closes, the mount goes away, handles the kernel did not
 *   release are closed, and vv_pool_close() commits the open txg.
 */
#include "api/api.h"
#include "fs/fs_i.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_THREADS 16

void fs_handles_add(struct vv_fs *fs, struct fs_handle *h)
{
    pthread_mutex_lock(&fs->handles_mu);
    h->prev = NULL;
    h->next = fs->handles;
    if (fs->handles)
        fs->handles->prev = h;
    fs->handles = h;
    pthread_mutex_unlock(&fs->handles_mu);
}

void fs_handles_remove(struct vv_fs *fs, struct fs_handle *h)
{
    pthread_mutex_lock(&fs->handles_mu);
    if (h->prev)
        h->prev->next = h->next;
    else
        fs->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&fs->handles_mu);
}

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

static void fuse_log_to_vv(enum fuse_log_level level, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    vv_log(level <= FUSE_LOG_ERR ? VV_LOG_ERR : level <= FUSE_LOG_WARNING ? VV_LOG_WARN
           : level <= FUSE_LOG_INFO ? VV_LOG_INFO : VV_LOG_DEBUG,
           VV_SS_FS, "libfuse: %s", msg);
}

int vv_daemon_run(const struct vv_daemon_opts *o, int ready_fd)
{
    vv_log_init();
    vv_log_set_level(VV_LOG_INFO);
    fuse_set_log_func(fuse_log_to_vv);
    if (ready_fd >= 0) {
        /* in the background everything goes to the pool's log; start-up errors also go to
         * the ready pipe, where `vvfs mount` shows them */
        char lp[PATH_MAX + 16];
        snprintf(lp, sizeof(lp), "%s/vvfs.log", o->pool_dir);
        int lfd = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (lfd >= 0) {
            dup2(lfd, STDERR_FILENO);
            close(lfd);
        }
    }
    struct vv_err e = {0};
    struct vv_fs fs;
    memset(&fs, 0, sizeof(fs));
    pthread_mutex_init(&fs.handles_mu, NULL);
    fs.threads = o->threads ? o->threads : DEFAULT_THREADS;
    fs.start_time = time(NULL);
    char path[PATH_MAX + 32];
    int rc = 1;
    struct fuse_session *se = NULL;
    struct vv_api *api = NULL;
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);

    struct stat st;
    if (stat(o->mountpoint, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ready_say(&ready_fd, "ERR mount point %s is not a directory", o->mountpoint);
        return 1;
    }
    if (strpbrk(o->pool_dir, ",\\") || strpbrk(o->mountpoint, ",\\")) {
        ready_say(&ready_fd, "ERR paths with ',' or '\\' are not supported");
        return 1;
    }
    int err = vv_pool_open(o->pool_dir, 0, &fs.pool, &e);
    if (err) {
        ready_say(&ready_fd, "ERR %s", e.msg);
        return 1;
    }
    const char *pool_dir = vv_pool_dir(fs.pool);

    char opts[PATH_MAX + 128];
    snprintf(opts, sizeof(opts), "fsname=%s,subtype=vvfs,allow_other,default_permissions",
             pool_dir);
    if (fuse_opt_add_arg(&args, "vvfs") || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, opts) || (o->debug_fuse && fuse_opt_add_arg(&args, "-d"))) {
        ready_say(&ready_fd, "ERR out of memory");
        goto fail_pool;
    }
    se = fuse_session_new(&args, &vv_fs_ops, sizeof(vv_fs_ops), &fs);
    if (!se) {
        ready_say(&ready_fd, "ERR cannot create the FUSE session (see %s/vvfs.log)", pool_dir);
        goto fail_pool;
    }
    if (fuse_set_signal_handlers(se) != 0) {
        ready_say(&ready_fd, "ERR cannot install signal handlers");
        goto fail_session;
    }
    fs.se = se;
    vv_pool_set_observer(fs.pool, fs_volume_changed, &fs);
    if (fuse_session_mount(se, o->mountpoint) != 0) {
        ready_say(&ready_fd, "ERR cannot mount on %s: is /dev/fuse available and the "
                  "directory not already a mount point? (see %s/vvfs.log)", o->mountpoint,
                  pool_dir);
        goto fail_signals;
    }
    snprintf(path, sizeof(path), "%s/vvfs.sock", pool_dir);
    err = vv_api_start(fs.pool, path, &api, &e);
    if (err) {
        ready_say(&ready_fd, "ERR control socket: %s", e.msg);
        goto fail_mount;
    }
    snprintf(path, sizeof(path), "%s/vvfs.pid", pool_dir);
    FILE *pf = fopen(path, "w");
    if (!pf || fprintf(pf, "%d\n", (int)getpid()) < 0 || fclose(pf) != 0) {
        ready_say(&ready_fd, "ERR cannot write %s: %s", path, strerror(errno));
        goto fail_api;
    }
    vv_info(VV_SS_FS, "pool %s mounted at %s (pid %d, %u threads)", pool_dir, o->mountpoint,
            (int)getpid(), fs.threads);
    ready_say(&ready_fd, "OK");

    int lrc = fs_loop_run(se, fs.threads);
    vv_info(VV_SS_FS, "session ended (%d); committing and shutting down", lrc);
    rc = lrc < 0 ? 1 : 0;
    snprintf(path, sizeof(path), "%s/vvfs.pid", pool_dir);
    unlink(path);

fail_api:
    vv_api_stop(api);
fail_mount:
    fuse_session_unmount(se);
fail_signals:
    fuse_remove_signal_handlers(se);
fail_session:
    vv_pool_set_observer(fs.pool, NULL, NULL);
    fs.se = NULL;
    fuse_session_destroy(se);
fail_pool:
    fuse_opt_free_args(&args);
    /* handles the kernel never released (lazy unmount, aborted connection) */
    pthread_mutex_lock(&fs.handles_mu);
    while (fs.handles) {
        struct fs_handle *h = fs.handles;
        fs.handles = h->next;
        vv_vol_close(h->vol);
        free(h);
    }
    pthread_mutex_unlock(&fs.handles_mu);
    err = vv_pool_close(fs.pool);
    if (err) {
        vv_err(VV_SS_FS, "final commit failed: %s; the pool is at its last committed state",
               strerror(err));
        rc = 1;
    } else if (rc == 0) {
        vv_info(VV_SS_FS, "all data committed; daemon exits");
    }
    pthread_mutex_destroy(&fs.handles_mu);
    return rc;
}
