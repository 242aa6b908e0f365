/*
 * meta/fsck.c — offline consistency check of a pool.
 *
 * Design notes
 *   One read txn gives a consistent view of all metadata.  The checks, each O(its DB):
 *     config       format version, extent size, capacity, generation
 *     volumes      each record decodes; names index <-> records agree both ways
 *     extent map   every version decodes (masks, runs, checksums agree: xmap.h); its
 *                  volume exists; no block past the volume's end; 1 <= birth <= gen; a
 *                  births row exists; data slots are inside the pool and referenced once;
 *                  at most one version per chunk born after the volume's snap_gen
 *                  (merged); every block an older version keeps under a newer one is seen
 *                  by a snapshot (nothing leaks); per-volume used counts
 *     snapshots    each record decodes, belongs to a volume, is not newer than the pool;
 *                  the volume's snap_gen is its newest snapshot's gen
 *     dead lists   every row names an existing version and blocks it defines; per volume
 *                  the rows' blocks are exactly as many as the blocks kept under newer
 *                  versions (each hidden block is on exactly one dead list)
 *     births       every row has its version
 *     space map    bit set <=> slot referenced by an extent entry
 *     checksums    (optional) xxh3 of every referenced slot equals the entry's checksum
 *   Each problem is printed as one line on stdout and counted.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

struct fvol {
    uint64_t id, size, used_rec, used_seen, snap_gen;
    uint64_t hidden, dead;      /* blocks kept under newer versions; blocks on dead lists */
    uint64_t dead_data, dead_rec; /* data blocks on dead lists: counted; as the record says */
    uint64_t *excl;             /* per snapshot: data blocks only it sees (from the rows) */
    const struct vsnap *snaps;  /* its snapshots, by gen (from the pool's load) */
    size_t nsnaps;
    bool snap_pending;          /* a snapshot delete is to be finished: skip the leak checks */
    uint64_t drop_from; /* DROP_NONE, or blocks from here on are being freed */
    bool deleting;
    char name[VV_NAME_MAX + 1];
};

struct fsck {
    struct vv_pool *p;
    MDB_txn *txn;
    struct vv_fsck_report *rep;
    struct fvol *vols;
    size_t nvols;
    uint64_t gen;
    uint64_t *seen; /* bitmap of referenced slots */
    bool verify;
    void *buf;
};

__attribute__((format(printf, 2, 3))) static void problem(struct fsck *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("fsck: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    f->rep->errors++;
}

static struct fvol *fvol_find(struct fsck *f, uint64_t id)
{
    for (size_t i = 0; i < f->nvols; i++)
        if (f->vols[i].id == id)
            return &f->vols[i];
    return NULL;
}

/* A clone's origin: a live older volume with the snapshot the record names, of that gen,
 * which the clone does not read past. */
static void check_origin(struct fsck *f, struct vv_pool *p, const struct fvol *v,
                         const struct vol_rec *r)
{
    struct vv_volume *o = vol_find_id(p, r->origin_vol);
    const struct vsnap *s = NULL;
    for (size_t i = 0; o && i < o->nsnaps; i++)
        if (o->snaps[i].id == r->origin_snap)
            s = &o->snaps[i];
    if (!o || o->id >= v->id)
        problem(f, "volume '%s' is a clone of volume %llu, which does not exist", v->name,
                (unsigned long long)r->origin_vol);
    else if (!s)
        problem(f, "volume '%s' is a clone of snapshot %llu of volume '%s', which does not "
                "exist", v->name, (unsigned long long)r->origin_snap, o->name);
    else if (s->gen != r->origin_gen)
        problem(f, "volume '%s' is a clone of snapshot '%s' of volume '%s' as of gen %llu, "
                "but the snapshot is of gen %llu", v->name, s->name, o->name,
                (unsigned long long)r->origin_gen, (unsigned long long)s->gen);
    else if (r->origin_blocks > (s->size + p->extent_size - 1) / p->extent_size)
        problem(f, "volume '%s' reads %llu blocks from its origin, which has %llu", v->name,
                (unsigned long long)r->origin_blocks,
                (unsigned long long)((s->size + p->extent_size - 1) / p->extent_size));
    else if (o->clone && o->norigins == 0)
        problem(f, "volume '%s': the chain of origins of its origin '%s' is broken", v->name,
                o->name);
}

static int check_volumes(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->db_volumes, &cur);
    if (rc)
        return kv_err(rc);
    MDB_val k, d;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || d.mv_size < VOL_REC_MIN) {
            problem(f, "volume record with a bad size (key %zu, value %zu bytes)", k.mv_size,
                    d.mv_size);
            continue;
        }
        struct vol_rec r;
        memset(&r, 0, sizeof(r));
        memcpy(&r, d.mv_data, d.mv_size < sizeof(r) ? d.mv_size : sizeof(r));
        struct fvol *nv = realloc(f->vols, (f->nvols + 1) * sizeof(*nv));
        if (!nv) {
            mdb_cursor_close(cur);
            return ENOMEM;
        }
        f->vols = nv;
        struct fvol *v = &f->vols[f->nvols++];
        memset(v, 0, sizeof(*v));
        v->id = get_be64(k.mv_data);
        v->size = r.size;
        v->used_rec = r.used_extents;
        v->snap_gen = r.snap_gen;
        v->dead_rec = r.dead_blocks;
        snprintf(v->name, sizeof(v->name), "%.*s", VV_NAME_MAX, r.name);
        v->deleting = r.flags & VOL_F_DELETING;
        v->drop_from = r.flags & VOL_F_DROP ? r.drop_from : DROP_NONE;
        if (v->deleting && v->drop_from != 0)
            problem(f, "volume %llu is being deleted but its record keeps blocks",
                    (unsigned long long)v->id);
        if (v->deleting) {
            printf("fsck: note: volume %llu (was '%s') is deleted; %llu blocks are still to be "
                   "freed (the daemon does it in the background)\n",
                   (unsigned long long)v->id, v->name, (unsigned long long)v->used_rec);
            continue;
        }
        if (vv_name_check(v->name))
            problem(f, "volume %llu has an invalid name", (unsigned long long)v->id);
        struct vv_volume *mv = vol_find_id(p, v->id);
        if (mv) {
            v->snaps = mv->snaps;
            v->nsnaps = mv->nsnaps;
            v->excl = calloc(v->nsnaps ? v->nsnaps : 1, sizeof(*v->excl));
        }
        for (size_t i = 0; i < p->nsnap_pend; i++) {
            if (p->snap_pend[i].vol != v->id)
                continue;
            v->snap_pending = true;
            printf("fsck: note: snapshot '%s' of volume '%s' is being deleted (the daemon "
                   "finishes it when it opens the pool)\n", p->snap_pend[i].s.name, v->name);
        }
        uint64_t newest = v->nsnaps ? v->snaps[v->nsnaps - 1].gen : 0;
        if (!v->snap_pending && v->snap_gen != newest)
            problem(f, "volume '%s' records snapshot gen %llu, but its newest snapshot is of "
                    "gen %llu", v->name, (unsigned long long)v->snap_gen,
                    (unsigned long long)newest);
        for (size_t i = 0; i < v->nsnaps; i++) {
            if (v->snaps[i].gen > p->committed_txg)
                problem(f, "snapshot '%s' of volume '%s' is of gen %llu, after the pool's %llu",
                        v->snaps[i].name, v->name, (unsigned long long)v->snaps[i].gen,
                        (unsigned long long)p->committed_txg);
            const char *sn = v->snaps[i].name;
            if (vv_name_check(sn[0] == '.' ? sn + 1 : sn)) /* ('.': vvfs's own) */
                problem(f, "snapshot %llu of volume '%s' has an invalid name",
                        (unsigned long long)v->snaps[i].id, v->name);
        }
        if (r.flags & VOL_F_CLONE)
            check_origin(f, p, v, &r);
        bool point = !(r.flags & VOL_F_REPLICA) || !r.point_snap;
        for (size_t i = 0; !point && i < v->nsnaps; i++)
            point = v->snaps[i].id == r.point_snap;
        if (!point)
            problem(f, "replica '%s' reads its point, snapshot %llu, which it does not have",
                    v->name, (unsigned long long)r.point_snap);
        if ((r.flags & VOL_F_REPLICA) && !r.repl_session)
            problem(f, "replica '%s' names no replication session", v->name);
        if (r.group_id && !group_find_id(p, r.group_id))
            problem(f, "volume '%s' is in group %llu, which does not exist", v->name,
                    (unsigned long long)r.group_id);
        if (r.size == 0 || r.size % 4096)
            problem(f, "volume '%s' has a bad size %llu", v->name, (unsigned long long)r.size);
        if (v->id >= p->next_vol_id)
            problem(f, "volume '%s' id %llu >= next_volume_id %llu", v->name,
                    (unsigned long long)v->id, (unsigned long long)p->next_vol_id);
        MDB_val nk = {strlen(v->name), v->name}, nd;
        if (mdb_get(f->txn, p->db_volnames, &nk, &nd) != 0)
            problem(f, "volume '%s' (id %llu) is missing from the name index", v->name,
                    (unsigned long long)v->id);
        else if (nd.mv_size != 8 || get_be64(nd.mv_data) != v->id)
            problem(f, "name index maps '%s' to another volume", v->name);
        f->rep->volumes++;
    }
    mdb_cursor_close(cur);
    if (mdb_cursor_open(f->txn, p->db_volnames, &cur))
        return EIO;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (d.mv_size != 8 || !fvol_find(f, get_be64(d.mv_data)))
            problem(f, "name index entry '%.*s' points to no volume", (int)k.mv_size,
                    (char *)k.mv_data);
    }
    mdb_cursor_close(cur);
    return 0;
}

static void check_slot_data(struct fsck *f, const struct fvol *v, uint64_t idx, uint64_t slot,
                            uint64_t csum)
{
    struct vv_pool *p = f->p;
    ssize_t r = pread(slot_fd(p, slot), f->buf, p->extent_size, slot_off(p, slot, 0));
    if (r >= 0 && r < (ssize_t)p->extent_size)
        memset((uint8_t *)f->buf + r, 0, p->extent_size - (size_t)r);
    if (r < 0) {
        problem(f, "volume '%s' block %llu: reading slot %llu failed: %s", v->name,
                (unsigned long long)idx, (unsigned long long)slot, strerror(errno));
        return;
    }
    f->rep->checked_checksums++;
    if (XXH3_64bits(f->buf, p->extent_size) != csum)
        problem(f, "volume '%s' block %llu: checksum mismatch in slot %llu", v->name,
                (unsigned long long)idx, (unsigned long long)slot);
}

/* Is some snapshot of FV of a gen in [LO, HI)? */
static bool seen_between(const struct fvol *fv, uint64_t lo, uint64_t hi)
{
    size_t a = 0, b = fv->nsnaps;
    while (a < b) { /* the first snapshot of gen >= LO */
        size_t m = (a + b) / 2;
        if (fv->snaps[m].gen < lo)
            a = m + 1;
        else
            b = m;
    }
    return a < fv->nsnaps && fv->snaps[a].gen < hi;
}

struct cver {
    uint64_t birth, defined;
};

/* The versions of one chunk (oldest first): each block an older one keeps under a newer one
 * must be seen by a snapshot taken in between. */
static void check_chunk(struct fsck *f, struct fvol *fv, uint64_t chunk, const struct cver *cv,
                        size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t left = cv[i].defined;
        for (size_t j = i + 1; j < n && left; j++) {
            uint64_t hid = left & cv[j].defined;
            left &= ~cv[j].defined;
            if (!hid)
                continue;
            fv->hidden += (uint64_t)__builtin_popcountll(hid);
            if (!fv->snap_pending && !seen_between(fv, cv[i].birth, cv[j].birth))
                problem(f, "volume '%s' chunk %llu gen %llu keeps blocks %#llx that gen %llu "
                        "hides and no snapshot sees (leaked)", fv->name,
                        (unsigned long long)chunk, (unsigned long long)cv[i].birth,
                        (unsigned long long)hid, (unsigned long long)cv[j].birth);
        }
    }
}

/* The extent map: every version decodes, belongs to a volume, lies inside it, has its births
 * row; slots are referenced once; versions no snapshot sees are merged (at most one per chunk
 * born after the volume's snap_gen), and what older versions keep some snapshot sees.
 * (Zeros in a chunk's oldest version, hiding nothing, are allowed: they read as what is under
 * them, and a snapshot delete can leave them until the chunk is next written.) */
static int check_map(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->xmap.map, &cur);
    if (rc)
        return kv_err(rc);
    uint64_t pvol = UINT64_MAX, pchunk = UINT64_MAX;
    unsigned unshared = 0; /* versions of the current chunk born after snap_gen */
    struct cver *cv = NULL;
    size_t ncv = 0, cvcap = 0;
    struct fvol *pfv = NULL;
    struct xkey k;
    struct xver v;
    const char *bad;
    int err;
    for (err = xmap_cursor_get(&p->xmap, cur, MDB_FIRST, &k, &v, &bad); err != ENOENT;
         err = xmap_cursor_get(&p->xmap, cur, MDB_NEXT, &k, &v, &bad)) {
        if (err == EBADMSG) {
            problem(f, "extent map entry (volume %llu, chunk %llu, gen %llu): %s",
                    (unsigned long long)k.vol, (unsigned long long)k.chunk,
                    (unsigned long long)k.birth, bad);
            continue;
        }
        if (err)
            break;
        f->rep->versions++;
        bool first = k.vol != pvol || k.chunk != pchunk;
        if (first && pfv)
            check_chunk(f, pfv, pchunk, cv, ncv);
        if (first) {
            unshared = 0;
            ncv = 0;
        }
        pvol = k.vol;
        pchunk = k.chunk;
        struct fvol *fv = fvol_find(f, k.vol);
        pfv = fv;
        if (fv) {
            if (ncv == cvcap) {
                size_t c = cvcap ? cvcap * 2 : 16;
                struct cver *a = realloc(cv, c * sizeof(*a));
                if (!a) {
                    err = ENOMEM;
                    break;
                }
                cv = a;
                cvcap = c;
            }
            cv[ncv++] = (struct cver){k.birth, v.defined};
        }
        if (!fv) {
            problem(f, "extent map entry of volume %llu, which does not exist",
                    (unsigned long long)k.vol);
            continue;
        }
        uint64_t nblocks = (fv->size + p->extent_size - 1) / p->extent_size;
        if (!fv->deleting && fv->drop_from != DROP_NONE && fv->drop_from < nblocks)
            problem(f, "volume '%s' frees blocks from %llu on, inside its size", fv->name,
                    (unsigned long long)fv->drop_from);
        if (fv->drop_from != DROP_NONE)
            nblocks = UINT64_MAX; /* a shrink in progress: what lies past the end is going */
        uint64_t base = k.chunk << XMAP_CHUNK_SHIFT;
        if (base >= nblocks || (nblocks - base < XMAP_CHUNK_BLOCKS &&
                                (v.defined >> (nblocks - base)) != 0))
            problem(f, "volume '%s' chunk %llu gen %llu defines blocks past the volume's end",
                    fv->name, (unsigned long long)k.chunk, (unsigned long long)k.birth);
        if (k.birth == 0 || k.birth > f->gen)
            problem(f, "volume '%s' chunk %llu born at gen %llu (pool gen %llu)", fv->name,
                    (unsigned long long)k.chunk, (unsigned long long)k.birth,
                    (unsigned long long)f->gen);
        if (xmap_births_has(&p->xmap, f->txn, &k) != 0)
            problem(f, "volume '%s' chunk %llu gen %llu has no births row", fv->name,
                    (unsigned long long)k.chunk, (unsigned long long)k.birth);
        if (k.birth > fv->snap_gen && ++unshared > 1 && !fv->snap_pending)
            problem(f, "volume '%s' chunk %llu: versions no snapshot sees were not merged",
                    fv->name, (unsigned long long)k.chunk);
        f->rep->tombstones += (uint64_t)__builtin_popcountll(v.zero);
        for (uint64_t m = xmap_datamask(&v); m; m &= m - 1) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            uint64_t slot = v.slot[b];
            f->rep->extents++;
            fv->used_seen++;
            if ((f->seen[slot >> 6] >> (slot & 63)) & 1)
                problem(f, "slot %llu is referenced twice (again by volume '%s' block %llu)",
                        (unsigned long long)slot, fv->name, (unsigned long long)(base + b));
            f->seen[slot >> 6] |= 1ULL << (slot & 63);
            f->rep->used_slots++;
            if (f->verify)
                check_slot_data(f, fv, base + b, slot, v.csum[b]);
        }
    }
    if ((!err || err == ENOENT) && pfv)
        check_chunk(f, pfv, pchunk, cv, ncv);
    free(cv);
    mdb_cursor_close(cur);
    if (err && err != ENOENT)
        return err;
    for (size_t i = 0; i < f->nvols; i++)
        if (f->vols[i].used_rec != f->vols[i].used_seen)
            problem(f, "volume '%s' records %llu used blocks but has %llu", f->vols[i].name,
                    (unsigned long long)f->vols[i].used_rec,
                    (unsigned long long)f->vols[i].used_seen);
    return 0;
}

static int check_births(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->xmap.births, &cur);
    if (rc)
        return kv_err(rc);
    struct xkey k;
    int err;
    for (err = xmap_births_cursor_get(cur, MDB_FIRST, &k); err != ENOENT;
         err = xmap_births_cursor_get(cur, MDB_NEXT, &k)) {
        if (err == EBADMSG) {
            problem(f, "births row with a bad key");
            continue;
        }
        if (err)
            break;
        f->rep->births++;
        if (xmap_has(&p->xmap, f->txn, &k) != 0)
            problem(f, "births row (volume %llu, gen %llu, chunk %llu) has no version",
                    (unsigned long long)k.vol, (unsigned long long)k.birth,
                    (unsigned long long)k.chunk);
    }
    mdb_cursor_close(cur);
    return err == ENOENT ? 0 : err;
}

static int check_dead(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->xmap.dead, &cur);
    if (rc)
        return kv_err(rc);
    struct xdead d;
    int err;
    for (err = xmap_dead_cursor_get(cur, MDB_FIRST, &d); err != ENOENT;
         err = xmap_dead_cursor_get(cur, MDB_NEXT, &d)) {
        if (err == EBADMSG) {
            problem(f, "dead-list row with a bad key or value");
            continue;
        }
        if (err)
            break;
        struct fvol *fv = fvol_find(f, d.vol);
        if (!fv) {
            problem(f, "dead-list row of volume %llu, which does not exist",
                    (unsigned long long)d.vol);
            continue;
        }
        fv->dead += (uint64_t)__builtin_popcountll(d.mask);
        struct xkey k = {d.vol, d.chunk, d.birth};
        struct xver v;
        if (d.k <= d.birth || xmap_get(&p->xmap, f->txn, &k, &v) != 0) {
            problem(f, "volume '%s': dead-list row (gen %llu, chunk %llu, gen %llu) names no "
                    "older version", fv->name, (unsigned long long)d.k,
                    (unsigned long long)d.chunk, (unsigned long long)d.birth);
            continue;
        }
        uint64_t data = (uint64_t)__builtin_popcountll(d.mask & ~v.zero);
        fv->dead_data += data;
        /* the snapshots that see it: gens in [birth, k); exactly one holds it alone */
        size_t a = 0, c = 0;
        while (a < fv->nsnaps && fv->snaps[a].gen < d.birth)
            a++;
        for (c = a; c < fv->nsnaps && fv->snaps[c].gen < d.k; c++)
            ;
        if (c == a + 1 && fv->excl)
            fv->excl[a] += data;
    }
    mdb_cursor_close(cur);
    if (err != ENOENT)
        return err;
    for (size_t i = 0; i < f->nvols; i++) {
        struct fvol *fv = &f->vols[i];
        if (fv->hidden != fv->dead && !fv->snap_pending && !fv->deleting)
            problem(f, "volume '%s': %llu blocks are kept under newer versions but the dead "
                    "lists hold %llu", fv->name, (unsigned long long)fv->hidden,
                    (unsigned long long)fv->dead);
        if (fv->dead_data != fv->dead_rec && !fv->deleting)
            problem(f, "volume '%s': its record counts %llu data blocks held by snapshots "
                    "only, the dead lists hold %llu", fv->name,
                    (unsigned long long)fv->dead_rec, (unsigned long long)fv->dead_data);
        if (fv->dead_data > fv->used_rec)
            problem(f, "volume '%s': snapshots alone hold %llu blocks, more than its %llu",
                    fv->name, (unsigned long long)fv->dead_data,
                    (unsigned long long)fv->used_rec);
        /* what each snapshot holds alone, as its delete (and the status) would count it */
        for (size_t j = 0; fv->excl && !fv->snap_pending && j < fv->nsnaps; j++) {
            uint64_t pg = j ? fv->snaps[j - 1].gen : 0;
            uint64_t ng = j + 1 < fv->nsnaps ? fv->snaps[j + 1].gen : XMAP_LIVE;
            uint64_t n = 0;
            int e2 = xmap_dead_count(&p->xmap, f->txn, fv->id, pg, fv->snaps[j].gen, ng, &n);
            if (e2 || n != fv->excl[j])
                problem(f, "snapshot '%s' of volume '%s' holds %llu blocks alone, but the "
                        "count its delete uses says %llu", fv->snaps[j].name, fv->name,
                        (unsigned long long)fv->excl[j], (unsigned long long)n);
        }
        free(fv->excl);
        fv->excl = NULL;
    }
    return 0;
}

static int check_spacemap(struct fsck *f)
{
    struct vv_pool *p = f->p;
    size_t words = (p->nslots + 63) / 64;
    /* p->inuse was loaded from the space map at open and nothing has changed it since */
    uint64_t bad = 0, first = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t x = p->inuse[w] ^ f->seen[w];
        if (!x)
            continue;
        for (int b = 0; b < 64; b++) {
            if (!((x >> b) & 1))
                continue;
            uint64_t s = (uint64_t)w * 64 + (uint64_t)b;
            if (bad++ < 20)
                problem(f, "slot %llu is %s in the space map but %s", (unsigned long long)s,
                        (p->inuse[w] >> b) & 1 ? "used" : "free",
                        (p->inuse[w] >> b) & 1 ? "referenced by no extent" : "referenced");
            else if (!first)
                first = s;
        }
    }
    if (bad > 20) {
        printf("fsck: ... and %llu more space map mismatches\n", (unsigned long long)(bad - 20));
        f->rep->errors += bad - 20;
    }
    return 0;
}

int vv_pool_fsck(const char *dir, bool verify_data, struct vv_fsck_report *report,
                 struct vv_err *e)
{
    memset(report, 0, sizeof(*report));
    struct vv_pool *p;
    int err = vv_pool_open(dir, VV_POOL_RDONLY, &p, e);
    if (err)
        return err;
    struct fsck f = {.p = p, .rep = report, .verify = verify_data};
    f.seen = calloc((p->nslots + 63) / 64 + 1, sizeof(uint64_t));
    f.buf = malloc(p->extent_size);
    if (!f.seen || !f.buf) {
        err = vv_err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    err = kv_err(mdb_txn_begin(p->env, NULL, MDB_RDONLY, &f.txn));
    if (err) {
        vv_err_set(e, err, "cannot read metadata: %s", strerror(err));
        goto out;
    }
    err = kv_get_u64(f.txn, p->db_config, "gen", &f.gen);
    if (!err)
        err = check_volumes(&f);
    if (!err)
        err = check_map(&f);
    if (!err)
        err = check_births(&f);
    if (!err)
        err = check_dead(&f);
    if (!err)
        err = check_spacemap(&f);
    mdb_txn_abort(f.txn);
    if (err)
        vv_err_set(e, err, "fsck could not complete: %s", strerror(err));
out:
    free(f.seen);
    free(f.buf);
    for (size_t i = 0; i < f.nvols; i++)
        free(f.vols[i].excl); /* (check_dead frees them, unless it did not run) */
    free(f.vols);
    vv_pool_close(p);
    return err;
}
