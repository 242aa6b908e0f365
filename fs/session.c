/*
 * fs/session.c — the FUSE session of one pool: create, mount, serve, unmount (see fs.h).
 *
 * Design notes
 *   vv_fs_start(): session (with our ops and the struct vv_fs as userdata), signal handlers
 *   (SIGTERM/SIGINT/SIGHUP make the session exit; fs/loop.c then wakes the workers), the pool
 *   observer (so control-plane changes invalidate the kernel's cache), then the mount.  Each
 *   step is undone by the fail ladder if a later one fails.
 *   vv_fs_stop() undoes them in reverse order and then closes the handles the kernel never
 *   released, so the caller can close the pool.
 *   Nothing here knows of the control socket, the pid file or the ready pipe: daemon/ owns
 *   those and the order in which the layers start and stop.
 */
#include "fs/fs_i.h"
#include "util/log.h"

#include <errno.h>
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

static void fuse_log_to_vv(enum fuse_log_level level, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    vv_log(level <= FUSE_LOG_ERR ? VV_LOG_ERR : level <= FUSE_LOG_WARNING ? VV_LOG_WARN
           : level <= FUSE_LOG_INFO ? VV_LOG_INFO : VV_LOG_DEBUG,
           VV_SS_FS, "libfuse: %s", msg);
}

int vv_fs_check(const char *pool_dir, const struct vv_fs_opts *o, struct vv_err *e)
{
    struct stat st;
    if (stat(o->mountpoint, &st) != 0 || !S_ISDIR(st.st_mode))
        return vv_err_set(e, ENOTDIR, "mount point %s is not a directory", o->mountpoint);
    if (strpbrk(pool_dir, ",\\") || strpbrk(o->mountpoint, ",\\"))
        return vv_err_set(e, EINVAL, "paths with ',' or '\\' are not supported");
    return 0;
}

int vv_fs_start(struct vv_pool *pool, const struct vv_fs_opts *o, struct vv_fs **out,
                struct vv_err *e)
{
    const char *pool_dir = vv_pool_dir(pool);
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    char opts[PATH_MAX + 128];
    int rc = vv_fs_check(pool_dir, o, e);
    if (rc)
        return rc;
    struct vv_fs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return vv_err_set(e, ENOMEM, "out of memory");
    pthread_mutex_init(&fs->handles_mu, NULL);
    fs->pool = pool;
    fs->threads = o->threads ? o->threads : DEFAULT_THREADS;
    fs->start_time = time(NULL);
    fuse_set_log_func(fuse_log_to_vv);

    snprintf(opts, sizeof(opts), "fsname=%s,subtype=vvfs,allow_other,default_permissions",
             pool_dir);
    if (fuse_opt_add_arg(&args, "vvfs") || fuse_opt_add_arg(&args, "-o") ||
        fuse_opt_add_arg(&args, opts) || (o->debug_fuse && fuse_opt_add_arg(&args, "-d"))) {
        rc = vv_err_set(e, ENOMEM, "out of memory");
        goto fail_1;
    }
    fs->se = fuse_session_new(&args, &vv_fs_ops, sizeof(vv_fs_ops), fs);
    if (!fs->se) {
        rc = vv_err_set(e, EIO, "cannot create the FUSE session (see %s/vvfs.log)", pool_dir);
        goto fail_1;
    }
    if (fuse_set_signal_handlers(fs->se) != 0) {
        rc = vv_err_set(e, EIO, "cannot install signal handlers");
        goto fail_2;
    }
    vv_pool_set_observer(pool, fs_volume_changed, fs);
    if (fuse_session_mount(fs->se, o->mountpoint) != 0) {
        rc = vv_err_set(e, EIO,
                        "cannot mount on %s: is /dev/fuse available and the directory not "
                        "already a mount point? (see %s/vvfs.log)",
                        o->mountpoint, pool_dir);
        goto fail_3;
    }
    fs->mounted = true;
    fuse_opt_free_args(&args);
    vv_info(VV_SS_FS, "pool %s mounted at %s (%u threads)", pool_dir, o->mountpoint,
            fs->threads);
    *out = fs;
    return 0;

fail_3:
    vv_pool_set_observer(pool, NULL, NULL);
    fuse_remove_signal_handlers(fs->se);
fail_2:
    fuse_session_destroy(fs->se);
fail_1:
    fuse_opt_free_args(&args);
    pthread_mutex_destroy(&fs->handles_mu);
    free(fs);
    return rc;
}

int vv_fs_run_loop(struct vv_fs *fs)
{
    int lrc = fs_loop_run(fs->se, fs->threads);
    vv_info(VV_SS_FS, "session ended (%d)", lrc);
    return lrc < 0 ? -lrc : 0;
}

void vv_fs_stop(struct vv_fs *fs)
{
    if (!fs)
        return;
    if (fs->mounted)
        fuse_session_unmount(fs->se);
    fuse_remove_signal_handlers(fs->se);
    vv_pool_set_observer(fs->pool, NULL, NULL);
    struct fuse_session *se = fs->se;
    fs->se = NULL; /* the observer is gone; nobody notifies any more */
    fuse_session_destroy(se);
    /* handles the kernel never released (lazy unmount, aborted connection) */
    pthread_mutex_lock(&fs->handles_mu);
    while (fs->handles) {
        struct fs_handle *h = fs->handles;
        fs->handles = h->next;
        vv_vol_close(h->vol);
        free(h);
    }
    pthread_mutex_unlock(&fs->handles_mu);
    pthread_mutex_destroy(&fs->handles_mu);
    free(fs);
}
