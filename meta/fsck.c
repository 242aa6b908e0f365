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
 *                  a chunk's oldest version has no zeros (they would hide nothing); at most
 *                  one version per chunk born after the volume's snap_gen (merged);
 *                  per-volume used counts
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

/* The extent map: every version decodes, belongs to a volume, lies inside it, has its births
 * row; slots are referenced once; a chunk's oldest version has no zeros; versions no snapshot
 * sees are merged (at most one per chunk born after the volume's snap_gen). */
static int check_map(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->xmap.map, &cur);
    if (rc)
        return kv_err(rc);
    uint64_t pvol = UINT64_MAX, pchunk = UINT64_MAX;
    unsigned unshared = 0; /* versions of the current chunk born after snap_gen */
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
        pvol = k.vol;
        pchunk = k.chunk;
        if (first)
            unshared = 0;
        struct fvol *fv = fvol_find(f, k.vol);
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
        if (first && v.zero)
            problem(f, "volume '%s' chunk %llu gen %llu: zeros with no older version under them",
                    fv->name, (unsigned long long)k.chunk, (unsigned long long)k.birth);
        if (k.birth > fv->snap_gen && ++unshared > 1)
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
        err = check_spacemap(&f);
    mdb_txn_abort(f.txn);
    if (err)
        vv_err_set(e, err, "fsck could not complete: %s", strerror(err));
out:
    free(f.seen);
    free(f.buf);
    free(f.vols);
    vv_pool_close(p);
    return err;
}
