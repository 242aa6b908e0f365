/*
 * meta/delta.c — what changed in a volume between two of its snapshots: the runs of blocks a
 * replica must rewrite, as data or as zeros (what replication sends).
 *
 * Design notes
 *   From snapshot F (gen f) to snapshot T (gen t): the chunks with a version born in (f, t]
 *   are the births rows in that range, O(changes) — no walk of the map.  Within such a chunk
 *   the blocks that versions born in (f, t] define changed (xmap_changed_between: the
 *   snapshot F keeps older versions apart, so no version born after f holds a block written
 *   before it); each reads, as of t, as data or as zeros, and becomes part of a DATA or a
 *   ZERO run.  From nothing (f = 0, an initial sync) the runs are the blocks with data as of
 *   t, found chunk by chunk as SEEK_DATA finds them (the volume's versions and, for a clone,
 *   its origins'), so a thin volume sends what was written, not its size.
 *   The delta holds T open (a snapshot handle), so T cannot be deleted under it; its runs
 *   are read through that handle.  The chunk list of a births walk is collected at open:
 *   8 bytes per changed chunk.
 */
#include "meta/meta_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vv_delta {
    struct vv_pool *p;
    struct vv_vol *to;   /* snapshot T, open */
    uint64_t from_gen;   /* 0: from nothing */
    uint64_t nblocks;    /* T's size in blocks */
    struct slot_list chunks; /* births walk: the changed chunks, sorted */
    size_t ci;
    uint64_t next_chunk; /* from nothing: where the next SEEK_DATA-style search starts */
    /* the chunk being cut into runs */
    bool have;
    uint64_t chunk, changed, data;
    unsigned b;
};

static int find_snap(struct vv_pool *p, struct vv_volume *v, const char *name, struct vsnap *out)
{
    int err = ENOENT;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < v->nsnaps && err; i++)
        if (strcmp(v->snaps[i].name, name) == 0) {
            *out = v->snaps[i];
            err = 0;
        }
    pthread_rwlock_unlock(&p->vol_mu);
    return err;
}

int vv_delta_open(struct vv_pool *p, const char *volume, const char *from, const char *to,
                  struct vv_delta **out, struct vv_err *e)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_volume *v = vol_find_name(p, volume);
    if (v)
        vol_ref(v);
    pthread_rwlock_unlock(&p->vol_mu);
    if (!v)
        return vv_err_set(e, ENOENT, "volume '%s' does not exist", volume);
    struct vsnap f = {0}, t;
    int err = 0;
    if (find_snap(p, v, to, &t))
        err = vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volume, to);
    else if (from && find_snap(p, v, from, &f))
        err = vv_err_set(e, ENOENT, "volume '%s' has no snapshot '%s'", volume, from);
    else if (from && f.gen > t.gen)
        err = vv_err_set(e, EINVAL, "snapshot '%s' is newer than '%s'", from, to);
    struct vv_delta *d = err ? NULL : calloc(1, sizeof(*d));
    if (!err && !d)
        err = vv_err_set(e, ENOMEM, "out of memory");
    if (!err && (err = vv_snap_open(p, v->id, t.id, &d->to)))
        vv_err_set(e, err, "cannot open snapshot '%s' of volume '%s'", to, volume);
    else if (!err)
        d->to->stream = true; /* each block is read once */
    vol_put(v); /* (the handle holds its own reference) */
    if (err) {
        free(d);
        return err;
    }
    d->p = p;
    d->from_gen = from ? f.gen : 0;
    d->nblocks = (t.size + p->extent_size - 1) >> p->extent_shift;
    if (from) {
        MDB_txn *txn;
        struct xmap_births c = {0};
        if (!(err = rtxn_get(p, &txn))) {
            err = xmap_births_open(&p->xmap, txn, d->to->vol->id, f.gen, t.gen, &c);
            uint64_t birth, chunk;
            while (!err && !(err = xmap_births_next(&c, &birth, &chunk)))
                err = slot_list_add(&d->chunks, chunk);
            if (err == ENOENT)
                err = 0;
            if (c.cur)
                xmap_births_close(&c);
            rtxn_put(p, txn);
        }
        if (!err)
            slot_list_sort_unique(&d->chunks);
        if (err) {
            vv_delta_close(d);
            return vv_err_set(e, err, "cannot read the changes of volume '%s': %s", volume,
                              strerror(err));
        }
    }
    *out = d;
    return 0;
}

/* the next chunk with something to send, into d->chunk/changed/data; ENOENT at the end */
static int next_chunk(struct vv_delta *d)
{
    struct vv_pool *p = d->p;
    const struct vv_volume *v = d->to->vol;
    uint64_t nchunks = (d->nblocks + XMAP_CHUNK_BLOCKS - 1) >> XMAP_CHUNK_SHIFT;
    for (;;) {
        uint64_t chunk;
        if (d->from_gen) {
            if (d->ci >= d->chunks.n)
                return ENOENT;
            chunk = d->chunks.v[d->ci++];
        } else {
            chunk = d->next_chunk;
        }
        if (chunk >= nchunks)
            return ENOENT;
        MDB_txn *txn;
        MDB_cursor *cur;
        int err = rtxn_get(p, &txn);
        if (err)
            return err;
        if ((err = kv_err(mdb_cursor_open(txn, p->xmap.map, &cur)))) {
            rtxn_put(p, txn);
            return err;
        }
        if (!d->from_gen) {
            /* the first chunk at or after it that the volume or an origin has versions of */
            uint64_t best = UINT64_MAX;
            int e2 = xmap_next_chunk_chain(&p->xmap, cur, v->id, v->origins, v->norigins, chunk,
                                           &best);
            if (e2 && e2 != ENOENT)
                err = e2;
            chunk = best;
            d->next_chunk = best == UINT64_MAX ? best : best + 1;
        }
        struct xview view;
        uint64_t changed = ~0ULL;
        if (!err && chunk < nchunks && d->from_gen)
            err = xmap_changed_between(&p->xmap, cur, v->id, chunk, d->from_gen, d->to->as_of,
                                       &changed);
        if (!err && chunk < nchunks)
            err = xmap_view_chain(&p->xmap, cur, v->id, chunk, d->to->as_of, v->origins,
                                  v->norigins, ~0ULL, &view);
        mdb_cursor_close(cur);
        rtxn_put(p, txn);
        if (err)
            return err;
        if (chunk >= nchunks)
            return ENOENT;
        uint64_t first = chunk << XMAP_CHUNK_SHIFT;
        if (d->nblocks - first < XMAP_CHUNK_BLOCKS)
            changed &= (1ULL << (d->nblocks - first)) - 1;
        if (!d->from_gen)
            changed &= view.data; /* from nothing: zeros need no sending */
        if (!changed)
            continue;
        d->have = true;
        d->chunk = chunk;
        d->changed = changed;
        d->data = view.data;
        d->b = 0;
        return 0;
    }
}

int vv_delta_next(struct vv_delta *d, uint64_t *block, uint32_t *count, bool *zero)
{
    for (;;) {
        if (!d->have) {
            int err = next_chunk(d);
            if (err)
                return err;
        }
        while (d->b < XMAP_CHUNK_BLOCKS && !(d->changed >> d->b & 1))
            d->b++;
        if (d->b >= XMAP_CHUNK_BLOCKS) {
            d->have = false;
            continue;
        }
        unsigned b = d->b, e = b + 1;
        bool data = d->data >> b & 1;
        while (e < XMAP_CHUNK_BLOCKS && (d->changed >> e & 1) && (bool)(d->data >> e & 1) == data)
            e++;
        d->b = e;
        *block = (d->chunk << XMAP_CHUNK_SHIFT) + b;
        *count = e - b;
        *zero = !data;
        return 0;
    }
}

struct vv_vol *vv_delta_source(struct vv_delta *d)
{
    return d->to;
}

void vv_delta_close(struct vv_delta *d)
{
    if (!d)
        return;
    vv_vol_close(d->to);
    slot_list_free(&d->chunks);
    free(d);
}
