/*
 * meta/io.c — volume I/O: read, write (redirect-on-write), discard, flush, seek.
 *
 * Design notes
 *   The current mapping of extent (vol, idx) is, in order of precedence: its entry in the
 *   open txg's dirty table, its entry in the committing txg's dirty table, the newest entry
 *   in the LMDB extent map.  No entry, or a tombstone, reads as zeros.
 *
 *   Write of [eoff, eoff+n) of extent idx in open txg t:
 *     - an entry of t exists: write into its slot in place (wait while it is FILLING);
 *     - otherwise: allocate a slot, insert a FILLING entry, copy the parts of the old
 *       content the write does not cover from the current mapping's slot (or, if there is
 *       none and the slot is a reused one not known to be zeros, write zeros there), write
 *       the new data, mark it READY.  The old content of an entry of
 *       the committing txg t-1 is only stable once t-1 is quiesced, so we wait for that.
 *   The slot being copied from cannot be freed meanwhile: only the commit of t supersedes
 *   it, and that waits for our hold on t.
 *
 *   Readers hold reuse_lock shared for the whole request (see txg.c, step 5).
 *   FILLING entries are waited for by readers and writers alike (stripe.filled).
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* zeros for reads of holes and for zeroing partial extents on discard */
static const uint8_t zero_extent[VV_EXTENT_MAX];

/* ---- read txn cache ------------------------------------------------------------------------ */

static int rtxn_get(struct vv_pool *p, MDB_txn **txn)
{
    MDB_txn *t = NULL;
    pthread_mutex_lock(&p->rtxn_mu);
    if (p->rtxn_n > 0)
        t = p->rtxn_free[--p->rtxn_n];
    pthread_mutex_unlock(&p->rtxn_mu);
    int rc = t ? mdb_txn_renew(t) : mdb_txn_begin(p->env, NULL, MDB_RDONLY, &t);
    if (rc) {
        if (t && rc)
            mdb_txn_abort(t);
        vv_err(VV_SS_META, "cannot start a metadata read: %s", mdb_strerror(rc));
        return pool_lmdb_err(rc);
    }
    *txn = t;
    return 0;
}

static void rtxn_put(struct vv_pool *p, MDB_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_reset(txn);
    pthread_mutex_lock(&p->rtxn_mu);
    if (p->rtxn_n < (int)(sizeof(p->rtxn_free) / sizeof(p->rtxn_free[0]))) {
        p->rtxn_free[p->rtxn_n++] = txn;
        txn = NULL;
    }
    pthread_mutex_unlock(&p->rtxn_mu);
    if (txn)
        mdb_txn_abort(txn);
}

void rtxn_drain(struct vv_pool *p)
{
    pthread_mutex_lock(&p->rtxn_mu);
    while (p->rtxn_n > 0)
        mdb_txn_abort(p->rtxn_free[--p->rtxn_n]);
    pthread_mutex_unlock(&p->rtxn_mu);
}

/* A lazily started read txn with a cursor on the extent map, for one request. */
struct reader {
    struct vv_pool *p;
    MDB_txn *txn;
    MDB_cursor *cur;
};

static int reader_cursor(struct reader *r, MDB_cursor **cur)
{
    if (!r->txn) {
        int err = rtxn_get(r->p, &r->txn);
        if (err)
            return err;
        int rc = mdb_cursor_open(r->txn, r->p->db_extents, &r->cur);
        if (rc) {
            rtxn_put(r->p, r->txn);
            r->txn = NULL;
            return pool_lmdb_err(rc);
        }
    }
    *cur = r->cur;
    return 0;
}

static void reader_done(struct reader *r)
{
    if (r->cur)
        mdb_cursor_close(r->cur);
    rtxn_put(r->p, r->txn);
    r->cur = NULL;
    r->txn = NULL;
}

int xmap_newest(MDB_cursor *cur, uint64_t vol, uint64_t idx, struct ext_val *out,
                uint64_t *birth)
{
    /* seek past the extent's last key, step back */
    struct key3 probe = key3_make(vol, idx, UINT64_MAX);
    MDB_val k = {sizeof(probe.b), probe.b}, d;
    int rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
    else if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &d, MDB_PREV);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc)
        return pool_lmdb_err(rc);
    if (k.mv_size != 24 || get_be64(k.mv_data) != vol || get_be64((uint8_t *)k.mv_data + 8) != idx)
        return ENOENT;
    if (d.mv_size != sizeof(*out))
        return EIO;
    memcpy(out, d.mv_data, sizeof(*out));
    if (birth)
        *birth = get_be64((uint8_t *)k.mv_data + 16);
    return 0;
}

/* ---- lookup of the current mapping ------------------------------------------------------ */

struct mapping {
    uint64_t slot;   /* SLOT_NONE: reads as zeros */
    uint64_t csum;
    bool committed;  /* from LMDB: csum is valid */
};

/* The mapping of (vol, idx) in txg T, from stripe S (locked), once it is not FILLING. */
static struct dirty *dirty_ready(struct stripe *s, uint64_t t, uint64_t vol, uint64_t idx)
{
    struct dirty *d;
    while ((d = dirty_find(&s->tab[t & 1], vol, idx)) && d->state == DIRTY_FILLING)
        pthread_cond_wait(&s->filled, &s->mu);
    return d;
}

/* Newest dirty entry of (vol, idx) in stripe S (locked), waiting while it is FILLING. */
static struct dirty *dirty_current(struct stripe *s, uint64_t vol, uint64_t idx)
{
    for (;;) {
        struct dirty *a = dirty_find(&s->tab[0], vol, idx);
        struct dirty *b = dirty_find(&s->tab[1], vol, idx);
        struct dirty *d = !a ? b : !b ? a : a->txg > b->txg ? a : b;
        if (!d || d->state != DIRTY_FILLING)
            return d;
        pthread_cond_wait(&s->filled, &s->mu);
    }
}

static int lookup(struct vv_pool *p, struct reader *r, uint64_t vol, uint64_t idx,
                  struct mapping *m)
{
    *m = (struct mapping){.slot = SLOT_NONE};
    struct stripe *s = stripe_of(p, vol, idx);
    pthread_mutex_lock(&s->mu);
    struct dirty *d = dirty_current(s, vol, idx);
    if (d) {
        m->slot = d->slot;
        m->csum = 0;
        m->committed = false;
    }
    pthread_mutex_unlock(&s->mu);
    if (d)
        return 0;
    MDB_cursor *cur;
    int err = reader_cursor(r, &cur);
    if (err)
        return err;
    struct ext_val ev;
    err = xmap_newest(cur, vol, idx, &ev, NULL);
    if (err == ENOENT || (!err && (ev.flags & EXT_F_TOMBSTONE))) {
        m->slot = SLOT_NONE;
        return 0;
    }
    if (err)
        return err;
    if (ev.slot >= p->nslots) {
        vv_err(VV_SS_META, "volume %llu extent %llu maps to slot %llu past the pool's end",
               (unsigned long long)vol, (unsigned long long)idx, (unsigned long long)ev.slot);
        return EIO;
    }
    m->slot = ev.slot;
    m->csum = ev.csum;
    m->committed = true;
    return 0;
}

/* ---- read ---------------------------------------------------------------------------------- */

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t r = pread(fd, buf, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0) {
            memset(buf, 0, len); /* past the end of a sparse data file: zeros */
            return 0;
        }
        buf = (uint8_t *)buf + r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t r = pwrite(fd, buf, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        buf = (const uint8_t *)buf + r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

/*
 * Runs of whole slots are written through the O_DIRECT descriptors: no copy into the page
 * cache, and no dirty pages left for the commit's fdatasync to write back.  A buffer that is
 * not aligned as direct I/O needs is first copied into a per-thread bounce buffer (the FUSE
 * loop lays out its buffers so that a write's payload is page-aligned: this is the exception).
 */
#define BOUNCE_BYTES (1u << 20)
/* Shorter runs stay buffered: a direct write is a synchronous device I/O, and a sequential
 * request scattered over short runs (free space fragmented by random overwrites) then costs
 * dozens of them, where buffered writes only copy and leave the batching to writeback. */
#define DIO_MIN_RUN (64u << 10)
#define DROP_AFTER_READ (256u << 10)
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;

static void bounce_key_init(void)
{
    (void)pthread_key_create(&bounce_key, free);
}

static uint8_t *bounce_buf(void)
{
    pthread_once(&bounce_once, bounce_key_init);
    void *b = pthread_getspecific(bounce_key);
    if (!b) {
        if (posix_memalign(&b, 65536, BOUNCE_BYTES))
            return NULL;
        if (pthread_setspecific(bounce_key, b)) {
            free(b);
            return NULL;
        }
    }
    return b;
}

static inline bool dio_aligned(const struct vv_pool *p, const void *buf)
{
    return ((uintptr_t)buf & (p->dio_mem_align - 1)) == 0;
}

/* write LEN bytes (whole slots) at slot SLOT and the slots after it in the same file */
static int write_slots(struct vv_pool *p, uint64_t slot, const uint8_t *data, size_t len)
{
    int fd = slot_dio_fd(p, slot);
    off_t off = slot_off(p, slot, 0);
    if (fd < 0 || len < DIO_MIN_RUN)
        return pwrite_full(slot_fd(p, slot), data, len, off);
    if (dio_aligned(p, data))
        return pwrite_full(fd, data, len, off);
    uint8_t *b = bounce_buf();
    if (!b)
        return pwrite_full(slot_fd(p, slot), data, len, off);
    atomic_fetch_add(&p->bounced_writes, 1);
    while (len > 0) {
        size_t n = len < BOUNCE_BYTES ? len : BOUNCE_BYTES;
        memcpy(b, data, n);
        int err = pwrite_full(fd, b, n, off);
        if (err)
            return err;
        data += n;
        len -= n;
        off += (off_t)n;
    }
    return 0;
}

/*
 * Reads stay buffered: through the O_DIRECT descriptors they were no faster (1266-1293 vs
 * 1289-1340 MB/s sequential at 4K extents) and lose readahead.  But a long run, once read
 * and verified, is dropped from the page cache: it is streaming data that the daemon will not
 * read again soon (the kernel caches volume files on its side for buffered readers), and in a
 * memory-limited daemon a streaming read otherwise fills memory with readahead pages and
 * pushes out LMDB's mapped pages, which every lookup then faults back in (perf: 13% of the
 * daemon in direct reclaim; 1 MiB sequential reads after an overwrite pass 1277 MB/s without
 * the drop, 1598 MB/s with it, in a 512M memory cgroup).  Short runs (random reads) stay
 * cached.
 */
static int read_slots(struct vv_pool *p, uint64_t slot, uint8_t *buf, size_t len)
{
    int fd = slot_fd(p, slot);
    off_t off = slot_off(p, slot, 0);
    int err = pread_full(fd, buf, len, off);
    if (!err && len >= DROP_AFTER_READ)
        (void)posix_fadvise(fd, off, (off_t)len, POSIX_FADV_DONTNEED);
    return err;
}

static void log_read_error(uint64_t vol, uint64_t idx, uint64_t slot, int err)
{
    vv_err(VV_SS_META, "read of volume %llu extent %llu (slot %llu) failed: %s",
           (unsigned long long)vol, (unsigned long long)idx, (unsigned long long)slot,
           strerror(err));
}

/* Verify the whole extent DATA against M; EIO (logged, counted) on a mismatch. */
static int verify_extent(struct vv_pool *p, uint64_t vol, uint64_t idx, const struct mapping *m,
                         const uint8_t *data)
{
    if (!m->committed || m->slot == SLOT_NONE || XXH3_64bits(data, p->extent_size) == m->csum)
        return 0;
    atomic_fetch_add(&p->checksum_errors, 1);
    vv_err(VV_SS_META, "checksum mismatch: volume %llu extent %llu (slot %llu)",
           (unsigned long long)vol, (unsigned long long)idx, (unsigned long long)m->slot);
    return EIO;
}

/* Read part of one extent: [eoff, eoff+n) of idx.  WHOLE: extent_size scratch or NULL. */
static int read_partial(struct vv_pool *p, struct reader *r, uint64_t vol, uint64_t idx,
                        uint64_t eoff, size_t n, uint8_t *buf, uint8_t **whole)
{
    struct mapping m;
    int err = lookup(p, r, vol, idx, &m);
    if (err)
        return err;
    if (m.slot == SLOT_NONE) {
        memset(buf, 0, n);
        return 0;
    }
    if (!m.committed) {
        /* data of an open txg: no checksum yet (it gets one at commit) */
        err = pread_full(slot_fd(p, m.slot), buf, n, slot_off(p, m.slot, eoff));
        if (err)
            log_read_error(vol, idx, m.slot, err);
        return err ? EIO : 0;
    }
    /* committed data is verified on every read: a partial read reads the whole extent */
    if (!*whole && !(*whole = malloc(p->extent_size)))
        return ENOMEM;
    err = pread_full(slot_fd(p, m.slot), *whole, p->extent_size, slot_off(p, m.slot, 0));
    if (err) {
        log_read_error(vol, idx, m.slot, err);
        return EIO;
    }
    err = verify_extent(p, vol, idx, &m, *whole);
    if (!err)
        memcpy(buf, *whole + eoff, n);
    return err;
}

/*
 * Read whole extents [idx, idx+count) into BUF: one pread per run of slots that are
 * consecutive in one data file (what sequential writes allocate).
 */
#define READ_RUN_MAX 256
#define WRITE_RUN_MAX 256
static int read_whole(struct vv_pool *p, struct reader *r, uint64_t vol, uint64_t idx,
                      size_t count, uint8_t *buf)
{
    struct mapping ms[READ_RUN_MAX];
    uint64_t es = p->extent_size;
    for (size_t k = 0; k < count; k++) {
        int err = lookup(p, r, vol, idx + k, &ms[k]);
        if (err)
            return err;
    }
    for (size_t k = 0; k < count;) {
        if (ms[k].slot == SLOT_NONE) {
            memset(buf + k * es, 0, es);
            k++;
            continue;
        }
        size_t j = k + 1;
        while (j < count && ms[j].slot != SLOT_NONE && ms[j].slot == ms[j - 1].slot + 1 &&
               slot_file(p, ms[j].slot) == slot_file(p, ms[k].slot))
            j++;
        int err = read_slots(p, ms[k].slot, buf + k * es, (j - k) * es);
        if (err) {
            log_read_error(vol, idx + k, ms[k].slot, err);
            return EIO;
        }
        for (size_t i = k; i < j; i++)
            if ((err = verify_extent(p, vol, idx + i, &ms[i], buf + i * es)))
                return err;
        k = j;
    }
    return 0;
}

int vv_vol_read(struct vv_vol *h, void *buf, size_t len, uint64_t off)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    struct reader r = {p, NULL, NULL};
    uint8_t *whole = NULL; /* scratch for verifying partially read extents */
    uint8_t *b = buf;
    int err = 0;
    pthread_rwlock_rdlock(&p->reuse_lock);
    while (len > 0 && !err) {
        uint64_t idx = off >> p->extent_shift;
        uint64_t eoff = off & (es - 1);
        size_t n;
        if (eoff == 0 && len >= es) {
            size_t count = len / es < READ_RUN_MAX ? len / es : READ_RUN_MAX;
            n = count * es;
            err = read_whole(p, &r, vol, idx, count, b);
        } else {
            n = len < es - eoff ? len : (size_t)(es - eoff);
            err = read_partial(p, &r, vol, idx, eoff, n, b, &whole);
        }
        b += n;
        len -= n;
        off += n;
    }
    reader_done(&r);
    pthread_rwlock_unlock(&p->reuse_lock);
    free(whole);
    return err;
}

/* ---- write ----------------------------------------------------------------------------------- */

/* Copy LEN bytes at offset OFF within the extent from slot SRC to slot DST. */
static int copy_range(struct vv_pool *p, uint64_t src, uint64_t dst, uint64_t off, size_t len)
{
    if (len == 0)
        return 0;
    int sfd = slot_fd(p, src), dfd = slot_fd(p, dst);
    loff_t in = slot_off(p, src, off);
    loff_t out = slot_off(p, dst, off);
    while (len > 0) {
        ssize_t r = copy_file_range(sfd, &in, dfd, &out, len, 0);
        if (r <= 0)
            break;
        len -= (size_t)r;
    }
    if (len == 0)
        return 0;
    /* fall back to a plain copy (EXDEV, EINVAL, ENOSYS, or a short copy) */
    uint8_t *buf = malloc(len);
    if (!buf)
        return ENOMEM;
    int err = pread_full(sfd, buf, len, in);
    if (!err)
        err = pwrite_full(dfd, buf, len, out);
    free(buf);
    return err;
}

/* Write zeros over the parts of SLOT outside [eoff, eoff+n). */
static int zero_around(struct vv_pool *p, uint64_t slot, uint64_t eoff, size_t n)
{
    int fd = slot_fd(p, slot);
    int err = pwrite_full(fd, zero_extent, eoff, slot_off(p, slot, 0));
    if (!err)
        err = pwrite_full(fd, zero_extent, p->extent_size - eoff - n, slot_off(p, slot, eoff + n));
    return err;
}

/* The current slot of (vol, idx) as of the committing txg t-1 or LMDB (for merging into t). */
static int merge_source(struct vv_pool *p, uint64_t vol, uint64_t idx, uint64_t t,
                        uint64_t *slot)
{
    struct stripe *s = stripe_of(p, vol, idx);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct dirty *d1 = dirty_find(&s->tab[(t - 1) & 1], vol, idx);
        if (d1 && d1->txg != t - 1)
            d1 = NULL;
        if (d1) {
            pthread_mutex_lock(&p->txg_mu);
            bool quiet = p->quiesced_txg >= t - 1;
            pthread_mutex_unlock(&p->txg_mu);
            if (quiet) {
                *slot = d1->slot;
                pthread_mutex_unlock(&s->mu);
                return 0;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (!d1)
            break;
        txg_wait_quiesced(p, t - 1);
    }
    struct reader r = {p, NULL, NULL};
    MDB_cursor *cur;
    int err = reader_cursor(&r, &cur);
    struct ext_val ev;
    if (!err)
        err = xmap_newest(cur, vol, idx, &ev, NULL);
    reader_done(&r);
    if (err == ENOENT || (!err && (ev.flags & EXT_F_TOMBSTONE))) {
        *slot = SLOT_NONE;
        return 0;
    }
    if (!err)
        *slot = ev.slot;
    return err;
}

static int write_extent(struct vv_vol *h, uint64_t idx, uint64_t eoff, size_t n,
                        const void *data)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    bool full = eoff == 0 && n == es;
    bool retried = false;
    uint64_t t;
again:;
    int err = txg_hold(p, &t);
    if (err)
        return err;
    struct stripe *s = stripe_of(p, vol, idx);
    pthread_mutex_lock(&s->mu);
    struct dirty *d = dirty_ready(s, t, vol, idx);
    bool zero;
    if (d && d->slot != SLOT_NONE) {
        d->csum_valid = false;
        uint64_t slot = d->slot;
        pthread_mutex_unlock(&s->mu);
        err = pwrite_full(slot_fd(p, slot), data, n, slot_off(p, slot, eoff));
        goto done;
    }
    if (d) {
        /* discarded earlier in this txg: what this write does not cover reads as zeros */
        err = alloc_slot(p, &d->slot, &zero);
        if (err) {
            d->slot = SLOT_NONE;
            goto nospace;
        }
        d->csum_valid = false;
        d->state = DIRTY_FILLING;
        uint64_t slot = d->slot;
        pthread_mutex_unlock(&s->mu);
        txg_note_dirty(p, t, es, 1);
        if (!full && !zero)
            err = zero_around(p, slot, eoff, n);
        if (!err)
            err = pwrite_full(slot_fd(p, slot), data, n, slot_off(p, slot, eoff));
        pthread_mutex_lock(&s->mu);
        d->state = DIRTY_READY;
        pthread_cond_broadcast(&s->filled);
        pthread_mutex_unlock(&s->mu);
        goto done;
    }

    d = calloc(1, sizeof(*d));
    if (!d) {
        err = ENOMEM;
        pthread_mutex_unlock(&s->mu);
        goto done;
    }
    d->vol = vol;
    d->idx = idx;
    d->txg = t;
    d->state = DIRTY_FILLING;
    d->slot = SLOT_NONE;
    err = alloc_slot(p, &d->slot, &zero);
    if (!err)
        err = dirty_insert(&s->tab[t & 1], d);
    if (err) {
        if (d->slot != SLOT_NONE && err != ENOSPC) {
            pthread_mutex_lock(&p->alloc_mu);
            slot_list_add(&p->dropped[t & 1], d->slot);
            pthread_mutex_unlock(&p->alloc_mu);
        }
        free(d);
        if (err == ENOSPC)
            goto nospace;
        pthread_mutex_unlock(&s->mu);
        goto done;
    }
    uint64_t slot = d->slot;
    pthread_mutex_unlock(&s->mu);
    txg_note_dirty(p, t, es, 1);

    if (!full) {
        uint64_t src;
        err = merge_source(p, vol, idx, t, &src);
        if (!err && src != SLOT_NONE) {
            err = copy_range(p, src, slot, 0, eoff);
            if (!err)
                err = copy_range(p, src, slot, eoff + n, es - eoff - n);
        } else if (!err && !zero) {
            err = zero_around(p, slot, eoff, n); /* a reused slot: clear its old data */
        }
    }
    if (!err)
        err = pwrite_full(slot_fd(p, slot), data, n, slot_off(p, slot, eoff));
    uint64_t csum = full && !err ? XXH3_64bits(data, n) : 0;
    pthread_mutex_lock(&s->mu);
    d->state = DIRTY_READY;
    d->csum = csum;
    d->csum_valid = full && !err;
    pthread_cond_broadcast(&s->filled);
    pthread_mutex_unlock(&s->mu);
done:
    txg_rele(p, t);
    if (err && err != ENOSPC) {
        vv_err(VV_SS_META, "write to volume %llu extent %llu failed: %s",
               (unsigned long long)vol, (unsigned long long)idx, strerror(err));
        err = err == ENOMEM ? ENOMEM : EIO;
    }
    return err;

nospace:
    pthread_mutex_unlock(&s->mu);
    txg_rele(p, t);
    if (!retried) {
        /* slots freed by the open txg come back once it commits */
        retried = true;
        err = txg_sync(p);
        if (err)
            return err;
        goto again;
    }
    return ENOSPC;
}

/*
 * Write whole extents [idx, idx+count) from DATA in one txg, with one pwrite per run of
 * slots that are consecutive in one data file (sequential writes: a 1 MiB request at 4 KiB
 * extents is a few pwrites instead of 256).  Phase 1 takes each extent's target slot: its
 * mapping of this txg in place, or a new slot under a FILLING mapping; phase 2 writes; phase 3
 * marks the new mappings READY with their checksums.  Extents are taken in ascending order,
 * as everywhere, so two batches never wait for each other in a cycle.
 * Returns how many extents it wrote in *DONE (fewer than COUNT only on an error: the caller
 * goes on extent by extent, which knows how to wait for space).
 */
static int write_whole(struct vv_vol *h, uint64_t idx, size_t count, const uint8_t *data,
                       size_t *done)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    uint64_t slots[WRITE_RUN_MAX];
    struct dirty *fresh[WRITE_RUN_MAX]; /* NULL: written in place */
    uint64_t run[WRITE_RUN_MAX];        /* slots from alloc_run not yet used: run[ri..rn) */
    bool run_zero[WRITE_RUN_MAX];       /* which are holes: given back as such if unused */
    size_t ri = 0, rn = 0;
    uint64_t t;
    *done = 0;
    int err = txg_hold(p, &t);
    if (err)
        return err;
    size_t k, nfresh = 0;
    for (k = 0; k < count; k++) {
        struct stripe *s = stripe_of(p, vol, idx + k);
        pthread_mutex_lock(&s->mu);
        struct dirty *d = dirty_ready(s, t, vol, idx + k);
        fresh[k] = NULL;
        if (d && d->slot != SLOT_NONE) {
            d->csum_valid = false;
            slots[k] = d->slot;
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        bool inserted = d != NULL;
        if (!d && !(d = calloc(1, sizeof(*d)))) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        /* new slots a run at a time, so that concurrent writers do not interleave theirs */
        if (ri == rn) {
            ri = 0;
            if (alloc_run(p, count - k, run, run_zero, &rn)) {
                if (!inserted)
                    free(d);
                pthread_mutex_unlock(&s->mu);
                break;
            }
        }
        slots[k] = run[ri++];
        if (!inserted) {
            d->vol = vol;
            d->idx = idx + k;
            d->txg = t;
            if (dirty_insert(&s->tab[t & 1], d)) {
                ri--;
                free(d);
                pthread_mutex_unlock(&s->mu);
                break;
            }
        }
        d->slot = slots[k];
        d->state = DIRTY_FILLING;
        d->csum_valid = false;
        fresh[k] = d;
        nfresh++;
        pthread_mutex_unlock(&s->mu);
    }
    alloc_unreserve(p, run + ri, run_zero + ri, rn - ri);
    size_t taken = k;
    if (nfresh)
        txg_note_dirty(p, t, nfresh * es, nfresh);
    for (k = 0; k < taken && !err;) {
        size_t j = k + 1;
        while (j < taken && slots[j] == slots[j - 1] + 1 &&
               slot_file(p, slots[j]) == slot_file(p, slots[k]))
            j++;
        err = write_slots(p, slots[k], data + k * es, (j - k) * es);
        if (err)
            vv_err(VV_SS_META, "write to volume %llu extents %llu..%llu failed: %s",
                   (unsigned long long)vol, (unsigned long long)(idx + k),
                   (unsigned long long)(idx + j - 1), strerror(err));
        k = j;
    }
    for (k = 0; k < taken; k++) {
        struct dirty *d = fresh[k];
        if (!d)
            continue;
        uint64_t csum = err ? 0 : XXH3_64bits(data + k * es, es);
        struct stripe *s = stripe_of(p, vol, idx + k);
        pthread_mutex_lock(&s->mu);
        d->state = DIRTY_READY;
        d->csum = csum;
        d->csum_valid = !err;
        pthread_cond_broadcast(&s->filled);
        pthread_mutex_unlock(&s->mu);
    }
    txg_rele(p, t);
    *done = err ? 0 : taken;
    return err ? EIO : 0;
}

int vv_vol_write(struct vv_vol *h, const void *buf, size_t len, uint64_t off)
{
    struct vv_pool *p = h->pool;
    if (p->flags & VV_POOL_RDONLY)
        return EROFS;
    uint64_t es = p->extent_size;
    const uint8_t *b = buf;
    while (len > 0) {
        uint64_t idx = off >> p->extent_shift;
        uint64_t eoff = off & (es - 1);
        size_t n = len < es - eoff ? len : (size_t)(es - eoff);
        if (eoff == 0 && len >= 2 * es) {
            size_t count = len / es < WRITE_RUN_MAX ? len / es : WRITE_RUN_MAX, done;
            int err = write_whole(h, idx, count, b, &done);
            if (err)
                return err;
            if (done > 0)
                n = done * es;
            else if ((err = write_extent(h, idx, 0, es, b))) /* waits for space, or fails */
                return err;
        } else {
            int err = write_extent(h, idx, eoff, n, b);
            if (err)
                return err;
        }
        b += n;
        len -= n;
        off += n;
    }
    return 0;
}

/* ---- discard ------------------------------------------------------------------------------ */

/* Make extent idx a hole in the open txg (it is known to have had data). */
static int discard_extent(struct vv_pool *p, uint64_t vol, uint64_t idx)
{
    uint64_t t;
    int err = txg_hold(p, &t);
    if (err)
        return err;
    struct stripe *s = stripe_of(p, vol, idx);
    pthread_mutex_lock(&s->mu);
    struct dirty *d = dirty_ready(s, t, vol, idx);
    bool created = false;
    if (d) {
        if (d->slot != SLOT_NONE) {
            pthread_mutex_lock(&p->alloc_mu);
            err = slot_list_add(&p->dropped[t & 1], d->slot);
            pthread_mutex_unlock(&p->alloc_mu);
            if (!err) {
                d->slot = SLOT_NONE;
                d->csum_valid = false;
            }
        }
    } else {
        d = calloc(1, sizeof(*d));
        if (!d) {
            err = ENOMEM;
        } else {
            d->vol = vol;
            d->idx = idx;
            d->txg = t;
            d->slot = SLOT_NONE;
            d->state = DIRTY_READY;
            err = dirty_insert(&s->tab[t & 1], d);
            if (err)
                free(d);
            created = !err;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (created)
        txg_note_dirty(p, t, 0, 1);
    txg_rele(p, t);
    return err;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The extents in [i0, i1) of VOL that may hold data: LMDB entries and dirty entries.
 * O(extents in the range that have entries + dirty entries of the pool).
 */
static int candidates(struct vv_pool *p, uint64_t vol, uint64_t i0, uint64_t i1,
                      struct slot_list *out)
{
    struct reader r = {p, NULL, NULL};
    MDB_cursor *cur;
    int err = reader_cursor(&r, &cur);
    if (err)
        return err;
    struct key3 start = key3_make(vol, i0, 0);
    MDB_val k = {sizeof(start.b), start.b}, d;
    uint64_t last = UINT64_MAX;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0 && !err;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 24 || get_be64(k.mv_data) != vol)
            break;
        uint64_t idx = get_be64((uint8_t *)k.mv_data + 8);
        if (idx >= i1)
            break;
        if (idx != last)
            err = slot_list_add(out, idx);
        last = idx;
    }
    reader_done(&r);
    for (int i = 0; i < NSTRIPES && !err; i++) {
        struct stripe *s = &p->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (int t = 0; t < 2 && !err; t++) {
            struct dirty_table *tab = &s->tab[t];
            for (size_t b = 0; b < tab->nbuckets && !err; b++)
                for (struct dirty *e = tab->buckets[b]; e && !err; e = e->next)
                    if (e->vol == vol && e->idx >= i0 && e->idx < i1)
                        err = slot_list_add(out, e->idx);
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (err || out->n == 0)
        return err;
    qsort(out->v, out->n, sizeof(uint64_t), u64_cmp);
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++)
        if (w == 0 || out->v[w - 1] != out->v[i])
            out->v[w++] = out->v[i];
    out->n = w;
    return 0;
}

static int has_data(struct vv_pool *p, uint64_t vol, uint64_t idx, bool *yes)
{
    struct reader r = {p, NULL, NULL};
    struct mapping m;
    int err = lookup(p, &r, vol, idx, &m);
    reader_done(&r);
    *yes = !err && m.slot != SLOT_NONE;
    return err;
}

int vv_vol_discard(struct vv_vol *h, uint64_t off, uint64_t len)
{
    struct vv_pool *p = h->pool;
    if (p->flags & VV_POOL_RDONLY)
        return EROFS;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    uint64_t end = off + len;
    int err = 0;
    /* partial extents at either end: write zeros over the range, if there is data */
    uint64_t head_end = (off + es - 1) & ~(es - 1);
    if (head_end > end)
        head_end = end;
    uint64_t tail_start = end & ~(es - 1);
    if (tail_start < head_end)
        tail_start = head_end;
    uint64_t parts[2][2] = {{off, head_end}, {tail_start, end}};
    for (int i = 0; i < 2 && !err; i++) {
        uint64_t a = parts[i][0], b = parts[i][1];
        if (a >= b)
            continue;
        bool data;
        err = has_data(p, vol, a >> p->extent_shift, &data);
        if (!err && data)
            err = write_extent(h, a >> p->extent_shift, a & (es - 1), (size_t)(b - a),
                               zero_extent);
    }
    /* whole extents */
    uint64_t i0 = head_end >> p->extent_shift, i1 = tail_start >> p->extent_shift;
    if (err || i0 >= i1)
        return err;
    struct slot_list idxs = {0};
    if (i1 - i0 <= 64) {
        for (uint64_t i = i0; i < i1 && !err; i++) {
            bool data;
            err = has_data(p, vol, i, &data);
            if (!err && data)
                err = slot_list_add(&idxs, i);
        }
    } else {
        err = candidates(p, vol, i0, i1, &idxs);
    }
    for (size_t i = 0; i < idxs.n && !err; i++)
        err = discard_extent(p, vol, idxs.v[i]);
    slot_list_free(&idxs);
    return err;
}

int vv_vol_flush(struct vv_vol *h)
{
    return txg_sync(h->pool);
}

/* ---- seek --------------------------------------------------------------------------------- */

int vv_vol_seek(struct vv_vol *h, uint64_t off, int whence, uint64_t *out)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t size = vv_vol_size(h);
    if (off >= size)
        return ENXIO;
    uint64_t nidx = (size + p->extent_size - 1) >> p->extent_shift;
    uint64_t idx = off >> p->extent_shift;
    int err = 0;
    if (whence == 4 /* SEEK_HOLE */) {
        for (; idx < nidx; idx++) {
            bool data;
            if ((err = has_data(p, vol, idx, &data)))
                return err;
            if (!data) {
                uint64_t o = idx << p->extent_shift;
                *out = o > off ? o : off;
                return 0;
            }
        }
        *out = size;
        return 0;
    }
    /* SEEK_DATA: visit only extents that have entries */
    struct slot_list c = {0};
    err = candidates(p, vol, idx, nidx, &c);
    for (size_t i = 0; i < c.n && !err; i++) {
        bool data;
        err = has_data(p, vol, c.v[i], &data);
        if (!err && data) {
            uint64_t o = c.v[i] << p->extent_shift;
            *out = o > off ? o : off;
            slot_list_free(&c);
            return 0;
        }
    }
    slot_list_free(&c);
    return err ? err : ENXIO;
}
