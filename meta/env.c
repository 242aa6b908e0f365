/*
 * meta/env.c — the pool's LMDB environment: opening it, sizing its map, growing the map when
 * it fills, and the cache of read txns.
 *
 * Design notes
 *   The map is address space, not disk (the file grows as metadata does), so it is sized for
 *   a full pool with room to spare (env_map_size) and never smaller than twice the file.  But
 *   snapshots keep versions, so no fixed size is enough for every pool: when a write txn
 *   finds the map full (MDB_MAP_FULL, ENOSPC here), its owner aborts it, calls env_grow() and
 *   tries again.  LMDB remaps on mdb_env_set_mapsize(), which is safe only while no txn of
 *   this process uses the map: every read txn runs inside map_lock (shared, taken by
 *   rtxn_get, released by rtxn_put), write txns run under commit_mu, and env_grow() takes
 *   map_lock exclusively with commit_mu held.  map_lock is a reader-preferring rwlock, so a
 *   thread may nest read txns without deadlock.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAP_SIZE_MIN (64ULL << 30)

uint64_t env_map_size(const struct vv_pool *p, uint64_t nslots)
{
    /* format 2 costs 0.3-1% of the data without snapshots (docs/ARCHITECTURE.md): 256 bytes
     * a slot is 6% at 4 KiB extents; beyond that the map grows */
    uint64_t want = nslots * 256;
    (void)p;
    return want > MAP_SIZE_MIN ? want : MAP_SIZE_MIN;
}

int env_open(struct vv_pool *p, uint64_t map_size, bool rdonly)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/meta.mdb", p->dir);
    const char *s = getenv("VVFS_LMDB_MAP_SIZE"); /* tests: start small, make it grow */
    if (s && atoll(s) > 0)
        map_size = (uint64_t)atoll(s);
    struct stat st;
    if (stat(path, &st) == 0 && map_size < 2 * (uint64_t)st.st_size)
        map_size = 2 * (uint64_t)st.st_size;
    int rc = mdb_env_create(&p->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(p->env, 16);
    if (!rc)
        rc = mdb_env_set_maxreaders(p->env, 1024);
    if (!rc)
        rc = mdb_env_set_mapsize(p->env, map_size ? map_size : MAP_SIZE_MIN);
    if (!rc)
        rc = mdb_env_open(p->env, path, MDB_NOSUBDIR | MDB_NOTLS | (rdonly ? MDB_RDONLY : 0),
                          0600);
    if (rc) {
        mdb_env_close(p->env);
        p->env = NULL;
        return kv_err(rc);
    }
    return 0;
}

int env_fit(struct vv_pool *p, uint64_t map_size)
{
    if (getenv("VVFS_LMDB_MAP_SIZE"))
        return 0;
    MDB_envinfo info;
    int rc = mdb_env_info(p->env, &info);
    if (!rc && info.me_mapsize < map_size)
        rc = mdb_env_set_mapsize(p->env, map_size);
    return kv_err(rc);
}

int env_grow(struct vv_pool *p)
{
    pthread_rwlock_wrlock(&p->map_lock);
    MDB_envinfo info;
    int rc = mdb_env_info(p->env, &info);
    uint64_t old = rc ? 0 : info.me_mapsize, want = old * 2;
    if (!rc)
        rc = mdb_env_set_mapsize(p->env, want);
    pthread_rwlock_unlock(&p->map_lock);
    if (rc) {
        vv_err(VV_SS_META, "cannot grow the metadata map of pool %s beyond %llu MiB: %s",
               p->dir, (unsigned long long)(old >> 20), mdb_strerror(rc));
        return kv_err(rc);
    }
    vv_info(VV_SS_META, "metadata map of pool %s was full: grown from %llu to %llu MiB", p->dir,
            (unsigned long long)(old >> 20), (unsigned long long)(want >> 20));
    return 0;
}

int rtxn_get(struct vv_pool *p, MDB_txn **txn)
{
    MDB_txn *t = NULL;
    pthread_rwlock_rdlock(&p->map_lock);
    pthread_mutex_lock(&p->rtxn_mu);
    if (p->rtxn_n > 0)
        t = p->rtxn_free[--p->rtxn_n];
    pthread_mutex_unlock(&p->rtxn_mu);
    int rc = t ? mdb_txn_renew(t) : mdb_txn_begin(p->env, NULL, MDB_RDONLY, &t);
    if (rc) {
        if (t)
            mdb_txn_abort(t);
        pthread_rwlock_unlock(&p->map_lock);
        vv_err(VV_SS_META, "cannot start a metadata read: %s", mdb_strerror(rc));
        return kv_err(rc);
    }
    *txn = t;
    return 0;
}

void rtxn_put(struct vv_pool *p, MDB_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_reset(txn);
    pthread_mutex_lock(&p->rtxn_mu);
    if (p->rtxn_n < (int)(sizeof(p->rtxn_free) / sizeof(p->rtxn_free[0]))) {
        p->rtxn_free[p->rtxn_n++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&p->rtxn_mu);
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&p->map_lock);
}

void rtxn_drain(struct vv_pool *p)
{
    pthread_mutex_lock(&p->rtxn_mu);
    while (p->rtxn_n > 0)
        mdb_txn_abort(p->rtxn_free[--p->rtxn_n]);
    pthread_mutex_unlock(&p->rtxn_mu);
}

#define ENV_ROOM (64ULL << 20)

int env_keep_room(struct vv_pool *p)
{
    int fd;
    MDB_envinfo info;
    MDB_stat st;
    struct stat sb;
    int err = kv_err(mdb_env_get_fd(p->env, &fd));
    if (!err)
        err = kv_err(mdb_env_info(p->env, &info));
    if (!err)
        err = kv_err(mdb_env_stat(p->env, &st));
    if (!err && fstat(fd, &sb) != 0)
        err = errno;
    if (err)
        return err;
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    uint64_t have = (uint64_t)sb.st_size;
    bool was_full = atomic_load(&p->host_full);
    if (have >= used + ENV_ROOM / 2 && !was_full)
        return 0;
    uint64_t want = (used + ENV_ROOM + ENV_ROOM - 1) / ENV_ROOM * ENV_ROOM;
    if (want > info.me_mapsize)
        want = info.me_mapsize;
    if (want > have && fallocate(fd, 0, (off_t)have, (off_t)(want - have)) != 0) {
        err = errno;
        if (!was_full)
            vv_warn(VV_SS_META, "pool %s: cannot reserve room for metadata (%s): the "
                    "filesystem under the pool is full; new data is refused until space is "
                    "freed (rewrites, discards and deletes go on)", p->dir, strerror(err));
        atomic_store(&p->host_full, true);
        return err;
    }
    if (was_full) {
        atomic_store(&p->host_full, false);
        vv_info(VV_SS_META, "pool %s: the filesystem under the pool has room again; new data "
                "is accepted", p->dir);
    }
    return 0;
}
