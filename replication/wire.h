/*
 * replication/wire.h — the replication wire protocol, version 1: frames, their encoder and a
 * decoder that validates every frame against the state of the conversation.
 *
 * A connection carries frames in both directions.  (The encryption layer, replication/chan,
 * carries each frame in one authenticated record; this layer neither knows nor needs it.)
 * A frame is a 16-byte header, big-endian, then the payload:
 *
 *     u32 magic "VVRP"   u8 version (1)   u8 type   u16 flags (WIRE_F_ZSTD, on DATA only)
 *     u32 seq            (0, 1, 2, ... per direction: a gap or a repeat is an error)
 *     u32 len            (payload bytes, at most WIRE_PAYLOAD_MAX)
 *
 * Payloads (all integers big-endian; NAME is u8 length + bytes, a valid vvfs name):
 *   HELLO      u16 min version, u16 max version, u8 role, u8[3] 0, u8[16] pool id,
 *              u64 session id, NAME session            (sender -> receiver, first frame)
 *   WELCOME    u16 version, u8[2] 0, u8[16] pool id, u64 session id,
 *              u64 gen the replica holds (0: none), u64 resume block (0: from the start)
 *                                                      (receiver -> sender, first frame)
 *   BEGIN      u64 from gen, u64 to gen (>= from), u64 volume size (bytes, multiple of
 *              4096), u32 extent size (power of two, 4 KiB..1 MiB), u32 0, NAME volume
 *              (opens a delta: the volume from "from" to "to")
 *   DATA       u64 first block, u32 count (1..WIRE_DATA_MAX), u32 0, count x u64 xxh3-64,
 *              count x extent-size bytes         (blocks: ascending within a delta); with
 *              WIRE_F_ZSTD the blocks are one zstd frame, shorter than they are (the
 *              receiver decompresses, then checks each block's checksum)
 *   ZERO       u64 first block, u64 count (>= 1)                 (discards: tombstones)
 *   SNAPSHOT   u64 gen (in [from, to]), u64 created (unix s), NAME   (a snapshot that travels)
 *   END        u64 data blocks, u64 zero blocks, u64 snapshots  (closes the delta: the
 *              counts of what it held, which the receiver checks)
 *   ACK        u64 gen applied, u64 block staged  (receiver -> sender: progress)
 *   ERROR      u32 errno-like code, NAME-like u16 length + message (printable ASCII)
 *   PING/PONG  u64 nonce
 *   COMMIT     u64 gen, u64 created (unix s), u32 deltas, u32 keep   (sender -> receiver:
 *              the deltas since the last commit, the last of them to GEN, make one point:
 *              make it the replica's; then keep the KEEP newest snapshots that travelled,
 *              0: all)
 *
 * Order, checked by the decoder: the first frame is HELLO (on the receiver's side) or WELCOME
 * (on the sender's); then, from the sender, BEGIN, DATA/ZERO/SNAPSHOT with block ranges that
 * ascend and stay inside the volume, END; after one or more deltas (a chain, one for each
 * snapshot that travels, or one for each volume of a group), COMMIT of the last one's gen
 * and their number; PING anywhere after the first frame; ERROR ends the conversation.
 * The receiver answers each BEGIN with ACK (the gen, and the block from which it wants the
 * delta: what an earlier attempt staged is not sent again) and each COMMIT with ACK (the gen,
 * block 0) once the point is durable.  Anything else — a bad magic, version, type, flag, length, count, name, range
 * or order — is refused with a reason, and the caller closes the connection.
 */
#ifndef VV_REPLICATION_WIRE_H
#define VV_REPLICATION_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0x56565250u /* "VVRP" */
#define WIRE_VERSION 1u
#define WIRE_HDR 16u
#define WIRE_DATA_MAX 256u                     /* blocks per DATA frame */
#define WIRE_EXTENT_MAX (1u << 20)
/* the largest payload: a DATA frame of 256 blocks of 4 KiB, or 4 of 1 MiB */
#define WIRE_PAYLOAD_MAX (16u + 8u * WIRE_DATA_MAX + (1u << 20) * 4u)
#define WIRE_NAME_MAX 64u
#define WIRE_MSG_MAX 512u
#define WIRE_F_ZSTD 1u /* a DATA frame's blocks are zstd-compressed */

enum wire_type {
    WIRE_HELLO = 1,
    WIRE_WELCOME,
    WIRE_BEGIN,
    WIRE_DATA,
    WIRE_ZERO,
    WIRE_SNAPSHOT,
    WIRE_END,
    WIRE_ACK,
    WIRE_ERROR,
    WIRE_PING,
    WIRE_PONG,
    WIRE_COMMIT,
    WIRE_TYPE_MAX = WIRE_COMMIT
};
const char *wire_type_to_string(unsigned type);

enum wire_role { WIRE_ROLE_SENDER = 1 };

/* A decoded frame.  Pointers point into the caller's buffer. */
struct wire_msg {
    uint8_t type;
    uint16_t flags;
    uint32_t seq;
    union {
        struct {
            uint16_t vmin, vmax;
            uint8_t role;
            uint8_t pool[16];
            uint64_t session;
            char name[WIRE_NAME_MAX + 1];
        } hello;
        struct {
            uint16_t version;
            uint8_t pool[16];
            uint64_t session, gen, resume;
        } welcome;
        struct {
            uint64_t from, to, size;
            uint32_t extent_size;
            char volume[WIRE_NAME_MAX + 1];
        } begin;
        struct {
            uint64_t block;
            uint32_t count;
            const uint8_t *csums; /* count x u64 big-endian */
            const uint8_t *data;  /* count x extent size, or (WIRE_F_ZSTD) a zstd frame */
            size_t len;           /* bytes at data */
        } data;
        struct {
            uint64_t block, count;
        } zero;
        struct {
            uint64_t gen, created;
            char name[WIRE_NAME_MAX + 1];
        } snapshot;
        struct {
            uint64_t data, zero, snapshots;
        } end;
        struct {
            uint64_t gen, block;
        } ack;
        struct {
            uint32_t code;
            char msg[WIRE_MSG_MAX + 1];
        } error;
        struct {
            uint64_t nonce;
        } ping;
        struct {
            uint64_t gen, created;
            uint32_t deltas, keep;
        } commit;
    } u;
};

/* What one side of a connection expects next (zero it, then set SIDE). */
enum wire_side { WIRE_SIDE_RECEIVER = 1, WIRE_SIDE_SENDER };
struct wire_rx {
    enum wire_side side;
    uint32_t next_seq;
    bool greeted;         /* the first frame came */
    bool in_delta;        /* between BEGIN and END */
    bool closed;          /* an ERROR came: nothing more */
    uint64_t from, to, blocks; /* of the open delta: gens, size in blocks */
    uint32_t extent_size;
    uint64_t next_block;  /* DATA and ZERO start at or after it */
    uint64_t ndata, nzero, nsnaps; /* counted in the open delta, for END */
    uint64_t snap_gen;    /* SNAPSHOT gens ascend too */
    uint32_t deltas;      /* closed since the last COMMIT, the last to... */
    uint64_t commit_to;   /* ...this gen */
};

/*
 * Decode the frame at the start of BUF (LEN bytes) into M, checking it against RX (and
 * advancing RX).  Returns 0 with *USED = the frame's size; EAGAIN when BUF holds only part of
 * a frame (nothing consumed; the header, once complete, is checked first, so a bad length is
 * refused before its payload arrives); EBADMSG with *WHY (a static sentence) for anything
 * malformed, oversized or out of order — RX is then unusable and the connection must close.
 * Never reads past BUF + LEN.
 */
int wire_decode(struct wire_rx *rx, const uint8_t *buf, size_t len, struct wire_msg *m,
                size_t *used, const char **why);

/*
 * Encoding: each returns the frame's size, or 0 when CAP is too small or an argument is
 * invalid (a name that is not a vvfs name, a count out of range).  SEQ: the frame's number
 * (the caller counts).  DATA takes the checksums as host integers and copies the data.
 */
size_t wire_put_hello(uint8_t *b, size_t cap, uint32_t seq, uint16_t vmin, uint16_t vmax,
                      const uint8_t pool[16], uint64_t session, const char *name);
size_t wire_put_welcome(uint8_t *b, size_t cap, uint32_t seq, uint16_t version,
                        const uint8_t pool[16], uint64_t session, uint64_t gen,
                        uint64_t resume);
size_t wire_put_begin(uint8_t *b, size_t cap, uint32_t seq, uint64_t from, uint64_t to,
                      uint64_t size, uint32_t extent_size, const char *volume);
size_t wire_put_data(uint8_t *b, size_t cap, uint32_t seq, uint64_t block, uint32_t count,
                     uint32_t extent_size, const uint64_t *csums, const void *data);
/* DATA with its blocks as the zstd frame Z (ZLEN bytes, fewer than the blocks) */
size_t wire_put_data_zstd(uint8_t *b, size_t cap, uint32_t seq, uint64_t block, uint32_t count,
                          uint32_t extent_size, const uint64_t *csums, const void *z,
                          size_t zlen);
size_t wire_put_zero(uint8_t *b, size_t cap, uint32_t seq, uint64_t block, uint64_t count);
size_t wire_put_snapshot(uint8_t *b, size_t cap, uint32_t seq, uint64_t gen, uint64_t created,
                         const char *name);
size_t wire_put_end(uint8_t *b, size_t cap, uint32_t seq, uint64_t data, uint64_t zero,
                    uint64_t snapshots);
size_t wire_put_ack(uint8_t *b, size_t cap, uint32_t seq, uint64_t gen, uint64_t block);
size_t wire_put_error(uint8_t *b, size_t cap, uint32_t seq, uint32_t code, const char *msg);
size_t wire_put_ping(uint8_t *b, size_t cap, uint32_t seq, bool pong, uint64_t nonce);
size_t wire_put_commit(uint8_t *b, size_t cap, uint32_t seq, uint64_t gen, uint64_t created,
                       uint32_t deltas, uint32_t keep);

#endif
