/*
 * meta/reap.c — freeing the blocks of deleted volumes and of shrunk volumes' tails, in the
 * background, in bounded LMDB txns that survive a crash.
 *
 * Design notes
 *   Deleting a volume used to drop all its extents in one txn under commit_mu: O(its blocks),
 *   and every other volume's commits (so their fsyncs) waited for it (measured: 4.5 s for a
 *   12 GiB volume at 4 KiB extents, format 1).  Now the delete only marks the volume record
 *   (VOL_F_DELETING | VOL_F_DROP, drop_from 0) and removes its name, in one small txn; the
 *   volume goes to p->dying.  A shrink sets drop_from to the new end the same way.  The
 *   reaper then frees a pending drop REAP_BATCH chunk versions per txn (reap_step), taking
 *   commit_mu per txn only, so a commit waits at most one step.  Each step's txn records the
 *   progress (the versions are gone, the record's counter follows), so after a crash the
 *   records still flagged tell vol_load what is left, and the reaper resumes.  The last step
 *   deletes a dying volume's record (or clears a shrunk volume's flag).
 *
 *   Slots a step frees are punched and released by the reaper at once, not through the
 *   allocator's reclaim queue (millions of single slots there cost every reclaim round a walk
 *   and a sort under alloc_mu): nobody reads them (a deleted volume has no handles; blocks
 *   past a volume's end are never read).
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REAP_BATCH 512u /* chunk versions per txn: up to 32K blocks (128 MiB at 4 KiB) */

static size_t reap_batch(void)
{
    const char *s = getenv("VVFS_REAP_BATCH"); /* tests: many small steps */
    return s && atoi(s) > 0 ? (size_t)atoi(s) : REAP_BATCH;
}

int reap_step(struct vv_pool *p, struct vv_volume *v, struct slot_list *freed, bool *done)
{
    *done = false;
    if (v->drop_from == DROP_NONE) {
        *done = true;
        return 0;
    }
    MDB_txn *txn;
    int err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (err)
        return err;
    int64_t used = 0;
    bool fin = false;
    size_t n0 = freed->n;
    err = xmap_drop(&p->xmap, txn, v->id, v->drop_from, reap_batch(), freed, &used, &fin);
    struct slot_list none = {0}, mine = {freed->v + n0, freed->n - n0, freed->n - n0};
    if (!err)
        err = alloc_persist(p, txn, &none, &mine);
    struct vv_volume tmp = *v;
    uint64_t dropped = (uint64_t)-used;
    tmp.used_extents -= dropped < tmp.used_extents ? dropped : tmp.used_extents;
    if (!err && fin && v->deleting) {
        uint8_t kb[8];
        put_be64(kb, v->id);
        MDB_val k = {8, kb};
        err = kv_err(mdb_del(txn, p->db_volumes, &k, NULL));
    } else if (!err) {
        if (fin)
            tmp.drop_from = DROP_NONE;
        err = vol_write_rec(p, txn, &tmp);
    }
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (err) {
        freed->n = n0;
        return err;
    }
    uint64_t f = atomic_load(&p->freeing);
    atomic_store(&p->freeing, f > dropped ? f - dropped : 0);
    pthread_rwlock_wrlock(&p->vol_mu);
    v->used_extents = tmp.used_extents;
    v->drop_from = tmp.drop_from;
    pthread_rwlock_unlock(&p->vol_mu);
    *done = fin;
    pthread_cond_broadcast(&p->reap_cv);
    return 0;
}

/* The next volume with a pending drop (commit_mu held): dying ones first. */
static struct vv_volume *next_work(struct vv_pool *p)
{
    if (p->ndying)
        return p->dying[0];
    struct vv_volume *v = NULL;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < p->nvols && !v; i++)
        if (p->vols[i]->drop_from != DROP_NONE && !p->vols[i]->busy)
            v = p->vols[i];
    pthread_rwlock_unlock(&p->vol_mu);
    return v;
}

static void *reaper_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-reap");
    struct vv_pool *p = arg;
    const char *s = getenv("VVFS_REAP_PAUSE_MS"); /* tests: stop in the middle */
    unsigned pause_ms = s && atoi(s) > 0 ? (unsigned)atoi(s) : 0;
    pthread_mutex_lock(&p->commit_mu);
    while (!p->reap_stop) {
        struct vv_volume *v = next_work(p);
        if (!v) {
            pthread_cond_broadcast(&p->reap_cv); /* idle: wake reap_wait_idle */
            pthread_cond_wait(&p->reap_cv, &p->commit_mu);
            continue;
        }
        struct slot_list freed = {0};
        bool done;
        uint64_t id = v->id; /* (V may be gone once commit_mu is dropped) */
        int err = reap_step(p, v, &freed, &done);
        if (!err && done && v->deleting) {
            vol_dying_remove(p, v);
            vv_info(VV_SS_META, "deleted volume (id %llu): all its space is free",
                    (unsigned long long)v->id);
            vol_put(v); /* the dying list's reference */
        }
        /* punched and released outside commit_mu (I/O); reap_releasing keeps whoever waits
         * for the reaper waiting until the space is back */
        p->reap_releasing = true;
        pthread_mutex_unlock(&p->commit_mu);
        alloc_punch_release(p, &freed);
        slot_list_free(&freed);
        pthread_mutex_lock(&p->commit_mu);
        p->reap_releasing = false;
        pthread_cond_broadcast(&p->reap_cv);
        pthread_mutex_unlock(&p->commit_mu);
        if (err) {
            vv_err(VV_SS_META, "freeing the blocks of volume %llu failed: %s; retrying in 1 s",
                   (unsigned long long)id, strerror(err));
            sleep(1);
        } else if (pause_ms) {
            struct timespec ts = {pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&p->commit_mu);
    }
    pthread_mutex_unlock(&p->commit_mu);
    return NULL;
}

void reap_kick(struct vv_pool *p)
{
    pthread_cond_broadcast(&p->reap_cv);
}

int reap_start(struct vv_pool *p)
{
    int rc = pthread_create(&p->reaper, NULL, reaper_main, p);
    if (!rc)
        p->reaper_running = true;
    return rc;
}

void reap_stop(struct vv_pool *p)
{
    if (!p->reaper_running)
        return;
    pthread_mutex_lock(&p->commit_mu);
    p->reap_stop = true;
    pthread_cond_broadcast(&p->reap_cv);
    pthread_mutex_unlock(&p->commit_mu);
    pthread_join(p->reaper, NULL);
    p->reaper_running = false;
}

bool reap_wait_idle(struct vv_pool *p, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->commit_mu);
    bool idle;
    while (!(idle = !p->reaper_running || (!next_work(p) && !p->reap_releasing)))
        if (pthread_cond_timedwait(&p->reap_cv, &p->commit_mu, &ts) == ETIMEDOUT)
            break;
    if (!idle)
        idle = !next_work(p) && !p->reap_releasing;
    pthread_mutex_unlock(&p->commit_mu);
    return idle;
}
