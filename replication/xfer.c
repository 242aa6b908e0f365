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
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define FRAME_CAP (WIRE_HDR + WIRE_PAYLOAD_MAX)

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
    struct vv_delta *d = NULL;
    if (!err)
        err = vv_delta_open(p, volume, from, to, &d, e);
    if (err)
        return err;
    uint32_t es = ps.extent_size;
    uint8_t *frame = malloc(FRAME_CAP), *data = malloc((size_t)WIRE_DATA_MAX * es);
    uint64_t *cs = malloc(sizeof(*cs) * WIRE_DATA_MAX);
    if (!frame || !data || !cs)
        err = vv_err_set(e, ENOMEM, "out of memory");
    size_t n = err ? 0 : wire_put_begin(frame, FRAME_CAP, (*seq)++, fi.gen, ti.gen, ti.size, es,
                                         volume);
    if (!err && (err = chan_send(c, frame, n)))
        vv_err_set(e, err, "cannot send to %s: %s", chan_peer(c), strerror(err));
    uint64_t block, ndata = 0, nzero = 0;
    uint32_t count;
    bool zero;
    /* data runs that follow each other go out together, up to WIRE_DATA_MAX blocks a frame:
     * one read and one frame per MiB of a sequentially written volume */
    uint64_t pb = 0;
    uint32_t pn = 0;
    for (;;) {
        int more = err ? err : vv_delta_next(d, &block, &count, &zero);
        if (more == 0) {
            if (block + count <= resume)
                continue; /* staged by an earlier attempt */
            if (block < resume) {
                count -= (uint32_t)(resume - block);
                block = resume;
            }
            if (!zero && pn && block == pb + pn && pn + count <= WIRE_DATA_MAX) {
                pn += count;
                continue;
            }
        }
        /* send what is pending: the data run, then (if that is what came) a zero run */
        if (pn && !err) {
            err = vv_vol_read(vv_delta_source(d), data, (size_t)pn * es, pb * es);
            if (err) {
                vv_err_set(e, err, "cannot read volume '%s' at block %llu: %s", volume,
                           (unsigned long long)pb, strerror(err));
                break;
            }
            for (uint32_t i = 0; i < pn; i++)
                cs[i] = XXH3_64bits(data + (size_t)i * es, es);
            n = wire_put_data(frame, FRAME_CAP, (*seq)++, pb, pn, es, cs, data);
            ndata += pn;
            if ((err = chan_send(c, frame, n)))
                vv_err_set(e, err, "cannot send to %s: %s", chan_peer(c), strerror(err));
            st->frames++;
            st->bytes += n;
            pn = 0;
        }
        if (more) {
            err = err ? err : more;
            break;
        }
        if (err)
            break;
        if (!zero) {
            pb = block;
            pn = count;
            continue;
        }
        n = wire_put_zero(frame, FRAME_CAP, (*seq)++, block, count);
        nzero += count;
        if ((err = chan_send(c, frame, n)))
            vv_err_set(e, err, "cannot send to %s: %s", chan_peer(c), strerror(err));
        st->frames++;
        st->bytes += n;
    }
    if (err == ENOENT) {
        err = 0;
        n = wire_put_end(frame, FRAME_CAP, (*seq)++, ndata, nzero, 0);
        if ((err = chan_send(c, frame, n)))
            vv_err_set(e, err, "cannot send to %s: %s", chan_peer(c), strerror(err));
    } else if (err && !(e && e->code)) {
        vv_err_set(e, err, "cannot read the changes of volume '%s': %s", volume, strerror(err));
    }
    st->data_blocks += ndata;
    st->zero_blocks += nzero;
    vv_delta_close(d);
    free(frame);
    free(data);
    free(cs);
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
