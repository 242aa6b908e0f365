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

/*
 * A lazily started read txn with a cursor on the extent map, for one request, and the view
 * of the last chunk it looked up in LMDB (a request reads a chunk's blocks one after another;
 * within the request the txn, and so the view, cannot change).
 */
struct reader {
    struct vv_pool *p;
    uint64_t as_of; /* XMAP_LIVE: the volume with its uncommitted writes; else a snapshot's
                     * gen, read from LMDB alone */
    const struct xlayer *origins; /* a clone's: what it has not written comes from them */
    unsigned norigins;
    MDB_txn *txn;
    MDB_cursor *cur;
    bool have_view;
    uint64_t view_vol, view_chunk;
    struct xview view;
    bool stream; /* read around the page cache (vv_vol.stream) */
};

/* a reader of volume V (struct vv_volume *) of POOL, live */
#define READER_INIT(pool, v)                                                                    \
    {.p = (pool), .as_of = XMAP_LIVE, .origins = (v)->origins, .norigins = (v)->norigins}

static int reader_cursor(struct reader *r, MDB_cursor **cur)
{
    if (!r->txn) {
        int err = rtxn_get(r->p, &r->txn);
        if (err)
            return err;
        int rc = mdb_cursor_open(r->txn, r->p->xmap.map, &r->cur);
        if (rc) {
            rtxn_put(r->p, r->txn);
            r->txn = NULL;
            return kv_err(rc);
        }
    }
    *cur = r->cur;
    return 0;
}

/* The committed view of (VOL, CHUNK), through R's cache. */
static int reader_view(struct reader *r, uint64_t vol, uint64_t chunk, const struct xview **out)
{
    if (!r->have_view || r->view_vol != vol || r->view_chunk != chunk) {
        MDB_cursor *cur = NULL;
        int err = reader_cursor(r, &cur);
        if (!err)
            err = xmap_view_chain(&r->p->xmap, cur, vol, chunk, r->as_of, r->origins,
                                  r->norigins, ~0ULL, &r->view);
        if (err) {
            r->have_view = false;
            return err;
        }
        r->have_view = true;
        r->view_vol = vol;
        r->view_chunk = chunk;
    }
    *out = &r->view;
    return 0;
}

static void reader_done(struct reader *r)
{
    if (r->cur)
        mdb_cursor_close(r->cur);
    rtxn_put(r->p, r->txn);
    r->cur = NULL;
    r->txn = NULL;
    r->have_view = false;
}

/* ---- lookup of the current mapping ------------------------------------------------------ */

struct mapping {
    uint64_t slot;   /* SLOT_NONE: reads as zeros */
    uint64_t csum;
    bool committed;  /* from LMDB: csum is valid */
};

static inline uint64_t chunk_of(uint64_t idx)
{
    return idx >> XMAP_CHUNK_SHIFT;
}

static inline unsigned block_of(uint64_t idx)
{
    return (unsigned)(idx & (XMAP_CHUNK_BLOCKS - 1));
}

/* The dirty chunk of (vol, chunk) in txg T, from stripe S (locked), once block B of it is
 * not FILLING (NULL if T has none). */
static struct dchunk *dirty_ready(struct stripe *s, uint64_t t, uint64_t vol, uint64_t chunk,
                                  unsigned b)
{
    struct dchunk *d;
    while ((d = dchunk_find(&s->tab[t & 1], vol, chunk)) && (d->filling >> b & 1))
        pthread_cond_wait(&s->filled, &s->mu);
    return d;
}

/* The dirty chunks of (vol, chunk) in stripe S (locked): D[0] of the newer uncommitted txg,
 * D[1] of the older; either may be NULL. */
static void dirty_pair(struct stripe *s, uint64_t vol, uint64_t chunk, struct dchunk *d[2])
{
    struct dchunk *x = dchunk_find(&s->tab[0], vol, chunk);
    struct dchunk *y = dchunk_find(&s->tab[1], vol, chunk);
    bool swap = !x || (y && y->txg > x->txg);
    d[0] = swap ? y : x;
    d[1] = swap ? x : y;
}

/* The newest dirty chunk of (vol, chunk) in stripe S (locked) that maps block B, waiting
 * while B is FILLING there; NULL if no uncommitted txg maps B. */
static struct dchunk *dirty_current(struct stripe *s, uint64_t vol, uint64_t chunk, unsigned b)
{
    for (;;) {
        struct dchunk *d[2];
        dirty_pair(s, vol, chunk, d);
        struct dchunk *c = d[0] && (d[0]->mask >> b & 1) ? d[0] : d[1];
        if (c && !(c->mask >> b & 1))
            c = NULL;
        if (!c || !(c->filling >> b & 1))
            return c;
        pthread_cond_wait(&s->filled, &s->mu);
    }
}

/*
 * Blocks of (vol, chunk) that have data right now, from stripe S (locked) and VIEW (the
 * committed state; NULL: none): the newest uncommitted txg that maps a block decides it.
 * Blocks being filled count as data.
 */
static uint64_t data_mask(struct stripe *s, uint64_t vol, uint64_t chunk,
                          const struct xview *view)
{
    struct dchunk *d[2];
    dirty_pair(s, vol, chunk, d);
    uint64_t decided = 0, data = 0;
    for (int i = 0; i < 2; i++) {
        if (!d[i])
            continue;
        data |= d[i]->mask & ~d[i]->zero & ~decided;
        decided |= d[i]->mask;
    }
    if (view)
        data |= view->data & ~decided;
    return data;
}

static int lookup(struct vv_pool *p, struct reader *r, uint64_t vol, uint64_t idx,
                  struct mapping *m)
{
    *m = (struct mapping){.slot = SLOT_NONE};
    uint64_t chunk = chunk_of(idx);
    unsigned b = block_of(idx);
    if (r->as_of == XMAP_LIVE) {
        struct stripe *s = stripe_of(p, vol, chunk);
        pthread_mutex_lock(&s->mu);
        struct dchunk *d = dirty_current(s, vol, chunk, b);
        if (d && !(d->zero >> b & 1))
            m->slot = dchunk_blk(d, b)->slot;
        pthread_mutex_unlock(&s->mu);
        if (d)
            return 0;
    }
    const struct xview *view;
    int err = reader_view(r, vol, chunk, &view);
    if (err)
        return err;
    if (!(view->data >> b & 1))
        return 0;
    m->slot = view->slot[b];
    m->csum = view->csum[b];
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
 * Long runs are read buffered: through the O_DIRECT descriptors they were no faster
 * (1266-1293 vs 1289-1340 MB/s sequential at 4K extents) and lose readahead.  But a long run,
 * once read and verified, is dropped from the page cache: it is streaming data that the
 * daemon will not read again soon (the kernel caches volume files on its side for buffered
 * readers), and in a memory-limited daemon a streaming read otherwise fills memory with
 * readahead pages and pushes out LMDB's mapped pages, which every lookup then faults back in
 * (perf: 13% of the daemon in direct reclaim; 1 MiB sequential reads after an overwrite pass
 * 1277 MB/s without the drop, 1598 MB/s with it, in a 512M memory cgroup).
 * Short runs (random reads) go through O_DIRECT when the buffer allows: cached, they filled a
 * memory-limited daemon's page cache with blocks read once and pushed out LMDB's pages the
 * same way, for no gain (a buffered reader of a volume file is cached by the kernel on its
 * side; a direct reader wants no cache).  See ARCHITECTURE.md, "Random reads".
 */
static int read_slots(struct vv_pool *p, uint64_t slot, uint8_t *buf, size_t len)
{
    int fd = slot_fd(p, slot), dfd = slot_dio_fd(p, slot);
    off_t off = slot_off(p, slot, 0);
    if (dfd >= 0 && len < DROP_AFTER_READ && dio_aligned(p, buf))
        return pread_full(dfd, buf, len, off);
    int err = pread_full(fd, buf, len, off);
    if (!err && len >= DROP_AFTER_READ)
        (void)posix_fadvise(fd, off, (off_t)len, POSIX_FADV_DONTNEED);
    return err;
}

/*
 * The runs of one request (each LEN bytes at slot SLOT and the slots after it in one data
 * file), read or written at once: the runs that go direct are submitted together (aio.c),
 * the others go one by one as read_slots/write_slots take them.  Each run's ERR says how it
 * went.
 */
struct slot_run {
    uint64_t slot;
    uint8_t *buf;
    size_t len;
    int err;
};

/* STREAM: a reader that reads each block once (vv_vol.stream): all its runs go direct */
static bool run_goes_direct(const struct vv_pool *p, const struct slot_run *r, bool write,
                            bool stream)
{
    if (slot_dio_fd(p, r->slot) < 0 || !dio_aligned(p, r->buf))
        return false;
    return write ? r->len >= DIO_MIN_RUN : stream || r->len < DROP_AFTER_READ;
}

static void runs_batch(struct vv_pool *p, struct slot_run **b, size_t n, bool write)
{
    struct aio_op ops[AIO_BATCH_MAX];
    for (size_t i = 0; i < n; i++)
        ops[i] = (struct aio_op){.fd = slot_dio_fd(p, b[i]->slot), .buf = b[i]->buf,
                                 .len = b[i]->len, .off = slot_off(p, b[i]->slot, 0)};
    if (n < 2 || aio_batch(ops, n, write)) { /* one, or no AIO here: one by one */
        for (size_t i = 0; i < n; i++)
            b[i]->err = write ? pwrite_full(ops[i].fd, ops[i].buf, ops[i].len, ops[i].off)
                              : pread_full(ops[i].fd, ops[i].buf, ops[i].len, ops[i].off);
        return;
    }
    atomic_fetch_add(&p->batched_ios, n);
    for (size_t i = 0; i < n; i++) {
        struct aio_op *o = &ops[i];
        int fd = slot_fd(p, b[i]->slot); /* the rest of a short one: buffered */
        b[i]->err = o->err ? o->err
                  : o->done == o->len ? 0
                  : write ? pwrite_full(fd, (uint8_t *)o->buf + o->done, o->len - o->done,
                                        o->off + (off_t)o->done)
                          : pread_full(fd, (uint8_t *)o->buf + o->done, o->len - o->done,
                                       o->off + (off_t)o->done);
    }
}

static void runs_io(struct vv_pool *p, struct slot_run *r, size_t n, bool write, bool stream)
{
    struct slot_run *b[AIO_BATCH_MAX];
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        if (!run_goes_direct(p, &r[i], write, stream)) {
            r[i].err = write ? write_slots(p, r[i].slot, r[i].buf, r[i].len)
                             : read_slots(p, r[i].slot, r[i].buf, r[i].len);
            continue;
        }
        b[nb++] = &r[i];
        if (nb == AIO_BATCH_MAX) {
            runs_batch(p, b, nb, write);
            nb = 0;
        }
    }
    runs_batch(p, b, nb, write);
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
    if (!*whole && posix_memalign((void **)whole, 4096, p->extent_size))
        return ENOMEM;
    err = read_slots(p, m.slot, *whole, p->extent_size);
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
 * consecutive in one data file (what sequential writes allocate).  CS (or NULL): each
 * extent's xxh3-64, the stored one where it was verified.
 */
#define READ_RUN_MAX 256
#define WRITE_RUN_MAX 256
static int read_whole(struct vv_pool *p, struct reader *r, uint64_t vol, uint64_t idx,
                      size_t count, uint8_t *buf, uint64_t *cs)
{
    struct mapping ms[READ_RUN_MAX];
    uint64_t es = p->extent_size;
    for (size_t k = 0; k < count; k++) {
        int err = lookup(p, r, vol, idx + k, &ms[k]);
        if (err)
            return err;
    }
    struct slot_run runs[READ_RUN_MAX];
    size_t nr = 0;
    for (size_t k = 0; k < count;) {
        if (ms[k].slot == SLOT_NONE) {
            memset(buf + k * es, 0, es);
            if (cs)
                cs[k] = XXH3_64bits(buf + k * es, es);
            k++;
            continue;
        }
        size_t j = k + 1;
        while (j < count && ms[j].slot != SLOT_NONE && ms[j].slot == ms[j - 1].slot + 1 &&
               slot_file(p, ms[j].slot) == slot_file(p, ms[k].slot))
            j++;
        runs[nr++] = (struct slot_run){.slot = ms[k].slot, .buf = buf + k * es,
                                       .len = (j - k) * es};
        k = j;
    }
    runs_io(p, runs, nr, false, r->stream);
    for (size_t ri = 0; ri < nr; ri++) {
        size_t k = (size_t)(runs[ri].buf - buf) / es;
        if (runs[ri].err) {
            log_read_error(vol, idx + k, ms[k].slot, runs[ri].err);
            return EIO;
        }
        for (size_t i = k; i < k + runs[ri].len / es; i++) {
            int err = verify_extent(p, vol, idx + i, &ms[i], buf + i * es);
            if (err)
                return err;
            if (cs)
                cs[i] = ms[i].committed ? ms[i].csum : XXH3_64bits(buf + i * es, es);
        }
    }
    return 0;
}

/* vv_vol_read; CS (or NULL, then any range): vv_vol_read_csums's */
static int vol_read(struct vv_vol *h, void *buf, size_t len, uint64_t off, uint64_t *cs)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    struct reader r = READER_INIT(p, h->vol);
    r.as_of = h->as_of;
    r.stream = h->stream;
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
            err = read_whole(p, &r, vol, idx, count, b, cs);
            if (cs)
                cs += count;
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

int vv_vol_read(struct vv_vol *h, void *buf, size_t len, uint64_t off)
{
    return vol_read(h, buf, len, off, NULL);
}

int vv_vol_read_csums(struct vv_vol *h, void *buf, size_t len, uint64_t off, uint64_t *cs)
{
    uint64_t es = h->pool->extent_size;
    if ((off | len) & (es - 1))
        return EINVAL;
    return vol_read(h, buf, len, off, cs);
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
static int merge_source(struct vv_pool *p, const struct vv_volume *v, uint64_t idx, uint64_t t,
                        uint64_t *slot)
{
    uint64_t vol = v->id;
    uint64_t chunk = chunk_of(idx);
    unsigned b = block_of(idx);
    struct stripe *s = stripe_of(p, vol, chunk);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct dchunk *d1 = dchunk_find(&s->tab[(t - 1) & 1], vol, chunk);
        if (d1 && (d1->txg != t - 1 || !(d1->mask >> b & 1)))
            d1 = NULL;
        if (d1) {
            pthread_mutex_lock(&p->txg_mu);
            bool quiet = p->quiesced_txg >= t - 1;
            pthread_mutex_unlock(&p->txg_mu);
            if (quiet) {
                *slot = dchunk_blk(d1, b)->slot; /* SLOT_NONE if t-1 discarded it */
                pthread_mutex_unlock(&s->mu);
                return 0;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (!d1)
            break;
        txg_wait_quiesced(p, t - 1);
    }
    struct reader r = READER_INIT(p, v);
    const struct xview *view;
    int err = reader_view(&r, vol, chunk, &view);
    if (!err)
        *slot = view->data >> b & 1 ? view->slot[b] : SLOT_NONE;
    reader_done(&r);
    return err;
}

/* Block B of D (stripe locked) gets SLOT, new in this txg, and is FILLING until fill_done. */
static void fill_begin(struct dchunk *d, unsigned b, uint64_t slot)
{
    dchunk_blk(d, b)->slot = slot;
    d->zero &= ~(1ULL << b);
    d->filling |= 1ULL << b;
    d->csum_ok &= ~(1ULL << b);
}

/* Block B of D (stripe S locked) is written; CSUM_OK: CSUM is its slot's checksum. */
static void fill_done(struct stripe *s, struct dchunk *d, unsigned b, bool csum_ok,
                      uint64_t csum)
{
    d->filling &= ~(1ULL << b);
    if (csum_ok) {
        dchunk_blk(d, b)->csum = csum;
        d->csum_ok |= 1ULL << b;
    }
    pthread_cond_broadcast(&s->filled);
}

/* A first write of a block in this txg failed: take the block back out of D (stripe S locked),
 * so that the block keeps the content it had before (WAS_ZERO: it was discarded earlier in
 * this txg), and give the slot back. */
static void undo_fresh(struct vv_pool *p, struct stripe *s, struct dchunk *d, unsigned b,
                       bool was_zero, bool zero_slot)
{
    struct dblk *e = dchunk_blk(d, b);
    uint64_t slot = e->slot;
    if (was_zero) {
        e->slot = SLOT_NONE;
        d->zero |= 1ULL << b;
        d->filling &= ~(1ULL << b);
        d->csum_ok &= ~(1ULL << b);
    } else {
        dchunk_remove(d, b);
    }
    pthread_cond_broadcast(&s->filled);
    alloc_unreserve(p, &slot, &zero_slot, 1);
}

static int has_data(struct vv_pool *p, const struct vv_volume *v, uint64_t idx, bool *yes);

static int write_extent(struct vv_vol *h, uint64_t idx, uint64_t eoff, size_t n,
                        const void *data, const uint64_t *cs)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    uint64_t chunk = chunk_of(idx);
    unsigned b = block_of(idx);
    uint64_t bit = 1ULL << b;
    bool full = eoff == 0 && n == es;
    int retried = 0;
    bool reserve = false; /* the block has data: its new slot may come from the reserve */
    bool had = false;
    uint64_t t;
again:;
    int err = txg_hold(p, &t);
    if (err)
        return err;
    struct stripe *s = stripe_of(p, vol, chunk);
    pthread_mutex_lock(&s->mu);
    struct dchunk *d = dirty_ready(s, t, vol, chunk, b);
    if (d && (d->mask & bit) && !(d->zero & bit)) {
        /* mapped in this txg: write in place */
        d->csum_ok &= ~bit;
        uint64_t slot = dchunk_blk(d, b)->slot;
        pthread_mutex_unlock(&s->mu);
        err = pwrite_full(slot_fd(p, slot), data, n, slot_off(p, slot, eoff));
        goto done;
    }
    bool was_zero = d && (d->mask & bit);
    uint64_t slot;
    bool zero;
    if ((err = alloc_slot(p, &slot, &zero, reserve))) {
        had = was_zero; /* its slot was dropped in this txg and comes back at the commit */
        goto nospace;
    }
    if (!d)
        err = dchunk_get(&s->tab[t & 1], vol, chunk, t, &d);
    if (!err && !was_zero)
        err = dchunk_add(d, b, slot);
    if (err) {
        alloc_unreserve(p, &slot, &zero, 1);
        pthread_mutex_unlock(&s->mu);
        goto done;
    }
    fill_begin(d, b, slot);
    pthread_mutex_unlock(&s->mu);
    txg_note_dirty(p, t, es, was_zero ? 0 : 1);

    if (!full) {
        /* what the write does not cover: the old content, or zeros */
        uint64_t src = SLOT_NONE;
        if (!was_zero)
            err = merge_source(p, h->vol, idx, t, &src);
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
    uint64_t csum = full && !err ? (cs ? *cs : XXH3_64bits(data, n)) : 0;
    pthread_mutex_lock(&s->mu);
    if (err)
        undo_fresh(p, s, d, b, was_zero, zero);
    else
        fill_done(s, d, b, full, csum);
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
    if (!reserve) {
        /* an overwrite may use the reserve: is there data to overwrite? */
        if (!had && (err = has_data(p, h->vol, idx, &had)))
            return err;
        if (had) {
            reserve = true;
            goto again;
        }
    }
    if (atomic_load(&p->host_full) && retried < 2 && env_keep_room(p) == 0) {
        retried++; /* the host has room again (space was freed there): go on */
        goto again;
    }
    if (retried < 2) {
        /* slots freed by the open txg come back once it commits; the blocks of a deleted
         * volume once the reaper has freed them (a few seconds for a big one) */
        if (retried++ == 1)
            (void)reap_wait_idle(p, 30000); /* at once if nothing is being freed */
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
 * extents is one pwrite instead of 256).  Phase 1 takes each block's target slot, one stripe
 * lock per chunk: its mapping of this txg in place, or a new slot under a FILLING mapping;
 * phase 2 writes; phase 3 marks the new mappings ready with their checksums (or, if the write
 * failed, takes them back out).  Chunks are taken in ascending order, as everywhere, so two
 * batches never wait for each other in a cycle.
 * Returns how many extents it wrote in *DONE (fewer than COUNT only on an error: the caller
 * goes on extent by extent, which knows how to wait for space).
 */
enum { TAKE_INPLACE, TAKE_NEW, TAKE_WAS_ZERO };

static int write_whole(struct vv_vol *h, uint64_t idx, size_t count, const uint8_t *data,
                       const uint64_t *cs, size_t *done)
{
    struct vv_pool *p = h->pool;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    uint64_t slots[WRITE_RUN_MAX];
    uint8_t kind[WRITE_RUN_MAX];
    bool zeroed[WRITE_RUN_MAX];         /* new slots: known to be holes */
    uint64_t run[WRITE_RUN_MAX];        /* slots from alloc_run not yet used: run[ri..rn) */
    bool run_zero[WRITE_RUN_MAX];       /* which are holes: given back as such if unused */
    size_t ri = 0, rn = 0;
    uint64_t t;
    *done = 0;
    int err = txg_hold(p, &t);
    if (err)
        return err;
    size_t k = 0, nfresh = 0;
    bool stop = false;
    while (k < count && !stop) {
        uint64_t chunk = chunk_of(idx + k);
        struct stripe *s = stripe_of(p, vol, chunk);
        pthread_mutex_lock(&s->mu);
        for (; k < count && chunk_of(idx + k) == chunk; k++) {
            unsigned b = block_of(idx + k);
            uint64_t bit = 1ULL << b;
            struct dchunk *d = dirty_ready(s, t, vol, chunk, b);
            if (d && (d->mask & bit) && !(d->zero & bit)) {
                d->csum_ok &= ~bit;
                slots[k] = dchunk_blk(d, b)->slot;
                kind[k] = TAKE_INPLACE;
                continue;
            }
            /* new slots a run at a time, so that concurrent writers do not interleave theirs */
            if (ri == rn) {
                ri = 0;
                if (alloc_run(p, count - k, run, run_zero, &rn, false)) {
                    rn = 0;
                    stop = true;
                    break;
                }
            }
            bool was_zero = d && (d->mask & bit);
            if ((!d && dchunk_get(&s->tab[t & 1], vol, chunk, t, &d)) ||
                (!was_zero && dchunk_add(d, b, run[ri]))) {
                stop = true;
                break;
            }
            slots[k] = run[ri];
            zeroed[k] = run_zero[ri];
            ri++;
            fill_begin(d, b, slots[k]);
            kind[k] = was_zero ? TAKE_WAS_ZERO : TAKE_NEW;
            nfresh++;
        }
        pthread_mutex_unlock(&s->mu);
    }
    alloc_unreserve(p, run + ri, run_zero + ri, rn - ri);
    size_t taken = k;
    if (nfresh)
        txg_note_dirty(p, t, nfresh * es, nfresh);
    struct slot_run runs[WRITE_RUN_MAX];
    size_t nr = 0;
    for (k = 0; k < taken;) {
        size_t j = k + 1;
        while (j < taken && slots[j] == slots[j - 1] + 1 &&
               slot_file(p, slots[j]) == slot_file(p, slots[k]))
            j++;
        runs[nr++] = (struct slot_run){.slot = slots[k], .buf = (uint8_t *)data + k * es,
                                       .len = (j - k) * es};
        k = j;
    }
    runs_io(p, runs, nr, true, false);
    for (size_t r = 0; r < nr && !err; r++) {
        if (!(err = runs[r].err))
            continue;
        k = (size_t)(runs[r].buf - data) / es;
        vv_err(VV_SS_META, "write to volume %llu extents %llu..%llu failed: %s",
               (unsigned long long)vol, (unsigned long long)(idx + k),
               (unsigned long long)(idx + k + runs[r].len / es - 1), strerror(err));
    }
    for (k = 0; k < taken;) {
        uint64_t chunk = chunk_of(idx + k);
        struct stripe *s = stripe_of(p, vol, chunk);
        pthread_mutex_lock(&s->mu);
        struct dchunk *d = dchunk_find(&s->tab[t & 1], vol, chunk);
        for (; k < taken && chunk_of(idx + k) == chunk; k++) {
            if (kind[k] == TAKE_INPLACE)
                continue;
            unsigned b = block_of(idx + k);
            if (err) {
                undo_fresh(p, s, d, b, kind[k] == TAKE_WAS_ZERO, zeroed[k]);
                continue;
            }
            fill_done(s, d, b, true, cs ? cs[k] : XXH3_64bits(data + k * es, es));
        }
        pthread_mutex_unlock(&s->mu);
    }
    txg_rele(p, t);
    *done = err ? 0 : taken;
    /* ENOSPC: the filesystem under the pool is full (the blocks were taken back out) */
    return err ? (err == ENOSPC ? ENOSPC : EIO) : 0;
}

/* vv_vol_write; CS (or NULL, then any range): vv_vol_write_csums's */
static int vol_write(struct vv_vol *h, const void *buf, size_t len, uint64_t off,
                     const uint64_t *cs)
{
    struct vv_pool *p = h->pool;
    if ((p->flags & VV_POOL_RDONLY) || h->as_of != XMAP_LIVE)
        return EROFS;
    uint64_t es = p->extent_size;
    const uint8_t *b = buf;
    vol_touch(h->vol);
    while (len > 0) {
        uint64_t idx = off >> p->extent_shift;
        uint64_t eoff = off & (es - 1);
        size_t n = len < es - eoff ? len : (size_t)(es - eoff);
        if (eoff == 0 && len >= 2 * es) {
            size_t count = len / es < WRITE_RUN_MAX ? len / es : WRITE_RUN_MAX, done;
            int err = write_whole(h, idx, count, b, cs, &done);
            if (err)
                return err;
            if (done > 0)
                n = done * es;
            else if ((err = write_extent(h, idx, 0, es, b, cs))) /* waits for space, or fails */
                return err;
        } else {
            int err = write_extent(h, idx, eoff, n, b, cs);
            if (err)
                return err;
        }
        if (cs)
            cs += n / es;
        b += n;
        len -= n;
        off += n;
    }
    return 0;
}

int vv_vol_write(struct vv_vol *h, const void *buf, size_t len, uint64_t off)
{
    return vol_write(h, buf, len, off, NULL);
}

int vv_vol_write_csums(struct vv_vol *h, const void *buf, size_t len, uint64_t off,
                       const uint64_t *cs)
{
    uint64_t es = h->pool->extent_size;
    if ((off | len) & (es - 1))
        return EINVAL;
    return vol_write(h, buf, len, off, cs);
}

/* ---- discard ------------------------------------------------------------------------------ */

/* The data mask of (vol, chunk) right now: uncommitted txgs over the committed view. */
static int chunk_data(struct vv_pool *p, struct reader *r, uint64_t vol, uint64_t chunk,
                      uint64_t *data)
{
    const struct xview *view;
    int err = reader_view(r, vol, chunk, &view);
    if (err)
        return err;
    if (r->as_of != XMAP_LIVE) {
        *data = view->data;
        return 0;
    }
    struct stripe *s = stripe_of(p, vol, chunk);
    pthread_mutex_lock(&s->mu);
    *data = data_mask(s, vol, chunk, view);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Make the blocks of BLOCKS in (vol, chunk) holes in the open txg. */
static int discard_blocks(struct vv_pool *p, uint64_t vol, uint64_t chunk, uint64_t blocks)
{
    uint64_t t;
    int err = txg_hold(p, &t);
    if (err)
        return err;
    struct stripe *s = stripe_of(p, vol, chunk);
    pthread_mutex_lock(&s->mu);
    uint64_t added = 0;
    struct dchunk *d = NULL;
    for (uint64_t m = blocks; m && !err; m &= m - 1) {
        unsigned b = (unsigned)__builtin_ctzll(m);
        uint64_t bit = 1ULL << b;
        d = dirty_ready(s, t, vol, chunk, b);
        if (d && (d->mask & bit)) {
            if (d->zero & bit)
                continue;
            struct dblk *e = dchunk_blk(d, b);
            pthread_mutex_lock(&p->alloc_mu);
            err = slot_list_add(&p->dropped[t & 1], e->slot);
            pthread_mutex_unlock(&p->alloc_mu);
            if (!err) {
                e->slot = SLOT_NONE;
                d->zero |= bit;
                d->csum_ok &= ~bit;
            }
            continue;
        }
        if (!d)
            err = dchunk_get(&s->tab[t & 1], vol, chunk, t, &d);
        if (!err)
            err = dchunk_add(d, b, SLOT_NONE);
        if (!err) {
            d->zero |= bit;
            added++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (added)
        txg_note_dirty(p, t, 0, added);
    txg_rele(p, t);
    return err;
}

/*
 * Iterating the chunks in [c0, c1) of VOL that may hold data, in ascending order: chunks with
 * versions in LMDB (a cursor skips the others, a fresh read txn each step) merged with the
 * volume's dirty chunks, collected once at the start.  Memory is bounded by the dirty chunks
 * (DIRTY_COUNT_BOUND), not by the range; time is O(candidates + dirty chunks).  A chunk first
 * dirtied after cand_init is not seen (a concurrent write).
 */
struct cand {
    struct vv_pool *p;
    const struct vv_volume *v;
    uint64_t vol, next, c1;
    struct slot_list dirty; /* sorted, unique */
    size_t di;
};

static int cand_init(struct cand *it, struct vv_pool *p, const struct vv_volume *v, uint64_t c0,
                     uint64_t c1, bool live)
{
    uint64_t vol = v->id;
    *it = (struct cand){.p = p, .v = v, .vol = vol, .next = c0, .c1 = c1};
    int err = 0;
    for (int i = 0; i < NSTRIPES && !err && live; i++) {
        struct stripe *s = &p->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (int t = 0; t < 2 && !err; t++) {
            struct dirty_table *tab = &s->tab[t];
            for (size_t b = 0; b < tab->nbuckets && !err; b++)
                for (struct dchunk *e = tab->buckets[b]; e && !err; e = e->next)
                    if (e->vol == vol && e->chunk >= c0 && e->chunk < c1)
                        err = slot_list_add(&it->dirty, e->chunk);
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (!err)
        slot_list_sort_unique(&it->dirty);
    return err;
}

/* the next candidate chunk: 0, or ENOENT when there is none left.  A clone's candidates
 * include its origins' chunks (below their limits). */
static int cand_next(struct cand *it, uint64_t *chunk)
{
    if (it->next >= it->c1)
        return ENOENT;
    struct reader r = READER_INIT(it->p, it->v);
    MDB_cursor *cur = NULL;
    uint64_t lm = UINT64_MAX;
    int err = reader_cursor(&r, &cur);
    if (!err)
        err = xmap_next_chunk_chain(&it->p->xmap, cur, it->vol, r.origins, r.norigins, it->next,
                                    &lm);
    if (err == ENOENT) {
        err = 0;
        lm = UINT64_MAX;
    }
    reader_done(&r);
    if (err)
        return err;
    while (it->di < it->dirty.n && it->dirty.v[it->di] < it->next)
        it->di++;
    uint64_t dm = it->di < it->dirty.n ? it->dirty.v[it->di] : UINT64_MAX;
    uint64_t c = lm < dm ? lm : dm;
    if (c >= it->c1) {
        it->next = it->c1;
        return ENOENT;
    }
    it->next = c + 1;
    *chunk = c;
    return 0;
}

static void cand_done(struct cand *it)
{
    slot_list_free(&it->dirty);
}

/* blocks [b0, b1) of a chunk as a mask (b1 <= XMAP_CHUNK_BLOCKS) */
static inline uint64_t block_range(unsigned b0, unsigned b1)
{
    uint64_t hi = b1 >= 64 ? ~0ULL : (1ULL << b1) - 1;
    return hi & ~((1ULL << b0) - 1);
}

static int has_data(struct vv_pool *p, const struct vv_volume *v, uint64_t idx, bool *yes)
{
    struct reader r = READER_INIT(p, v);
    uint64_t data;
    int err = chunk_data(p, &r, v->id, chunk_of(idx), &data);
    reader_done(&r);
    *yes = !err && (data >> block_of(idx) & 1);
    return err;
}

int vv_vol_discard(struct vv_vol *h, uint64_t off, uint64_t len)
{
    struct vv_pool *p = h->pool;
    if ((p->flags & VV_POOL_RDONLY) || h->as_of != XMAP_LIVE)
        return EROFS;
    uint64_t vol = h->vol->id;
    uint64_t es = p->extent_size;
    uint64_t end = off + len;
    vol_touch(h->vol);
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
        err = has_data(p, h->vol, a >> p->extent_shift, &data);
        if (!err && data)
            err = write_extent(h, a >> p->extent_shift, a & (es - 1), (size_t)(b - a),
                               zero_extent, NULL);
    }
    /* whole extents, chunk by chunk, only where there is data */
    uint64_t i0 = head_end >> p->extent_shift, i1 = tail_start >> p->extent_shift;
    if (err || i0 >= i1)
        return err;
    uint64_t c0 = chunk_of(i0), c1 = chunk_of(i1 - 1) + 1, c;
    struct cand it;
    err = cand_init(&it, p, h->vol, c0, c1, true);
    struct reader r = READER_INIT(p, h->vol);
    while (!err && !(err = cand_next(&it, &c))) {
        unsigned b0 = c == chunk_of(i0) ? block_of(i0) : 0;
        unsigned b1 = c == chunk_of(i1 - 1) ? block_of(i1 - 1) + 1 : XMAP_CHUNK_BLOCKS;
        uint64_t data;
        err = chunk_data(p, &r, vol, c, &data);
        reader_done(&r);
        data &= block_range(b0, b1);
        if (!err && data)
            err = discard_blocks(p, vol, c, data);
    }
    cand_done(&it);
    return err == ENOENT ? 0 : err;
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
    uint64_t c0 = chunk_of(idx), c1 = chunk_of(nidx - 1) + 1;
    struct reader r = READER_INIT(p, h->vol);
    r.as_of = h->as_of;
    int err = 0;
    if (whence == 4 /* SEEK_HOLE */) {
        for (uint64_t c = c0; c < c1 && !err; c++) {
            uint64_t data;
            err = chunk_data(p, &r, vol, c, &data);
            reader_done(&r);
            unsigned b0 = c == c0 ? block_of(idx) : 0;
            uint64_t holes = ~data & block_range(b0, XMAP_CHUNK_BLOCKS);
            if (err || !holes)
                continue;
            uint64_t o = ((c << XMAP_CHUNK_SHIFT) + (uint64_t)__builtin_ctzll(holes))
                         << p->extent_shift;
            *out = o >= size ? size : o > off ? o : off;
            return 0;
        }
        if (!err)
            *out = size;
        return err;
    }
    /* SEEK_DATA: visit only chunks that may have data */
    struct cand it;
    uint64_t c;
    err = cand_init(&it, p, h->vol, c0, c1, h->as_of == XMAP_LIVE);
    while (!err && !(err = cand_next(&it, &c))) {
        uint64_t data;
        err = chunk_data(p, &r, vol, c, &data);
        reader_done(&r);
        if (c == c0)
            data &= block_range(block_of(idx), XMAP_CHUNK_BLOCKS);
        if (!err && data) {
            uint64_t o = ((c << XMAP_CHUNK_SHIFT) + (uint64_t)__builtin_ctzll(data))
                         << p->extent_shift;
            *out = o > off ? o : off;
            err = o >= size ? ENXIO : 0;
            break;
        }
    }
    cand_done(&it);
    return err == ENOENT ? ENXIO : err;
}
