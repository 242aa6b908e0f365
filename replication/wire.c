/*
 * replication/wire.c — frames of the replication protocol (see wire.h).
 *
 * Design notes
 *   The decoder is the part of the daemon that reads bytes a peer chose, so it trusts
 *   nothing: every length is checked against what the frame's type allows before anything
 *   is read, every read goes through a cursor that knows where the buffer ends, and every
 *   frame is checked against the conversation so far (sequence numbers, the delta it
 *   belongs to, ascending block ranges inside the volume).  It allocates nothing and keeps
 *   no pointer past the call, so a fuzzer can drive it directly (tests/fuzz/fuzz_wire.c).
 */
#include "replication/wire.h"

#include "util/name.h"

#include <errno.h>
#include <string.h>

/* ---- byte order ------------------------------------------------------------------------- */

static void be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* a bounded reader of a payload */
struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    r->left -= n;
    return q;
}

static uint64_t get_n(struct rd *r, unsigned n)
{
    const uint8_t *q = take(r, n);
    uint64_t v = 0;
    for (unsigned i = 0; q && i < n; i++)
        v = v << 8 | q[i];
    return v;
}

static uint8_t u8(struct rd *r)
{
    return (uint8_t)get_n(r, 1);
}

static uint16_t u16(struct rd *r)
{
    return (uint16_t)get_n(r, 2);
}

static uint32_t u32(struct rd *r)
{
    return (uint32_t)get_n(r, 4);
}

static uint64_t u64(struct rd *r)
{
    return get_n(r, 8);
}

/* a NAME: u8 length, then a valid vvfs name of that length */
static bool name(struct rd *r, char out[WIRE_NAME_MAX + 1])
{
    uint8_t n = u8(r);
    const uint8_t *q = n <= WIRE_NAME_MAX ? take(r, n) : NULL;
    if (!q)
        return false;
    memcpy(out, q, n);
    out[n] = '\0';
    return strlen(out) == n && vv_name_check(out) == NULL;
}

/* ---- decoding ---------------------------------------------------------------------------- */

const char *wire_type_to_string(unsigned type)
{
    static const char *const names[] = {
        [WIRE_HELLO] = "hello", [WIRE_WELCOME] = "welcome", [WIRE_BEGIN] = "begin",
        [WIRE_DATA] = "data",   [WIRE_ZERO] = "zero",       [WIRE_SNAPSHOT] = "snapshot",
        [WIRE_END] = "end",     [WIRE_ACK] = "ack",         [WIRE_ERROR] = "error",
        [WIRE_PING] = "ping",   [WIRE_PONG] = "pong",       [WIRE_COMMIT] = "commit",
    };
    return type >= 1 && type <= WIRE_TYPE_MAX ? names[type] : "unknown";
}

/* the largest payload TYPE may have (its shape is checked when it is decoded) */
static uint32_t max_len(unsigned type)
{
    switch (type) {
    case WIRE_HELLO: return 40 + 1 + WIRE_NAME_MAX;
    case WIRE_WELCOME: return 44;
    case WIRE_BEGIN: return 32 + 1 + WIRE_NAME_MAX;
    case WIRE_DATA: return WIRE_PAYLOAD_MAX;
    case WIRE_ZERO: return 16;
    case WIRE_SNAPSHOT: return 16 + 1 + WIRE_NAME_MAX;
    case WIRE_END: return 24;
    case WIRE_ACK: return 16;
    case WIRE_ERROR: return 6 + WIRE_MSG_MAX;
    case WIRE_PING:
    case WIRE_PONG: return 8;
    case WIRE_COMMIT: return 24;
    default: return 0;
    }
}

#define BAD(reason)                                                                             \
    do {                                                                                        \
        *why = (reason);                                                                        \
        return EBADMSG;                                                                         \
    } while (0)

/* Is TYPE allowed now, from the peer of RX->side? */
static const char *order_error(const struct wire_rx *rx, unsigned type)
{
    bool from_sender = rx->side == WIRE_SIDE_RECEIVER; /* the peer is the sender */
    if (rx->closed)
        return "frame after an error frame";
    if (!rx->greeted)
        return type == (from_sender ? WIRE_HELLO : WIRE_WELCOME) ? NULL
               : from_sender ? "the first frame is not a hello"
                             : "the first frame is not a welcome";
    switch (type) {
    case WIRE_HELLO:
    case WIRE_WELCOME: return "a second greeting";
    case WIRE_BEGIN:
        return !from_sender ? "begin from the receiver"
               : rx->in_delta ? "begin inside a delta" : NULL;
    case WIRE_DATA:
    case WIRE_ZERO:
    case WIRE_SNAPSHOT:
    case WIRE_END:
        return !from_sender ? "delta frame from the receiver"
               : !rx->in_delta ? "delta frame outside a delta" : NULL;
    case WIRE_ACK: return from_sender ? "ack from the sender" : NULL;
    case WIRE_COMMIT:
        return !from_sender ? "commit from the receiver"
               : rx->in_delta ? "commit inside a delta" : NULL;
    default: return NULL; /* ERROR, PING, PONG: anywhere */
    }
}

/* a block range [B, B+N) of the open delta: inside the volume, at or after the last one */
static const char *range_error(struct wire_rx *rx, uint64_t b, uint64_t n)
{
    if (n == 0)
        return "empty block range";
    if (b < rx->next_block)
        return "block range does not ascend";
    if (b >= rx->blocks || n > rx->blocks - b)
        return "block range past the volume's end";
    rx->next_block = b + n;
    return NULL;
}

static int decode_payload(struct wire_rx *rx, unsigned type, struct rd *r, struct wire_msg *m,
                          const char **why)
{
    switch (type) {
    case WIRE_HELLO: {
        m->u.hello.vmin = u16(r);
        m->u.hello.vmax = u16(r);
        m->u.hello.role = u8(r);
        const uint8_t *z = take(r, 3), *pool = take(r, 16);
        m->u.hello.session = u64(r);
        if (r->bad)
            BAD("hello: short");
        if (!name(r, m->u.hello.name))
            BAD("hello: bad session name");
        memcpy(m->u.hello.pool, pool, 16);
        if (z[0] | z[1] | z[2])
            BAD("hello: reserved bytes are not zero");
        if (m->u.hello.vmin == 0 || m->u.hello.vmin > m->u.hello.vmax)
            BAD("hello: bad version range");
        if (m->u.hello.role != WIRE_ROLE_SENDER)
            BAD("hello: unknown role");
        break;
    }
    case WIRE_WELCOME: {
        m->u.welcome.version = u16(r);
        const uint8_t *z = take(r, 2), *pool = take(r, 16);
        m->u.welcome.session = u64(r);
        m->u.welcome.gen = u64(r);
        m->u.welcome.resume = u64(r);
        if (r->bad)
            BAD("welcome: short");
        memcpy(m->u.welcome.pool, pool, 16);
        if (z[0] | z[1])
            BAD("welcome: reserved bytes are not zero");
        if (m->u.welcome.version != WIRE_VERSION)
            BAD("welcome: a version this side does not speak");
        break;
    }
    case WIRE_BEGIN: {
        struct wire_msg *b = m;
        b->u.begin.from = u64(r);
        b->u.begin.to = u64(r);
        b->u.begin.size = u64(r);
        b->u.begin.extent_size = u32(r);
        uint32_t z = u32(r);
        if (!name(r, b->u.begin.volume))
            BAD("begin: bad volume name");
        uint32_t es = b->u.begin.extent_size;
        if (z)
            BAD("begin: reserved bytes are not zero");
        if (b->u.begin.to < b->u.begin.from)
            BAD("begin: the delta goes backwards");
        if (es < 4096 || es > WIRE_EXTENT_MAX || (es & (es - 1)))
            BAD("begin: bad extent size");
        if (b->u.begin.size == 0 || b->u.begin.size % 4096 || b->u.begin.size > (1ULL << 50))
            BAD("begin: bad volume size");
        rx->in_delta = true;
        rx->from = b->u.begin.from;
        rx->to = b->u.begin.to;
        rx->extent_size = es;
        rx->blocks = (b->u.begin.size + es - 1) / es;
        rx->next_block = 0;
        rx->ndata = rx->nzero = rx->nsnaps = 0;
        rx->snap_gen = b->u.begin.from;
        break;
    }
    case WIRE_DATA: {
        m->u.data.block = u64(r);
        m->u.data.count = u32(r);
        uint32_t z = u32(r);
        uint32_t n = m->u.data.count;
        if (r->bad)
            BAD("data: short");
        if (z)
            BAD("data: reserved bytes are not zero");
        if (n == 0 || n > WIRE_DATA_MAX)
            BAD("data: bad block count");
        bool zst = m->flags & WIRE_F_ZSTD;
        if (!zst && (uint64_t)n * (8u + rx->extent_size) != r->left)
            BAD("data: length does not match the block count");
        /* compressed: the checksums, then at least a byte and less than the data itself */
        if (zst && (r->left <= 8u * n || r->left - 8u * n >= (uint64_t)n * rx->extent_size))
            BAD("data: compressed length out of range");
        /* (what it unpacks to fits a frame as it would be without compression) */
        if (zst && 16u + (uint64_t)n * (8u + rx->extent_size) > WIRE_PAYLOAD_MAX)
            BAD("data: more blocks than a frame holds");
        const char *e = range_error(rx, m->u.data.block, n);
        if (e)
            BAD(e);
        m->u.data.csums = take(r, 8u * n);
        m->u.data.len = zst ? r->left : (size_t)n * rx->extent_size; /* (after the sums) */
        m->u.data.data = take(r, m->u.data.len);
        rx->ndata += n;
        break;
    }
    case WIRE_ZERO: {
        m->u.zero.block = u64(r);
        m->u.zero.count = u64(r);
        if (r->bad)
            BAD("zero: short");
        const char *e = range_error(rx, m->u.zero.block, m->u.zero.count);
        if (e)
            BAD(e);
        rx->nzero += m->u.zero.count;
        break;
    }
    case WIRE_SNAPSHOT:
        m->u.snapshot.gen = u64(r);
        m->u.snapshot.created = u64(r);
        if (!name(r, m->u.snapshot.name))
            BAD("snapshot: bad name");
        if (m->u.snapshot.gen < rx->snap_gen || m->u.snapshot.gen > rx->to)
            BAD("snapshot: gen outside the delta, or not ascending");
        rx->snap_gen = m->u.snapshot.gen;
        rx->nsnaps++;
        break;
    case WIRE_END:
        m->u.end.data = u64(r);
        m->u.end.zero = u64(r);
        m->u.end.snapshots = u64(r);
        if (r->bad)
            BAD("end: short");
        if (m->u.end.data != rx->ndata || m->u.end.zero != rx->nzero ||
            m->u.end.snapshots != rx->nsnaps)
            BAD("end: the counts do not match what the delta held");
        rx->in_delta = false;
        rx->deltas++;
        rx->commit_to = rx->to;
        break;
    case WIRE_ACK:
        m->u.ack.gen = u64(r);
        m->u.ack.block = u64(r);
        break;
    case WIRE_ERROR: {
        m->u.error.code = u32(r);
        uint16_t n = u16(r);
        const uint8_t *q = n <= WIRE_MSG_MAX ? take(r, n) : NULL;
        if (!q)
            BAD("error: bad message length");
        for (uint16_t i = 0; i < n; i++)
            if (q[i] < 0x20 || q[i] > 0x7e)
                BAD("error: message is not printable ASCII");
        memcpy(m->u.error.msg, q, n);
        m->u.error.msg[n] = '\0';
        rx->closed = true;
        break;
    }
    case WIRE_PING:
    case WIRE_PONG:
        m->u.ping.nonce = u64(r);
        break;
    case WIRE_COMMIT: {
        m->u.commit.gen = u64(r);
        m->u.commit.created = u64(r);
        m->u.commit.deltas = u32(r);
        m->u.commit.keep = u32(r);
        if (r->bad)
            BAD("commit: short");
        if (m->u.commit.deltas == 0 || m->u.commit.deltas != rx->deltas)
            BAD("commit: not the number of deltas since the last commit");
        if (m->u.commit.gen != rx->commit_to)
            BAD("commit: not the gen of its last delta");
        rx->deltas = 0;
        break;
    }
    default:
        BAD("unknown frame type");
    }
    if (r->bad)
        BAD("payload shorter than its type needs");
    if (r->left)
        BAD("payload longer than its type has");
    return 0;
}

int wire_decode(struct wire_rx *rx, const uint8_t *buf, size_t len, struct wire_msg *m,
                size_t *used, const char **why)
{
    *why = NULL;
    if (rx->side != WIRE_SIDE_RECEIVER && rx->side != WIRE_SIDE_SENDER)
        BAD("decoder not set up");
    if (len < WIRE_HDR)
        return EAGAIN;
    struct rd h = {buf, WIRE_HDR, false};
    uint32_t magic = u32(&h);
    uint8_t version = u8(&h), type = u8(&h);
    uint16_t flags = u16(&h);
    uint32_t seq = u32(&h), plen = u32(&h);
    if (magic != WIRE_MAGIC)
        BAD("not a vvfs replication frame (bad magic)");
    if (version != WIRE_VERSION)
        BAD("frame of another protocol version");
    if (type < 1 || type > WIRE_TYPE_MAX)
        BAD("unknown frame type");
    if (flags & ~WIRE_F_ZSTD)
        BAD("unknown frame flags");
    if (flags && type != WIRE_DATA)
        BAD("compression flag on a frame other than data");
    if (seq != rx->next_seq)
        BAD("frame out of sequence");
    if (plen > max_len(type))
        BAD("frame longer than its type allows");
    const char *e = order_error(rx, type);
    if (e)
        BAD(e);
    if (len - WIRE_HDR < plen)
        return EAGAIN;
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->seq = seq;
    struct rd r = {buf + WIRE_HDR, plen, false};
    m->flags = flags;
    int err = decode_payload(rx, type, &r, m, why);
    if (err)
        return err;
    rx->greeted = true;
    rx->next_seq++;
    *used = WIRE_HDR + plen;
    return 0;
}

/* ---- encoding ---------------------------------------------------------------------------- */

/* a bounded writer of one frame */
struct wr {
    uint8_t *b;
    size_t cap, n;
    bool bad;
};

static uint8_t *room(struct wr *w, size_t n)
{
    if (w->bad || w->cap - w->n < n) {
        w->bad = true;
        return NULL;
    }
    uint8_t *p = w->b + w->n;
    w->n += n;
    return p;
}

static void w8(struct wr *w, uint8_t v)
{
    uint8_t *p = room(w, 1);
    if (p)
        *p = v;
}

static void w16(struct wr *w, uint16_t v)
{
    uint8_t *p = room(w, 2);
    if (p)
        be16(p, v);
}

static void w32(struct wr *w, uint32_t v)
{
    uint8_t *p = room(w, 4);
    if (p)
        be32(p, v);
}

static void w64(struct wr *w, uint64_t v)
{
    uint8_t *p = room(w, 8);
    if (p)
        be64(p, v);
}

static void wbytes(struct wr *w, const void *d, size_t n)
{
    uint8_t *p = room(w, n);
    if (p && n)
        memcpy(p, d, n);
}

static void wname(struct wr *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!s || n > WIRE_NAME_MAX || vv_name_check(s)) {
        w->bad = true;
        return;
    }
    w8(w, (uint8_t)n);
    wbytes(w, s, n);
}

static struct wr frame_begin_flags(uint8_t *b, size_t cap, unsigned type, uint32_t seq,
                                   uint16_t flags)
{
    struct wr w = {b, cap, 0, cap < WIRE_HDR};
    w32(&w, WIRE_MAGIC);
    w8(&w, WIRE_VERSION);
    w8(&w, (uint8_t)type);
    w16(&w, flags);
    w32(&w, seq);
    w32(&w, 0); /* the length, set by frame_end */
    return w;
}

static struct wr frame_begin(uint8_t *b, size_t cap, unsigned type, uint32_t seq)
{
    return frame_begin_flags(b, cap, type, seq, 0);
}

static size_t frame_end(struct wr *w)
{
    if (w->bad)
        return 0;
    be32(w->b + 12, (uint32_t)(w->n - WIRE_HDR));
    return w->n;
}

size_t wire_put_hello(uint8_t *b, size_t cap, uint32_t seq, uint16_t vmin, uint16_t vmax,
                      const uint8_t pool[16], uint64_t session, const char *name_)
{
    struct wr w = frame_begin(b, cap, WIRE_HELLO, seq);
    w16(&w, vmin);
    w16(&w, vmax);
    w8(&w, WIRE_ROLE_SENDER);
    wbytes(&w, "\0\0\0", 3);
    wbytes(&w, pool, 16);
    w64(&w, session);
    wname(&w, name_);
    return frame_end(&w);
}

size_t wire_put_welcome(uint8_t *b, size_t cap, uint32_t seq, uint16_t version,
                        const uint8_t pool[16], uint64_t session, uint64_t gen,
                        uint64_t resume)
{
    struct wr w = frame_begin(b, cap, WIRE_WELCOME, seq);
    w16(&w, version);
    w16(&w, 0);
    wbytes(&w, pool, 16);
    w64(&w, session);
    w64(&w, gen);
    w64(&w, resume);
    return frame_end(&w);
}

size_t wire_put_begin(uint8_t *b, size_t cap, uint32_t seq, uint64_t from, uint64_t to,
                      uint64_t size, uint32_t extent_size, const char *volume)
{
    struct wr w = frame_begin(b, cap, WIRE_BEGIN, seq);
    w64(&w, from);
    w64(&w, to);
    w64(&w, size);
    w32(&w, extent_size);
    w32(&w, 0);
    wname(&w, volume);
    return frame_end(&w);
}

size_t wire_put_data(uint8_t *b, size_t cap, uint32_t seq, uint64_t block, uint32_t count,
                     uint32_t extent_size, const uint64_t *csums, const void *data)
{
    if (count == 0 || count > WIRE_DATA_MAX || (uint64_t)count * extent_size > WIRE_PAYLOAD_MAX)
        return 0;
    struct wr w = frame_begin(b, cap, WIRE_DATA, seq);
    w64(&w, block);
    w32(&w, count);
    w32(&w, 0);
    for (uint32_t i = 0; i < count; i++)
        w64(&w, csums[i]);
    wbytes(&w, data, (size_t)count * extent_size);
    return frame_end(&w);
}

size_t wire_put_data_zstd(uint8_t *b, size_t cap, uint32_t seq, uint64_t block, uint32_t count,
                          uint32_t extent_size, const uint64_t *csums, const void *z,
                          size_t zlen)
{
    if (count == 0 || count > WIRE_DATA_MAX || zlen == 0 ||
        zlen >= (uint64_t)count * extent_size)
        return 0;
    struct wr w = frame_begin_flags(b, cap, WIRE_DATA, seq, WIRE_F_ZSTD);
    w64(&w, block);
    w32(&w, count);
    w32(&w, 0);
    for (uint32_t i = 0; i < count; i++)
        w64(&w, csums[i]);
    wbytes(&w, z, zlen);
    return frame_end(&w);
}

size_t wire_put_zero(uint8_t *b, size_t cap, uint32_t seq, uint64_t block, uint64_t count)
{
    struct wr w = frame_begin(b, cap, WIRE_ZERO, seq);
    w64(&w, block);
    w64(&w, count);
    return frame_end(&w);
}

size_t wire_put_snapshot(uint8_t *b, size_t cap, uint32_t seq, uint64_t gen, uint64_t created,
                         const char *name_)
{
    struct wr w = frame_begin(b, cap, WIRE_SNAPSHOT, seq);
    w64(&w, gen);
    w64(&w, created);
    wname(&w, name_);
    return frame_end(&w);
}

size_t wire_put_end(uint8_t *b, size_t cap, uint32_t seq, uint64_t data, uint64_t zero,
                    uint64_t snapshots)
{
    struct wr w = frame_begin(b, cap, WIRE_END, seq);
    w64(&w, data);
    w64(&w, zero);
    w64(&w, snapshots);
    return frame_end(&w);
}

size_t wire_put_commit(uint8_t *b, size_t cap, uint32_t seq, uint64_t gen, uint64_t created,
                       uint32_t deltas, uint32_t keep)
{
    struct wr w = frame_begin(b, cap, WIRE_COMMIT, seq);
    w64(&w, gen);
    w64(&w, created);
    w32(&w, deltas);
    w32(&w, keep);
    return frame_end(&w);
}

size_t wire_put_ack(uint8_t *b, size_t cap, uint32_t seq, uint64_t gen, uint64_t block)
{
    struct wr w = frame_begin(b, cap, WIRE_ACK, seq);
    w64(&w, gen);
    w64(&w, block);
    return frame_end(&w);
}

size_t wire_put_error(uint8_t *b, size_t cap, uint32_t seq, uint32_t code, const char *msg)
{
    struct wr w = frame_begin(b, cap, WIRE_ERROR, seq);
    size_t n = strlen(msg);
    if (n > WIRE_MSG_MAX)
        n = WIRE_MSG_MAX;
    w32(&w, code);
    w16(&w, (uint16_t)n);
    uint8_t *p = room(&w, n);
    for (size_t i = 0; p && i < n; i++) /* (the decoder wants printable ASCII) */
        p[i] = msg[i] >= 0x20 && msg[i] <= 0x7e ? (uint8_t)msg[i] : '?';
    return frame_end(&w);
}

size_t wire_put_ping(uint8_t *b, size_t cap, uint32_t seq, bool pong, uint64_t nonce)
{
    struct wr w = frame_begin(b, cap, pong ? WIRE_PONG : WIRE_PING, seq);
    w64(&w, nonce);
    return frame_end(&w);
}
