/*
 * meta/xmap.c — the extent map of chunk versions and its births index (see xmap.h).
 *
 * Design notes
 *   Why chunks of 64 blocks with a version per txg (measured, docs/ARCHITECTURE.md "Extent
 *   map"): the cost of an entry is paid per run of blocks written together, not per block.
 *   A chunk written sequentially is one entry of 24 + 8 + 512 bytes for 256 KiB (one run,
 *   64 checksums); a block written alone costs a bit, a run and a checksum in its chunk's
 *   entry.  Lookups stay one seek for the live volume, because versions nobody but the
 *   live volume sees are merged at commit (xmap_apply).
 *
 *   Merging is pure metadata: the merged version takes the older version's slots and
 *   checksums for the blocks the new txg did not write; no data is read or copied.
 */
#include "meta/xmap.h"
#include "util/log.h"

#include <errno.h>
#include <string.h>

#define ENC_V1 1u
#define HDR_BYTES 24u
#define RUN_LEN_SHIFT 48

struct key3 {
    uint8_t b[24];
};

static inline struct key3 key3_make(uint64_t a, uint64_t b, uint64_t c)
{
    struct key3 k;
    put_be64(k.b, a);
    put_be64(k.b + 8, b);
    put_be64(k.b + 16, c);
    return k;
}

static inline bool key_decode(const MDB_val *k, struct xkey *out)
{
    if (k->mv_size != 24)
        return false;
    const uint8_t *b = k->mv_data;
    out->vol = get_be64(b);
    out->chunk = get_be64(b + 8);
    out->birth = get_be64(b + 16);
    return true;
}

/* ---- value encoding -------------------------------------------------------------------------- */

/* Encode V into BUF (XMAP_VAL_MAX bytes); returns the length. */
static size_t encode(const struct xver *v, uint8_t *buf)
{
    uint64_t data = xmap_datamask(v);
    unsigned ndata = (unsigned)__builtin_popcountll(data);
    uint8_t *runs = buf + HDR_BYTES;
    unsigned nruns = 0;
    uint64_t start = 0, len = 0;
    uint8_t *cs = buf + HDR_BYTES + 8u * XMAP_CHUNK_BLOCKS; /* checksums, moved down below */
    unsigned i = 0;
    for (uint64_t m = data; m; m &= m - 1, i++) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        put_le64(cs + 8u * i, v->csum[b]);
        if (len > 0 && v->slot[b] == start + len) {
            len++;
            continue;
        }
        if (len > 0)
            put_le64(runs + 8u * nruns++, start | len << RUN_LEN_SHIFT);
        start = v->slot[b];
        len = 1;
    }
    if (len > 0)
        put_le64(runs + 8u * nruns++, start | len << RUN_LEN_SHIFT);
    memmove(runs + 8u * nruns, cs, 8u * ndata);
    buf[0] = ENC_V1;
    buf[1] = 0;
    buf[2] = (uint8_t)nruns;
    buf[3] = (uint8_t)(nruns >> 8);
    memset(buf + 4, 0, 4);
    put_le64(buf + 8, v->defined);
    put_le64(buf + 16, v->zero);
    return HDR_BYTES + 8u * nruns + 8u * ndata;
}

/* Decode VAL into V; NULL, or the reason it does not decode. */
static const char *decode(const struct xmap *x, const MDB_val *val, struct xver *v)
{
    const uint8_t *b = val->mv_data;
    if (val->mv_size < HDR_BYTES)
        return "value too short";
    if (b[0] != ENC_V1)
        return "unknown value encoding";
    unsigned nruns = b[2] | (unsigned)b[3] << 8;
    v->defined = get_le64(b + 8);
    v->zero = get_le64(b + 16);
    uint64_t data = xmap_datamask(v);
    unsigned ndata = (unsigned)__builtin_popcountll(data);
    if (v->defined == 0)
        return "version defines no block";
    if (v->zero & ~v->defined)
        return "zero mask outside the defined mask";
    if (val->mv_size != HDR_BYTES + 8u * nruns + 8u * ndata)
        return "value size does not match its masks and runs";
    const uint8_t *runs = b + HDR_BYTES, *cs = runs + 8u * nruns;
    uint64_t m = data;
    for (unsigned r = 0; r < nruns; r++) {
        uint64_t e = get_le64(runs + 8u * r);
        uint64_t s = e & XMAP_SLOT_MAX, len = e >> RUN_LEN_SHIFT;
        if (len == 0 || s + len > x->nslots)
            return "run of slots outside the pool";
        for (uint64_t j = 0; j < len; j++) {
            if (!m)
                return "runs cover more blocks than the version has";
            unsigned blk = (unsigned)__builtin_ctzll(m);
            m &= m - 1;
            v->slot[blk] = s + j;
        }
    }
    if (m)
        return "runs cover fewer blocks than the version has";
    unsigned i = 0;
    for (m = data; m; m &= m - 1, i++)
        v->csum[__builtin_ctzll(m)] = get_le64(cs + 8u * i);
    return NULL;
}

static int decode_or_eio(const struct xmap *x, const MDB_val *k, const MDB_val *val,
                         struct xver *v)
{
    const char *why = decode(x, val, v);
    if (!why)
        return 0;
    struct xkey xk = {0};
    key_decode(k, &xk);
    vv_err(VV_SS_META, "extent map entry (volume %llu, chunk %llu, gen %llu) is corrupt: %s",
           (unsigned long long)xk.vol, (unsigned long long)xk.chunk,
           (unsigned long long)xk.birth, why);
    return EIO;
}

/* ---- open ------------------------------------------------------------------------------------ */

int xmap_open(MDB_txn *txn, unsigned flags, uint64_t nslots, struct xmap *x)
{
    int rc = mdb_dbi_open(txn, "xmap", flags, &x->map);
    if (!rc)
        rc = mdb_dbi_open(txn, "xbirths", flags, &x->births);
    if (!rc)
        rc = mdb_dbi_open(txn, "xdead", flags, &x->dead);
    x->nslots = nslots;
    return kv_err(rc);
}

/* ---- lookups --------------------------------------------------------------------------------- */

/*
 * Position CUR on the newest version of (VOL, CHUNK) born at or before AS_OF: 0 with K and
 * VAL set, or ENOENT.
 */
static int seek_version(MDB_cursor *cur, uint64_t vol, uint64_t chunk, uint64_t as_of,
                        MDB_val *k, MDB_val *val)
{
    int rc;
    if (as_of == UINT64_MAX) {
        struct key3 probe = key3_make(vol, chunk + 1, 0);
        *k = (MDB_val){sizeof(probe.b), probe.b};
        rc = chunk == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(cur, k, val, MDB_SET_RANGE);
    } else {
        struct key3 probe = key3_make(vol, chunk, as_of + 1);
        *k = (MDB_val){sizeof(probe.b), probe.b};
        rc = mdb_cursor_get(cur, k, val, MDB_SET_RANGE);
    }
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, k, val, MDB_LAST);
    else if (rc == 0)
        rc = mdb_cursor_get(cur, k, val, MDB_PREV);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return kv_err(rc);
    struct xkey xk;
    if (!key_decode(k, &xk) || xk.vol != vol || xk.chunk != chunk || xk.birth > as_of)
        return ENOENT;
    return 0;
}

/* Step CUR back to the previous version of the same chunk: 0, or ENOENT. */
static int prev_version(MDB_cursor *cur, uint64_t vol, uint64_t chunk, MDB_val *k,
                        MDB_val *val)
{
    int rc = mdb_cursor_get(cur, k, val, MDB_PREV);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return kv_err(rc);
    struct xkey xk;
    if (!key_decode(k, &xk) || xk.vol != vol || xk.chunk != chunk)
        return ENOENT;
    return 0;
}

/* Decide the blocks of WANT not yet in *DECIDED from (VOL, CHUNK) as of AS_OF into OUT. */
static int view_layer(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                      uint64_t as_of, uint64_t want, struct xview *out, uint64_t *decided)
{
    MDB_val k, val;
    int err = seek_version(cur, vol, chunk, as_of, &k, &val);
    struct xver v;
    while (!err) {
        if ((err = decode_or_eio(x, &k, &val, &v)))
            return err;
        uint64_t fresh = v.defined & want & ~*decided;
        for (uint64_t m = fresh & ~v.zero; m; m &= m - 1) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            out->slot[b] = v.slot[b];
            out->csum[b] = v.csum[b];
        }
        out->data |= fresh & ~v.zero;
        *decided |= fresh;
        if ((want & ~*decided) == 0)
            return 0;
        err = prev_version(cur, vol, chunk, &k, &val);
    }
    return err == ENOENT ? 0 : err;
}

int xmap_view(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
              uint64_t as_of, uint64_t want, struct xview *out)
{
    return xmap_view_chain(x, cur, vol, chunk, as_of, NULL, 0, want, out);
}

int xmap_view_chain(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                    uint64_t as_of, const struct xlayer *o, unsigned no, uint64_t want,
                    struct xview *out)
{
    out->data = 0;
    uint64_t decided = 0;
    int err = view_layer(x, cur, vol, chunk, as_of, want, out, &decided);
    for (unsigned i = 0; i < no && !err; i++) {
        uint64_t limit = __atomic_load_n(&o[i].limit, __ATOMIC_RELAXED);
        uint64_t first = chunk << XMAP_CHUNK_SHIFT;
        if (limit <= first)
            break; /* (limits only fall along the chain) */
        if (limit - first < XMAP_CHUNK_BLOCKS)
            want &= (1ULL << (limit - first)) - 1;
        if ((want & ~decided) == 0)
            break;
        err = view_layer(x, cur, o[i].vol, chunk, o[i].as_of, want, out, &decided);
    }
    return err;
}

int xmap_next_chunk(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                    uint64_t *next_chunk)
{
    (void)x;
    struct key3 probe = key3_make(vol, chunk, 0);
    MDB_val k = {sizeof(probe.b), probe.b}, val;
    int rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return kv_err(rc);
    struct xkey xk;
    if (!key_decode(&k, &xk) || xk.vol != vol)
        return ENOENT;
    *next_chunk = xk.chunk;
    return 0;
}

int xmap_next_chunk_chain(const struct xmap *x, MDB_cursor *cur, uint64_t vol,
                          const struct xlayer *o, unsigned no, uint64_t chunk,
                          uint64_t *next_chunk)
{
    uint64_t best = UINT64_MAX, c;
    int err = xmap_next_chunk(x, cur, vol, chunk, &c);
    if (!err)
        best = c;
    for (unsigned i = 0; i < no && (!err || err == ENOENT); i++) {
        uint64_t limit = __atomic_load_n(&o[i].limit, __ATOMIC_RELAXED);
        uint64_t lc = (limit + XMAP_CHUNK_BLOCKS - 1) >> XMAP_CHUNK_SHIFT;
        if (chunk >= lc)
            break; /* (limits only fall along the chain) */
        err = xmap_next_chunk(x, cur, o[i].vol, chunk, &c);
        if (!err && c < lc && c < best)
            best = c;
    }
    if (err && err != ENOENT)
        return err;
    *next_chunk = best;
    return best == UINT64_MAX ? ENOENT : 0;
}

/* ---- changes --------------------------------------------------------------------------------- */

static int births_put(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t birth,
                      uint64_t chunk)
{
    struct key3 bk = key3_make(vol, birth, chunk);
    MDB_val bkv = {sizeof(bk.b), bk.b}, empty = {0, NULL};
    return kv_err(mdb_put(txn, x->births, &bkv, &empty, 0));
}

static int births_del(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t birth,
                      uint64_t chunk)
{
    struct key3 bk = key3_make(vol, birth, chunk);
    MDB_val bkv = {sizeof(bk.b), bk.b};
    int rc = mdb_del(txn, x->births, &bkv, NULL);
    if (rc == MDB_NOTFOUND) {
        vv_warn(VV_SS_META, "births row missing for volume %llu chunk %llu gen %llu",
                (unsigned long long)vol, (unsigned long long)chunk, (unsigned long long)birth);
        rc = 0;
    }
    return kv_err(rc);
}

static int put_version(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t chunk,
                       uint64_t birth, const struct xver *v)
{
    uint8_t buf[XMAP_VAL_MAX];
    struct key3 key = key3_make(vol, chunk, birth);
    MDB_val k = {sizeof(key.b), key.b}, val = {encode(v, buf), buf};
    int err = kv_err(mdb_put(txn, x->map, &k, &val, 0));
    if (!err)
        err = births_put(x, txn, vol, birth, chunk);
    return err;
}

/* ---- dead lists ------------------------------------------------------------------------------ */

struct key4 {
    uint8_t b[32];
};

static inline struct key4 key4_make(uint64_t vol, uint64_t k, uint64_t chunk, uint64_t birth)
{
    struct key4 key;
    put_be64(key.b, vol);
    put_be64(key.b + 8, k);
    put_be64(key.b + 16, chunk);
    put_be64(key.b + 24, birth);
    return key;
}

static bool dead_decode(const MDB_val *k, const MDB_val *v, struct xdead *d)
{
    if (k->mv_size != 32 || v->mv_size != 8)
        return false;
    const uint8_t *b = k->mv_data;
    d->vol = get_be64(b);
    d->k = get_be64(b + 8);
    d->chunk = get_be64(b + 16);
    d->birth = get_be64(b + 24);
    d->mask = get_le64(v->mv_data);
    return d->mask != 0;
}

/* OR MASK into the dead-list row (VOL, K, CHUNK, BIRTH) */
static int dead_add(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t k,
                    uint64_t chunk, uint64_t birth, uint64_t mask)
{
    struct key4 key = key4_make(vol, k, chunk, birth);
    MDB_val kk = {sizeof(key.b), key.b}, val;
    int rc = mdb_get(txn, x->dead, &kk, &val);
    if (rc == 0 && val.mv_size == 8)
        mask |= get_le64(val.mv_data);
    else if (rc != MDB_NOTFOUND && rc != 0)
        return kv_err(rc);
    uint8_t mb[8];
    put_le64(mb, mask);
    MDB_val mv = {8, mb};
    return kv_err(mdb_put(txn, x->dead, &kk, &mv, 0));
}

/*
 * T's blocks MASK hide blocks of the versions at and below the one CUR is on (K, VAL), all
 * born at or before the newest snapshot: record them on T's dead list, newest version first,
 * each block once (where it was visible).
 */
static int hide_older(const struct xmap *x, MDB_txn *txn, MDB_cursor *cur, uint64_t vol,
                      uint64_t chunk, uint64_t t, uint64_t mask, MDB_val *k, MDB_val *val,
                      uint64_t *hidden)
{
    int err = 0;
    while (mask && !err) {
        struct xkey xk = {0};
        struct xver w;
        key_decode(k, &xk);
        if ((err = decode_or_eio(x, k, val, &w)))
            return err;
        uint64_t hid = w.defined & mask;
        if (hid && (err = dead_add(x, txn, vol, t, chunk, xk.birth, hid)))
            return err;
        *hidden += (uint64_t)__builtin_popcountll(hid & ~w.zero);
        mask &= ~w.defined;
        if (mask)
            err = prev_version(cur, vol, chunk, k, val);
    }
    return err == ENOENT ? 0 : err;
}

int xmap_apply(const struct xmap *x, MDB_txn *txn, MDB_cursor *cur, uint64_t vol,
               uint64_t chunk, uint64_t t, uint64_t snap_gen, unsigned flags,
               const struct xver *delta, struct slot_list *freed, struct slot_list *set,
               struct xcount *cnt)
{
    int64_t *used = &cnt->used;
    MDB_val k, val;
    struct xver merged = {.defined = delta->defined, .zero = delta->zero}, old;
    int found = seek_version(cur, vol, chunk, XMAP_LIVE, &k, &val), err = 0;
    if (found && found != ENOENT)
        return found;
    struct xkey ok = {0};
    if (!found) {
        key_decode(&k, &ok);
        if (ok.birth >= t) {
            vv_err(VV_SS_META, "volume %llu chunk %llu: version of gen %llu found while "
                   "committing gen %llu", (unsigned long long)vol, (unsigned long long)chunk,
                   (unsigned long long)ok.birth, (unsigned long long)t);
            return EIO;
        }
    }
    for (uint64_t m = xmap_datamask(delta); m; m &= m - 1) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        merged.slot[b] = delta->slot[b];
        merged.csum[b] = delta->csum[b];
        if ((err = slot_list_add(set, delta->slot[b])))
            return err;
        (*used)++;
    }
    /* Versions nobody but the live volume sees (born after the newest snapshot; normally
     * at most one) are merged into T's: what T overwrites in them is freed. */
    uint64_t hides = delta->defined; /* of T's blocks, those that may hide a kept version's */
    err = found; /* CUR is still on the newest version (K, VAL) */
    while (!err) {
        key_decode(&k, &ok);
        if (ok.birth <= snap_gen)
            break;
        if ((err = decode_or_eio(x, &k, &val, &old)))
            return err;
        uint64_t over = old.defined & merged.defined;
        for (uint64_t m = over & ~old.zero; m; m &= m - 1) {
            if ((err = slot_list_add(freed, old.slot[__builtin_ctzll(m)])))
                return err;
            (*used)--;
        }
        uint64_t keep = old.defined & ~merged.defined;
        for (uint64_t m = keep & ~old.zero; m; m &= m - 1) {
            unsigned b = (unsigned)__builtin_ctzll(m);
            merged.slot[b] = old.slot[b];
            merged.csum[b] = old.csum[b];
        }
        merged.defined |= keep;
        merged.zero |= keep & old.zero;
        /* what the merged version already hid below was recorded when it was applied */
        hides &= ~old.defined;
        int rc = mdb_cursor_del(cur, 0);
        if (rc)
            return kv_err(rc);
        if ((err = births_del(x, txn, vol, ok.birth, chunk)))
            return err;
        err = seek_version(cur, vol, chunk, XMAP_LIVE, &k, &val);
    }
    if (err && err != ENOENT)
        return err;
    bool older = !err; /* a version a snapshot sees remains under the result */
    if (older && (err = hide_older(x, txn, cur, vol, chunk, t, hides, &k, &val, &cnt->hidden)))
        return err;
    if (!older && !(flags & XMAP_KEEP_ZERO)) {
        /* zeros over nothing: the blocks simply are not there */
        merged.defined &= ~merged.zero;
        merged.zero = 0;
    }
    if (merged.defined == 0)
        return 0;
    return put_version(x, txn, vol, chunk, t, &merged);
}

/* Edit version (VOL, CHUNK, BIRTH): its blocks in MASK go (data slots to FREED).  A version
 * left with nothing is removed with its births row. */
static int version_release(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t chunk,
                           uint64_t birth, uint64_t mask, struct slot_list *freed,
                           int64_t *used)
{
    struct key3 key = key3_make(vol, chunk, birth);
    MDB_val k = {sizeof(key.b), key.b}, val;
    int rc = mdb_get(txn, x->map, &k, &val);
    if (rc == MDB_NOTFOUND) {
        vv_err(VV_SS_META, "dead list of volume %llu names chunk %llu gen %llu, which does not "
               "exist", (unsigned long long)vol, (unsigned long long)chunk,
               (unsigned long long)birth);
        return EIO;
    }
    if (rc)
        return kv_err(rc);
    struct xver v;
    int err = decode_or_eio(x, &k, &val, &v);
    if (err)
        return err;
    if (mask & ~v.defined) {
        vv_err(VV_SS_META, "dead list of volume %llu: chunk %llu gen %llu lacks blocks %#llx",
               (unsigned long long)vol, (unsigned long long)chunk, (unsigned long long)birth,
               (unsigned long long)(mask & ~v.defined));
        return EIO;
    }
    for (uint64_t m = mask & ~v.zero; m; m &= m - 1) {
        if ((err = slot_list_add(freed, v.slot[__builtin_ctzll(m)])))
            return err;
        (*used)--;
    }
    v.defined &= ~mask;
    v.zero &= ~mask;
    if (v.defined == 0) {
        if ((rc = mdb_del(txn, x->map, &k, NULL)))
            return kv_err(rc);
        return births_del(x, txn, vol, birth, chunk);
    }
    uint8_t buf[XMAP_VAL_MAX];
    MDB_val nv = {encode(&v, buf), buf};
    return kv_err(mdb_put(txn, x->map, &k, &nv, 0));
}

int xmap_dead_release(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t p_gen,
                      uint64_t s_gen, uint64_t n_gen, struct xdead *pos, size_t budget,
                      struct slot_list *freed, int64_t *used, bool *done)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, x->dead, &cur);
    if (rc)
        return kv_err(rc);
    if (pos->vol != vol || pos->k <= s_gen)
        *pos = (struct xdead){.vol = vol, .k = s_gen + 1};
    int err = 0;
    size_t n = 0;
    *done = false;
    for (;;) {
        struct key4 start = key4_make(vol, pos->k, pos->chunk, pos->birth);
        MDB_val k = {sizeof(start.b), start.b}, val;
        rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
        struct xdead d;
        if (rc == MDB_NOTFOUND || (rc == 0 && k.mv_size == 32 && get_be64(k.mv_data) != vol)) {
            *done = true;
            break;
        }
        if (rc) {
            err = kv_err(rc);
            break;
        }
        if (!dead_decode(&k, &val, &d)) {
            vv_err(VV_SS_META, "malformed dead-list row of volume %llu",
                   (unsigned long long)vol);
            err = EIO;
            break;
        }
        if (d.k > n_gen) {
            *done = true;
            break;
        }
        if (budget && n >= budget)
            break;
        n++;
        /* the next row after this one */
        *pos = d;
        if (++pos->birth == 0 && ++pos->chunk == 0)
            pos->k++;
        if (d.birth <= p_gen || d.birth > s_gen)
            continue; /* an older snapshot still sees it */
        if ((err = version_release(x, txn, vol, d.chunk, d.birth, d.mask, freed, used)))
            break;
        if ((rc = mdb_del(txn, x->dead, &k, NULL))) {
            err = kv_err(rc);
            break;
        }
    }
    mdb_cursor_close(cur);
    return err;
}

int xmap_dead_count(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t p_gen,
                    uint64_t s_gen, uint64_t n_gen, uint64_t *blocks)
{
    MDB_cursor *cur, *mc;
    int rc = mdb_cursor_open(txn, x->dead, &cur);
    if (rc)
        return kv_err(rc);
    if ((rc = mdb_cursor_open(txn, x->map, &mc))) {
        mdb_cursor_close(cur);
        return kv_err(rc);
    }
    *blocks = 0;
    struct key4 start = key4_make(vol, s_gen + 1, 0, 0);
    MDB_val k = {sizeof(start.b), start.b}, val;
    int err = 0;
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
        struct xdead d;
        if (k.mv_size == 32 && get_be64(k.mv_data) != vol)
            break;
        if (!dead_decode(&k, &val, &d)) {
            vv_err(VV_SS_META, "malformed dead-list row of volume %llu",
                   (unsigned long long)vol);
            err = EIO;
            break;
        }
        if (d.k > n_gen)
            break;
        if (d.birth <= p_gen || d.birth > s_gen)
            continue;
        /* the version says which of the blocks are data (the row also has hidden zeros) */
        struct key3 vk = key3_make(vol, d.chunk, d.birth);
        MDB_val vkv = {sizeof(vk.b), vk.b}, vv;
        struct xver v;
        rc = mdb_cursor_get(mc, &vkv, &vv, MDB_SET_KEY);
        if (rc) {
            err = rc == MDB_NOTFOUND ? EIO : kv_err(rc);
            if (rc == MDB_NOTFOUND)
                vv_err(VV_SS_META, "dead list of volume %llu names chunk %llu gen %llu, which "
                       "does not exist", (unsigned long long)vol, (unsigned long long)d.chunk,
                       (unsigned long long)d.birth);
            break;
        }
        if ((err = decode_or_eio(x, &vkv, &vv, &v)))
            break;
        *blocks += (uint64_t)__builtin_popcountll(d.mask & ~v.zero);
    }
    if (!err && rc && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    mdb_cursor_close(mc);
    mdb_cursor_close(cur);
    return err;
}

int xmap_merge_after(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t p_gen,
                     unsigned flags, struct xkey *pos, size_t budget, bool *done)
{
    MDB_cursor *bc, *mc;
    int rc = mdb_cursor_open(txn, x->births, &bc);
    if (rc)
        return kv_err(rc);
    if ((rc = mdb_cursor_open(txn, x->map, &mc))) {
        mdb_cursor_close(bc);
        return kv_err(rc);
    }
    if (pos->vol != vol || pos->birth <= p_gen)
        *pos = (struct xkey){.vol = vol, .birth = p_gen + 1};
    int err = 0;
    size_t n = 0;
    *done = false;
    for (;;) {
        struct key3 start = key3_make(vol, pos->birth, pos->chunk);
        MDB_val k = {sizeof(start.b), start.b}, val;
        rc = mdb_cursor_get(bc, &k, &val, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != 24 || get_be64(k.mv_data) != vol))) {
            *done = true;
            break;
        }
        if (rc) {
            err = kv_err(rc);
            break;
        }
        if (budget && n >= budget)
            break;
        n++;
        uint64_t birth = get_be64((uint8_t *)k.mv_data + 8);
        uint64_t chunk = get_be64((uint8_t *)k.mv_data + 16);
        *pos = (struct xkey){.vol = vol, .birth = birth, .chunk = chunk + 1};
        if (chunk == UINT64_MAX)
            *pos = (struct xkey){.vol = vol, .birth = birth + 1};
        /* the chunk's versions born after P, newest first, merged into the newest */
        MDB_val vk, vv;
        struct xkey top = {0}, o = {0};
        struct xver merged, old;
        if ((err = seek_version(mc, vol, chunk, XMAP_LIVE, &vk, &vv)))
            break; /* (the births row says there is one) */
        key_decode(&vk, &top);
        if ((err = decode_or_eio(x, &vk, &vv, &merged)))
            break;
        unsigned nmerged = 0;
        for (uint64_t below = top.birth;; below = o.birth) {
            err = below ? seek_version(mc, vol, chunk, below - 1, &vk, &vv) : ENOENT;
            if (err)
                break;
            key_decode(&vk, &o);
            if (o.birth <= p_gen)
                break;
            if ((err = decode_or_eio(x, &vk, &vv, &old)))
                break;
            if (old.defined & merged.defined) {
                vv_err(VV_SS_META, "volume %llu chunk %llu: gen %llu still hides blocks of gen "
                       "%llu that no snapshot sees", (unsigned long long)vol,
                       (unsigned long long)chunk, (unsigned long long)top.birth,
                       (unsigned long long)o.birth);
                err = EIO;
                break;
            }
            for (uint64_t m = xmap_datamask(&old); m; m &= m - 1) {
                unsigned b = (unsigned)__builtin_ctzll(m);
                merged.slot[b] = old.slot[b];
                merged.csum[b] = old.csum[b];
            }
            merged.defined |= old.defined;
            merged.zero |= old.zero;
            if ((rc = mdb_cursor_del(mc, 0))) {
                err = kv_err(rc);
                break;
            }
            if ((err = births_del(x, txn, vol, o.birth, chunk)))
                break;
            nmerged++;
        }
        bool older = err == 0; /* the walk stopped on a version born at or before P */
        if (err == ENOENT)
            err = 0;
        if (err)
            break;
        if (nmerged == 0)
            continue;
        if (!older && !(flags & XMAP_KEEP_ZERO)) {
            merged.defined &= ~merged.zero; /* nothing older: zeros hide nothing */
            merged.zero = 0;
        }
        struct key3 hk = key3_make(vol, chunk, top.birth);
        MDB_val hkv = {sizeof(hk.b), hk.b};
        if (merged.defined == 0) {
            if ((err = kv_err(mdb_del(txn, x->map, &hkv, NULL))))
                break;
            err = births_del(x, txn, vol, top.birth, chunk);
        } else {
            uint8_t buf[XMAP_VAL_MAX];
            MDB_val nv = {encode(&merged, buf), buf};
            err = kv_err(mdb_put(txn, x->map, &hkv, &nv, 0));
        }
        if (err)
            break;
    }
    mdb_cursor_close(mc);
    mdb_cursor_close(bc);
    return err;
}

int xmap_changed_since(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                       uint64_t after, uint64_t *mask)
{
    return xmap_changed_between(x, cur, vol, chunk, after, XMAP_LIVE, mask);
}

int xmap_changed_between(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                         uint64_t after, uint64_t upto, uint64_t *mask)
{
    MDB_val k, val;
    struct xkey xk = {0};
    struct xver v;
    *mask = 0;
    int err = seek_version(cur, vol, chunk, upto, &k, &val);
    while (!err) {
        key_decode(&k, &xk);
        if (xk.birth <= after)
            break;
        if ((err = decode_or_eio(x, &k, &val, &v)))
            return err;
        *mask |= v.defined;
        err = prev_version(cur, vol, chunk, &k, &val);
    }
    return err == ENOENT ? 0 : err;
}

int xmap_dead_cursor_get(MDB_cursor *cur, MDB_cursor_op op, struct xdead *d)
{
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, op);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return kv_err(rc);
    return dead_decode(&k, &v, d) ? 0 : EBADMSG;
}

int xmap_drop(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t from,
              size_t budget, struct slot_list *freed, int64_t *used, bool *done)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, x->map, &cur);
    if (rc)
        return kv_err(rc);
    uint64_t chunk = from >> XMAP_CHUNK_SHIFT;
    unsigned first = (unsigned)(from & (XMAP_CHUNK_BLOCKS - 1));
    /* blocks of the first chunk that go: bits first.. */
    uint64_t cut = first ? ~0ULL << first : ~0ULL;
    struct key3 start = key3_make(vol, chunk, 0);
    MDB_val k = {sizeof(start.b), start.b}, val;
    size_t n = 0;
    int err = 0;
    *done = false;
    for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE)) {
        struct xkey xk;
        if (!key_decode(&k, &xk) || xk.vol != vol)
            break;
        if (budget && n >= budget)
            break;
        n++;
        struct xver v;
        if ((err = decode_or_eio(x, &k, &val, &v)))
            break;
        uint64_t gone = xk.chunk == chunk ? cut : ~0ULL;
        for (uint64_t m = xmap_datamask(&v) & gone; m; m &= m - 1) {
            if ((err = slot_list_add(freed, v.slot[__builtin_ctzll(m)])))
                break;
            (*used)--;
        }
        if (err)
            break;
        v.defined &= ~gone;
        v.zero &= ~gone;
        if ((rc = mdb_cursor_del(cur, 0))) {
            err = kv_err(rc);
            break;
        }
        if (v.defined) {
            /* the part of the boundary chunk before FROM stays (same key, fewer blocks) */
            uint8_t buf[XMAP_VAL_MAX];
            struct key3 key = key3_make(vol, xk.chunk, xk.birth);
            MDB_val kk = {sizeof(key.b), key.b}, vv = {encode(&v, buf), buf};
            if ((err = kv_err(mdb_put(txn, x->map, &kk, &vv, 0))))
                break;
        } else if ((err = births_del(x, txn, vol, xk.birth, xk.chunk))) {
            break;
        }
        /* go on after this key */
        start = key3_make(vol, xk.chunk, xk.birth + 1);
        if (xk.birth == UINT64_MAX)
            start = key3_make(vol, xk.chunk + 1, 0);
        k = (MDB_val){sizeof(start.b), start.b};
    }
    if (!err && rc && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    if (!err && !(budget && n >= budget))
        *done = true;
    mdb_cursor_close(cur);
    if (!err && *done && from == 0) {
        /* the whole volume goes: its dead lists too */
        if ((rc = mdb_cursor_open(txn, x->dead, &cur)))
            return kv_err(rc);
        struct key4 dk = key4_make(vol, 0, 0, 0);
        MDB_val kk, vv;
        for (kk = (MDB_val){sizeof(dk.b), dk.b}, rc = mdb_cursor_get(cur, &kk, &vv, MDB_SET_RANGE);
             rc == 0 && kk.mv_size == 32 && get_be64(kk.mv_data) == vol;
             kk = (MDB_val){sizeof(dk.b), dk.b}, rc = mdb_cursor_get(cur, &kk, &vv, MDB_SET_RANGE)) {
            if (budget && n >= budget) {
                *done = false;
                break;
            }
            n++;
            if ((rc = mdb_cursor_del(cur, 0)))
                break;
        }
        if (rc && rc != MDB_NOTFOUND)
            err = kv_err(rc);
        mdb_cursor_close(cur);
    }
    return err;
}

/* ---- births ---------------------------------------------------------------------------------- */

int xmap_births_open(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t after,
                     uint64_t upto, struct xmap_births *c)
{
    *c = (struct xmap_births){.vol = vol, .after = after, .upto = upto};
    return kv_err(mdb_cursor_open(txn, x->births, &c->cur));
}

/* Step CUR (on xbirths) with OP, from SEEK for MDB_SET_RANGE, and decode the row. */
static int births_get(MDB_cursor *cur, MDB_cursor_op op, const struct key3 *seek,
                      struct xkey *k)
{
    MDB_val kv = {0, NULL}, val;
    if (seek)
        kv = (MDB_val){sizeof(seek->b), (void *)seek->b};
    int rc = mdb_cursor_get(cur, &kv, &val, op);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return kv_err(rc);
    if (kv.mv_size != 24)
        return EBADMSG;
    const uint8_t *b = kv.mv_data;
    k->vol = get_be64(b);
    k->birth = get_be64(b + 8);
    k->chunk = get_be64(b + 16);
    return 0;
}

int xmap_births_next(struct xmap_births *c, uint64_t *birth, uint64_t *chunk)
{
    struct xkey k;
    int err;
    if (!c->started) {
        c->started = true;
        if (c->after == UINT64_MAX)
            return ENOENT;
        struct key3 probe = key3_make(c->vol, c->after + 1, 0);
        err = births_get(c->cur, MDB_SET_RANGE, &probe, &k);
    } else {
        err = births_get(c->cur, MDB_NEXT, NULL, &k);
    }
    if (err)
        return err == EBADMSG ? EIO : err;
    if (k.vol != c->vol || k.birth > c->upto)
        return ENOENT;
    *birth = k.birth;
    *chunk = k.chunk;
    return 0;
}

void xmap_births_close(struct xmap_births *c)
{
    if (c->cur)
        mdb_cursor_close(c->cur);
    c->cur = NULL;
}

/* ---- raw access ------------------------------------------------------------------------------ */

int xmap_cursor_get(const struct xmap *x, MDB_cursor *cur, MDB_cursor_op op, struct xkey *k,
                    struct xver *v, const char **bad)
{
    MDB_val kv, val;
    int rc = mdb_cursor_get(cur, &kv, &val, op);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return kv_err(rc);
    *k = (struct xkey){0};
    if (!key_decode(&kv, k)) {
        *bad = "key is not 24 bytes";
        return EBADMSG;
    }
    if ((*bad = decode(x, &val, v)))
        return EBADMSG;
    return 0;
}

int xmap_get(const struct xmap *x, MDB_txn *txn, const struct xkey *k, struct xver *v)
{
    struct key3 key = key3_make(k->vol, k->chunk, k->birth);
    MDB_val kv = {sizeof(key.b), key.b}, val;
    int rc = mdb_get(txn, x->map, &kv, &val);
    if (rc)
        return rc == MDB_NOTFOUND ? ENOENT : kv_err(rc);
    return decode_or_eio(x, &kv, &val, v);
}

int xmap_births_cursor_get(MDB_cursor *cur, MDB_cursor_op op, struct xkey *k)
{
    return births_get(cur, op, NULL, k);
}

int xmap_births_has(const struct xmap *x, MDB_txn *txn, const struct xkey *k)
{
    struct key3 bk = key3_make(k->vol, k->birth, k->chunk);
    MDB_val kv = {sizeof(bk.b), bk.b}, val;
    return kv_err(mdb_get(txn, x->births, &kv, &val));
}

int xmap_has(const struct xmap *x, MDB_txn *txn, const struct xkey *k)
{
    struct key3 key = key3_make(k->vol, k->chunk, k->birth);
    MDB_val kv = {sizeof(key.b), key.b}, val;
    return kv_err(mdb_get(txn, x->map, &kv, &val));
}

int xmap_put_raw(const struct xmap *x, MDB_txn *txn, const struct xkey *k,
                 const struct xver *v)
{
    return put_version(x, txn, k->vol, k->chunk, k->birth, v);
}
