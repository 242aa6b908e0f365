/*
 * meta/alloc.c — the slot allocator, the persistent space map, and the reclaimer.
 *
 * Design notes
 *   The data files are an array of nslots slots of extent_size bytes.  Which slots hold
 *   committed data is recorded in the `spacemap` DB as 1 KiB bitmap chunks (8192 slots each),
 *   updated in the same LMDB txn as the extent map, so the two always agree.
 *
 *   In memory, `inuse` has a bit set for every slot that may not be handed out: committed
 *   data, data of the open or committing txg, slots freed by a txg that has not committed
 *   yet (the last committed mapping may still point there), and slots being punched.  It is
 *   loaded from the space map at open (capacity / extent_size / 8 bytes: 2 MiB per TiB at
 *   64 KiB extents).  `zeroed` marks free slots known to be holes.
 *
 *   Freed slots are not punched at once: hole punching is a filesystem transaction, and on a
 *   filesystem mounted with `discard` a synchronous device discard (measured: 11% of the
 *   daemon's time waiting in ext4_free_blocks under 4 KiB random overwrites).  They go on a
 *   reclaim queue instead; the allocator reuses them first (an overwrite then costs no punch
 *   at all), and the reclaimer thread punches those still free after 1-2 s, which is when
 *   their space returns to the host.  A slot handed out that is not known to be zeros is
 *   reported as such (alloc_slot's *zero), and the writer fills what it does not write.
 *   Open punches every free run once, so after a crash no stale data lingers in free space.
 *
 *   `reserve` slots (1/32 of the pool) are kept for overwrites: a block that already has data
 *   may take one of them (its old slot comes back at the commit), a new block may not.  So
 *   when new data is refused (ENOSPC), rewrites, partial discards and deletes still work.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline bool bit_get(const uint64_t *bm, uint64_t i)
{
    return (bm[i >> 6] >> (i & 63)) & 1;
}

static inline void bit_set(uint64_t *bm, uint64_t i)
{
    bm[i >> 6] |= 1ULL << (i & 63);
}

static inline void bit_clear(uint64_t *bm, uint64_t i)
{
    bm[i >> 6] &= ~(1ULL << (i & 63));
}

static int alloc_load_bitmap(struct vv_pool *p, MDB_txn *txn, uint64_t *bm)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, p->db_spacemap, &cur);
    if (rc)
        return kv_err(rc);
    size_t words = (p->nslots + 63) / 64;
    MDB_val k, d;
    int err = 0;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8 || d.mv_size != SPACEMAP_CHUNK_BYTES) {
            err = EIO;
            break;
        }
        uint64_t chunk = get_be64(k.mv_data);
        size_t w0 = chunk * (SPACEMAP_CHUNK_BYTES / 8);
        for (size_t w = 0; w < SPACEMAP_CHUNK_BYTES / 8; w++) {
            uint64_t x;
            memcpy(&x, (uint8_t *)d.mv_data + w * 8, 8);
            if (!x)
                continue;
            if (w0 + w >= words) {
                err = EIO; /* bits past the end of the pool */
                break;
            }
            bm[w0 + w] = x;
        }
        if (err)
            break;
    }
    if (!err && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    mdb_cursor_close(cur);
    if (!err && (p->nslots & 63) && (bm[words - 1] >> (p->nslots & 63)))
        err = EIO;
    return err;
}

int alloc_init(struct vv_pool *p, MDB_txn *txn)
{
    size_t words = (p->nslots + 63) / 64;
    p->inuse = calloc(words ? words : 1, sizeof(uint64_t));
    p->zeroed = calloc(words ? words : 1, sizeof(uint64_t));
    if (!p->inuse || !p->zeroed)
        return ENOMEM;
    int err = alloc_load_bitmap(p, txn, p->inuse);
    if (err) {
        vv_err(VV_SS_META, "space map is corrupt or unreadable: %s", strerror(err));
        return err;
    }
    p->nused = 0;
    for (size_t w = 0; w < words; w++)
        p->nused += (uint64_t)__builtin_popcountll(p->inuse[w]);
    /* the slop for overwrites (OpenZFS keeps 1/32 of a pool): redirect-on-write needs a new
     * slot before the commit frees the old one, so a full pool would fail overwrites of its
     * own data, and a filesystem on it could not even rewrite its journal */
    p->reserve = p->nslots >= 2 ? (p->nslots / 32 > 0 ? p->nslots / 32 : 1) : 0;
    return 0;
}

void alloc_fini(struct vv_pool *p)
{
    free(p->inuse);
    free(p->zeroed);
    p->inuse = p->zeroed = NULL;
    slot_list_free(&p->dropped[0]);
    slot_list_free(&p->dropped[1]);
    slot_list_free(&p->reclaim_q[0]);
    slot_list_free(&p->reclaim_q[1]);
}

/* Take slot S (alloc_mu held, S free). */
static void take(struct vv_pool *p, uint64_t s, uint64_t *slot, bool *zero)
{
    bit_set(p->inuse, s);
    p->nused++;
    *zero = bit_get(p->zeroed, s);
    bit_clear(p->zeroed, s);
    *slot = s;
}

/* S follows PREV in the same data file (consecutive slots of one chunk) */
static inline bool run_next(const struct vv_pool *p, uint64_t prev, uint64_t s)
{
    return s == prev + 1 && (s >> p->chunk_shift) == (prev >> p->chunk_shift);
}

/* length of the run of consecutive free slots at the head of reclaim queue QI, up to MAX
 * (alloc_mu held; drops entries taken from the bitmap meanwhile) */
static size_t queue_run(struct vv_pool *p, unsigned qi, size_t max)
{
    struct slot_list *l = &p->reclaim_q[qi];
    while (p->reclaim_head[qi] < l->n && bit_get(p->inuse, l->v[p->reclaim_head[qi]]))
        p->reclaim_head[qi]++;
    size_t h = p->reclaim_head[qi], k = 0;
    while (h + k < l->n && k < max && !bit_get(p->inuse, l->v[h + k]) &&
           (k == 0 || run_next(p, l->v[h + k - 1], l->v[h + k])))
        k++;
    return k;
}

/* Take COUNT consecutive free slots from S on (alloc_mu held). */
static void take_run(struct vv_pool *p, uint64_t s, size_t count, uint64_t *slots, bool *zero)
{
    bool z;
    for (size_t i = 0; i < count; i++)
        take(p, s + i, &slots[i], zero ? &zero[i] : &z);
}

/* Take the K slots at the head of reclaim queue QI (consecutive: see queue_run). */
static size_t take_queue_run(struct vv_pool *p, unsigned qi, size_t k, uint64_t *slots,
                             bool *zero)
{
    take_run(p, p->reclaim_q[qi].v[p->reclaim_head[qi]], k, slots, zero);
    p->reclaim_head[qi] += k;
    return k;
}

/* The run at the head of the reclaim queues (the older queue first, then the newer), up to MAX
 * slots, if it is at least MIN long: how many were taken (0: none, or too short a run). */
static size_t take_from_queue(struct vv_pool *p, size_t max, size_t min, uint64_t *slots,
                              bool *zero)
{
    for (unsigned q = 1; q <= 2; q++) {
        unsigned qi = (p->reclaim_round + q) & 1;
        size_t k = queue_run(p, qi, max);
        if (k > 0)
            return k >= min ? take_queue_run(p, qi, k, slots, zero) : 0;
    }
    return 0;
}

/* Take free slot S and the free slots after it in its chunk, up to MAX in all, and move the
 * rotor past them (alloc_mu held, S free).  Returns how many. */
static size_t take_bitmap_run(struct vv_pool *p, uint64_t s, size_t max, uint64_t *slots,
                              bool *zero)
{
    size_t words = (p->nslots + 63) / 64;
    size_t k = 1;
    while (k < max && s + k < p->nslots && ((s + k) & (p->chunk_slots - 1)) != 0 &&
           !bit_get(p->inuse, s + k))
        k++;
    take_run(p, s, k, slots, zero);
    p->rotor = (size_t)((s + k) / 64) < words ? (size_t)((s + k) / 64) : 0;
    return k;
}

/* how many bitmap words a run allocation looks through for an empty group (64 MiB at 4K
 * extents): bounded, so that a fragmented pool costs a short run, not a long scan; a scan
 * that finds nothing moves the rotor past what it saw, so the next one looks further */
#define RUN_SCAN_WORDS 256u

int alloc_run(struct vv_pool *p, size_t max, uint64_t *slots, bool *zero, size_t *n,
              bool reserve)
{
    size_t words = (p->nslots + 63) / 64;
    size_t got = 0;
    pthread_mutex_lock(&p->alloc_mu);
    uint64_t avail = p->nslots - p->nused;
    if (!reserve)
        avail = avail > p->reserve && !atomic_load(&p->host_full) ? avail - p->reserve : 0;
    if (avail == 0) {
        pthread_mutex_unlock(&p->alloc_mu);
        *n = 0;
        return ENOSPC;
    }
    if (max > avail)
        max = (size_t)avail;
    /*
     * Recently freed slots first: reusing one spares the reclaimer a punch.  Oldest first, in
     * the order they were freed: a commit frees in (volume, extent) order, so a sequential
     * overwrite gets its new slots in the order of the old ones and stays sequential on disk
     * (popping newest-first reversed it: sequential reads after overwrites fell to 0.49 of a
     * plain file).
     * But a request for a run takes from the queue only a run as long as it wants (or 64
     * slots): after random overwrites the queue holds scattered slots, and a sequential write
     * built from them is hundreds of small I/Os.  Runs come from empty bitmap words then,
     * and the scattered slots are left to single-extent writes (or to the reclaimer).
     */
    /* a run is long when it fills an aligned group of G slots (a whole bitmap word, or a whole
     * chunk where chunks are smaller) */
    unsigned g = p->chunk_slots < 64 ? p->chunk_slots : 64;
    uint64_t gmask = g == 64 ? ~0ULL : (1ULL << g) - 1;
    size_t good = max < g ? max : g;
    if ((got = take_from_queue(p, max, good, slots, zero)) > 0)
        goto out;
    if (max > 1) {
        /* the first empty group from the rotor */
        size_t scan = words < RUN_SCAN_WORDS ? words : RUN_SCAN_WORDS;
        for (size_t i = 0; i < scan; i++) {
            size_t w = (size_t)((p->rotor + i) % words);
            uint64_t x = p->inuse[w];
            if (x == ~0ULL)
                continue;
            for (unsigned off = 0; off < 64; off += g) {
                uint64_t s = (uint64_t)w * 64 + off;
                if (((x >> off) & gmask) != 0 || s + g > p->nslots)
                    continue;
                got = take_bitmap_run(p, s, max, slots, zero);
                goto out;
            }
        }
        p->rotor = (size_t)((p->rotor + scan) % words);
    }
    /* no long run anywhere near: the queue's head, whatever its length, then the first free
     * slot from the rotor and the free ones after it */
    if ((got = take_from_queue(p, max, 1, slots, zero)) > 0)
        goto out;
    for (size_t i = 0; i <= words; i++) {
        size_t w = (size_t)((p->rotor + i) % words);
        uint64_t x = p->inuse[w];
        if (x == ~0ULL)
            continue;
        uint64_t s = (uint64_t)w * 64 + (uint64_t)__builtin_ctzll(~x);
        if (s >= p->nslots)
            continue;
        got = take_bitmap_run(p, s, max, slots, zero);
        break;
    }
out:
    pthread_mutex_unlock(&p->alloc_mu);
    *n = got;
    return got ? 0 : ENOSPC;
}

int alloc_slot(struct vv_pool *p, uint64_t *slot, bool *zero, bool reserve)
{
    size_t n;
    return alloc_run(p, 1, slot, zero, &n, reserve);
}

void alloc_unreserve(struct vv_pool *p, const uint64_t *slots, const bool *zero, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&p->alloc_mu);
    struct slot_list *q = &p->reclaim_q[p->reclaim_round & 1];
    for (size_t i = 0; i < n; i++) {
        bit_clear(p->inuse, slots[i]);
        p->nused--;
        if (zero[i])
            bit_set(p->zeroed, slots[i]); /* still a hole */
        else if (slot_list_add(q, slots[i]))
            vv_warn(VV_SS_META, "out of memory queueing slot %llu for reclaim; its space "
                    "returns to the host at the next mount", (unsigned long long)slots[i]);
    }
    pthread_mutex_unlock(&p->alloc_mu);
}

static int slot_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Punch COUNT slots that are consecutive in data file FILE, starting at file slot FIRST. */
static void punch(struct vv_pool *p, unsigned file, uint64_t first, uint64_t count)
{
    int fd = p->data_fd[file];
    off_t off = (off_t)(first << p->extent_shift);
    off_t len = (off_t)(count << p->extent_shift);
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0) {
        /* Without hole punching the space is not returned to the host, and a fresh slot may
         * hold old data: write zeros instead so the "free slot reads as zeros" rule holds. */
        static const uint8_t zeros[65536];
        vv_warn(VV_SS_META, "punching data.%u at %lld+%lld failed: %m; writing zeros", file,
                (long long)off, (long long)len);
        for (off_t o = 0; o < len; o += (off_t)sizeof(zeros)) {
            size_t n = (size_t)(len - o) < sizeof(zeros) ? (size_t)(len - o) : sizeof(zeros);
            if (pwrite(fd, zeros, n, off + o) != (ssize_t)n)
                vv_err(VV_SS_META, "zeroing freed space in data.%u at %lld failed: %m", file,
                       (long long)(off + o));
        }
    }
}

/*
 * Bytes one punch covers at most.  A punch holds its data file's locks for as long as the
 * filesystem takes to free the range (on a filesystem mounted with `discard`, a synchronous
 * device discard): punching a deleted 12 GiB volume in runs of 1.5 GiB stalled an fsync on
 * another volume for 277 ms (contrib/bench/delete-latency.sh).  Pieces of 64 MiB let other
 * I/O in between.
 */
#define PUNCH_MAX (64u << 20)

/* Punch every free run of the pool (at open, before the committer starts). */
void alloc_punch_free(struct vv_pool *p)
{
    /* file by file, runs of free file positions */
    uint64_t per_file = slots_per_file(p, p->nslots);
    for (unsigned f = 0; f < p->ndata; f++) {
        uint64_t i = 0;
        while (i < per_file) {
            while (i < per_file && (slot_at(p, f, i) >= p->nslots ||
                                    bit_get(p->inuse, slot_at(p, f, i))))
                i++;
            uint64_t start = i;
            while (i < per_file && slot_at(p, f, i) < p->nslots &&
                   !bit_get(p->inuse, slot_at(p, f, i)))
                i++;
            if (i > start)
                punch(p, f, start, i - start);
        }
    }
    size_t words = (p->nslots + 63) / 64;
    for (size_t w = 0; w < words; w++)
        p->zeroed[w] = ~p->inuse[w];
}

/*
 * Punch the slots of L (freed, referenced by nobody, still marked in use) at once, then return
 * them to the allocator as holes: for the long runs a deleted volume frees.  Going through
 * the reclaim queue instead put millions of single slots on it, and every reclaim round
 * walked and sorted them under alloc_mu.  Sorts L.  No lock may be held: this is I/O.
 */
void alloc_punch_release(struct vv_pool *p, struct slot_list *l)
{
    if (l->n == 0)
        return;
    uint64_t *v = l->v;
    size_t n = l->n;
    for (size_t i = 0; i < n; i++)
        v[i] = (uint64_t)slot_file(p, v[i]) << 48 | slot_pos(p, v[i]);
    qsort(v, n, sizeof(*v), slot_cmp);
    for (size_t done = 0; done < n;) {
        size_t j = done + 1;
        while (j < n && v[j] == v[j - 1] + 1 && ((j - done) << p->extent_shift) < PUNCH_MAX)
            j++;
        punch(p, (unsigned)(v[done] >> 48), v[done] & ((1ULL << 48) - 1), j - done);
        done = j;
    }
    pthread_mutex_lock(&p->alloc_mu);
    for (size_t i = 0; i < n; i++) {
        uint64_t s = slot_at(p, (unsigned)(v[i] >> 48), v[i] & ((1ULL << 48) - 1));
        if (!bit_get(p->inuse, s)) {
            vv_err(VV_SS_META, "slot %llu released twice", (unsigned long long)s);
            continue;
        }
        bit_clear(p->inuse, s);
        bit_set(p->zeroed, s);
        p->nused--;
    }
    pthread_mutex_unlock(&p->alloc_mu);
}

/*
 * Return the slots of L to the allocator; they go on the reclaim queue (see above).
 * Must not be called while a reader may still read one of these slots.
 */
void alloc_release(struct vv_pool *p, const struct slot_list *l)
{
    if (l->n == 0)
        return;
    pthread_mutex_lock(&p->alloc_mu);
    struct slot_list *q = &p->reclaim_q[p->reclaim_round & 1];
    for (size_t i = 0; i < l->n; i++) {
        if (!bit_get(p->inuse, l->v[i])) {
            vv_err(VV_SS_META, "slot %llu released twice", (unsigned long long)l->v[i]);
            continue;
        }
        bit_clear(p->inuse, l->v[i]);
        p->nused--;
        if (slot_list_add(q, l->v[i]))
            vv_warn(VV_SS_META, "out of memory queueing slot %llu for reclaim; its space "
                    "returns to the host at the next mount", (unsigned long long)l->v[i]);
    }
    pthread_mutex_unlock(&p->alloc_mu);
}

/*
 * Punch calls per reclaim round (a round a second).  Slots freed by random overwrites are
 * scattered, one punch each, and every punch holds the data file's invalidate lock, which
 * buffered reads of that file wait for: punching 100K of them right after a burst of 4K
 * random writes cost the reads that followed 15-25% (35.5K and 30.6K IOPS against 39.2K and
 * 41.5K with no punching).  Runs beyond the budget go back on the queue, still free and
 * reusable (under steady overwrites most are reused before their turn, which saves the
 * punch and the block allocation after it); contiguous frees (a deleted or trimmed volume)
 * are few long runs and go at once.
 */
#define RECLAIM_PUNCHES_MAX 512u


/*
 * One reclaim round: punch the slots queued a round ago that are still free (ALL: every one
 * of them, else up to the budget), and age the queue.  While punched, a slot is marked in
 * use so that nobody takes it.
 */
static void reclaim_round(struct vv_pool *p, bool all)
{
    pthread_mutex_lock(&p->alloc_mu);
    p->reclaim_round++;
    unsigned oi = p->reclaim_round & 1;
    struct slot_list *old = &p->reclaim_q[oi]; /* the older queue */
    struct slot_list batch = *old;
    size_t head = p->reclaim_head[oi]; /* those before it were reused */
    memset(old, 0, sizeof(*old)); /* new frees go here now; the old content is ours */
    p->reclaim_head[oi] = 0;
    size_t n = 0;
    for (size_t i = head; i < batch.n; i++) {
        uint64_t s = batch.v[i];
        if (bit_get(p->inuse, s) || bit_get(p->zeroed, s))
            continue; /* reused meanwhile, or queued twice */
        bit_set(p->inuse, s);
        batch.v[n++] = s;
    }
    batch.n = n;
    pthread_mutex_unlock(&p->alloc_mu);
    if (n == 0) {
        slot_list_free(&batch);
        return;
    }
    /* by (file, position in file), so that adjacent slots coalesce into one punch */
    uint64_t *v = batch.v;
    for (size_t i = 0; i < n; i++)
        v[i] = (uint64_t)slot_file(p, v[i]) << 48 | slot_pos(p, v[i]);
    qsort(v, n, sizeof(*v), slot_cmp);
    size_t done = 0, runs = 0;
    while (done < n && (all || runs < RECLAIM_PUNCHES_MAX)) {
        size_t j = done + 1;
        while (j < n && v[j] == v[j - 1] + 1 && ((j - done) << p->extent_shift) < PUNCH_MAX)
            j++;
        punch(p, (unsigned)(v[done] >> 48), v[done] & ((1ULL << 48) - 1), j - done);
        runs++;
        done = j;
    }
    pthread_mutex_lock(&p->alloc_mu);
    struct slot_list *q = &p->reclaim_q[p->reclaim_round & 1]; /* the newer queue */
    for (size_t i = 0; i < n; i++) {
        uint64_t s = slot_at(p, (unsigned)(v[i] >> 48), v[i] & ((1ULL << 48) - 1));
        bit_clear(p->inuse, s);
        if (i < done)
            bit_set(p->zeroed, s);
        else if (slot_list_add(q, s))
            vv_warn(VV_SS_META, "out of memory queueing slot %llu for reclaim; its space "
                    "returns to the host at the next mount", (unsigned long long)s);
    }
    pthread_mutex_unlock(&p->alloc_mu);
    vv_debug(VV_SS_META, "reclaimed %zu slots in %zu punches, %zu left for later rounds", done,
             runs, n - done);
    slot_list_free(&batch);
}

static void *reclaimer_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-reclaim");
    struct vv_pool *p = arg;
    pthread_mutex_lock(&p->alloc_mu);
    while (!p->reclaim_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&p->reclaim_wanted, &p->alloc_mu, &ts);
        if (p->reclaim_stop)
            break;
        pthread_mutex_unlock(&p->alloc_mu);
        reclaim_round(p, false);
        pthread_mutex_lock(&p->alloc_mu);
    }
    pthread_mutex_unlock(&p->alloc_mu);
    /* return what is still queued to the host now (two rounds: both queues) */
    reclaim_round(p, true);
    reclaim_round(p, true);
    return NULL;
}

int alloc_reclaimer_start(struct vv_pool *p)
{
    int rc = pthread_create(&p->reclaimer, NULL, reclaimer_main, p);
    if (!rc)
        p->reclaimer_running = true;
    return rc;
}

void alloc_reclaimer_stop(struct vv_pool *p)
{
    if (!p->reclaimer_running)
        return;
    pthread_mutex_lock(&p->alloc_mu);
    p->reclaim_stop = true;
    pthread_cond_signal(&p->reclaim_wanted);
    pthread_mutex_unlock(&p->alloc_mu);
    pthread_join(p->reclaimer, NULL);
    p->reclaimer_running = false;
}

/* Set the space-map bits of SET and clear those of CLEAR, chunk by chunk, in TXN. */
int alloc_persist(struct vv_pool *p, MDB_txn *txn, const struct slot_list *set,
                  const struct slot_list *clear)
{
    size_t n = set->n + clear->n;
    if (n == 0)
        return 0;
    /* encode op in the low bit after shifting: (slot << 1) | is_set; sort groups by chunk */
    uint64_t *ops = malloc(n * sizeof(*ops));
    if (!ops)
        return ENOMEM;
    for (size_t i = 0; i < set->n; i++)
        ops[i] = set->v[i] << 1 | 1;
    for (size_t i = 0; i < clear->n; i++)
        ops[set->n + i] = clear->v[i] << 1;
    qsort(ops, n, sizeof(*ops), slot_cmp);
    int err = 0;
    uint8_t chunk_buf[SPACEMAP_CHUNK_BYTES];
    for (size_t i = 0; i < n && !err;) {
        uint64_t chunk = (ops[i] >> 1) / SPACEMAP_CHUNK_SLOTS;
        uint8_t kb[8];
        put_be64(kb, chunk);
        MDB_val k = {8, kb}, d;
        int rc = mdb_get(txn, p->db_spacemap, &k, &d);
        if (rc == MDB_NOTFOUND) {
            memset(chunk_buf, 0, sizeof(chunk_buf));
        } else if (rc) {
            err = kv_err(rc);
            break;
        } else if (d.mv_size != SPACEMAP_CHUNK_BYTES) {
            err = EIO;
            break;
        } else {
            memcpy(chunk_buf, d.mv_data, sizeof(chunk_buf));
        }
        for (; i < n && (ops[i] >> 1) / SPACEMAP_CHUNK_SLOTS == chunk; i++) {
            uint64_t bit = (ops[i] >> 1) % SPACEMAP_CHUNK_SLOTS;
            if (ops[i] & 1)
                chunk_buf[bit >> 3] |= (uint8_t)(1u << (bit & 7));
            else
                chunk_buf[bit >> 3] &= (uint8_t)~(1u << (bit & 7));
        }
        bool empty = true;
        for (size_t b = 0; b < sizeof(chunk_buf) && empty; b++)
            empty = chunk_buf[b] == 0;
        if (empty) {
            rc = mdb_del(txn, p->db_spacemap, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            d.mv_size = sizeof(chunk_buf);
            d.mv_data = chunk_buf;
            rc = mdb_put(txn, p->db_spacemap, &k, &d, 0);
        }
        err = kv_err(rc);
    }
    free(ops);
    return err;
}
