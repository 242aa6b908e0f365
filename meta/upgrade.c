/*
 * meta/upgrade.c — in-place upgrade of a format-1 pool to format 2.
 *
 * Design notes
 *   Format 1 kept one `extents` entry per block, key (vol, idx, birth) -> {slot, xxh3, flags}
 *   (24 bytes, little-endian; flags bit 0: tombstone), and a `births` row (vol, birth, idx)
 *   per entry.  Format 2 keeps one version per chunk of blocks (meta/xmap.h).  Format 1 never
 *   had snapshots, so every block has one live entry; a chunk becomes one version holding all
 *   its blocks, born at the newest of their births (within a chunk, per-block births are not
 *   needed: only snapshots, which format 1 lacks, tell gens apart).  Checksums carry over as
 *   they are (both formats checksum a block with xxh3-64), so no data is read.
 *
 *   The conversion runs in LMDB txns of at most UPGRADE_BATCH chunk versions, each ending at a
 *   chunk boundary and recording how far it got (config `upgrade_vol`, `upgrade_chunk`), so
 *   that a crash or kill in the middle resumes where the last txn ended, and no txn grows with
 *   the pool.  The old databases are dropped and `format_version` set to 2 in the last txn:
 *   until then the pool is format 1 (plus a partial map nobody reads).
 *
 *   Should an old block have more than one entry (never in a healthy format-1 pool), the newest
 *   wins and the slots of the others are freed; a newest tombstone makes the block a hole.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define UPGRADE_BATCH 16384u
#define V1_TOMBSTONE 1u

struct v1_val {
    uint64_t slot, csum;
    uint32_t flags, reserved;
};

struct conv {
    struct vv_pool *p;
    MDB_txn *txn;
    struct xkey k;     /* chunk being built (birth: newest so far) */
    struct xver v;
    bool open;
    uint64_t versions, blocks, extra;
    struct slot_list freed;
};

static int flush_chunk(struct conv *c)
{
    if (!c->open)
        return 0;
    c->open = false;
    c->v.defined &= ~c->v.zero;
    c->v.zero = 0;
    if (!c->v.defined)
        return 0;
    c->versions++;
    return xmap_put_raw(&c->p->xmap, c->txn, &c->k, &c->v);
}

/* One batch: convert from (vol, chunk) on; *DONE when the old map is exhausted. */
static int convert_batch(struct conv *c, MDB_dbi old, uint64_t *vol, uint64_t *chunk, bool *done)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->txn, old, &cur);
    if (rc)
        return kv_err(rc);
    uint8_t start[24];
    put_be64(start, *vol);
    put_be64(start + 8, *chunk << XMAP_CHUNK_SHIFT);
    put_be64(start + 16, 0);
    MDB_val k = {24, start}, d;
    int err = 0;
    size_t batch = 0;
    uint64_t last_idx = UINT64_MAX, last_vol = UINT64_MAX;
    *done = false;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);; rc = mdb_cursor_get(cur, &k, &d,
                                                                              MDB_NEXT)) {
        if (rc == MDB_NOTFOUND) {
            *done = true;
            break;
        }
        if (rc) {
            err = kv_err(rc);
            break;
        }
        if (k.mv_size != 24 || d.mv_size != sizeof(struct v1_val)) {
            vv_err(VV_SS_META, "format-1 extent entry with a bad size (key %zu, value %zu "
                   "bytes): the pool cannot be upgraded; run 'vvfs fsck' with the old vvfs",
                   k.mv_size, d.mv_size);
            err = EIO;
            break;
        }
        uint64_t ev = get_be64(k.mv_data), idx = get_be64((uint8_t *)k.mv_data + 8);
        uint64_t birth = get_be64((uint8_t *)k.mv_data + 16);
        struct v1_val val;
        memcpy(&val, d.mv_data, sizeof(val));
        uint64_t ec = idx >> XMAP_CHUNK_SHIFT;
        unsigned b = (unsigned)(idx & (XMAP_CHUNK_BLOCKS - 1));
        if (!c->open || ev != c->k.vol || ec != c->k.chunk) {
            if ((err = flush_chunk(c)))
                break;
            if (++batch > UPGRADE_BATCH) {
                *vol = ev;
                *chunk = ec;
                break;
            }
            c->open = true;
            c->k = (struct xkey){.vol = ev, .chunk = ec, .birth = 0};
            c->v.defined = c->v.zero = 0;
        }
        uint64_t bit = 1ULL << b;
        if (ev == last_vol && idx == last_idx && (c->v.defined & bit)) {
            /* an older entry of the same block: the newer one (this) wins */
            c->extra++;
            if (!(c->v.zero & bit) && (err = slot_list_add(&c->freed, c->v.slot[b])))
                break;
        }
        last_vol = ev;
        last_idx = idx;
        if (birth > c->k.birth)
            c->k.birth = birth;
        c->v.defined |= bit;
        if (val.flags & V1_TOMBSTONE) {
            c->v.zero |= bit;
        } else {
            if (val.slot >= c->p->nslots) {
                vv_err(VV_SS_META, "format-1 entry of volume %llu block %llu points past the "
                       "pool (slot %llu): the pool cannot be upgraded",
                       (unsigned long long)ev, (unsigned long long)idx,
                       (unsigned long long)val.slot);
                err = EIO;
                break;
            }
            c->v.zero &= ~bit;
            c->v.slot[b] = val.slot;
            c->v.csum[b] = val.csum;
            c->blocks++;
        }
    }
    if (!err && *done)
        err = flush_chunk(c);
    mdb_cursor_close(cur);
    return err;
}

int upgrade_from_v1(struct vv_pool *p, struct vv_err *e)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vv_info(VV_SS_META, "pool %s has format 1: upgrading it in place to format %d", p->dir,
            VV_POOL_FORMAT_VERSION);
    struct conv c = {.p = p};
    MDB_dbi old_ext, old_births;
    uint64_t vol = 0, chunk = 0;
    bool done = false;
    int err = 0;
    while (!done && !err) {
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &c.txn));
        if (err)
            break;
        err = kv_err(mdb_dbi_open(c.txn, "extents", 0, &old_ext));
        if (!err)
            err = kv_err(mdb_dbi_open(c.txn, "births", 0, &old_births));
        if (!err && (err = kv_get_u64(c.txn, p->db_config, "upgrade_vol", &vol)) == ENOENT)
            err = 0, vol = 0;
        if (!err && (err = kv_get_u64(c.txn, p->db_config, "upgrade_chunk", &chunk)) == ENOENT)
            err = 0, chunk = 0;
        if (!err)
            err = convert_batch(&c, old_ext, &vol, &chunk, &done);
        if (!err && c.freed.n) {
            struct slot_list none = {0};
            err = alloc_persist(p, c.txn, &none, &c.freed);
        }
        slot_list_free(&c.freed);
        if (!err && !done) {
            err = kv_put_u64(c.txn, p->db_config, "upgrade_vol", vol);
            if (!err)
                err = kv_put_u64(c.txn, p->db_config, "upgrade_chunk", chunk);
        }
        if (!err && done) {
            /* the last txn: the old map goes, the format changes */
            err = kv_err(mdb_drop(c.txn, old_ext, 1));
            if (!err)
                err = kv_err(mdb_drop(c.txn, old_births, 1));
            MDB_val k1 = {11, (void *)"upgrade_vol"}, k2 = {13, (void *)"upgrade_chunk"};
            if (!err && (err = kv_err(mdb_del(c.txn, p->db_config, &k1, NULL))) == ENOENT)
                err = 0;
            if (!err && (err = kv_err(mdb_del(c.txn, p->db_config, &k2, NULL))) == ENOENT)
                err = 0;
            if (!err)
                err = kv_put_u64(c.txn, p->db_config, "chunk_blocks", XMAP_CHUNK_BLOCKS);
            if (!err)
                err = kv_put_u64(c.txn, p->db_config, "format_version", 2);
        }
        if (!err)
            err = kv_err(mdb_txn_commit(c.txn));
        else
            mdb_txn_abort(c.txn);
    }
    if (err) {
        vv_err(VV_SS_META, "upgrade of pool %s failed: %s (the pool is still format 1; the "
               "next mount resumes the upgrade)", p->dir, strerror(err));
        return vv_err_set(e, err, "cannot upgrade pool %s to format %d: %s (it is still "
                          "usable by the previous vvfs; the next mount resumes)", p->dir,
                          VV_POOL_FORMAT_VERSION, strerror(err));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vv_info(VV_SS_META, "upgraded pool %s to format %d: %llu blocks in %llu chunk versions "
            "(%llu superseded entries dropped), %.1f s", p->dir, VV_POOL_FORMAT_VERSION,
            (unsigned long long)c.blocks, (unsigned long long)c.versions,
            (unsigned long long)c.extra,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (c.extra)
        vv_warn(VV_SS_META, "pool %s had %llu superseded format-1 entries; run 'vvfs fsck' to "
                "check the volumes' counters", p->dir, (unsigned long long)c.extra);
    return 0;
}

/* ---- format 3 -> 4 ------------------------------------------------------------------------ */

/* add N to the dead_blocks of volume VOL's record in TXN */
static int add_dead(struct vv_pool *p, MDB_txn *txn, uint64_t vol, uint64_t n)
{
    uint8_t kb[8];
    put_be64(kb, vol);
    MDB_val k = {8, kb}, d;
    int rc = mdb_get(txn, p->db_volumes, &k, &d);
    if (rc == MDB_NOTFOUND)
        return 0; /* (fsck reports rows of a volume that does not exist) */
    if (rc)
        return kv_err(rc);
    if (d.mv_size < VOL_REC_MIN)
        return EIO;
    struct vol_rec r;
    memset(&r, 0, sizeof(r));
    memcpy(&r, d.mv_data, d.mv_size < sizeof(r) ? d.mv_size : sizeof(r));
    r.dead_blocks += n;
    MDB_val nd = {sizeof(r), &r};
    return kv_err(mdb_put(txn, p->db_volumes, &k, &nd, 0));
}

int upgrade_dead_counts(struct vv_pool *p, MDB_txn *txn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, p->xmap.dead, &cur);
    if (rc)
        return kv_err(rc);
    int err = 0;
    uint64_t vol = 0, n = 0, rows = 0;
    struct xdead d;
    for (err = xmap_dead_cursor_get(cur, MDB_FIRST, &d); !err;
         err = xmap_dead_cursor_get(cur, MDB_NEXT, &d)) {
        if (d.vol != vol && n) {
            if ((err = add_dead(p, txn, vol, n)))
                break;
            n = 0;
        }
        vol = d.vol;
        rows++;
        struct xkey k = {.vol = d.vol, .chunk = d.chunk, .birth = d.birth};
        struct xver v;
        /* the version's zero mask: the row's data blocks are what space it holds */
        int e2 = xmap_get(&p->xmap, txn, &k, &v);
        if (e2 == 0)
            n += (uint64_t)__builtin_popcountll(d.mask & ~v.zero);
        else if (e2 != ENOENT && e2 != EIO) { /* (fsck reports rows without a version) */
            err = e2;
            break;
        }
    }
    if (err == ENOENT || err == EBADMSG) /* (the end; fsck reports bad rows) */
        err = 0;
    if (!err && n)
        err = add_dead(p, txn, vol, n);
    mdb_cursor_close(cur);
    if (!err)
        vv_info(VV_SS_META, "pool %s: counted the space of %llu dead-list rows", p->dir,
                (unsigned long long)rows);
    return err;
}
