/*
 * replication/xfer.c — one delta over a channel (see xfer.h).
 *
 * Design notes
 *   The sender reads each run through the delta's open snapshot (vv_vol_read_csums verifies
 *   every block against its stored xxh3-64 as it reads) and sends that checksum with the
 *   block; the receiver checks it before it writes and stores it as the replica block's own
 *   (vv_vol_write_csums): a block damaged anywhere between the source's disk and the replica's
 *   write is refused, not stored, and each block is hashed once at each end, not twice
 *   (measured: on a loopback sync, the four passes there were took 13% of both daemons' CPU
 *   samples; two are left).  The receiver writes through the normal write path, so a delta
 *   takes as many txgs as it needs; the replica's point snapshot, taken after END in one txn,
 *   is what makes it visible as a whole.
 */
#include "replication/xfer.h"

#include "replication/wire.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zstd.h>

#define FRAME_CAP (WIRE_HDR + WIRE_PAYLOAD_MAX)

static void recvq_free(struct xfer_in *in);

/*
 * The sender is two stages: SENDQ_READERS reader threads take the delta's frames in order,
 * and each reads its frame's blocks (vv_vol_read_csums), compresses them if asked, and
 * encodes the frame into one of SENDQ_BUFS buffers; the caller's thread seals and sends the
 * frames in order.  A reader takes its frame and its buffer together, under walk_mu, so the
 * buffers' order is the frames' order; the sender waits for the oldest one to be ready.
 * Measured: in series, reading and sealing added up (364 MB/s from cold pages); with one
 * reader, the reader was the stage the others waited for (its direct reads at queue depth 1
 * and its checksum pass one after the other); see ARCHITECTURE.md.
 */
#define SENDQ_BUFS 6
#define SENDQ_READERS 2

/* one frame of the walk */
enum unit_kind { UNIT_DATA, UNIT_ZERO, UNIT_SNAPSHOT, UNIT_END };
struct unit {
    enum unit_kind kind;
    uint64_t block;
    uint32_t count;
    uint64_t ndata, nzero; /* END: the blocks of each kind that went before it */
};

struct sendq {
    pthread_mutex_t mu;   /* the buffers, err, e, running, stop, st->raw */
    pthread_cond_t cv;
    uint8_t *buf[SENDQ_BUFS];
    size_t len[SENDQ_BUFS];
    bool ready[SENDQ_BUFS];
    size_t head, n;       /* taken buffers, in frame order from head: ready, or being filled */
    unsigned running;     /* readers that have not finished */
    bool stop;            /* the sender gave up */
    int err;              /* the first reader's that failed */
    struct vv_err e;
    /* the walk, under walk_mu */
    pthread_mutex_t walk_mu;
    struct vv_delta *d;
    uint32_t es, seq;
    uint64_t resume;
    const char *volume;
    uint64_t ndata, nzero;
    uint64_t pb, zb;      /* a data run (PN blocks at PB) and a zero run (ZN at ZB) taken */
    uint32_t pn, zn;      /* from the delta and not yet in a frame */
    bool walked, ended;   /* the delta is walked; END was taken */
    bool snapped;         /* the SNAPSHOT frame was taken */
    const struct vv_snapshot_info *travel; /* TO, when it travels */
    bool zstd;            /* compress DATA frames */
    struct xfer_stats *st;
};

/* Q's first error (another reader's may have come first) */
static int q_fail(struct sendq *q, int err, const struct vv_err *e)
{
    pthread_mutex_lock(&q->mu);
    if (!q->err) {
        q->err = err;
        if (e)
            q->e = *e;
    }
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return err;
}

/* the data run taken from the walk (PN blocks at PB) into U, as a DATA frame (walk_mu held) */
static void take_data(struct sendq *q, struct unit *u)
{
    *u = (struct unit){.kind = UNIT_DATA, .block = q->pb, .count = q->pn};
    q->ndata += q->pn;
    q->pn = 0;
}

/* The next frame of the walk into U (walk_mu held): 0, ENOENT after END, or an error. */
static int walk_next(struct sendq *q, struct unit *u)
{
    if (q->zn) { /* (a zero run that came after a data frame) */
        *u = (struct unit){.kind = UNIT_ZERO, .block = q->zb, .count = q->zn};
        q->nzero += q->zn;
        q->zn = 0;
        return 0;
    }
    uint64_t block;
    uint32_t count;
    bool zero;
    int err = 0;
    while (!q->walked && !(err = vv_delta_next(q->d, &block, &count, &zero))) {
        if (block + count <= q->resume)
            continue; /* staged by an earlier attempt */
        if (block < q->resume) {
            count -= (uint32_t)(q->resume - block);
            block = q->resume;
        }
        /* data runs that follow each other go out together, up to WIRE_DATA_MAX blocks a
         * frame: one read and one frame per MiB of a sequentially written volume */
        if (!zero && q->pn && block == q->pb + q->pn && q->pn + count <= WIRE_DATA_MAX) {
            q->pn += count;
            continue;
        }
        if (!q->pn && zero) {
            *u = (struct unit){.kind = UNIT_ZERO, .block = block, .count = count};
            q->nzero += count;
            return 0;
        }
        if (!q->pn) {
            q->pb = block;
            q->pn = count;
            continue;
        }
        take_data(q, u);
        if (zero) {
            q->zb = block;
            q->zn = count;
        } else {
            q->pb = block;
            q->pn = count;
        }
        return 0;
    }
    if (err && err != ENOENT)
        return err;
    q->walked = true;
    if (q->pn) {
        take_data(q, u);
        return 0;
    }
    if (q->travel && !q->snapped) {
        q->snapped = true;
        *u = (struct unit){.kind = UNIT_SNAPSHOT};
        return 0;
    }
    if (q->ended)
        return ENOENT;
    q->ended = true;
    *u = (struct unit){.kind = UNIT_END, .ndata = q->ndata, .nzero = q->nzero};
    return 0;
}

/* a reader's own buffers */
struct reader_bufs {
    uint8_t *data; /* aligned, so that the reads of its runs go direct and at once (aio.c) */
    uint64_t *cs;
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;
    size_t zcap;
};

/* Encode U as frame SEQ into F (*LEN: its length); *RAW: the data bytes it carries. */
static int encode_unit(struct sendq *q, struct reader_bufs *r, const struct unit *u,
                       uint32_t seq, uint8_t *f, size_t *len, size_t *raw, struct vv_err *e)
{
    const struct vv_snapshot_info *t = q->travel;
    *raw = 0;
    switch (u->kind) {
    case UNIT_ZERO:
        *len = wire_put_zero(f, FRAME_CAP, seq, u->block, u->count);
        return 0;
    case UNIT_SNAPSHOT:
        *len = wire_put_snapshot(f, FRAME_CAP, seq, t->gen, t->created, t->name);
        return 0;
    case UNIT_END:
        *len = wire_put_end(f, FRAME_CAP, seq, u->ndata, u->nzero, t ? 1 : 0);
        return 0;
    case UNIT_DATA:
        break;
    }
    size_t n = (size_t)u->count * q->es;
    /* (the read verifies each block against its stored xxh3, and that is what travels) */
    int err = vv_vol_read_csums(vv_delta_source(q->d), r->data, n, u->block * q->es, r->cs);
    if (err)
        return vv_err_set(e, err, "cannot read volume '%s' at block %llu: %s", q->volume,
                          (unsigned long long)u->block, strerror(err));
    size_t zlen = 0;
    if (r->cctx) {
        zlen = ZSTD_compressCCtx(r->cctx, r->zbuf, r->zcap, r->data, n, 1);
        if (ZSTD_isError(zlen) || zlen >= n)
            zlen = 0; /* (incompressible: as it is) */
    }
    *len = zlen ? wire_put_data_zstd(f, FRAME_CAP, seq, u->block, u->count, q->es, r->cs,
                                     r->zbuf, zlen)
                : wire_put_data(f, FRAME_CAP, seq, u->block, u->count, q->es, r->cs, r->data);
    *raw = n;
    return 0;
}

static void *reader(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-repl-read");
    struct sendq *q = arg;
    struct reader_bufs r = {.cs = malloc(sizeof(*r.cs) * WIRE_DATA_MAX)};
    struct vv_err e = {0};
    int err = !posix_memalign((void **)&r.data, 4096, (size_t)WIRE_DATA_MAX * q->es) && r.cs
                  ? 0 : vv_err_set(&e, ENOMEM, "out of memory");
    if (!err && q->zstd) {
        r.zcap = ZSTD_compressBound((size_t)WIRE_DATA_MAX * q->es);
        r.cctx = ZSTD_createCCtx();
        r.zbuf = malloc(r.zcap);
        if (!r.cctx || !r.zbuf)
            err = vv_err_set(&e, ENOMEM, "out of memory");
    }
    while (!err) {
        struct unit u;
        size_t slot = 0, len = 0, raw;
        uint32_t seq = 0;
        /* the next frame and the next buffer, together */
        pthread_mutex_lock(&q->walk_mu);
        err = walk_next(q, &u);
        if (err && err != ENOENT)
            vv_err_set(&e, err, "cannot read the changes of volume '%s': %s", q->volume,
                       strerror(err));
        if (!err) {
            pthread_mutex_lock(&q->mu);
            while (q->n == SENDQ_BUFS && !q->stop && !q->err)
                pthread_cond_wait(&q->cv, &q->mu);
            if (q->stop || q->err) {
                err = ECANCELED; /* (the sender gave up, or another reader failed) */
            } else {
                slot = (q->head + q->n++) % SENDQ_BUFS;
                q->ready[slot] = false;
                seq = q->seq++;
            }
            pthread_mutex_unlock(&q->mu);
        }
        pthread_mutex_unlock(&q->walk_mu);
        if (!err)
            err = encode_unit(q, &r, &u, seq, q->buf[slot], &len, &raw, &e);
        if (!err && !len)
            err = vv_err_set(&e, EINVAL, "cannot encode a frame of volume '%s'", q->volume);
        if (err)
            break;
        pthread_mutex_lock(&q->mu);
        q->len[slot] = len;
        q->ready[slot] = true;
        q->st->raw += raw;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    if (err && err != ENOENT)
        q_fail(q, err, e.code ? &e : NULL);
    free(r.data);
    free(r.cs);
    ZSTD_freeCCtx(r.cctx);
    free(r.zbuf);
    pthread_mutex_lock(&q->mu);
    q->running--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* the data blocks of the delta FROM..TO of VOLUME at or past block RESUME (a walk of the
 * metadata only), for progress and ETA */
static uint64_t planned_blocks(struct vv_pool *p, const char *volume, const char *from,
                               const char *to, uint64_t resume)
{
    struct vv_delta *d;
    uint64_t n = 0, b;
    uint32_t count;
    bool zero;
    if (vv_delta_open(p, volume, from, to, &d, NULL))
        return 0;
    while (vv_delta_next(d, &b, &count, &zero) == 0)
        if (!zero && b + count > resume)
            n += b >= resume ? count : b + count - resume;
    vv_delta_close(d);
    return n;
}

/* sleep as long as sending BYTES since START (CLOCK_MONOTONIC) at RATE bytes/s takes more */
static void throttle(const struct timespec *start, uint64_t bytes, uint64_t rate)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double el = (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
    double want = (double)bytes / (double)rate;
    if (want > el) {
        double d = want - el;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int xfer_send(struct chan *c, uint32_t *seq, struct vv_pool *p, const char *volume,
              const char *from, const char *to, const struct xfer_opts *o,
              struct xfer_stats *st, struct vv_err *e)
{
    static const struct xfer_opts none;
    if (!o)
        o = &none;
    struct xfer_in *acks = o->acks;
    struct vv_snapshot_info fi = {0}, ti;
    struct vv_pool_status ps;
    vv_pool_get_status(p, &ps);
    int err = vv_snapshot_get(p, volume, to, &ti, e);
    if (!err && from)
        err = vv_snapshot_get(p, volume, from, &fi, e);
    struct sendq q = {.es = ps.extent_size, .resume = o->resume, .volume = volume,
                      .travel = o->travel ? &ti : NULL, .zstd = o->zstd, .st = st};
    if (!err)
        err = vv_delta_open(p, volume, from, to, &q.d, e);
    if (err)
        return err;
    pthread_mutex_init(&q.mu, NULL);
    pthread_mutex_init(&q.walk_mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    for (size_t i = 0; i < SENDQ_BUFS && !err; i++)
        if (!(q.buf[i] = malloc(FRAME_CAP)))
            err = vv_err_set(e, ENOMEM, "out of memory");
    size_t n = err ? 0 : wire_put_begin(q.buf[0], FRAME_CAP, (*seq)++, fi.gen, ti.gen, ti.size,
                                         q.es, volume);
    if (!err)
        err = xfer_out(c, q.buf[0], n, e);
    struct wire_msg m;
    if (!err && acks && !(err = xfer_next(acks, &m, e))) {
        if (m.type != WIRE_ACK || m.u.ack.gen != ti.gen)
            err = vv_err_set(e, EPROTO, "%s did not acknowledge the delta of '%s'",
                             chan_peer(c), volume);
        else
            q.resume = m.u.ack.block;
    }
    if (!err)
        st->planned = planned_blocks(p, volume, from, to, q.resume);
    q.seq = *seq;
    pthread_t t[SENDQ_READERS];
    unsigned started = 0;
    for (; !err && started < SENDQ_READERS; started++) {
        pthread_mutex_lock(&q.mu);
        q.running++;
        pthread_mutex_unlock(&q.mu);
        if ((err = pthread_create(&t[started], NULL, reader, &q))) {
            pthread_mutex_lock(&q.mu);
            q.running--;
            q.stop = true;
            pthread_cond_broadcast(&q.cv);
            pthread_mutex_unlock(&q.mu);
            vv_err_set(e, err, "cannot start the sender: %s", strerror(err));
            break;
        }
    }
    /* send the frames in order as they come (no faster than the limit) */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t sent = 0;
    pthread_mutex_lock(&q.mu);
    while (!err) {
        while (!(q.n && q.ready[q.head]) && q.running && !q.err)
            pthread_cond_wait(&q.cv, &q.mu);
        if (q.err || !(q.n && q.ready[q.head]))
            break; /* a reader failed, or every frame went */
        uint8_t *f = q.buf[q.head];
        size_t len = q.len[q.head];
        pthread_mutex_unlock(&q.mu);
        if (o->bwlimit)
            throttle(&t0, sent, o->bwlimit);
        int serr = chan_send(c, f, len);
        sent += len;
        pthread_mutex_lock(&q.mu);
        st->frames++;
        st->bytes += len;
        q.head = (q.head + 1) % SENDQ_BUFS;
        q.n--;
        pthread_cond_broadcast(&q.cv);
        if (serr)
            err = vv_err_set(e, serr, "cannot send to %s: %s", chan_peer(c), strerror(serr));
    }
    q.stop = true; /* (the readers that are still at work stop) */
    pthread_cond_broadcast(&q.cv);
    pthread_mutex_unlock(&q.mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    if (!err && q.err) {
        err = q.err;
        if (e)
            *e = q.e;
    }
    if (started)
        *seq = q.seq;
    st->data_blocks += q.ndata;
    st->zero_blocks += q.nzero;
    vv_delta_close(q.d);
    for (size_t i = 0; i < SENDQ_BUFS; i++)
        free(q.buf[i]);
    pthread_cond_destroy(&q.cv);
    pthread_mutex_destroy(&q.walk_mu);
    pthread_mutex_destroy(&q.mu);
    return err;
}

int xfer_in_init(struct xfer_in *in, struct chan *c, enum wire_side side)
{
    memset(in, 0, sizeof(*in));
    in->c = c;
    in->rx.side = side;
    in->buf = malloc(FRAME_CAP);
    return in->buf ? 0 : ENOMEM;
}

void xfer_in_fini(struct xfer_in *in)
{
    recvq_free(in);
    free(in->buf);
    ZSTD_freeDCtx(in->dctx);
    in->buf = NULL;
    in->dctx = NULL;
}

int xfer_out(struct chan *c, const uint8_t *f, size_t n, struct vv_err *e)
{
    if (!n)
        return vv_err_set(e, EINVAL, "cannot encode a frame for %s", chan_peer(c));
    int err = chan_send(c, f, n);
    if (err)
        vv_err_set(e, err, "cannot send to %s: %s", chan_peer(c), strerror(err));
    return err;
}

int xfer_next(struct xfer_in *f, struct wire_msg *m, struct vv_err *e)
{
    for (;;) {
        size_t used;
        const char *why;
        int rc = wire_decode(&f->rx, f->buf + f->start, f->have - f->start, m, &used, &why);
        if (rc == 0) {
            f->start += used;
            f->last = used;
            if (m->type == WIRE_PING || m->type == WIRE_PONG)
                continue;
            if (m->type == WIRE_ERROR)
                return vv_err_set(e, EPROTO, "%s: %s", chan_peer(f->c), m->u.error.msg);
            return 0;
        }
        if (rc != EAGAIN)
            return vv_err_set(e, EBADMSG, "%s sent a bad frame: %s", chan_peer(f->c), why);
        if (f->start) { /* room for the rest of the frame at the end */
            memmove(f->buf, f->buf + f->start, f->have - f->start);
            f->have -= f->start;
            f->start = 0;
        }
        ssize_t got = chan_recv(f->c, f->buf + f->have, FRAME_CAP - f->have);
        if (got == 0)
            return vv_err_set(e, EPIPE, "%s closed the connection", chan_peer(f->c));
        if (got < 0)
            return vv_err_set(e, (int)-got, "cannot receive from %s: %s", chan_peer(f->c),
                              strerror((int)-got));
        f->have += (size_t)got;
    }
}

/*
 * The receiver is two stages too: the caller's thread receives and decrypts each DATA frame
 * and copies (or decompresses) its blocks into one of RECVQ_BUFS buffers; RECVQ_WRITERS
 * threads check the blocks' checksums and write them (vv_vol_write).  Measured: in one
 * thread the receiver spent 2.4 ms per MiB in its direct write and 1.3 ms in read(2) one
 * after the other (strace -c), and the sync went at 160-200 MB/s (see ARCHITECTURE.md).  The
 * runs of a delta are disjoint, so their writes may go in any order; the queue is drained
 * (every write done) before a checkpoint says "staged below block b", at END, and before
 * any return, so that no write outlives its delta or its volume handle.
 */
#define RECVQ_WRITERS 3
#define RECVQ_BUFS 6

struct recvq_job {
    enum { JOB_FREE, JOB_QUEUED, JOB_BUSY } state;
    uint8_t *buf;       /* the blocks (aligned for direct I/O), then their checksums */
    size_t cap;
    struct vv_vol *h;
    const char *replica;
    uint64_t block;
    uint32_t count;
};

struct recvq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct recvq_job job[RECVQ_BUFS];
    size_t fifo[RECVQ_BUFS], fhead, fn; /* queued jobs, in order */
    size_t nfree;
    bool stop;
    int err;            /* the first write or checksum that failed */
    struct vv_err e;
    const char *peer;
    uint64_t es;
    pthread_t t[RECVQ_WRITERS];
    unsigned nthreads;
};

/* one job: every block's checksum, then one write (which stores the checksums checked here) */
static int write_job(struct recvq *q, struct recvq_job *j, struct vv_err *e)
{
    size_t raw = (size_t)j->count * q->es;
    const uint8_t *cs = j->buf + raw;
    uint64_t want[WIRE_DATA_MAX];
    for (uint32_t i = 0; i < j->count; i++) {
        const uint8_t *c = cs + 8u * i;
        want[i] = 0;
        for (int k = 0; k < 8; k++)
            want[i] = want[i] << 8 | c[k];
        if (XXH3_64bits(j->buf + i * q->es, q->es) != want[i])
            return vv_err_set(e, EBADMSG, "%s sent block %llu with a wrong checksum", q->peer,
                              (unsigned long long)(j->block + i));
    }
    int err = vv_vol_write_csums(j->h, j->buf, raw, j->block * q->es, want);
    if (err)
        vv_err_set(e, err, "cannot write replica '%s': %s", j->replica, strerror(err));
    return err;
}

static void *writer(void *arg)
{
    struct recvq *q = arg;
    (void)pthread_setname_np(pthread_self(), "vv-repl-write");
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->fn && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->fn)
            break;
        struct recvq_job *j = &q->job[q->fifo[q->fhead]];
        q->fhead = (q->fhead + 1) % RECVQ_BUFS;
        q->fn--;
        j->state = JOB_BUSY;
        bool skip = q->err != 0; /* (after a failure: only drained) */
        pthread_mutex_unlock(&q->mu);
        struct vv_err e = {0};
        int err = skip ? 0 : write_job(q, j, &e);
        pthread_mutex_lock(&q->mu);
        if (err && !q->err) {
            q->err = err;
            q->e = e;
        }
        j->state = JOB_FREE;
        q->nfree++;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static int recvq_start(struct xfer_in *in, struct vv_err *e)
{
    struct recvq *q = calloc(1, sizeof(*q));
    if (!q)
        return vv_err_set(e, ENOMEM, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->nfree = RECVQ_BUFS;
    q->peer = chan_peer(in->c);
    q->es = in->rx.extent_size;
    for (; q->nthreads < RECVQ_WRITERS; q->nthreads++)
        if (pthread_create(&q->t[q->nthreads], NULL, writer, q))
            break;
    in->wq = q;
    if (!q->nthreads) {
        recvq_free(in);
        return vv_err_set(e, EAGAIN, "cannot start the replica's writers");
    }
    return 0;
}

/* wait until every queued write is done; the first that failed (E says what), or 0 */
static int recvq_drain(struct xfer_in *in, struct vv_err *e)
{
    struct recvq *q = in->wq;
    if (!q)
        return 0;
    pthread_mutex_lock(&q->mu);
    while (q->nfree < RECVQ_BUFS)
        pthread_cond_wait(&q->cv, &q->mu);
    int err = q->err;
    if (err && e)
        *e = q->e;
    q->err = 0;
    pthread_mutex_unlock(&q->mu);
    return err;
}

static void recvq_free(struct xfer_in *in)
{
    struct recvq *q = in->wq;
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (unsigned i = 0; i < q->nthreads; i++)
        pthread_join(q->t[i], NULL);
    for (size_t i = 0; i < RECVQ_BUFS; i++)
        free(q->job[i].buf);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
    in->wq = NULL;
}

/* a free job into *OUT, with room for RAW bytes of blocks and N checksums; or the error of
 * a write that failed (the caller stops; recv_done tells it), or ENOMEM */
static int recvq_get(struct xfer_in *in, size_t raw, uint32_t n, struct recvq_job **out,
                     struct vv_err *e)
{
    int err = in->wq ? 0 : recvq_start(in, e);
    if (err)
        return err;
    struct recvq *q = in->wq;
    struct recvq_job *j = NULL;
    pthread_mutex_lock(&q->mu);
    while (!q->nfree && !q->err)
        pthread_cond_wait(&q->cv, &q->mu);
    err = q->err;
    if (err && e)
        *e = q->e;
    for (size_t i = 0; i < RECVQ_BUFS && !j && !err; i++)
        if (q->job[i].state == JOB_FREE)
            j = &q->job[i];
    pthread_mutex_unlock(&q->mu);
    if (err)
        return err;
    size_t need = raw + 8u * n;
    if (j->cap < need) {
        free(j->buf);
        j->buf = NULL;
        j->cap = 0;
        if (posix_memalign((void **)&j->buf, 4096, need))
            return vv_err_set(e, ENOMEM, "out of memory");
        j->cap = need;
    }
    *out = j;
    return 0;
}

static void recvq_push(struct xfer_in *in, struct recvq_job *j)
{
    struct recvq *q = in->wq;
    pthread_mutex_lock(&q->mu);
    j->state = JOB_QUEUED;
    q->nfree--;
    q->fifo[(q->fhead + q->fn) % RECVQ_BUFS] = (size_t)(j - q->job);
    q->fn++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* DATA: its blocks (decompressed if they are) and checksums into a job for the writers */
static int recv_data(struct xfer_in *in, struct vv_vol *h, const char *replica,
                     const struct wire_msg *m, struct vv_err *e)
{
    uint64_t es = in->rx.extent_size;
    size_t raw = (size_t)m->u.data.count * es;
    if (raw > WIRE_PAYLOAD_MAX) /* (wire.c refuses it first) */
        return vv_err_set(e, EBADMSG, "%s sent too many blocks", chan_peer(in->c));
    struct recvq_job *j = NULL;
    int err = recvq_get(in, raw, m->u.data.count, &j, e);
    if (err)
        return err;
    if (m->flags & WIRE_F_ZSTD) {
        if (!in->dctx && !(in->dctx = ZSTD_createDCtx()))
            return vv_err_set(e, ENOMEM, "out of memory");
        /* (the frame says how big it unpacks to: anything but RAW bytes is refused) */
        size_t got = ZSTD_decompressDCtx(in->dctx, j->buf, raw, m->u.data.data, m->u.data.len);
        if (ZSTD_isError(got) || got != raw)
            return vv_err_set(e, EBADMSG, "%s sent blocks %llu.. that do not decompress to "
                              "%u blocks", chan_peer(in->c),
                              (unsigned long long)m->u.data.block, m->u.data.count);
    } else {
        /* (a copy: the frame's buffer is reused for the next one, and its blocks are seldom
         * aligned as direct I/O needs) */
        memcpy(j->buf, m->u.data.data, raw);
    }
    memcpy(j->buf + raw, m->u.data.csums, 8u * m->u.data.count);
    j->h = h;
    j->replica = replica;
    j->block = m->u.data.block;
    j->count = m->u.data.count;
    recvq_push(in, j);
    return 0;
}

/* the delta's writes drained, its first error (ERR, or a writer's) returned */
static int recv_done(struct xfer_in *in, int err, struct vv_err *e)
{
    struct vv_err we = {0};
    int werr = recvq_drain(in, &we);
    if (!err && werr) {
        err = werr;
        if (e)
            *e = we;
    }
    return err;
}

int xfer_recv_delta(struct xfer_in *in, struct vv_pool *p, struct vv_vol *h, const char *replica,
                    const struct xfer_checkpoint *cp, struct xfer_travel *tv,
                    struct xfer_stats *st, struct vv_err *e)
{
    struct wire_msg m;
    uint64_t es = in->rx.extent_size, since = 0;
    int err;
    while (!(err = xfer_next(in, &m, e))) {
        st->frames++;
        st->bytes += in->last;
        if (m.type == WIRE_DATA) {
            if ((err = recv_data(in, h, replica, &m, e)))
                break;
            st->data_blocks += m.u.data.count;
            st->raw += (uint64_t)m.u.data.count * es;
            since += (uint64_t)m.u.data.count * es;
        } else if (m.type == WIRE_ZERO) {
            if ((err = vv_vol_discard(h, m.u.zero.block * es, m.u.zero.count * es))) {
                vv_err_set(e, err, "cannot discard in replica '%s': %s", replica,
                           strerror(err));
                break;
            }
            st->zero_blocks += m.u.zero.count;
        } else if (m.type == WIRE_END) {
            return recv_done(in, 0, e); /* the counts matched (wire.c checks them) */
        } else if (m.type == WIRE_SNAPSHOT) {
            if (tv) {
                tv->got = true;
                snprintf(tv->name, sizeof(tv->name), "%s", m.u.snapshot.name);
                tv->gen = m.u.snapshot.gen;
                tv->created = m.u.snapshot.created;
            }
            continue;
        } else {
            err = vv_err_set(e, EBADMSG, "%s sent %s inside a delta", chan_peer(in->c),
                             wire_type_to_string(m.type));
            break;
        }
        if (cp && cp->fn && since >= cp->every) {
            since = 0;
            if ((err = recv_done(in, 0, e)))
                break;
            if ((err = vv_pool_sync(p))) {
                vv_err_set(e, err, "cannot commit replica '%s': %s", replica, strerror(err));
                break;
            }
            if ((err = cp->fn(cp->arg, in->rx.next_block))) {
                vv_err_set(e, err, "cannot record the progress of replica '%s': %s", replica,
                           strerror(err));
                break;
            }
        }
    }
    return recv_done(in, err, e);
}

int xfer_recv(struct xfer_in *in, struct vv_pool *p, const char *replica, const char *point,
              struct xfer_stats *st, struct vv_err *e)
{
    struct vv_volume_info vi;
    struct wire_msg m;
    int err = vv_volume_get(p, replica, &vi, e);
    struct vv_vol *h = NULL;
    if (!err && (err = vv_vol_open(p, vi.id, &h)))
        vv_err_set(e, err, "cannot open replica '%s': %s", replica, strerror(err));
    if (!err && !(err = xfer_next(in, &m, e)) && m.type != WIRE_BEGIN)
        err = vv_err_set(e, EBADMSG, "%s sent %s before begin", chan_peer(in->c),
                         wire_type_to_string(m.type));
    if (!err && m.u.begin.size != vi.size)
        err = vv_err_set(e, EINVAL, "the source volume is %llu bytes, replica '%s' %llu",
                         (unsigned long long)m.u.begin.size, replica,
                         (unsigned long long)vi.size);
    if (!err)
        err = xfer_recv_delta(in, p, h, replica, NULL, NULL, st, e);
    /* the delta is whole: commit it, and make it the replica's newest point, in one txn */
    if (!err && (err = vv_pool_sync(p)))
        vv_err_set(e, err, "cannot commit replica '%s': %s", replica, strerror(err));
    vv_vol_close(h);
    if (!err)
        err = vv_snapshot_create(p, replica, point, NULL, e);
    in->rx.deltas = 0; /* a point made here, without a COMMIT frame */
    return err;
}
