/*
 * meta/fsck.c — offline consistency check of a pool.
 *
 * Design notes
 *   One read txn gives a consistent view of all metadata.  The checks, each O(its DB):
 *     config       format version, extent size, capacity, generation
 *     volumes      each record decodes; names index <-> records agree both ways
 *     extents      key decodes; volume exists; index inside the volume; 1 <= birth <= gen;
 *                  tombstones carry no slot; data slots are inside the pool and referenced
 *                  once; a births row exists; the newest entry of an extent is not a
 *                  tombstone with nothing under it (would be a leak); per-volume used counts
 *     births       every row has its extent entry
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
    uint64_t id, size, used_rec, used_seen;
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
        return pool_lmdb_err(rc);
    MDB_val k, d;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || d.mv_size != sizeof(struct vol_rec)) {
            problem(f, "volume record with a bad size (key %zu, value %zu bytes)", k.mv_size,
                    d.mv_size);
            continue;
        }
        struct vol_rec r;
        memcpy(&r, d.mv_data, sizeof(r));
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
        snprintf(v->name, sizeof(v->name), "%.*s", VV_NAME_MAX, r.name);
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

static void check_slot_data(struct fsck *f, const struct fvol *v, uint64_t idx,
                            const struct ext_val *ev)
{
    struct vv_pool *p = f->p;
    ssize_t r = pread(slot_fd(p, ev->slot), f->buf, p->extent_size, slot_off(p, ev->slot, 0));
    if (r >= 0 && r < (ssize_t)p->extent_size)
        memset((uint8_t *)f->buf + r, 0, p->extent_size - (size_t)r);
    if (r < 0) {
        problem(f, "volume '%s' extent %llu: reading slot %llu failed: %s", v->name,
                (unsigned long long)idx, (unsigned long long)ev->slot, strerror(errno));
        return;
    }
    f->rep->checked_checksums++;
    if (XXH3_64bits(f->buf, p->extent_size) != ev->csum)
        problem(f, "volume '%s' extent %llu: checksum mismatch in slot %llu", v->name,
                (unsigned long long)idx, (unsigned long long)ev->slot);
}

static int check_extents(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->db_extents, &cur);
    if (rc)
        return pool_lmdb_err(rc);
    MDB_val k, d;
    uint64_t pvol = UINT64_MAX, pidx = UINT64_MAX;
    bool prev_tomb_alone = false; /* previous key was the only entry of its extent so far */
    bool prev_is_tomb = false;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint64_t vid = 0, idx = 0, birth = 0;
        bool end = rc != 0;
        if (!end) {
            if (k.mv_size != 24 || d.mv_size != sizeof(struct ext_val)) {
                problem(f, "extent entry with a bad size (key %zu, value %zu bytes)",
                        k.mv_size, d.mv_size);
                continue;
            }
            vid = get_be64(k.mv_data);
            idx = get_be64((uint8_t *)k.mv_data + 8);
            birth = get_be64((uint8_t *)k.mv_data + 16);
        }
        bool new_extent = end || vid != pvol || idx != pidx;
        if (new_extent && pvol != UINT64_MAX && prev_is_tomb && prev_tomb_alone)
            problem(f, "volume %llu extent %llu: tombstone with no older entry under it",
                    (unsigned long long)pvol, (unsigned long long)pidx);
        if (end)
            break;
        prev_tomb_alone = new_extent;
        pvol = vid;
        pidx = idx;
        struct ext_val ev;
        memcpy(&ev, d.mv_data, sizeof(ev));
        prev_is_tomb = ev.flags & EXT_F_TOMBSTONE;
        struct fvol *v = fvol_find(f, vid);
        if (!v) {
            problem(f, "extent entry of volume %llu, which does not exist",
                    (unsigned long long)vid);
            continue;
        }
        if (idx >= (v->size + p->extent_size - 1) / p->extent_size)
            problem(f, "volume '%s' extent %llu lies past its end", v->name,
                    (unsigned long long)idx);
        if (birth == 0 || birth > f->gen)
            problem(f, "volume '%s' extent %llu born at gen %llu (pool gen %llu)", v->name,
                    (unsigned long long)idx, (unsigned long long)birth,
                    (unsigned long long)f->gen);
        struct key3 bk = key3_make(vid, birth, idx);
        MDB_val bkv = {sizeof(bk.b), bk.b}, bd;
        if (mdb_get(f->txn, p->db_births, &bkv, &bd) != 0)
            problem(f, "volume '%s' extent %llu gen %llu has no births row", v->name,
                    (unsigned long long)idx, (unsigned long long)birth);
        if (ev.flags & EXT_F_TOMBSTONE) {
            f->rep->tombstones++;
            if (ev.slot != SLOT_NONE)
                problem(f, "volume '%s' extent %llu: tombstone with a slot", v->name,
                        (unsigned long long)idx);
            continue;
        }
        f->rep->extents++;
        v->used_seen++;
        if (ev.slot >= p->nslots) {
            problem(f, "volume '%s' extent %llu: slot %llu past the pool's end", v->name,
                    (unsigned long long)idx, (unsigned long long)ev.slot);
            continue;
        }
        if ((f->seen[ev.slot >> 6] >> (ev.slot & 63)) & 1)
            problem(f, "slot %llu is referenced twice (again by volume '%s' extent %llu)",
                    (unsigned long long)ev.slot, v->name, (unsigned long long)idx);
        f->seen[ev.slot >> 6] |= 1ULL << (ev.slot & 63);
        f->rep->used_slots++;
        if (f->verify)
            check_slot_data(f, v, idx, &ev);
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < f->nvols; i++)
        if (f->vols[i].used_rec != f->vols[i].used_seen)
            problem(f, "volume '%s' records %llu used extents but has %llu", f->vols[i].name,
                    (unsigned long long)f->vols[i].used_rec,
                    (unsigned long long)f->vols[i].used_seen);
    return 0;
}

static int check_births(struct fsck *f)
{
    struct vv_pool *p = f->p;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(f->txn, p->db_births, &cur);
    if (rc)
        return pool_lmdb_err(rc);
    MDB_val k, d;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        f->rep->births++;
        if (k.mv_size != 24) {
            problem(f, "births row with a bad key size %zu", k.mv_size);
            continue;
        }
        uint64_t vid = get_be64(k.mv_data), birth = get_be64((uint8_t *)k.mv_data + 8);
        uint64_t idx = get_be64((uint8_t *)k.mv_data + 16);
        struct key3 ek = key3_make(vid, idx, birth);
        MDB_val ekv = {sizeof(ek.b), ek.b}, ed;
        if (mdb_get(f->txn, p->db_extents, &ekv, &ed) != 0)
            problem(f, "births row (volume %llu, gen %llu, extent %llu) has no extent entry",
                    (unsigned long long)vid, (unsigned long long)birth,
                    (unsigned long long)idx);
    }
    mdb_cursor_close(cur);
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
    err = pool_lmdb_err(mdb_txn_begin(p->env, NULL, MDB_RDONLY, &f.txn));
    if (err) {
        vv_err_set(e, err, "cannot read metadata: %s", strerror(err));
        goto out;
    }
    err = pool_get_u64(f.txn, p->db_config, "gen", &f.gen);
    if (!err)
        err = check_volumes(&f);
    if (!err)
        err = check_extents(&f);
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
