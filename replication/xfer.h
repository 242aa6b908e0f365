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

struct xfer_stats {
    uint64_t data_blocks, zero_blocks, frames, bytes;
};

/* Send the delta of VOLUME from snapshot FROM (NULL: from nothing) to TO, as gens FROM_GEN
 * to TO_GEN, from block RESUME on.  *SEQ is the next frame number (advanced). */
int xfer_send(struct chan *c, uint32_t *seq, struct vv_pool *p, const char *volume,
              const char *from, const char *to, uint64_t resume, struct xfer_stats *st,
              struct vv_err *e);

/* Receive one delta into volume REPLICA of P (created by the caller, of the source's size)
 * and make it point snapshot POINT.  RX: the decoder state of the connection (greeted). */
int xfer_recv(struct chan *c, struct wire_rx *rx, struct vv_pool *p, const char *replica,
              const char *point, struct xfer_stats *st, struct vv_err *e);

#endif
