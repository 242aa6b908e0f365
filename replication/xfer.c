/*
 * replication/xfer.c — one delta over a channel (see xfer.h).
 *
 * Design notes
 *   The sender reads each run through the delta's open snapshot (vv_vol_read verifies every
 *   block's stored checksum as it reads) and sends it with a fresh xxh3-64 per block, which
 *   the receiver checks before it writes: a block damaged anywhere between the source's disk
 *   and the replica's write is refused, not stored.  The receiver writes through the normal
 *   write path, so a delta takes as many txgs as it needs; the replica's point snapshot,
 *   taken after END in one txn, is what makes it visible as a whole.
 */
#include "replication/xfer.h"

#include "replication/wire.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define FRAME_CAP (WIRE_HDR + WIRE_PAYLOAD_MAX)

/*
 * The sender is two stages on two threads: a producer walks the delta, reads each run
 * (vv_vol_read), checksums it and encodes its frame into one of SENDQ_BUFS buffers; the
 * caller's thread seals and sends the frames in order.  Measured: in series, reading and
 * sealing added up (364 MB/s from cold pages; see ARCHITECTURE.md).
 */
#define SENDQ_BUFS 4

struct sendq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf[SENDQ_BUFS];
    size_t len[SENDQ_BUFS];
    size_t head, n;       /* filled frames, in order, from head */
    size_t nfree;         /* free buffers: buf[(head + n) .. ) */
    bool done, stop;      /* the producer finished; the sender gave up */
    int err;              /* the producer's */
    struct vv_err e;
    /* the producer's work */
    struct vv_delta *d;
    uint32_t es, seq;
    uint64_t resume;
    const char *volume;
    uint64_t ndata, nzero;
};

/* the producer's next free buffer (NULL: the sender gave up) */
static uint8_t *q_free(struct sendq *q)
{
    pthread_mutex_lock(&q->mu);
    while (!q->nfree && !q->stop)
        pthread_cond_wait(&q->cv, &q->mu);
    uint8_t *b = q->stop ? NULL : q->buf[(q->head + q->n) % SENDQ_BUFS];
    pthread_mutex_unlock(&q->mu);
    return b;
}

static void q_push(struct sendq *q, size_t len)
{
    pthread_mutex_lock(&q->mu);
    q->len[(q->head + q->n) % SENDQ_BUFS] = len;
    q->n++;
    q->nfree--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* encode and queue one DATA frame of N blocks at B (read into DATA) */
static int produce_data(struct sendq *q, uint64_t b, uint32_t n, uint8_t *data, uint64_t *cs)
{
    int err = vv_vol_read(vv_delta_source(q->d), data, (size_t)n * q->es, b * q->es);
    if (err)
        return vv_err_set(&q->e, err, "cannot read volume '%s' at block %llu: %s", q->volume,
                          (unsigned long long)b, strerror(err));
    for (uint32_t i = 0; i < n; i++)
        cs[i] = XXH3_64bits(data + (size_t)i * q->es, q->es);
    uint8_t *f = q_free(q);
    if (!f)
        return ECANCELED;
    q_push(q, wire_put_data(f, FRAME_CAP, q->seq++, b, n, q->es, cs, data));
    q->ndata += n;
    return 0;
}

static void *producer(void *arg)
{
    struct sendq *q = arg;
    uint8_t *data = malloc((size_t)WIRE_DATA_MAX * q->es);
    uint64_t *cs = malloc(sizeof(*cs) * WIRE_DATA_MAX);
    int err = data && cs ? 0 : vv_err_set(&q->e, ENOMEM, "out of memory");
    uint64_t block, pb = 0;
    uint32_t count, pn = 0;
    bool zero;
    /* data runs that follow each other go out together, up to WIRE_DATA_MAX blocks a frame:
     * one read and one frame per MiB of a sequentially written volume */
    while (!err && !(err = vv_delta_next(q->d, &block, &count, &zero))) {
        if (block + count <= q->resume)
            continue; /* staged by an earlier attempt */
        if (block < q->resume) {
            count -= (uint32_t)(q->resume - block);
            block = q->resume;
        }
        if (!zero && pn && block == pb + pn && pn + count <= WIRE_DATA_MAX) {
            pn += count;
            continue;
        }
        if (pn && (err = produce_data(q, pb, pn, data, cs)))
            break;
        pn = 0;
        if (!zero) {
            pb = block;
            pn = count;
            continue;
        }
        uint8_t *f = q_free(q);
        if (!f) {
            err = ECANCELED;
            break;
        }
        q_push(q, wire_put_zero(f, FRAME_CAP, q->seq++, block, count));
        q->nzero += count;
    }
    if (err == ENOENT) {
        err = pn ? produce_data(q, pb, pn, data, cs) : 0;
        uint8_t *f = err ? NULL : q_free(q);
        if (f)
            q_push(q, wire_put_end(f, FRAME_CAP, q->seq++, q->ndata, q->nzero, 0));
        else if (!err)
            err = ECANCELED;
    } else if (err && err != ECANCELED && !q->e.code) {
        vv_err_set(&q->e, err, "cannot read the changes of volume '%s': %s", q->volume,
                   strerror(err));
    }
    free(data);
    free(cs);
    pthread_mutex_lock(&q->mu);
    q->err = err;
    q->done = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int xfer_send(struct chan *c, uint32_t *seq, struct vv_pool *p, const char *volume,
              const char *from, const char *to, uint64_t resume, struct xfer_stats *st,
              struct vv_err *e)
{
    struct vv_snapshot_info fi = {0}, ti;
    struct vv_pool_status ps;
    vv_pool_get_status(p, &ps);
    int err = vv_snapshot_get(p, volume, to, &ti, e);
    if (!err && from)
        err = vv_snapshot_get(p, volume, from, &fi, e);
    struct sendq q = {.es = ps.extent_size, .resume = resume, .volume = volume};
    if (!err)
        err = vv_delta_open(p, volume, from, to, &q.d, e);
    if (err)
        return err;
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    for (size_t i = 0; i < SENDQ_BUFS && !err; i++)
        if (!(q.buf[i] = malloc(FRAME_CAP)))
            err = vv_err_set(e, ENOMEM, "out of memory");
    q.nfree = SENDQ_BUFS;
    size_t n = err ? 0 : wire_put_begin(q.buf[0], FRAME_CAP, (*seq)++, fi.gen, ti.gen, ti.size,
                                         q.es, volume);
    if (!err && (err = chan_send(c, q.buf[0], n)))
        vv_err_set(e, err, "cannot send to %s: %s", chan_peer(c), strerror(err));
    q.seq = *seq;
    pthread_t t;
    bool running = !err && !(err = pthread_create(&t, NULL, producer, &q));
    if (!running && !(e && e->code) && err)
        vv_err_set(e, err, "cannot start the sender: %s", strerror(err));
    /* send the frames in order as they come */
    pthread_mutex_lock(&q.mu);
    while (running) {
        while (!q.n && !q.done)
            pthread_cond_wait(&q.cv, &q.mu);
        if (!q.n)
            break;
        uint8_t *f = q.buf[q.head];
        size_t len = q.len[q.head];
        pthread_mutex_unlock(&q.mu);
        int serr = chan_send(c, f, len);
        pthread_mutex_lock(&q.mu);
        st->frames++;
        st->bytes += len;
        q.head = (q.head + 1) % SENDQ_BUFS;
        q.n--;
        q.nfree++;
        pthread_cond_broadcast(&q.cv);
        if (serr) {
            err = vv_err_set(e, serr, "cannot send to %s: %s", chan_peer(c), strerror(serr));
            q.stop = true;
            break;
        }
    }
    pthread_mutex_unlock(&q.mu);
    if (running) {
        pthread_join(t, NULL);
        if (!err && q.err) {
            err = q.err;
            if (e)
                *e = q.e;
        }
        *seq = q.seq;
    }
    st->data_blocks += q.ndata;
    st->zero_blocks += q.nzero;
    vv_delta_close(q.d);
    for (size_t i = 0; i < SENDQ_BUFS; i++)
        free(q.buf[i]);
    pthread_cond_destroy(&q.cv);
    pthread_mutex_destroy(&q.mu);
    return err;
}

/* a buffered reader of frames from a channel */
struct frames {
    struct chan *c;
    struct wire_rx *rx;
    uint8_t *buf;
    size_t start, have;
};

/* the next frame into M: 0, or an errno (E set) */
static int next_frame(struct frames *f, struct wire_msg *m, struct vv_err *e)
{
    for (;;) {
        size_t used;
        const char *why;
        int rc = wire_decode(f->rx, f->buf + f->start, f->have - f->start, m, &used, &why);
        if (rc == 0) {
            f->start += used;
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
            return vv_err_set(e, EPIPE, "%s closed the connection in the middle of a delta",
                              chan_peer(f->c));
        if (got < 0)
            return vv_err_set(e, (int)-got, "cannot receive from %s: %s", chan_peer(f->c),
                              strerror((int)-got));
        f->have += (size_t)got;
    }
}

int xfer_recv(struct chan *c, struct wire_rx *rx, struct vv_pool *p, const char *replica,
              const char *point, struct xfer_stats *st, struct vv_err *e)
{
    struct vv_volume_info vi;
    int err = vv_volume_get(p, replica, &vi, e);
    struct vv_vol *h = NULL;
    if (!err && (err = vv_vol_open(p, vi.id, &h)))
        vv_err_set(e, err, "cannot open replica '%s': %s", replica, strerror(err));
    struct frames f = {.c = c, .rx = rx, .buf = err ? NULL : malloc(FRAME_CAP)};
    if (!err && !f.buf)
        err = vv_err_set(e, ENOMEM, "out of memory");
    struct wire_msg m;
    bool begun = false;
    while (!err && !(err = next_frame(&f, &m, e))) {
        st->frames++;
        if (m.type == WIRE_PING || m.type == WIRE_PONG)
            continue;
        if (m.type == WIRE_ERROR) {
            err = vv_err_set(e, EPROTO, "%s gave up: %s", chan_peer(c), m.u.error.msg);
            break;
        }
        if (m.type == WIRE_BEGIN) {
            begun = true;
            if (m.u.begin.size != vi.size) {
                err = vv_err_set(e, EINVAL, "the source volume is %llu bytes, replica '%s' %llu",
                                 (unsigned long long)m.u.begin.size, replica,
                                 (unsigned long long)vi.size);
                break;
            }
            continue;
        }
        if (!begun) {
            err = vv_err_set(e, EBADMSG, "%s sent %s before begin", chan_peer(c),
                             wire_type_to_string(m.type));
            break;
        }
        uint64_t es = rx->extent_size;
        if (m.type == WIRE_DATA) {
            for (uint32_t i = 0; i < m.u.data.count && !err; i++) {
                const uint8_t *q = m.u.data.csums + 8u * i;
                uint64_t want = 0;
                for (int j = 0; j < 8; j++)
                    want = want << 8 | q[j];
                if (XXH3_64bits(m.u.data.data + i * es, es) != want)
                    err = vv_err_set(e, EBADMSG, "%s sent block %llu with a wrong checksum",
                                     chan_peer(c), (unsigned long long)(m.u.data.block + i));
            }
            if (!err && (err = vv_vol_write(h, m.u.data.data, m.u.data.count * es,
                                            m.u.data.block * es)))
                vv_err_set(e, err, "cannot write replica '%s': %s", replica, strerror(err));
            st->data_blocks += m.u.data.count;
        } else if (m.type == WIRE_ZERO) {
            if ((err = vv_vol_discard(h, m.u.zero.block * es, m.u.zero.count * es)))
                vv_err_set(e, err, "cannot discard in replica '%s': %s", replica, strerror(err));
            st->zero_blocks += m.u.zero.count;
        } else if (m.type == WIRE_END) {
            break; /* the counts matched (wire.c checks them) */
        }
    }
    /* the delta is whole: commit it, and make it the replica's newest point, in one txn */
    if (!err && (err = vv_pool_sync(p)))
        vv_err_set(e, err, "cannot commit replica '%s': %s", replica, strerror(err));
    vv_vol_close(h);
    if (!err)
        err = vv_snapshot_create(p, replica, point, NULL, e);
    free(f.buf);
    return err;
}
