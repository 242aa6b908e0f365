/*
 * meta/vol.c — the in-memory volume table and the encoding of volume records.
 *
 * Design notes
 *   p->vols mirrors the `volumes` DB: loaded at open (vol_load), changed by the volume
 *   operations in pool.c only after the LMDB txn that changes the DB has committed.  It sits
 *   below txg.c (a commit looks volumes up and writes their counters) and pool.c.
 *   The table and each entry's name and open_count are protected by vol_mu (see meta_i.h).
 *   A struct vv_volume is reference-counted (meta_i.h, "Lifetime"): the table holds one, and
 *   so does each claim and each open handle, so that a control operation that waits for a
 *   lock, or a handle, never finds its volume freed under it by a concurrent delete.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct vv_volume *vol_new(void)
{
    struct vv_volume *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    if (pthread_mutex_init(&v->op_mu, NULL)) {
        free(v);
        return NULL;
    }
    v->drop_from = DROP_NONE;
    atomic_store(&v->refs, 1);
    return v;
}

void vol_ref(struct vv_volume *v)
{
    atomic_fetch_add(&v->refs, 1);
}

void vol_put(struct vv_volume *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
        pthread_mutex_destroy(&v->op_mu);
        free(v->snaps);
        free(v->origins);
        free(v);
    }
}

int vol_claim(struct vv_pool *p, const char *name, struct vv_volume **out, struct vv_err *e)
{
    /* A rename can move NAME to another volume while we wait: look it up again then (a
     * bounded number of times; each retry means some other operation finished). */
    for (int tries = 0; tries < 64; tries++) {
        pthread_rwlock_rdlock(&p->vol_mu);
        struct vv_volume *v = vol_find_name(p, name);
        if (v)
            vol_ref(v);
        pthread_rwlock_unlock(&p->vol_mu);
        if (!v)
            break;
        pthread_mutex_lock(&v->op_mu);
        pthread_rwlock_rdlock(&p->vol_mu);
        bool same = !v->deleting && strcmp(v->name, name) == 0;
        pthread_rwlock_unlock(&p->vol_mu);
        if (same) {
            *out = v;
            return 0;
        }
        vol_unclaim(v);
    }
    return vv_err_set(e, ENOENT, "volume '%s' does not exist", name);
}

size_t vol_nsnaps(struct vv_pool *p, struct vv_volume *v)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    size_t n = v->nsnaps;
    pthread_rwlock_unlock(&p->vol_mu);
    return n;
}

size_t vol_nsys_snaps(struct vv_pool *p, struct vv_volume *v)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < v->nsnaps; i++)
        n += v->snaps[i].name[0] == '.';
    pthread_rwlock_unlock(&p->vol_mu);
    return n;
}

void vol_unclaim(struct vv_volume *v)
{
    pthread_mutex_unlock(&v->op_mu);
    vol_put(v);
}

static void volume_from_rec(struct vv_volume *v, uint64_t id, const struct vol_rec *r)
{
    v->id = id;
    snprintf(v->name, sizeof(v->name), "%.*s", VV_NAME_MAX, r->name);
    atomic_store(&v->size, r->size);
    v->created = r->created;
    v->create_gen = r->create_gen;
    v->used_extents = r->used_extents;
    v->snap_gen = r->snap_gen;
    atomic_store(&v->mtime_ns, r->mtime_ns);
    v->deleting = r->flags & VOL_F_DELETING;
    v->drop_from = r->flags & VOL_F_DROP ? r->drop_from : DROP_NONE;
    v->group_id = r->group_id;
    v->dead_blocks = r->dead_blocks;
    v->clone = r->flags & VOL_F_CLONE;
    if (v->clone) {
        v->origin_vol = r->origin_vol;
        v->origin_snap = r->origin_snap;
        v->origin_gen = r->origin_gen;
        v->origin_blocks = r->origin_blocks;
    }
    v->replica = r->flags & VOL_F_REPLICA;
    if (v->replica) {
        v->repl_session = r->repl_session;
        v->point_snap = r->point_snap;
    }
}

int vol_set_origin(struct vv_volume *v, const struct vv_volume *origin, uint64_t snap_id,
                   uint64_t gen, uint64_t limit)
{
    unsigned n = origin->norigins + 1;
    if (n > XMAP_CHAIN_MAX)
        return ELOOP;
    struct xlayer *l = calloc(n, sizeof(*l));
    if (!l)
        return ENOMEM;
    l[0] = (struct xlayer){.vol = origin->id, .as_of = gen, .limit = limit};
    for (unsigned i = 1; i < n; i++) {
        l[i] = origin->origins[i - 1];
        l[i].limit = __atomic_load_n(&origin->origins[i - 1].limit, __ATOMIC_RELAXED);
        if (l[i].limit > l[i - 1].limit)
            l[i].limit = l[i - 1].limit;
    }
    free(v->origins);
    v->origins = l;
    v->norigins = n;
    v->clone = true;
    v->origin_vol = origin->id;
    v->origin_snap = snap_id;
    v->origin_gen = gen;
    v->origin_blocks = limit;
    return 0;
}

struct vv_volume *vol_clone_of(struct vv_pool *p, uint64_t snap_id)
{
    for (size_t i = 0; i < p->nvols; i++)
        if (p->vols[i]->clone && p->vols[i]->origin_snap == snap_id)
            return p->vols[i];
    return NULL;
}

int vol_write_rec(struct vv_pool *p, MDB_txn *txn, const struct vv_volume *v)
{
    struct vol_rec r;
    memset(&r, 0, sizeof(r));
    r.version = VOL_REC_VERSION;
    r.size = atomic_load(&v->size);
    r.created = v->created;
    r.create_gen = v->create_gen;
    r.used_extents = v->used_extents;
    r.snap_gen = v->snap_gen;
    snprintf(r.name, sizeof(r.name), "%s", v->name);
    r.mtime_ns = atomic_load(&v->mtime_ns);
    if (v->deleting)
        r.flags |= VOL_F_DELETING;
    if (v->drop_from != DROP_NONE) {
        r.flags |= VOL_F_DROP;
        r.drop_from = v->drop_from;
    }
    r.group_id = v->group_id;
    r.dead_blocks = v->dead_blocks;
    if (v->clone) {
        r.flags |= VOL_F_CLONE;
        r.origin_vol = v->origin_vol;
        r.origin_snap = v->origin_snap;
        r.origin_gen = v->origin_gen;
        r.origin_blocks = v->origin_blocks;
    }
    if (v->replica) {
        r.flags |= VOL_F_REPLICA;
        r.repl_session = v->repl_session;
        r.point_snap = v->point_snap;
    }
    uint8_t kb[8];
    put_be64(kb, v->id);
    MDB_val k = {8, kb}, d = {sizeof(r), &r};
    return kv_err(mdb_put(txn, p->db_volumes, &k, &d, 0));
}

/* Append V to the growable array *ARR of *N entries (*CAP allocated).  0 or ENOMEM. */
static int push(struct vv_volume ***arr, size_t *n, size_t *cap, struct vv_volume *v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct vv_volume **a = realloc(*arr, c * sizeof(*a));
        if (!a)
            return ENOMEM;
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

int vol_append(struct vv_pool *p, struct vv_volume *v)
{
    return push(&p->vols, &p->nvols, &p->vols_cap, v);
}

int vol_dying_add(struct vv_pool *p, struct vv_volume *v)
{
    return push(&p->dying, &p->ndying, &p->dying_cap, v);
}

void vol_dying_remove(struct vv_pool *p, struct vv_volume *v)
{
    for (size_t i = 0; i < p->ndying; i++) {
        if (p->dying[i] == v) {
            memmove(&p->dying[i], &p->dying[i + 1], (p->ndying - i - 1) * sizeof(*p->dying));
            p->ndying--;
            return;
        }
    }
}

int vol_load(struct vv_pool *p, MDB_txn *txn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, p->db_volumes, &cur);
    if (rc)
        return kv_err(rc);
    MDB_val k, d;
    int err = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || d.mv_size < VOL_REC_MIN) {
            vv_err(VV_SS_META, "corrupt volume record (key %zu bytes, value %zu bytes)",
                   k.mv_size, d.mv_size);
            err = EIO;
            break;
        }
        struct vol_rec r;
        memset(&r, 0, sizeof(r));
        memcpy(&r, d.mv_data, d.mv_size < sizeof(r) ? d.mv_size : sizeof(r));
        struct vv_volume *v = vol_new();
        if (v)
            volume_from_rec(v, get_be64(k.mv_data), &r);
        /* a deleted volume whose blocks were still being freed: the reaper goes on */
        if (!v || (v->deleting ? vol_dying_add(p, v) : vol_append(p, v))) {
            vol_put(v);
            err = ENOMEM;
            break;
        }
        if (v->drop_from != DROP_NONE)
            atomic_fetch_add(&p->freeing, v->used_extents);
    }
    if (!err && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    mdb_cursor_close(cur);
    /* the chains of clones: an origin is older than its clones (ids only grow), so in id
     * order each origin's chain is built before its clones need it */
    for (size_t i = 0; i < p->nvols && !err; i++) {
        struct vv_volume *v = p->vols[i];
        if (!v->clone)
            continue;
        struct vv_volume *o = vol_find_id(p, v->origin_vol);
        if (!o || o->id >= v->id) {
            vv_err(VV_SS_META, "volume '%s' is a clone of volume %llu, which does not exist",
                   v->name, (unsigned long long)v->origin_vol);
            err = EIO;
            break;
        }
        err = vol_set_origin(v, o, v->origin_snap, v->origin_gen, v->origin_blocks);
        if (err == ELOOP) {
            vv_err(VV_SS_META, "volume '%s': its chain of origins is longer than %u",
                   v->name, XMAP_CHAIN_MAX);
            err = EIO;
        }
    }
    if (err == EIO && (p->flags & VV_POOL_RDONLY))
        err = 0; /* fsck: it says what is wrong; nothing reads through the chains */
    return err;
}

struct vv_volume *vol_find_id(struct vv_pool *p, uint64_t id)
{
    for (size_t i = 0; i < p->nvols; i++)
        if (p->vols[i]->id == id)
            return p->vols[i];
    return NULL;
}

struct vv_volume *vol_find_name(struct vv_pool *p, const char *name)
{
    for (size_t i = 0; i < p->nvols; i++)
        if (strcmp(p->vols[i]->name, name) == 0)
            return p->vols[i];
    return NULL;
}

/* ---- handles ---------------------------------------------------------------------------- */

int vv_vol_open(struct vv_pool *p, uint64_t id, struct vv_vol **out)
{
    struct vv_vol *h = calloc(1, sizeof(*h));
    if (!h)
        return ENOMEM;
    pthread_rwlock_wrlock(&p->vol_mu);
    struct vv_volume *v = vol_find_id(p, id);
    int err = !v ? ENOENT : v->busy ? EBUSY : 0;
    if (!err) {
        v->open_count++;
        vol_ref(v);
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (err) {
        free(h);
        return err;
    }
    h->pool = p;
    h->vol = v;
    h->as_of = XMAP_LIVE;
    *out = h;
    return 0;
}

void vv_vol_close(struct vv_vol *h)
{
    if (!h)
        return;
    struct vv_pool *p = h->pool;
    pthread_rwlock_wrlock(&p->vol_mu);
    if (h->as_of == XMAP_LIVE) {
        h->vol->open_count--;
    } else {
        for (size_t i = 0; i < h->vol->nsnaps; i++)
            if (h->vol->snaps[i].id == h->snap_id)
                h->vol->snaps[i].open_count--;
    }
    pthread_rwlock_unlock(&p->vol_mu);
    vol_put(h->vol);
    free(h);
}

void vol_touch(struct vv_volume *v)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&v->mtime_ns, (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

uint64_t vv_vol_size(const struct vv_vol *h)
{
    if (h->as_of != XMAP_LIVE)
        return h->snap_size;
    return atomic_load(&h->vol->size);
}
