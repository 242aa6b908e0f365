/*
 * meta/txg.c — transaction groups: dirty mappings, the committer thread, commit.
 *
 * Design notes
 *   Writes land in the open txg t.  A writer "holds" t for the duration of one extent update
 *   (txg_hold/txg_rele).  A commit of t:
 *     1. closes t (open_txg = t+1) and waits until t has no holds left (quiesced): from then
 *        on the mappings of t and the data in their slots are immutable;
 *     2. computes the xxh3 checksum of every slot of t that has none yet;
 *     3. fdatasync()s the data file;
 *     4. in one LMDB write txn: for each mapping of t, removes the entry it supersedes (unless
 *        a snapshot still sees it) and its births row, inserts the new entry and births row,
 *        updates the space map, volume counters and the generation (= t);
 *     5. waits (reuse_lock barrier) for every reader that began before the LMDB commit;
 *        drops t's dirty table (readers now find the entries in LMDB); punches the
 *        superseded slots and returns them to the allocator; publishes committed_txg = t.
 *   A reader holds reuse_lock shared across all its lookups and preads, and looks in the
 *   dirty tables before LMDB.  So within one read, a dirty table it could need is never
 *   dropped, and a slot it found is never punched or reused.
 *   Only one txg commits at a time, so at most two dirty tables exist: the open one and the
 *   committing one, indexed by txg & 1.
 *
 *   A crash at any point leaves the pool at the last committed txg: slots written by t are
 *   free in the space map until step 4 commits, and superseded slots are reused only after.
 *
 *   If step 3 or 4 fails the pool is poisoned: every later write/flush returns EIO (the
 *   in-memory state can no longer be trusted to match LMDB); the admin remounts.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* ---- dirty tables ----------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t dirty_hash(uint64_t vol, uint64_t chunk)
{
    return mix64(chunk * 0x9e3779b97f4a7c15ULL + vol);
}

struct stripe *stripe_of(struct vv_pool *p, uint64_t vol, uint64_t chunk)
{
    /* neighbouring chunks go to different stripes */
    return &p->stripes[(chunk ^ (vol * 7)) % NSTRIPES];
}

struct dchunk *dchunk_find(struct dirty_table *t, uint64_t vol, uint64_t chunk)
{
    if (!t->nbuckets)
        return NULL;
    for (struct dchunk *d = t->buckets[dirty_hash(vol, chunk) & (t->nbuckets - 1)]; d;
         d = d->next)
        if (d->chunk == chunk && d->vol == vol)
            return d;
    return NULL;
}

static int dirty_insert(struct dirty_table *t, struct dchunk *d)
{
    if (t->count >= t->nbuckets) {
        size_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
        struct dchunk **b = calloc(nb, sizeof(*b));
        if (!b)
            return ENOMEM;
        for (size_t i = 0; i < t->nbuckets; i++) {
            for (struct dchunk *e = t->buckets[i], *n; e; e = n) {
                n = e->next;
                size_t h = dirty_hash(e->vol, e->chunk) & (nb - 1);
                e->next = b[h];
                b[h] = e;
            }
        }
        free(t->buckets);
        t->buckets = b;
        t->nbuckets = nb;
    }
    size_t h = dirty_hash(d->vol, d->chunk) & (t->nbuckets - 1);
    d->next = t->buckets[h];
    t->buckets[h] = d;
    t->count++;
    return 0;
}

int dchunk_get(struct dirty_table *t, uint64_t vol, uint64_t chunk, uint64_t txg,
               struct dchunk **out)
{
    struct dchunk *d = dchunk_find(t, vol, chunk);
    if (d) {
        *out = d;
        return 0;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return ENOMEM;
    d->vol = vol;
    d->chunk = chunk;
    d->txg = txg;
    if (dirty_insert(t, d)) {
        free(d);
        return ENOMEM;
    }
    *out = d;
    return 0;
}

int dchunk_add(struct dchunk *d, unsigned b, uint64_t slot)
{
    unsigned n = (unsigned)__builtin_popcountll(d->mask);
    if (n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 2;
        if (cap > XMAP_CHUNK_BLOCKS)
            cap = XMAP_CHUNK_BLOCKS;
        struct dblk *e = realloc(d->e, cap * sizeof(*e));
        if (!e)
            return ENOMEM;
        d->e = e;
        d->cap = cap;
    }
    unsigned r = (unsigned)__builtin_popcountll(d->mask & ((1ULL << b) - 1));
    memmove(&d->e[r + 1], &d->e[r], (n - r) * sizeof(d->e[0]));
    d->e[r] = (struct dblk){.slot = slot};
    d->mask |= 1ULL << b;
    return 0;
}

void dchunk_remove(struct dchunk *d, unsigned b)
{
    uint64_t bit = 1ULL << b;
    unsigned n = (unsigned)__builtin_popcountll(d->mask);
    unsigned r = (unsigned)__builtin_popcountll(d->mask & (bit - 1));
    memmove(&d->e[r], &d->e[r + 1], (n - r - 1) * sizeof(d->e[0]));
    d->mask &= ~bit;
    d->zero &= ~bit;
    d->filling &= ~bit;
    d->csum_ok &= ~bit;
}

/* Free every entry of TAB and its buckets. */
void dirty_table_free(struct dirty_table *tab)
{
    for (size_t b = 0; b < tab->nbuckets; b++) {
        for (struct dchunk *d = tab->buckets[b], *n; d; d = n) {
            n = d->next;
            free(d->e);
            free(d);
        }
    }
    free(tab->buckets);
    tab->buckets = NULL;
    tab->nbuckets = 0;
    tab->count = 0;
}

/* ---- holds -------------------------------------------------------------------------------- */

int txg_hold(struct vv_pool *p, uint64_t *txg)
{
    pthread_mutex_lock(&p->txg_mu);
    /* throttle: let the committer catch up when the open txg is far over its bound */
    while (!p->poisoned && !p->stopping &&
           p->dirty_bytes[p->open_txg & 1] > 2 * p->dirty_bound) {
        pthread_cond_signal(&p->commit_wanted);
        pthread_cond_wait(&p->txg_committed, &p->txg_mu);
    }
    int err = p->poisoned;
    if (!err) {
        *txg = p->open_txg;
        p->holds[*txg & 1]++;
    }
    pthread_mutex_unlock(&p->txg_mu);
    return err;
}

void txg_rele(struct vv_pool *p, uint64_t txg)
{
    pthread_mutex_lock(&p->txg_mu);
    if (--p->holds[txg & 1] == 0 && txg != p->open_txg)
        pthread_cond_broadcast(&p->txg_quiesced);
    pthread_mutex_unlock(&p->txg_mu);
}

void txg_wait_quiesced(struct vv_pool *p, uint64_t txg)
{
    pthread_mutex_lock(&p->txg_mu);
    while (p->quiesced_txg < txg && !p->poisoned)
        pthread_cond_wait(&p->txg_quiesced, &p->txg_mu);
    pthread_mutex_unlock(&p->txg_mu);
}

void txg_note_dirty(struct vv_pool *p, uint64_t txg, uint64_t bytes, uint64_t count)
{
    pthread_mutex_lock(&p->txg_mu);
    p->dirty_bytes[txg & 1] += bytes;
    p->dirty_count[txg & 1] += count;
    /* tombstones carry no data but cost memory and commit time: bound their number too */
    if (p->dirty_bytes[txg & 1] > p->dirty_bound || p->dirty_count[txg & 1] > DIRTY_COUNT_BOUND)
        pthread_cond_signal(&p->commit_wanted);
    pthread_mutex_unlock(&p->txg_mu);
}

/* ---- commit -------------------------------------------------------------------------------- */

struct vol_delta {
    struct vv_volume *v;
    struct xcount c;
};

static int dirty_cmp(const void *a, const void *b)
{
    const struct dchunk *x = *(struct dchunk *const *)a, *y = *(struct dchunk *const *)b;
    if (x->vol != y->vol)
        return x->vol < y->vol ? -1 : 1;
    return x->chunk < y->chunk ? -1 : x->chunk > y->chunk;
}

/* Collect the dirty chunks of txg T from every stripe, sorted by (volume, chunk). */
static int gather(struct vv_pool *p, uint64_t t, struct dchunk ***out, size_t *n)
{
    size_t cap = 0, cnt = 0;
    for (int i = 0; i < NSTRIPES; i++)
        cap += p->stripes[i].tab[t & 1].count; /* stable: t is quiesced */
    struct dchunk **arr = malloc((cap ? cap : 1) * sizeof(*arr));
    if (!arr)
        return ENOMEM;
    for (int i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &p->stripes[i];
        pthread_mutex_lock(&s->mu);
        struct dirty_table *tab = &s->tab[t & 1];
        for (size_t b = 0; b < tab->nbuckets; b++)
            for (struct dchunk *d = tab->buckets[b]; d; d = d->next)
                if (cnt < cap && d->mask)
                    arr[cnt++] = d;
        pthread_mutex_unlock(&s->mu);
    }
    qsort(arr, cnt, sizeof(*arr), dirty_cmp);
    *out = arr;
    *n = cnt;
    return 0;
}

/* Checksum every data block of the chunks in ARR that has none yet (t is quiesced: no writer
 * touches them, so no lock is needed). */
static int checksum_slots(struct vv_pool *p, struct dchunk **arr, size_t n)
{
    void *buf = NULL;
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        struct dchunk *d = arr[i];
        for (uint64_t m = d->mask & ~d->zero & ~d->csum_ok; m && !err; m &= m - 1) {
            struct dblk *e = dchunk_blk(d, (unsigned)__builtin_ctzll(m));
            if (!buf && !(buf = malloc(p->extent_size)))
                return ENOMEM;
            ssize_t r = pread(slot_fd(p, e->slot), buf, p->extent_size, slot_off(p, e->slot, 0));
            if (r != (ssize_t)p->extent_size) {
                err = r < 0 ? errno : EIO;
                vv_err(VV_SS_TXG, "reading slot %llu for its checksum failed: %s",
                       (unsigned long long)e->slot, strerror(err));
                break;
            }
            e->csum = XXH3_64bits(buf, p->extent_size);
        }
        d->csum_ok = d->mask & ~d->zero;
    }
    free(buf);
    return err;
}

static int apply_all(struct vv_pool *p, uint64_t t, struct dchunk **arr, size_t n,
                     struct slot_list *freed)
{
    struct slot_list set = {0};
    MDB_txn *txn;
    int err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (err)
        return err;
    MDB_cursor *cur;
    err = kv_err(mdb_cursor_open(txn, p->xmap.map, &cur));
    if (err) {
        mdb_txn_abort(txn);
        return err;
    }
    /* volumes touched, with their used-block deltas; arr is sorted by volume */
    struct vol_delta *deltas = NULL;
    size_t ndeltas = 0;
    struct vv_volume *v = NULL;
    struct xver delta;
    for (size_t i = 0; i < n && !err; i++) {
        struct dchunk *d = arr[i];
        if (!v || v->id != d->vol) {
            pthread_rwlock_rdlock(&p->vol_mu);
            v = vol_find_id(p, d->vol);
            pthread_rwlock_unlock(&p->vol_mu);
            if (!v) {
                /* cannot happen: deletion commits first and refuses open volumes */
                vv_err(VV_SS_TXG, "dirty mapping for unknown volume %llu",
                       (unsigned long long)d->vol);
                err = EIO;
                break;
            }
            struct vol_delta *nd = realloc(deltas, (ndeltas + 1) * sizeof(*nd));
            if (!nd) {
                err = ENOMEM;
                break;
            }
            deltas = nd;
            deltas[ndeltas].v = v;
            deltas[ndeltas].c = (struct xcount){0};
            ndeltas++;
        }
        delta.defined = d->mask;
        delta.zero = d->zero;
        unsigned r = 0;
        for (uint64_t m = d->mask; m; m &= m - 1, r++) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            delta.slot[b] = d->e[r].slot;
            delta.csum[b] = d->e[r].csum;
        }
        err = xmap_apply(&p->xmap, txn, cur, d->vol, d->chunk, t, v->snap_gen, vol_xflags(v),
                         &delta, freed, &set, &deltas[ndeltas - 1].c);
    }
    mdb_cursor_close(cur);
    if (!err)
        err = alloc_persist(p, txn, &set, freed);
    for (size_t i = 0; i < ndeltas && !err; i++) {
        struct vv_volume tmp = *deltas[i].v;
        tmp.used_extents = (uint64_t)((int64_t)tmp.used_extents + deltas[i].c.used);
        tmp.dead_blocks += deltas[i].c.hidden;
        err = vol_write_rec(p, txn, &tmp);
    }
    if (!err)
        err = kv_put_u64(txn, p->db_config, "gen", t);
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (!err) {
        pthread_rwlock_wrlock(&p->vol_mu);
        for (size_t i = 0; i < ndeltas; i++) {
            struct vv_volume *dv = deltas[i].v;
            dv->used_extents = (uint64_t)((int64_t)dv->used_extents + deltas[i].c.used);
            dv->dead_blocks += deltas[i].c.hidden;
            /* what the newest snapshot alone holds may have grown */
            if (deltas[i].c.hidden && dv->nsnaps) {
                dv->snaps[dv->nsnaps - 1].excl_valid = false;
                dv->snaps[dv->nsnaps - 1].excl_seq++;
            }
        }
        pthread_rwlock_unlock(&p->vol_mu);
    }
    free(deltas);
    slot_list_free(&set);
    return err;
}

static void poison(struct vv_pool *p, int err)
{
    pthread_mutex_lock(&p->txg_mu);
    if (!p->poisoned) {
        p->poisoned = err ? err : EIO;
        p->poisoned_at = (uint64_t)time(NULL);
    }
    pthread_cond_broadcast(&p->txg_committed);
    pthread_cond_broadcast(&p->txg_quiesced);
    pthread_mutex_unlock(&p->txg_mu);
    vv_err(VV_SS_TXG, "pool %s: commit failed (%s); refusing further writes until it is "
           "remounted: the pool stays at its last committed state", p->dir, strerror(err));
}

/* Commit the open txg.  Called by the committer thread only. */
static int commit_open_txg(struct vv_pool *p)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&p->txg_mu);
    uint64_t t = p->open_txg;
    if (p->dirty_count[t & 1] == 0 || p->poisoned) {
        int err = p->poisoned;
        pthread_mutex_unlock(&p->txg_mu);
        return err;
    }
    p->open_txg = t + 1;
    while (p->holds[t & 1] > 0)
        pthread_cond_wait(&p->txg_quiesced, &p->txg_mu);
    p->quiesced_txg = t;
    pthread_cond_broadcast(&p->txg_quiesced);
    pthread_mutex_unlock(&p->txg_mu);

    struct dchunk **arr = NULL;
    size_t n = 0;
    struct slot_list freed = {0};
    int err = gather(p, t, &arr, &n);
    if (!err)
        err = checksum_slots(p, arr, n);
    for (unsigned i = 0; i < p->ndata && !err; i++) {
        if (fdatasync(p->data_fd[i]) != 0) {
            err = errno;
            vv_err(VV_SS_TXG, "fdatasync of data file %u failed: %m", i);
        }
    }
    if (!err) {
        pthread_mutex_lock(&p->commit_mu);
        err = apply_all(p, t, arr, n, &freed);
        /* a full LMDB map (ENOSPC from a write txn): grow it and apply again */
        for (int i = 0; i < 4 && err == ENOSPC && env_grow(p) == 0; i++) {
            freed.n = 0;
            err = apply_all(p, t, arr, n, &freed);
        }
        pthread_mutex_unlock(&p->commit_mu);
    }
    free(arr);
    if (err) {
        slot_list_free(&freed);
        poison(p, err);
        return err;
    }

    /* Barrier: every reader that started before the LMDB commit is done.  Readers look in
     * the dirty tables before LMDB, and a read txn begun before the commit would see the
     * superseded mapping, so the tables may be dropped only now; and superseded slots may be
     * punched only once no reader can reach them. */
    pthread_rwlock_wrlock(&p->reuse_lock);
    pthread_rwlock_unlock(&p->reuse_lock);
    for (int i = 0; i < NSTRIPES; i++) {
        struct stripe *s = &p->stripes[i];
        pthread_mutex_lock(&s->mu);
        dirty_table_free(&s->tab[t & 1]);
        pthread_mutex_unlock(&s->mu);
    }

    pthread_mutex_lock(&p->alloc_mu);
    struct slot_list dropped = p->dropped[t & 1];
    memset(&p->dropped[t & 1], 0, sizeof(p->dropped[t & 1]));
    pthread_mutex_unlock(&p->alloc_mu);
    alloc_release(p, &freed);
    alloc_release(p, &dropped); /* slots of blocks written and discarded within t */
    size_t nfreed = freed.n + dropped.n;
    slot_list_free(&dropped);

    (void)env_keep_room(p); /* room for the next commits, or refuse new data (env.c) */

    /* published last, so a flush returns with the space of superseded slots already back */
    pthread_mutex_lock(&p->txg_mu);
    p->committed_txg = t;
    uint64_t bytes = p->dirty_bytes[t & 1];
    p->dirty_bytes[t & 1] = 0;
    p->dirty_count[t & 1] = 0;
    p->commits++;
    pthread_cond_broadcast(&p->txg_committed);
    pthread_mutex_unlock(&p->txg_mu);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    vv_debug(VV_SS_TXG, "committed txg %llu: %zu chunks, %llu bytes, %zu slots freed, %.1f ms",
             (unsigned long long)t, n, (unsigned long long)bytes, nfreed,
             (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    slot_list_free(&freed);
    return 0;
}

static void *committer_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-commit");
    struct vv_pool *p = arg;
    pthread_mutex_lock(&p->txg_mu);
    for (;;) {
        bool stop = p->stopping;
        uint64_t t = p->open_txg;
        bool wanted = p->want_txg >= t || p->dirty_bytes[t & 1] > p->dirty_bound ||
                      p->dirty_count[t & 1] > DIRTY_COUNT_BOUND;
        if (!stop && !wanted) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += p->txg_interval_ms / 1000;
            ts.tv_nsec += (long)(p->txg_interval_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            int rc = pthread_cond_timedwait(&p->commit_wanted, &p->txg_mu, &ts);
            if (rc != ETIMEDOUT && !p->stopping && p->want_txg < p->open_txg &&
                p->dirty_bytes[p->open_txg & 1] <= p->dirty_bound &&
                p->dirty_count[p->open_txg & 1] <= DIRTY_COUNT_BOUND)
                continue; /* spurious */
        }
        stop = p->stopping;
        pthread_mutex_unlock(&p->txg_mu);
        commit_open_txg(p);
        pthread_mutex_lock(&p->txg_mu);
        /* a requested txg that turned out empty counts as committed */
        if (p->dirty_count[p->open_txg & 1] == 0 && p->want_txg >= p->open_txg) {
            p->want_txg = p->open_txg - 1;
            pthread_cond_broadcast(&p->txg_committed);
        }
        if (stop)
            break;
    }
    pthread_mutex_unlock(&p->txg_mu);
    return NULL;
}

int txg_start(struct vv_pool *p)
{
    int rc = pthread_create(&p->committer, NULL, committer_main, p);
    if (rc)
        return rc;
    p->committer_running = true;
    return 0;
}

int txg_stop(struct vv_pool *p)
{
    pthread_mutex_lock(&p->txg_mu);
    p->stopping = true;
    pthread_cond_signal(&p->commit_wanted);
    pthread_mutex_unlock(&p->txg_mu);
    pthread_join(p->committer, NULL);
    p->committer_running = false;
    /* the committer's last round committed the open txg, unless a write slipped in after */
    int err = 0;
    for (int i = 0; i < 3 && !err; i++) {
        pthread_mutex_lock(&p->txg_mu);
        bool more = p->dirty_count[p->open_txg & 1] != 0;
        pthread_mutex_unlock(&p->txg_mu);
        if (!more)
            break;
        err = commit_open_txg(p);
    }
    pthread_mutex_lock(&p->txg_mu);
    if (!err)
        err = p->poisoned;
    pthread_mutex_unlock(&p->txg_mu);
    return err;
}

int txg_sync(struct vv_pool *p)
{
    pthread_mutex_lock(&p->txg_mu);
    if (!p->committer_running) {
        pthread_mutex_unlock(&p->txg_mu);
        return p->flags & VV_POOL_RDONLY ? EROFS : 0;
    }
    uint64_t target = p->open_txg;
    if (p->dirty_count[target & 1] == 0)
        target--; /* nothing new: wait for the committing txg, if any */
    if (p->want_txg < target)
        p->want_txg = target;
    pthread_cond_signal(&p->commit_wanted);
    while (p->committed_txg < target && !p->poisoned)
        pthread_cond_wait(&p->txg_committed, &p->txg_mu);
    int err = p->poisoned;
    pthread_mutex_unlock(&p->txg_mu);
    return err;
}
