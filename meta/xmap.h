/*
 * meta/xmap.h — the extent map (format 2): versions of chunks of blocks, and the births index.
 *
 * A volume is an array of blocks of the pool's extent size (4 KiB by default), grouped in
 * chunks of XMAP_CHUNK_BLOCKS.  The map holds *versions*: one entry per (volume, chunk, birth
 * generation), saying what the txg born at that generation wrote into the chunk — a mask of
 * the blocks it defines, which of those it made zeros (discards), their slots (stored as runs:
 * what is written together is allocated together) and one xxh3-64 checksum per data block.
 *
 *   Reading block b of a chunk as of generation g: the newest version born at or before g
 *   whose mask has b decides (zeros, or a slot and its checksum); none: the block reads as
 *   zeros.  One seek, then a walk back over older versions only while b is not yet found.
 *   The live volume is "as of XMAP_LIVE".
 *
 *   Versions no snapshot can see are merged when a txg commits: a chunk has at most one
 *   version born after its volume's newest snapshot generation (snap_gen), so without
 *   snapshots every chunk is one entry and a lookup is one seek.  Versions born at or before
 *   snap_gen are kept as they are (deltas) for the snapshots that see them.
 *
 *   births: one row per version, keyed (volume, birth, chunk): "which chunks changed between
 *   gen a and gen b" is a range scan, O(changes) — what replication and snapshot deletion use.
 *
 * Encodings (this file's xmap.c is the only code that knows them):
 *   xmap    key (vol u64, chunk u64, birth u64) big-endian, so LMDB orders by volume, chunk,
 *           then birth.  Value, little-endian:
 *             u8 encoding (1), u8 0, u16 nruns, u32 0, u64 defined, u64 zero,
 *             nruns x u64 run (slot in bits 0-47, length in bits 48-63),
 *             ndata x u64 xxh3-64 checksum,
 *           where the data blocks (defined & ~zero) take, in ascending block order, the slots
 *           of the runs one after the other, and ndata = popcount(defined & ~zero).
 *   xbirths key (vol u64, birth u64, chunk u64) big-endian, empty value.
 *
 * Invariants (vvfs fsck checks them): defined != 0; zero is a subset of defined; the runs
 * cover exactly the data blocks, with slots inside the pool, each referenced once in the
 * pool; no block at or past the volume's end is defined; every version has its births row
 * and every births row its version; at most one version per chunk is born after snap_gen.
 * A chunk's oldest version may have zero bits: in a clone they hide the origin's blocks,
 * elsewhere they are left over from deleted snapshots and read the same as nothing.
 *
 * Concurrency: these functions do no locking of their own.  They work inside the caller's
 * LMDB txn (read txns for lookups; the one write txn of a commit or volume operation for
 * changes), and returned data is copied out: nothing points into LMDB after they return.
 * Errors: 0 or a positive errno (ENOENT where stated; EIO for a malformed entry, logged;
 * otherwise kv_err() of LMDB's code).
 */
#ifndef VV_META_XMAP_H
#define VV_META_XMAP_H

#include "meta/kv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XMAP_CHUNK_BLOCKS 64u /* blocks per chunk: one bit each in a u64 mask */
#define XMAP_CHUNK_SHIFT 6u
#define XMAP_LIVE UINT64_MAX  /* "as of" the newest version */
#define XMAP_SLOT_NONE UINT64_MAX
#define XMAP_SLOT_MAX ((1ULL << 48) - 1)
/* largest encoded value: header, one run per block, a checksum per block */
#define XMAP_VAL_MAX (24u + 16u * XMAP_CHUNK_BLOCKS)

struct xkey {
    uint64_t vol, chunk, birth;
};

struct xmap {
    MDB_dbi map, births, dead;
    uint64_t nslots; /* slots in the pool: a slot at or past it is corruption */
};

/* One version of a chunk, decoded.  slot[b] and csum[b] are meaningful for data blocks only
 * (bit b set in defined, clear in zero). */
struct xver {
    uint64_t defined, zero;
    uint64_t slot[XMAP_CHUNK_BLOCKS];
    uint64_t csum[XMAP_CHUNK_BLOCKS];
};

/* A chunk as a reader sees it at some generation: data marks the blocks that have a slot;
 * every other block reads as zeros. */
struct xview {
    uint64_t data;
    uint64_t slot[XMAP_CHUNK_BLOCKS];
    uint64_t csum[XMAP_CHUNK_BLOCKS];
};

static inline uint64_t xmap_datamask(const struct xver *v)
{
    return v->defined & ~v->zero;
}

/*
 * A clone reads through its origins: what its own versions leave undecided (neither data
 * nor zeros) comes from the snapshot it was made from, the origin volume as of that
 * snapshot's gen, and so on up the chain.  One layer per origin, nearest first; a layer
 * applies only to blocks below LIMIT (the origin's size then, lowered when the clone
 * shrinks: a block that was cut off never comes back from the origin).  LIMIT may be
 * lowered while readers use the layer (atomically; both values are right for them).
 */
struct xlayer {
    uint64_t vol, as_of;
    uint64_t limit; /* blocks */
};
#define XMAP_CHAIN_MAX 32 /* origins of a clone, at most: a clone of a clone of ... */

/* xmap_apply, xmap_merge_after: the volume is a clone, so zeros hide its origin's blocks and
 * stay even where none of its own versions is older */
#define XMAP_KEEP_ZERO 1u

/* Open (FLAGS = MDB_CREATE: create when missing) the three databases in TXN. */
int xmap_open(MDB_txn *txn, unsigned flags, uint64_t nslots, struct xmap *x);

/*
 * The view of (VOL, CHUNK) as of generation AS_OF (XMAP_LIVE: newest), for the blocks in
 * WANT (others are left out of out->data).  CUR is a cursor on x->map in the caller's txn.
 * Walks back over versions only until every wanted block is decided.  Never ENOENT: a chunk
 * without versions is all zeros.
 */
int xmap_view(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
              uint64_t as_of, uint64_t want, struct xview *out);
/* xmap_next_chunk for VOL read through its NO origins O (below their limits): the first
 * chunk >= CHUNK that VOL or an origin has a version of, or ENOENT. */
int xmap_next_chunk_chain(const struct xmap *x, MDB_cursor *cur, uint64_t vol,
                          const struct xlayer *o, unsigned no, uint64_t chunk,
                          uint64_t *next_chunk);
/* The same through the NO origins O (nearest first): blocks VOL leaves undecided are looked
 * up in each origin in turn (where below its limit).  xmap_view is this with NO = 0. */
int xmap_view_chain(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                    uint64_t as_of, const struct xlayer *o, unsigned no, uint64_t want,
                    struct xview *out);

/*
 * Does (VOL, CHUNK) have any version born at or before AS_OF?  (SEEK_DATA-style skips.)
 * Returns 0 and sets *NEXT_CHUNK to the first chunk >= CHUNK of VOL that has a version (any
 * birth), or ENOENT when there is none.
 */
int xmap_next_chunk(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                    uint64_t *next_chunk);

/*
 * Record what txg T wrote into (VOL, CHUNK): DELTA->defined blocks, of which DELTA->zero are
 * discards and the rest data with DELTA->slot/csum.  SNAP_GEN: the volume's newest snapshot
 * generation: versions born after it are merged into T's; blocks of versions born at or
 * before it that T hides go on T's dead list (a snapshot sees them).  FLAGS: XMAP_KEEP_ZERO.
 * Appends the slots that T superseded and nobody sees any more to FREED, the new data slots
 * to SET, and adds the change in the volume's data blocks to CNT->used and the data blocks it
 * put on dead lists to CNT->hidden.  Write txn; CUR a cursor on x->map in it.
 */
struct slot_list;
struct xcount {
    int64_t used;    /* data blocks of the volume, added (or removed: negative) */
    uint64_t hidden; /* data blocks put on dead lists (hidden from the live volume) */
};
int xmap_apply(const struct xmap *x, MDB_txn *txn, MDB_cursor *cur, uint64_t vol,
               uint64_t chunk, uint64_t t, uint64_t snap_gen, unsigned flags,
               const struct xver *delta, struct slot_list *freed, struct slot_list *set,
               struct xcount *cnt);

/*
 * Remove every block of VOL at or past block FROM (all versions), at most BUDGET versions per
 * call (0: no limit).  Data slots go to FREED, *USED gets the data blocks removed (negative).
 * *DONE is set when nothing is left past FROM.  Write txn.
 */
int xmap_drop(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t from,
              size_t budget, struct slot_list *freed, int64_t *used, bool *done);

/*
 * Dead lists: a row per (volume, gen k, chunk, birth b) with the mask of the blocks of
 * version b that the txg of gen k hid from the live volume while a snapshot still saw them.
 * Block x of version b is seen by exactly the snapshots with gen in [b, k).  So when the
 * snapshot of gen S is deleted, with P the gen of the next older one (0: none) and N that of
 * the next newer (XMAP_LIVE: none), the rows with k in (S, N] and b in (P, S] are what only it
 * saw: xmap_dead_release() frees those blocks and drops the rows.  O(rows in (S, N]).
 */
struct xdead {
    uint64_t vol, k, chunk, birth;
    uint64_t mask;
};
/*
 * One bounded step of that: at most BUDGET rows (0: no limit) from *POS (where the last
 * step stopped; zeroed: from the start), freeing data slots to FREED (*USED: minus the data
 * blocks).  *DONE when every row in (S, N] was seen.  Write txn.
 */
int xmap_dead_release(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t p_gen,
                      uint64_t s_gen, uint64_t n_gen, struct xdead *pos, size_t budget,
                      struct slot_list *freed, int64_t *used, bool *done);
/*
 * After the newest snapshot was deleted and released, the volume's snap_gen is P (the gen of
 * the next older one, or 0): a chunk may then have several versions born after P (one per
 * snapshot deleted since P was taken, and the newest).  Merge each chunk's into its newest,
 * walking the births after P from *POS, at most BUDGET rows.  FLAGS: XMAP_KEEP_ZERO.
 * Write txn.
 */
int xmap_merge_after(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t p_gen,
                     unsigned flags, struct xkey *pos, size_t budget, bool *done);
/* *MASK gets the blocks of (VOL, CHUNK) that versions born after AFTER define (what changed
 * since then).  CUR: a cursor on x->map. */
int xmap_changed_since(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                       uint64_t after, uint64_t *mask);
/* ... by versions born in (AFTER, UPTO] (what a delta from snapshot AFTER to UPTO holds: a
 * snapshot's gen keeps the versions born after the one before it apart) */
int xmap_changed_between(const struct xmap *x, MDB_cursor *cur, uint64_t vol, uint64_t chunk,
                         uint64_t after, uint64_t upto, uint64_t *mask);
/* *BLOCKS gets the data blocks that the dead-list rows of VOL with k in (S, N] and birth in
 * (P, S] hold: what only the snapshot of gen S sees (its delete frees exactly those), with P
 * and N as for xmap_dead_release.  Read or write txn; O(rows with k in (S, N]). */
int xmap_dead_count(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t p_gen,
                    uint64_t s_gen, uint64_t n_gen, uint64_t *blocks);
/* fsck: step CUR (on x->dead) and decode; ENOENT at the end, EBADMSG for a bad row */
int xmap_dead_cursor_get(MDB_cursor *cur, MDB_cursor_op op, struct xdead *d);

/* Walking the births index: the chunks of VOL with a version born in (AFTER, UPTO], in
 * birth order, then chunk order.  The cursor lives in the caller's txn. */
struct xmap_births {
    MDB_cursor *cur;
    uint64_t vol, after, upto;
    bool started;
};
int xmap_births_open(const struct xmap *x, MDB_txn *txn, uint64_t vol, uint64_t after,
                     uint64_t upto, struct xmap_births *c);
/* 0 with the next (birth, chunk), or ENOENT at the end */
int xmap_births_next(struct xmap_births *c, uint64_t *birth, uint64_t *chunk);
void xmap_births_close(struct xmap_births *c);

/* ---- raw access, for fsck and the format upgrade ------------------------------------------ */

/*
 * Step CUR (on x->map) with OP (MDB_FIRST, MDB_NEXT...) and decode what it lands on.
 * ENOENT at the end; EBADMSG for an entry that does not decode (K holds what could be read,
 * *BAD a reason); the cursor stays on it so the walk can go on.
 */
int xmap_cursor_get(const struct xmap *x, MDB_cursor *cur, MDB_cursor_op op, struct xkey *k,
                    struct xver *v, const char **bad);
/* Does the births row of version K exist?  0 yes, ENOENT no. */
int xmap_births_has(const struct xmap *x, MDB_txn *txn, const struct xkey *k);
/* Walk every births row: 0 with the next row in *K, ENOENT at the end, EBADMSG for a bad key. */
int xmap_births_cursor_get(MDB_cursor *cur, MDB_cursor_op op, struct xkey *k);
/* Version K decoded into V: 0, ENOENT, or EIO (does not decode; logged). */
int xmap_get(const struct xmap *x, MDB_txn *txn, const struct xkey *k, struct xver *v);
/* Does version K exist in the map?  0 yes, ENOENT no. */
int xmap_has(const struct xmap *x, MDB_txn *txn, const struct xkey *k);
/* Store version V of K as it is (no merging) with its births row (the format upgrade). */
int xmap_put_raw(const struct xmap *x, MDB_txn *txn, const struct xkey *k,
                 const struct xver *v);

#endif
