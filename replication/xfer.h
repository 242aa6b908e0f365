/*
 * replication/xfer.h — one delta over a channel: the sender streams it from a snapshot pair,
 * the receiver writes it into the replica volume and makes it a point.
 *
 * Sender: BEGIN (from gen, to gen, size, extent size, volume), then the delta's runs as DATA
 * frames (up to WIRE_DATA_MAX blocks, each with its xxh3-64) and ZERO frames, starting at the
 * block the receiver said it has staged up to, then END with the counts.
 * Receiver: checks each frame (wire.h) and each block's checksum, writes DATA and discards
 * ZERO runs into the replica volume, and at END commits (vv_pool_sync) and takes the point
 * snapshot POINT of the replica (one txn): the replica then reads as the source's TO.  A
 * delta cut short leaves the last point as it was; nothing of it is visible there.
 * Errors: an errno, with E saying what and naming the peer; a frame or checksum the receiver
 * refuses is EBADMSG (the caller closes the connection).
 */
#ifndef VV_REPLICATION_XFER_H
#define VV_REPLICATION_XFER_H

#include "meta/pool.h"
#include "replication/chan.h"
#include "replication/wire.h"

struct recvq;

/* counters, updated as the transfer goes (others may read them meanwhile) */
struct xfer_stats {
    _Atomic uint64_t data_blocks, zero_blocks, frames, bytes;
    _Atomic uint64_t planned; /* sender: data blocks the delta has from the resume block on */
    _Atomic uint64_t raw;     /* bytes of data blocks sent or received, before compression */
};

/* Frames from a channel, buffered and decoded against the conversation's state. */
struct xfer_in {
    struct chan *c;
    struct wire_rx rx;
    uint8_t *buf;
    void *dctx;     /* (ZSTD_DCtx) */
    struct recvq *wq; /* the receiver's writers (xfer.c), started at the first DATA frame */
    size_t start, have;
    size_t last; /* bytes of the last frame decoded */
};
/* SIDE: which side of the conversation this one is.  0 or ENOMEM. */
int xfer_in_init(struct xfer_in *in, struct chan *c, enum wire_side side);
void xfer_in_fini(struct xfer_in *in);
/* The next frame but PING/PONG into M: 0; EBADMSG (a bad frame: close), EPROTO (the peer
 * sent ERROR: E has its message), EPIPE (the peer closed), or the channel's errno. */
int xfer_next(struct xfer_in *in, struct wire_msg *m, struct vv_err *e);
/* Send the frame F (N bytes; 0: the encoder failed, EINVAL).  0 or the channel's errno. */
int xfer_out(struct chan *c, const uint8_t *f, size_t n, struct vv_err *e);

/* How a delta is sent (zero: as it is, from block 0, without waiting for an ACK). */
struct xfer_opts {
    bool travel;           /* TO travels: a SNAPSHOT frame of its name, gen, time before END */
    struct xfer_in *acks;  /* the receiver's frames: wait after BEGIN for its ACK and start at
                            * the block it names (else at RESUME) */
    uint64_t resume;
    bool zstd;             /* compress each DATA frame's blocks (zstd, level 1) when that makes
                            * them shorter */
    uint64_t bwlimit;      /* bytes per second on the wire, 0: no limit */
};

/* Send the delta of VOLUME from snapshot FROM (NULL: from nothing) to TO, as O says.  *SEQ is
 * the next frame number (advanced).  O may be NULL. */
int xfer_send(struct chan *c, uint32_t *seq, struct vv_pool *p, const char *volume,
              const char *from, const char *to, const struct xfer_opts *o,
              struct xfer_stats *st, struct vv_err *e);

/* Every EVERY bytes of data received, commit the replica's pool and call FN(ARG, B): every
 * block below B is staged, durably (so a later attempt may resume at B). */
struct xfer_checkpoint {
    uint64_t every;
    int (*fn)(void *arg, uint64_t block);
    void *arg;
};

/* a snapshot that travelled with a delta (its SNAPSHOT frame) */
struct xfer_travel {
    bool got;
    char name[WIRE_NAME_MAX + 1];
    uint64_t gen, created;
};

/* Receive the frames of the delta whose BEGIN IN has just decoded, up to its END, into H
 * (a handle on the replica REPLICA, of P): DATA written (each block's checksum checked
 * first), ZERO discarded, a SNAPSHOT into TV (may be NULL: ignored).  CP may be NULL.
 * Nothing is committed at the end: the caller makes the point, and the snapshot. */
int xfer_recv_delta(struct xfer_in *in, struct vv_pool *p, struct vv_vol *h, const char *replica,
                    const struct xfer_checkpoint *cp, struct xfer_travel *tv,
                    struct xfer_stats *st, struct vv_err *e);

/* Receive one delta (BEGIN..END) into volume REPLICA of P (created by the caller, of the
 * source's size) and make it point snapshot POINT.  IN: greeted already. */
int xfer_recv(struct xfer_in *in, struct vv_pool *p, const char *replica, const char *point,
              struct xfer_stats *st, struct vv_err *e);

#endif
