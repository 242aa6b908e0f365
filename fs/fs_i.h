/*
 * fs/fs_i.h — private to fs/.
 */
#ifndef VV_FS_FS_I_H
#define VV_FS_FS_I_H

#define FUSE_USE_VERSION 314
#include "fs/fs.h"
#include "meta/pool.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* One open() of a volume file. */
struct fs_handle {
    struct vv_vol *vol;
    atomic_bool wrote;              /* written since the last flush/fsync */
    struct fs_handle *prev, *next;  /* vv_fs.handles, under vv_fs.handles_mu */
};

/* Set up by vv_fs_start() before any request is served, then read-only, except handles. */
struct vv_fs {
    struct vv_pool *pool;           /* borrowed from the composition root (daemon/) */
    struct fuse_session *se;        /* set before the session loop starts */
    unsigned threads;
    time_t start_time;
    bool mounted;                   /* fuse_session_mount succeeded */
    pthread_mutex_t handles_mu;
    struct fs_handle *handles;      /* handles_mu: every open handle */
};

extern const struct fuse_lowlevel_ops vv_fs_ops;

/* vv_volume_observer: tell the kernel to drop cached names/attributes of a changed volume */
void fs_volume_changed(void *ctx, enum vv_volume_event ev, uint64_t id, const char *name,
                       const char *oldname);

/* serve SE with NTHREADS workers until it ends: 0, or a negative errno */
int fs_loop_run(struct fuse_session *se, unsigned nthreads);

void fs_handles_add(struct vv_fs *fs, struct fs_handle *h);
void fs_handles_remove(struct vv_fs *fs, struct fs_handle *h);

#endif
