/*
 * meta/snap.c — snapshots: point-in-time, read-only views of a volume.
 *
 * Design notes
 *   A snapshot is a row (volume, snapshot id) -> (gen, created, size, name): the volume as of
 *   generation `gen`.  Creating one commits the open txg (so that it holds every write that
 *   returned before the call) and records the last committed gen: O(1), no block is touched.
 *   From then on the volume's snap_gen makes commits keep the versions that snapshot sees and
 *   put what they hide of them on the dead lists (xmap.h).
 *
 *   Deleting snapshot S (gen s) between P (the next older, gen p; 0 if none) and N (the next
 *   newer, gen n; live if none) frees what only S saw, the dead-list rows with k in (s, n]
 *   and birth in (p, s], in bounded txns that release commit_mu between them.  The record is
 *   first marked deleting (and leaves the in-memory list), so that after a crash the open
 *   finishes the job (snap_resume).  When S was the newest, the volume's snap_gen becomes p
 *   once the release is done, and the chunks left with two versions born after p are merged
 *   (xmap_merge_after); commits meanwhile merge whatever they touch by themselves.
 *
 *   Each volume's snapshots are an array in the volume, ordered by (gen, id): creates append
 *   (gens only grow), a delete removes one entry.  Reads of a snapshot are reads as of its gen
 *   through a vv_vol handle (io.c) that holds a reference to the volume; a snapshot with open
 *   handles is not deleted (EBUSY), and a volume with snapshots is not deleted either.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SNAP_RELEASE_BATCH 4096 /* dead-list rows (or births rows) per txn */

static size_t release_batch(void)
{
    const char *s = getenv("VVFS_SNAP_BATCH"); /* tests: many small steps */
    return s && atoi(s) > 0 ? (size_t)atoi(s) : SNAP_RELEASE_BATCH;
}

static int snap_put_rec(struct vv_pool *p, MDB_txn *txn, uint64_t vol, const struct vsnap *s,
                        uint32_t flags)
{
    struct snap_rec r;
    memset(&r, 0, sizeof(r));
    r.version = SNAP_REC_VERSION;
    r.flags = flags;
    r.gen = s->gen;
    r.created = s->created;
    r.size = s->size;
    snprintf(r.name, sizeof(r.name), "%s", s->name);
    uint8_t kb[16];
    put_be64(kb, vol);
    put_be64(kb + 8, s->id);
    MDB_val k = {16, kb}, d = {sizeof(r), &r};
    return kv_err(mdb_put(txn, p->db_snapshots, &k, &d, 0));
}

static int snap_del_rec(struct vv_pool *p, MDB_txn *txn, uint64_t vol, uint64_t id)
{
    uint8_t kb[16];
    put_be64(kb, vol);
    put_be64(kb + 8, id);
    MDB_val k = {16, kb};
    int rc = mdb_del(txn, p->db_snapshots, &k, NULL);
    return kv_err(rc == MDB_NOTFOUND ? 0 : rc);
}

static int snap_cmp(const void *a, const void *b)
{
    const struct vsnap *x = a, *y = b;
    if (x->gen != y->gen)
        return x->gen < y->gen ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* room in V's list for one more (vol_mu held for writing); ENOMEM */
static int snap_room(struct vv_volume *v)
{
    if (v->nsnaps == v->snaps_cap) {
        size_t c = v->snaps_cap ? v->snaps_cap * 2 : 8;
        struct vsnap *a = realloc(v->snaps, c * sizeof(*a));
        if (!a)
            return ENOMEM;
        v->snaps = a;
        v->snaps_cap = c;
    }
    return 0;
}

/* append S to V's list (vol_mu held for writing); ENOMEM */
static int snap_push(struct vv_volume *v, const struct vsnap *s)
{
    int err = snap_room(v);
    if (!err)
        v->snaps[v->nsnaps++] = *s;
    return err;
}

static struct vsnap *snap_find(struct vv_volume *v, const char *name)
{
    for (size_t i = 0; i < v->nsnaps; i++)
        if (strcmp(v->snaps[i].name, name) == 0)
            return &v->snaps[i];
    return NULL;
}

/* ---- loading and resuming ------------------------------------------------------------------ */

int snap_load(struct vv_pool *p, MDB_txn *txn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, p->db_snapshots, &cur);
    if (rc)
        return kv_err(rc);
    MDB_val k, d;
    int err = 0;
    uint64_t next_id = 1;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && !err;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        struct snap_rec r;
        if (k.mv_size != 16 || d.mv_size < sizeof(r)) {
            vv_err(VV_SS_META, "corrupt snapshot record (key %zu bytes, value %zu bytes)",
                   k.mv_size, d.mv_size);
            err = EIO;
            break;
        }
        memcpy(&r, d.mv_data, sizeof(r));
        uint64_t vol = get_be64(k.mv_data);
        struct vsnap s = {.id = get_be64((uint8_t *)k.mv_data + 8), .gen = r.gen,
                          .created = r.created, .size = r.size};
        snprintf(s.name, sizeof(s.name), "%.*s", VV_NAME_MAX, r.name);
        if (s.id >= next_id)
            next_id = s.id + 1;
        struct vv_volume *v = vol_find_id(p, vol);
        if (!v) {
            vv_err(VV_SS_META, "snapshot '%s' belongs to volume %llu, which does not exist",
                   s.name, (unsigned long long)vol);
            err = EIO;
            break;
        }
        if (r.flags & SNAP_F_DELETING) {
            /* a delete a crash interrupted: snap_resume finishes it */
            struct snap_pending *a = realloc(p->snap_pend, (p->nsnap_pend + 1) * sizeof(*a));
            if (!a) {
                err = ENOMEM;
                break;
            }
            p->snap_pend = a;
            p->snap_pend[p->nsnap_pend++] = (struct snap_pending){vol, s};
            continue;
        }
        err = snap_push(v, &s);
    }
    if (!err && rc && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    mdb_cursor_close(cur);
    for (size_t i = 0; !err && i < p->nvols; i++) {
        struct vv_volume *v = p->vols[i];
        if (v->nsnaps > 1)
            qsort(v->snaps, v->nsnaps, sizeof(*v->snaps), snap_cmp);
    }
    if (!err) {
        uint64_t stored = 0;
        int e2 = kv_get_u64(txn, p->db_config, "next_snapshot_id", &stored);
        if (e2 && e2 != ENOENT)
            err = e2;
        p->next_snap_id = stored > next_id ? stored : next_id;
    }
    return err;
}

/* ---- delete (the release) ------------------------------------------------------------------ */

/* The gens around S in V's list (S not in it any more): *PG of the newest at or before S's
 * place, 0 if none; *NG of the oldest after it, XMAP_LIVE if none. */
static void neighbours(const struct vv_volume *v, const struct vsnap *s, uint64_t *pg,
                       uint64_t *ng)
{
    *pg = 0;
    *ng = XMAP_LIVE;
    for (size_t i = 0; i < v->nsnaps; i++) {
        if (snap_cmp(&v->snaps[i], s) < 0)
            *pg = v->snaps[i].gen;
        else if (*ng == XMAP_LIVE)
            *ng = v->snaps[i].gen;
    }
}

/* Free what only snapshot S of V saw (S already out of V's list and marked deleting on disk),
 * then drop its record.  Takes commit_mu one bounded txn at a time. */
static int release(struct vv_pool *p, struct vv_volume *v, const struct vsnap *s)
{
    uint64_t pg, ng;
    struct xdead pos = {0};
    bool done = false;
    int err = 0;
    while (!err && !done) {
        struct slot_list freed = {0};
        pthread_mutex_lock(&p->commit_mu);
        pthread_rwlock_rdlock(&p->vol_mu);
        neighbours(v, s, &pg, &ng);
        pthread_rwlock_unlock(&p->vol_mu);
        MDB_txn *txn = NULL;
        int64_t used = 0;
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        if (!err)
            err = xmap_dead_release(&p->xmap, txn, v->id, pg, s->gen, ng, &pos,
                                    release_batch(), &freed, &used, &done);
        struct slot_list none = {0};
        if (!err)
            err = alloc_persist(p, txn, &none, &freed);
        struct vv_volume tmp = *v;
        uint64_t dropped = (uint64_t)-used;
        tmp.used_extents -= dropped < tmp.used_extents ? dropped : tmp.used_extents;
        /* (everything a release frees was on a dead list) */
        tmp.dead_blocks -= dropped < tmp.dead_blocks ? dropped : tmp.dead_blocks;
        /* the newest is gone: commits from now on merge what only the live volume sees */
        bool newest = done && ng == XMAP_LIVE;
        if (newest)
            tmp.snap_gen = pg;
        if (!err)
            err = vol_write_rec(p, txn, &tmp);
        if (!err)
            err = kv_err(mdb_txn_commit(txn));
        else if (txn)
            mdb_txn_abort(txn);
        if (!err) {
            pthread_rwlock_wrlock(&p->vol_mu);
            v->used_extents = tmp.used_extents;
            v->dead_blocks = tmp.dead_blocks;
            v->snap_gen = tmp.snap_gen;
            pthread_rwlock_unlock(&p->vol_mu);
        }
        pthread_mutex_unlock(&p->commit_mu);
        if (err)
            freed.n = 0;
        alloc_punch_release(p, &freed);
        slot_list_free(&freed);
    }
    /* merge chunks left with two versions nobody but the live volume sees; the last txn
     * drops the record */
    struct xkey mpos = {0};
    done = false;
    while (!err && !done) {
        pthread_mutex_lock(&p->commit_mu);
        pthread_rwlock_rdlock(&p->vol_mu);
        neighbours(v, s, &pg, &ng);
        pthread_rwlock_unlock(&p->vol_mu);
        MDB_txn *txn = NULL;
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        if (!err && ng == XMAP_LIVE)
            err = xmap_merge_after(&p->xmap, txn, v->id, pg, vol_xflags(v), &mpos,
                                   release_batch(), &done);
        else
            done = true;
        if (!err && done)
            err = snap_del_rec(p, txn, v->id, s->id);
        if (!err)
            err = kv_err(mdb_txn_commit(txn));
        else if (txn)
            mdb_txn_abort(txn);
        pthread_mutex_unlock(&p->commit_mu);
    }
    return err;
}

int snap_resume(struct vv_pool *p)
{
    int err = 0;
    for (size_t i = 0; i < p->nsnap_pend && !err; i++) {
        struct snap_pending *sp = &p->snap_pend[i];
        struct vv_volume *v = vol_find_id(p, sp->vol);
        vv_info(VV_SS_META, "finishing the delete of snapshot '%s' of volume '%s'",
                sp->s.name, v ? v->name : "?");
        err = v ? release(p, v, &sp->s) : EIO;
    }
    free(p->snap_pend);
    p->snap_pend = NULL;
    p->nsnap_pend = 0;
    return err;
}

/* ---- public operations ---------------------------------------------------------------------- */

/* A user's snapshot name, or one of vvfs's own: '.' and a name (replication's snapshots,
 * which the control plane neither takes nor lists: its names are users'). */
int snap_check_name(const char *name, struct vv_err *e)
{
    const char *why = vv_name_check(name && name[0] == '.' ? name + 1 : name);
    return why ? vv_err_set(e, EINVAL, "invalid snapshot name: %s", why) : 0;
}

/* The start of an operation on snapshot NAME of VOLNAME: the name is valid, the pool takes
 * changes, and the volume is claimed (*V; vol_unclaim it when done). */
static int snap_op_begin(struct vv_pool *p, const char *volname, const char *name,
                         struct vv_volume **v, struct vv_err *e)
{
    int err = snap_check_name(name, e);
    if (err)
        return err;
    if (p->flags & VV_POOL_RDONLY)
        return vv_err_set(e, EROFS, "pool is open read-only");
    return vol_claim(p, volname, v, e);
}

/* The data blocks only snapshot S of V holds (what its delete would free), from the cache
 * or the dead lists; no lock held.  0 if it cannot be read (logged). */
/* V's snapshot of (GEN, ID), by binary search of its sorted list (vol_mu held), or NULL */
static struct vsnap *snap_at(struct vv_volume *v, uint64_t gen, uint64_t id)
{
    struct vsnap key = {.id = id, .gen = gen};
    return bsearch(&key, v->snaps, v->nsnaps, sizeof(*v->snaps), snap_cmp);
}

static uint64_t snap_exclusive(struct vv_pool *p, struct vv_volume *v, uint64_t snap_id,
                               uint64_t snap_gen)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vsnap *s = snap_at(v, snap_gen, snap_id);
    if (!s || s->excl_valid) {
        uint64_t x = s ? s->excl : 0;
        pthread_rwlock_unlock(&p->vol_mu);
        return x;
    }
    uint64_t pg, ng, seq = s->excl_seq, gen = s->gen;
    struct vsnap me = *s;
    /* (neighbours() wants S out of the list: ask for the ones around its place) */
    pg = 0;
    ng = XMAP_LIVE;
    for (size_t i = 0; i < v->nsnaps; i++) {
        if (snap_cmp(&v->snaps[i], &me) < 0)
            pg = v->snaps[i].gen;
        else if (snap_cmp(&v->snaps[i], &me) > 0 && ng == XMAP_LIVE)
            ng = v->snaps[i].gen;
    }
    pthread_rwlock_unlock(&p->vol_mu);
    MDB_txn *txn;
    uint64_t blocks = 0;
    int err = rtxn_get(p, &txn);
    if (!err) {
        err = xmap_dead_count(&p->xmap, txn, v->id, pg, gen, ng, &blocks);
        rtxn_put(p, txn);
    }
    if (err) {
        vv_err(VV_SS_META, "cannot count what snapshot %llu of volume '%s' holds: %s",
               (unsigned long long)snap_id, v->name, strerror(err));
        return 0;
    }
    pthread_rwlock_wrlock(&p->vol_mu);
    if ((s = snap_at(v, snap_gen, snap_id)) && s->excl_seq == seq) {
        s->excl = blocks; /* nothing changed it meanwhile */
        s->excl_valid = true;
    }
    pthread_rwlock_unlock(&p->vol_mu);
    return blocks;
}

/* fill o->exclusive of the N infos O (no lock held) */
static void fill_exclusive(struct vv_pool *p, struct vv_snapshot_info *o, size_t n)
{
    struct vv_volume *v = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!v || v->id != o[i].volume_id) {
            vol_put(v);
            pthread_rwlock_rdlock(&p->vol_mu);
            v = vol_find_id(p, o[i].volume_id);
            if (v)
                vol_ref(v);
            pthread_rwlock_unlock(&p->vol_mu);
        }
        o[i].exclusive = v ? snap_exclusive(p, v, o[i].id, o[i].gen) * p->extent_size : 0;
    }
    vol_put(v);
}

static void snap_info(const struct vv_volume *v, const struct vsnap *s,
                      struct vv_snapshot_info *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", s->name);
    snprintf(o->volume, sizeof(o->volume), "%s", v->name);
    o->volume_id = v->id;
    o->id = s->id;
    o->gen = s->gen;
    o->created = s->created;
    o->size = s->size;
    o->open_count = s->open_count;
}

int snap_create_claimed(struct vv_pool *p, struct vv_volume *const *vols, size_t n,
                        const char *name, bool point, struct vv_snapshot_info *out,
                        struct vv_err *e)
{
    int err = 0;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < n && !err; i++)
        if (snap_find(vols[i], name))
            err = vv_err_set(e, EEXIST, "volume '%s' already has a snapshot '%s'", vols[i]->name,
                             name);
    pthread_rwlock_unlock(&p->vol_mu);
    if (err)
        return err;
    /* every write that returned before this call is in a committed txg after this */
    if ((err = txg_sync(p)))
        return vv_err_set(e, err, "cannot commit pending writes: %s", strerror(err));
    /* one txn, one gen for all: what a txg commits is in every snapshot or in none */
    pthread_mutex_lock(&p->commit_mu);
    struct vsnap s = {.created = (uint64_t)time(NULL)};
    snprintf(s.name, sizeof(s.name), "%s", name);
    pthread_mutex_lock(&p->txg_mu);
    s.gen = p->committed_txg;
    pthread_mutex_unlock(&p->txg_mu);
    MDB_txn *txn = NULL;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    for (size_t i = 0; i < n && !err; i++) {
        struct vv_volume tmp = *vols[i];
        if (s.gen > tmp.snap_gen)
            tmp.snap_gen = s.gen;
        s.id = p->next_snap_id + i;
        s.size = atomic_load(&vols[i]->size);
        if (point)
            tmp.point_snap = s.id;
        err = snap_put_rec(p, txn, vols[i]->id, &s, 0);
        if (!err)
            err = vol_write_rec(p, txn, &tmp);
        if (!err) {
            /* room first: after the commit nothing may fail */
            pthread_rwlock_wrlock(&p->vol_mu);
            err = snap_room(vols[i]);
            pthread_rwlock_unlock(&p->vol_mu);
        }
    }
    if (!err)
        err = kv_put_u64(txn, p->db_config, "next_snapshot_id", p->next_snap_id + n);
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else if (txn)
        mdb_txn_abort(txn);
    if (!err) {
        pthread_rwlock_wrlock(&p->vol_mu);
        for (size_t i = 0; i < n; i++) {
            struct vv_volume *v = vols[i];
            s.id = p->next_snap_id + i;
            s.size = atomic_load(&v->size);
            snap_push(v, &s); /* cannot fail: room was made */
            if (s.gen > v->snap_gen)
                v->snap_gen = s.gen;
            if (point)
                v->point_snap = s.id;
            if (out)
                snap_info(v, &v->snaps[v->nsnaps - 1], &out[i]);
        }
        pthread_rwlock_unlock(&p->vol_mu);
        p->next_snap_id += n;
    }
    pthread_mutex_unlock(&p->commit_mu);
    if (err) {
        vv_err(VV_SS_META, "snapshot '%s' of %s '%s' failed: %s", name,
               n == 1 ? "volume" : "the group of", vols[0]->name, strerror(err));
        vv_err_set(e, err, "cannot create snapshot '%s' of %s '%s': %s", name,
                   n == 1 ? "volume" : "the group of volume", vols[0]->name, strerror(err));
    } else {
        for (size_t i = 0; i < n; i++)
            vv_info(VV_SS_META, "created snapshot '%s' of volume '%s' (gen %llu)", name,
                    vols[i]->name, (unsigned long long)s.gen);
    }
    return err;
}

int vv_snapshot_create(struct vv_pool *p, const char *volname, const char *name,
                       struct vv_snapshot_info *out, struct vv_err *e)
{
    struct vv_volume *v;
    int err = snap_op_begin(p, volname, name, &v, e);
    if (err)
        return err;
    err = replica_refuse(v, "take a snapshot of", e);
    if (!err)
        err = snap_create_claimed(p, &v, 1, name, false, out, e);
    vol_unclaim(v);
    return err;
}

int vv_snapshot_delete(struct vv_pool *p, const char *volname, const char *name,
                       struct vv_err *e)
{
    struct vv_volume *v;
    int err = snap_op_begin(p, volname, name, &v, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vsnap *f = snap_find(v, name), s = f ? *f : (struct vsnap){0};
    pthread_rwlock_unlock(&p->vol_mu);
    if (!f) {
        err = vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volname, name);
        goto out;
    }
    /* out of the list (no new opens) and marked on disk, in one step under commit_mu */
    pthread_mutex_lock(&p->commit_mu);
    pthread_rwlock_wrlock(&p->vol_mu);
    f = snap_find(v, name);
    struct vv_volume *clone = f ? vol_clone_of(p, f->id) : NULL;
    if (f && f->open_count)
        err = vv_err_set(e, EBUSY, "cannot delete snapshot '%s' of volume '%s': it is open "
                         "(%u handle%s)", name, volname, f->open_count,
                         f->open_count == 1 ? "" : "s");
    else if (clone)
        err = vv_err_set(e, EBUSY, "cannot delete snapshot '%s' of volume '%s': volume '%s' is "
                         "a clone of it (delete the clone first)", name, volname, clone->name);
    pthread_rwlock_unlock(&p->vol_mu);
    MDB_txn *txn = NULL;
    if (!err)
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (!err && !(err = snap_put_rec(p, txn, v->id, &s, SNAP_F_DELETING)))
        err = kv_err(mdb_txn_commit(txn));
    else if (txn)
        mdb_txn_abort(txn);
    if (!err) {
        pthread_rwlock_wrlock(&p->vol_mu);
        f = snap_find(v, name);
        size_t i = (size_t)(f - v->snaps);
        memmove(&v->snaps[i], &v->snaps[i + 1], (v->nsnaps - i - 1) * sizeof(*v->snaps));
        v->nsnaps--;
        /* what it held with a neighbour alone is that neighbour's alone now */
        for (size_t j = i ? i - 1 : 0; j <= i && j < v->nsnaps; j++) {
            v->snaps[j].excl_valid = false;
            v->snaps[j].excl_seq++;
        }
        pthread_rwlock_unlock(&p->vol_mu);
    }
    pthread_mutex_unlock(&p->commit_mu);
    if (!err)
        err = release(p, v, &s);
    if (err && !(e && e->code)) /* (the EBUSY above has its message) */
        vv_err_set(e, err, "cannot delete snapshot '%s' of volume '%s': %s", name, volname,
                   strerror(err));
    if (err && err != EBUSY)
        vv_err(VV_SS_META, "delete of snapshot '%s' of volume '%s' failed: %s", name, volname,
               strerror(err));
    else if (!err)
        vv_info(VV_SS_META, "deleted snapshot '%s' of volume '%s'", name, volname);
out:
    vol_unclaim(v);
    return err;
}

static int snapshot_list(struct vv_pool *p, const char *volname, bool exclusive,
                         struct vv_snapshot_info **out, size_t *n, struct vv_err *e);

int vv_snapshot_list(struct vv_pool *p, const char *volname, struct vv_snapshot_info **out,
                     size_t *n, struct vv_err *e)
{
    return snapshot_list(p, volname, true, out, n, e);
}

int vv_snapshot_list_brief(struct vv_pool *p, const char *volname,
                           struct vv_snapshot_info **out, size_t *n, struct vv_err *e)
{
    return snapshot_list(p, volname, false, out, n, e);
}

static int snapshot_list(struct vv_pool *p, const char *volname, bool exclusive,
                         struct vv_snapshot_info **out, size_t *n, struct vv_err *e)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_volume *only = volname ? vol_find_name(p, volname) : NULL;
    if (volname && !only) {
        pthread_rwlock_unlock(&p->vol_mu);
        return vv_err_set(e, ENOENT, "volume '%s' does not exist", volname);
    }
    size_t total = 0;
    for (size_t i = 0; i < p->nvols; i++)
        if (!only || p->vols[i] == only)
            total += p->vols[i]->nsnaps;
    struct vv_snapshot_info *a = calloc(total ? total : 1, sizeof(*a));
    if (!a) {
        pthread_rwlock_unlock(&p->vol_mu);
        return vv_err_set(e, ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < p->nvols; i++) {
        struct vv_volume *v = p->vols[i];
        if (only && v != only)
            continue;
        for (size_t j = 0; j < v->nsnaps; j++)
            snap_info(v, &v->snaps[j], &a[k++]);
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (exclusive)
        fill_exclusive(p, a, k);
    *out = a;
    *n = k;
    return 0;
}

int vv_snapshot_get(struct vv_pool *p, const char *volname, const char *name,
                    struct vv_snapshot_info *out, struct vv_err *e)
{
    int err = snap_check_name(name, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_volume *v = vol_find_name(p, volname);
    struct vsnap *s = v ? snap_find(v, name) : NULL;
    if (s)
        snap_info(v, s, out);
    pthread_rwlock_unlock(&p->vol_mu);
    if (!v)
        return vv_err_set(e, ENOENT, "volume '%s' does not exist", volname);
    if (!s)
        return vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volname, name);
    fill_exclusive(p, out, 1);
    return 0;
}

int vv_snap_open(struct vv_pool *p, uint64_t vol_id, uint64_t snap_id, struct vv_vol **out)
{
    struct vv_vol *h = calloc(1, sizeof(*h));
    if (!h)
        return ENOMEM;
    pthread_rwlock_wrlock(&p->vol_mu);
    struct vv_volume *v = vol_find_id(p, vol_id);
    struct vsnap *s = NULL;
    for (size_t i = 0; v && !v->busy && i < v->nsnaps && !s; i++)
        if (v->snaps[i].id == snap_id)
            s = &v->snaps[i];
    if (s) {
        s->open_count++;
        vol_ref(v);
        *h = (struct vv_vol){.pool = p, .vol = v, .as_of = s->gen, .snap_id = s->id,
                             .snap_size = s->size};
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (!s) {
        free(h);
        return ENOENT;
    }
    *out = h;
    return 0;
}

int vv_snapshot_get_by_id(struct vv_pool *p, uint64_t snap_id, struct vv_snapshot_info *out)
{
    int err = ENOENT;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < p->nvols && err; i++) {
        struct vv_volume *v = p->vols[i];
        for (size_t j = 0; j < v->nsnaps; j++) {
            if (v->snaps[j].id == snap_id) {
                snap_info(v, &v->snaps[j], out);
                err = 0;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (!err)
        fill_exclusive(p, out, 1);
    return err;
}

/* ---- restore -------------------------------------------------------------------------------- */

/* The chunks of VOL with a version born after GEN, sorted, each once. */
static int changed_chunks(struct vv_pool *p, uint64_t vol, uint64_t gen, struct slot_list *out)
{
    MDB_txn *txn;
    int err = rtxn_get(p, &txn);
    if (err)
        return err;
    struct xmap_births c;
    err = xmap_births_open(&p->xmap, txn, vol, gen, XMAP_LIVE, &c);
    uint64_t birth, chunk;
    while (!err && !(err = xmap_births_next(&c, &birth, &chunk)))
        err = slot_list_add(out, chunk);
    if (err == ENOENT)
        err = 0;
    if (c.cur)
        xmap_births_close(&c);
    rtxn_put(p, txn);
    if (!err)
        slot_list_sort_unique(out);
    return err;
}

/* Put back, in chunk CHUNK of the live volume L, the blocks changed since snapshot S (read
 * through handle SH): copied where S has data, discarded where it has none. */
static int restore_chunk(struct vv_pool *p, struct vv_vol *l, struct vv_vol *sh,
                         uint64_t chunk, uint8_t *buf)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int err = rtxn_get(p, &txn);
    if (err)
        return err;
    if ((err = kv_err(mdb_cursor_open(txn, p->xmap.map, &cur)))) {
        rtxn_put(p, txn);
        return err;
    }
    uint64_t changed = 0;
    struct xview sv;
    err = xmap_changed_since(&p->xmap, cur, l->vol->id, chunk, sh->as_of, &changed);
    if (!err)
        err = xmap_view_chain(&p->xmap, cur, l->vol->id, chunk, sh->as_of, l->vol->origins,
                              l->vol->norigins, changed, &sv);
    mdb_cursor_close(cur);
    rtxn_put(p, txn);
    uint64_t es = p->extent_size, vsize = vv_vol_size(l);
    for (unsigned b = 0; !err && b < XMAP_CHUNK_BLOCKS;) {
        if (!(changed >> b & 1)) {
            b++;
            continue;
        }
        /* a run of changed blocks that are all data in S, or all not */
        bool data = sv.data >> b & 1;
        unsigned e = b + 1;
        while (e < XMAP_CHUNK_BLOCKS && (changed >> e & 1) && (bool)(sv.data >> e & 1) == data)
            e++;
        uint64_t off = ((chunk << XMAP_CHUNK_SHIFT) + b) * es;
        uint64_t len = (uint64_t)(e - b) * es;
        if (off < vsize) {
            if (len > vsize - off)
                len = vsize - off;
            if (data) {
                err = vv_vol_read(sh, buf, len, off);
                if (!err)
                    err = vv_vol_write(l, buf, len, off);
            } else {
                err = vv_vol_discard(l, off, len);
            }
        }
        b = e;
    }
    return err;
}

int snap_restore_busy(struct vv_pool *p, struct vv_volume *v, const char *name,
                      struct vv_err *e)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vsnap *f = snap_find(v, name), s = f ? *f : (struct vsnap){0};
    char volname[VV_NAME_MAX + 1];
    snprintf(volname, sizeof(volname), "%s", v->name);
    pthread_rwlock_unlock(&p->vol_mu);
    if (!f)
        return vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volname, name);
    struct slot_list chunks = {0};
    uint8_t *buf = NULL;
    size_t cap = (size_t)XMAP_CHUNK_BLOCKS * p->extent_size;
    struct vv_vol live = {.pool = p, .vol = v, .as_of = XMAP_LIVE};
    struct vv_vol sh = {.pool = p, .vol = v, .as_of = s.gen, .snap_id = s.id,
                        .snap_size = s.size};
    int err = txg_sync(p); /* everything written before is in the map, so the births show it */
    if (!err)
        err = changed_chunks(p, v->id, s.gen, &chunks);
    if (!err && posix_memalign((void **)&buf, 4096, cap))
        err = ENOMEM;
    for (size_t i = 0; !err && i < chunks.n; i++)
        err = restore_chunk(p, &live, &sh, chunks.v[i], buf);
    if (!err)
        err = txg_sync(p);
    size_t nchunks = chunks.n;
    free(buf);
    slot_list_free(&chunks);
    if (err) {
        vv_err(VV_SS_META, "restore of volume '%s' from snapshot '%s' failed: %s", volname,
               name, strerror(err));
        return vv_err_set(e, err, "cannot restore volume '%s' from snapshot '%s': %s (it may "
                          "be partly restored; run the restore again)", volname, name,
                          strerror(err));
    }
    vv_info(VV_SS_META, "restored volume '%s' from snapshot '%s' (%zu chunks changed since)",
            volname, name, nchunks);
    if (p->observer)
        p->observer(p->observer_ctx, VV_VOL_RESTORED, v->id, volname, NULL);
    return 0;
}

int snap_refuse_opens(struct vv_pool *p, struct vv_volume *v, struct vv_err *e)
{
    int err = 0;
    pthread_rwlock_wrlock(&p->vol_mu);
    if (v->open_count)
        err = vv_err_set(e, EBUSY, "cannot restore volume '%s': it is open (%u handle%s, e.g. a "
                         "loop device or a process); detach and unmount it first", v->name,
                         v->open_count, v->open_count == 1 ? "" : "s");
    else
        v->busy = true; /* no opens meanwhile */
    pthread_rwlock_unlock(&p->vol_mu);
    return err;
}

void snap_allow_opens(struct vv_pool *p, struct vv_volume *v)
{
    pthread_rwlock_wrlock(&p->vol_mu);
    v->busy = false;
    pthread_rwlock_unlock(&p->vol_mu);
}

int vv_snapshot_restore(struct vv_pool *p, const char *volname, const char *name,
                        struct vv_err *e)
{
    struct vv_volume *v;
    int err = snap_op_begin(p, volname, name, &v, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    bool found = snap_find(v, name) != NULL;
    pthread_rwlock_unlock(&p->vol_mu);
    if (!found)
        err = vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volname, name);
    if (!err)
        err = replica_refuse(v, "restore", e);
    if (!err && !(err = snap_refuse_opens(p, v, e))) {
        err = snap_restore_busy(p, v, name, e);
        snap_allow_opens(p, v);
    }
    vol_unclaim(v);
    return err;
}

/* ---- clones ------------------------------------------------------------------------------ */

int vv_clone_create(struct vv_pool *p, const char *volname, const char *snapname,
                    const char *name, struct vv_volume_info *out, struct vv_err *e)
{
    const char *why = vv_name_check(name);
    if (why)
        return vv_err_set(e, EINVAL, "invalid volume name: %s", why);
    struct vv_volume *o;
    int err = snap_op_begin(p, volname, snapname, &o, e);
    if (err)
        return err;
    /* the claim on the origin keeps its snapshots from going away meanwhile */
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vsnap *f = snap_find(o, snapname), s = f ? *f : (struct vsnap){0};
    pthread_rwlock_unlock(&p->vol_mu);
    struct vv_volume *v = NULL;
    if (!f)
        err = vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volname, snapname);
    else if (!(v = vol_new()))
        err = vv_err_set(e, ENOMEM, "out of memory");
    if (!err) {
        snprintf(v->name, sizeof(v->name), "%s", name);
        atomic_store(&v->size, s.size);
        uint64_t blocks = (s.size + p->extent_size - 1) >> p->extent_shift;
        err = vol_set_origin(v, o, s.id, s.gen, blocks);
        if (err == ELOOP)
            vv_err_set(e, ELOOP, "cannot clone snapshot '%s' of volume '%s': it is a clone %u "
                       "deep already (at most %u)", snapname, volname, o->norigins,
                       XMAP_CHAIN_MAX);
        else if (err)
            vv_err_set(e, err, "out of memory");
        if (err)
            vol_put(v);
    }
    struct vv_volume_info info;
    if (!err && !(err = vol_insert(p, v, &info, e))) {
        vv_info(VV_SS_META, "created volume '%s' (id %llu), a clone of snapshot '%s' of "
                "volume '%s'", name, (unsigned long long)info.id, snapname, volname);
        if (out)
            *out = info;
    }
    vol_unclaim(o);
    return err;
}

/* ---- volume delete --recursive ---------------------------------------------------------- */

int snap_open_count(struct vv_pool *p, struct vv_volume *v)
{
    unsigned n = 0;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < v->nsnaps; i++)
        n += v->snaps[i].open_count;
    pthread_rwlock_unlock(&p->vol_mu);
    return (int)n;
}

struct vv_volume *snap_clone_of_any(struct vv_pool *p, struct vv_volume *v, const char **snap)
{
    struct vv_volume *c = NULL;
    for (size_t i = 0; i < v->nsnaps && !c; i++)
        if ((c = vol_clone_of(p, v->snaps[i].id)))
            *snap = v->snaps[i].name;
    return c;
}

int snap_drop_all(struct vv_pool *p, MDB_txn *txn, struct vv_volume *v)
{
    int err = 0;
    for (size_t i = 0; i < v->nsnaps && !err; i++)
        err = snap_del_rec(p, txn, v->id, v->snaps[i].id);
    return err;
}

/* ---- rename ------------------------------------------------------------------------------- */

int vv_snapshot_rename(struct vv_pool *p, const char *volname, const char *name,
                       const char *newname, struct vv_err *e)
{
    int err = snap_check_name(newname, e);
    struct vv_volume *v;
    if (err || (err = snap_op_begin(p, volname, name, &v, e)))
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vsnap *f = snap_find(v, name), s = f ? *f : (struct vsnap){0};
    bool taken = snap_find(v, newname) != NULL;
    pthread_rwlock_unlock(&p->vol_mu);
    if (!f)
        err = vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volname, name);
    else if (strcmp(name, newname) == 0)
        ; /* nothing to do */
    else if (taken)
        err = vv_err_set(e, EEXIST, "volume '%s' already has a snapshot '%s'", volname, newname);
    else {
        /* (the claim keeps every other snapshot operation on this volume out meanwhile) */
        snprintf(s.name, sizeof(s.name), "%s", newname);
        pthread_mutex_lock(&p->commit_mu);
        MDB_txn *txn = NULL;
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        if (!err && !(err = snap_put_rec(p, txn, v->id, &s, 0)))
            err = kv_err(mdb_txn_commit(txn));
        else if (txn)
            mdb_txn_abort(txn);
        if (!err) {
            pthread_rwlock_wrlock(&p->vol_mu);
            snprintf(snap_find(v, name)->name, sizeof(s.name), "%s", newname);
            pthread_rwlock_unlock(&p->vol_mu);
        }
        pthread_mutex_unlock(&p->commit_mu);
        if (err)
            vv_err_set(e, err, "cannot rename snapshot '%s' of volume '%s': %s", name, volname,
                       strerror(err));
        else
            vv_info(VV_SS_META, "renamed snapshot '%s' of volume '%s' to '%s'", name, volname,
                    newname);
    }
    vol_unclaim(v);
    return err;
}
