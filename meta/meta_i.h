/*
 * meta/meta_i.h — private to meta/: the pool's in-memory state and on-disk encodings.
 *
 * Lock order (outer to inner; never take an outer lock while holding an inner one):
 *     group_mu  >  volume.op_mu  >  commit_mu  >  vol_mu  >  stripe.mu  >  txg_mu  >  alloc_mu
 * (an operation claims one volume, see vol_claim; only a group operation, holding group_mu,
 * claims several, in ascending id order)
 * reuse_lock is taken (shared) by readers around lookup+pread and (exclusive, empty section)
 * by the committer as a barrier; nothing else is taken inside its exclusive section.
 * No data-file I/O and no LMDB commit happens under stripe.mu, txg_mu or alloc_mu.
 */
#ifndef VV_META_META_I_H
#define VV_META_META_I_H

#include "meta/pool.h"
#include "meta/kv.h"
#include "meta/xmap.h"
#include "util/name.h"

#include <limits.h>
#include <stddef.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#define SLOT_NONE UINT64_MAX
#define DROP_NONE UINT64_MAX
#define DATA_FILES_MAX 64
#define DATA_FILES_DEFAULT 8
#define NSTRIPES 64
#define DIRTY_COUNT_BOUND 262144 /* dirty blocks that trigger a commit (~8 MiB of entries) */

/* ---- on-disk encodings ------------------------------------------------------------------ */

/*
 * xmap, xbirths: the extent map, see xmap.h (the only code that encodes its keys and values)
 * volumes:  key vol u64 big-endian; value struct vol_rec (little-endian).  Records grow at
 *           the end: a reader takes the fields a record has (at least VOL_REC_MIN bytes) and
 *           zeros for the ones it lacks, and ignores what it does not know
 * volnames: key name bytes (no NUL); value vol u64 big-endian
 * spacemap: key chunk u64 big-endian; value SPACEMAP_CHUNK_BYTES bitmap, bit set = slot used
 * config:   key ASCII name; value u64 little-endian
 * Format 1 (upgraded in place by upgrade.c) had `extents` and `births` with an entry per block.
 */
#define VOL_REC_VERSION 1
struct vol_rec {
    uint32_t version;
    uint32_t flags;
    uint64_t size;
    uint64_t created;
    uint64_t create_gen;
    uint64_t used_extents;
    uint64_t snap_gen; /* newest snapshot generation; versions born <= it are shared */
    char name[72];
    /* from here on: fields format 1 did not have (a shorter record reads them as 0) */
    uint64_t drop_from; /* VOL_F_DROP: blocks at and past it are being freed (reap.c) */
    uint64_t mtime_ns;  /* last write, discard or resize (unix ns); 0: never, use created */
    /* format 4: a clone (VOL_F_CLONE) reads what it has not written from its origin */
    uint64_t origin_vol;    /* the volume it was cloned from */
    uint64_t origin_snap;   /* that volume's snapshot (id), which the clone pins */
    uint64_t origin_gen;    /* the snapshot's gen */
    uint64_t origin_blocks; /* blocks below it come from the origin (its size then, lowered
                             * by a shrink of the clone) */
    uint64_t group_id;      /* the consistency group it is in, 0: none */
    uint64_t dead_blocks;   /* of used_extents, the data blocks on dead lists: hidden from
                             * the live volume, held by snapshots only */
    /* format 5: a replica (VOL_F_REPLICA) is written by its replication session only */
    uint64_t repl_session;  /* the session's id */
    uint64_t point_snap;    /* its newest point (a snapshot id), what users read; 0: none */
};
#define VOL_REC_MIN offsetof(struct vol_rec, drop_from) /* format 1's record */
#define VOL_F_DELETING 1u /* deleted: no name any more, its blocks are being freed */
#define VOL_F_DROP 2u     /* drop_from is set */
#define VOL_F_CLONE 4u    /* origin_* are set */
#define VOL_F_REPLICA 8u  /* repl_session, point_snap are set */

#define SPACEMAP_CHUNK_BYTES 1024u
#define SPACEMAP_CHUNK_SLOTS (SPACEMAP_CHUNK_BYTES * 8u)

/* ---- in-memory state -------------------------------------------------------------------- */

struct vv_volume {
    uint64_t id;
    char name[VV_NAME_MAX + 1];       /* vol_mu */
    _Atomic uint64_t size;             /* written under vol_mu, read anywhere */
    uint64_t created, create_gen;
    uint64_t used_extents;             /* committed count; commit_mu (read: vol_mu too) */
    uint64_t dead_blocks;              /* of those, held by snapshots only; as used_extents */
    uint64_t snap_gen;                 /* commit_mu */
    uint32_t open_count;               /* vol_mu */
    bool busy;                         /* delete/shrink in progress: opens refused; vol_mu */
    bool deleting;                     /* on p->dying, not in p->vols; written with commit_mu
                                        * and vol_mu held, read under either */
    uint64_t drop_from;                /* blocks at/past it are being freed, or DROP_NONE;
                                        * commit_mu */
    _Atomic uint64_t mtime_ns;         /* last write, discard or resize (unix ns), 0: never;
                                        * set anywhere, persisted with the record */
    /* Lifetime: one reference for being in p->vols or p->dying, one per claim (vol_claim)
     * and one per open handle.  The last vol_put frees the struct, so a pointer is good
     * exactly as long as a reference taken under vol_mu (or commit_mu, for p->dying). */
    _Atomic uint32_t refs;
    pthread_mutex_t op_mu;             /* held by the one volume operation working on it */
    /* snapshots, oldest (lowest gen, then id) first; read under vol_mu, changed with
     * commit_mu and vol_mu held (snap.c) */
    struct vsnap *snaps;
    size_t nsnaps, snaps_cap;
    /* a clone: its origin (set at creation, never changed) and the chain of layers its reads
     * fall through, nearest first (origins[0] is the origin as of origin_gen; the limits
     * fall along the chain).  origins[i].limit is lowered (atomically) by a shrink. */
    bool clone;
    uint64_t origin_vol, origin_snap, origin_gen;
    uint64_t origin_blocks; /* as in the record; commit_mu (then copied into the limits) */
    uint64_t group_id;      /* 0: in no group; read under vol_mu or group_mu, changed with
                             * group_mu, commit_mu and vol_mu held (group.c) */
    struct xlayer *origins;
    unsigned norigins;
    /* a replica: written only by its replication session; users read its point.  Changed
     * with the volume claimed, commit_mu and vol_mu held (replica.c); read under vol_mu */
    bool replica;
    uint64_t repl_session, point_snap;
};

struct vsnap {
    uint64_t id;      /* unique in the pool, never reused */
    uint64_t gen;     /* the volume as of this generation */
    uint64_t created; /* unix seconds */
    uint64_t size;    /* the volume's size then */
    char name[VV_NAME_MAX + 1];
    uint32_t open_count; /* vol_mu */
    /* what only this snapshot holds (its delete frees it), computed on demand and kept until
     * a commit or a neighbour's delete changes it: valid while excl_seq is unchanged */
    uint64_t excl;       /* data blocks; vol_mu */
    bool excl_valid;     /* vol_mu */
    uint64_t excl_seq;   /* vol_mu: bumped by every change to it */
};

/* snapshots: key (vol u64, snapshot id u64) big-endian; value struct snap_rec */
#define SNAP_REC_VERSION 1
struct snap_rec {
    uint32_t version;
    uint32_t flags;
    uint64_t gen;
    uint64_t created;
    uint64_t size;
    char name[72];
};
#define SNAP_F_DELETING 1u /* being deleted: its blocks are being freed (snap.c) */

/* groups: key group id u64 big-endian; value struct group_rec (grows at the end) */
#define GROUP_REC_VERSION 1
struct group_rec {
    uint32_t version;
    uint32_t flags;
    uint64_t created;
    char name[72];
};

struct vgroup {
    uint64_t id;
    uint64_t created;
    char name[VV_NAME_MAX + 1];
};

/*
 * What an uncommitted txg wrote into one chunk of a volume: for each block in MASK an entry
 * (at the block's rank in MASK: e[popcount(mask & (bit - 1))]) with its slot, or no slot if
 * the block is in ZERO (discarded in this txg).  FILLING blocks are being written for the
 * first time in this txg: readers and writers of them wait (stripe.filled).  CSUM_OK blocks
 * have e[].csum = the checksum of their slot as it now is; the commit computes the others.
 * All fields: the stripe's mu.
 */
struct dblk {
    uint64_t slot; /* SLOT_NONE for a ZERO block */
    uint64_t csum;
};

struct dchunk {
    struct dchunk *next; /* hash chain */
    uint64_t vol, chunk;
    uint64_t txg;
    uint64_t mask, zero, filling, csum_ok;
    uint32_t cap;        /* entries allocated in e */
    struct dblk *e;
};

struct dirty_table {
    struct dchunk **buckets;
    size_t nbuckets; /* power of two, or 0 */
    size_t count;
};

struct stripe {
    pthread_mutex_t mu;
    pthread_cond_t filled;        /* some entry left DIRTY_FILLING */
    struct dirty_table tab[2];    /* indexed by txg & 1: the open and the committing txg */
} __attribute__((aligned(64)));

struct vv_pool {
    char dir[PATH_MAX];
    unsigned flags;
    int lock_fd;
    /* the data: slots go to the files in chunks of DATA_CHUNK_SLOTS (slot_file/slot_pos).
     * Several files because a buffered write holds its file's inode lock: one file would
     * serialize all writers (measured: 26% of daemon CPU spinning on it with one file).
     * Chunks, so that consecutive slots are contiguous in one file and a run of them is one
     * pread/pwrite. */
    int data_fd[DATA_FILES_MAX];
    /* The same files opened O_DIRECT (-1: the filesystem refused), for whole-extent runs:
     * a sequential write then costs no copy into the page cache (see ARCHITECTURE.md). */
    int dio_fd[DATA_FILES_MAX];
    uint32_t dio_mem_align;    /* buffer alignment direct I/O needs (statx), a power of two */
    unsigned ndata;
    uint32_t chunk_slots;      /* consecutive slots per data file chunk (power of two) */
    unsigned chunk_shift;
    MDB_env *env;
    MDB_dbi db_config, db_volumes, db_volnames, db_spacemap, db_snapshots, db_groups, db_repl;
    struct xmap xmap;
    uint32_t upgraded_from;    /* format this open upgraded the pool from, or 0 */

    uint32_t extent_size;
    unsigned extent_shift;
    uint64_t capacity;
    uint64_t nslots;

    /* volumes */
    pthread_rwlock_t vol_mu;
    struct vv_volume **vols; /* vol_mu */
    size_t nvols, vols_cap;  /* vol_mu */
    uint64_t next_vol_id;    /* commit_mu */
    uint64_t next_snap_id;   /* commit_mu */
    /* consistency groups (group.c): every group operation holds group_mu, the outermost
     * lock; the table is read under vol_mu and changed with commit_mu and vol_mu held */
    pthread_mutex_t group_mu;
    struct vgroup *groups;
    size_t ngroups;
    uint64_t next_group_id;  /* commit_mu */
    uint8_t id[16];          /* the pool's id (config pool_id_0/1, big-endian) */
    struct snap_pending {    /* snapshot deletes a crash interrupted (snap_load, snap_resume) */
        uint64_t vol;
        struct vsnap s;
    } *snap_pend;
    size_t nsnap_pend;

    /* space: in-memory bitmap, bit set = slot not allocatable (used, dirty, or freed by a
     * txg that has not committed yet).  Every clear bit's slot is a hole in the data file. */
    pthread_mutex_t alloc_mu;
    uint64_t *inuse;          /* alloc_mu */
    uint64_t nused;           /* alloc_mu: bits set in inuse */
    uint64_t reserve;         /* slots only overwrites may take (set at open) */
    _Atomic bool host_full;   /* the host filesystem has no room for metadata: new data is
                               * refused (env_keep_room) */
    uint64_t rotor;           /* alloc_mu: next word to search */
    struct slot_list dropped[2]; /* alloc_mu: slots released by discards in txg t (t & 1) */
    uint64_t *zeroed;         /* alloc_mu: free slots known to be holes */
    struct slot_list reclaim_q[2]; /* alloc_mu: freed, not yet punched; [round & 1] newest */
    size_t reclaim_head[2];   /* alloc_mu: reuse pops from here (FIFO: see alloc_slot) */
    unsigned reclaim_round;   /* alloc_mu */
    bool reclaim_stop;        /* alloc_mu */
    pthread_cond_t reclaim_wanted;
    pthread_t reclaimer;
    bool reclaimer_running;

    /* transaction groups */
    pthread_mutex_t txg_mu;
    pthread_cond_t txg_quiesced;   /* holds of a closed txg fell to 0 */
    pthread_cond_t txg_committed;  /* committed_txg advanced (or the pool was poisoned) */
    pthread_cond_t commit_wanted;  /* someone asked for a commit, or dirty data passed a bound */
    uint64_t open_txg;             /* txg_mu */
    uint64_t holds[2];             /* txg_mu: writers inside txg t (t & 1) */
    uint64_t quiesced_txg;         /* txg_mu: highest txg with no holds left and closed */
    uint64_t committed_txg;        /* txg_mu: == pool generation */
    uint64_t want_txg;             /* txg_mu: commit requested up to this txg */
    uint64_t dirty_bytes[2];       /* txg_mu */
    uint64_t dirty_count[2];       /* txg_mu: dirty entries created in txg t (t & 1) */
    uint64_t commits;              /* txg_mu */
    int poisoned;                  /* txg_mu: errno of a failed commit; all I/O then fails */
    uint64_t poisoned_at;          /* txg_mu: when (unix seconds) */
    bool stopping;                 /* txg_mu */
    bool committer_running;
    pthread_t committer;

    uint64_t dirty_bound;          /* bytes of dirty data that trigger a commit */
    unsigned txg_interval_ms;

    /* serializes LMDB write transactions and the in-memory state they mirror */
    pthread_mutex_t commit_mu;

    /* the reaper (reap.c): frees deleted volumes and the tails of shrunk ones in bounded txns */
    struct vv_volume **dying;      /* commit_mu: deleted volumes whose blocks are being freed */
    size_t ndying, dying_cap;      /* commit_mu */
    pthread_cond_t reap_cv;        /* with commit_mu: work was added, or a step was done */
    bool reap_stop;                /* commit_mu */
    bool reap_releasing;           /* commit_mu: the reaper is punching what a step freed */
    bool reaper_running;
    pthread_t reaper;
    _Atomic uint64_t freeing;      /* blocks of pending drops not yet freed (for the status) */

    /* readers hold it shared across lookup+pread; the committer's exclusive barrier makes sure
     * no reader still uses a slot before that slot is punched and reused */
    pthread_rwlock_t reuse_lock;

    _Atomic uint64_t checksum_errors;
    _Atomic uint64_t bounced_writes;
    _Atomic uint64_t batched_ios;

    vv_volume_observer observer; /* set once before concurrent use */
    void *observer_ctx;

    /* held shared by every read txn, exclusively to remap a grown LMDB map (env.c) */
    pthread_rwlock_t map_lock;

    /* reset read txns kept for reuse (mdb_txn_renew is cheaper than begin) */
    pthread_mutex_t rtxn_mu;
    MDB_txn *rtxn_free[64];  /* rtxn_mu */
    int rtxn_n;              /* rtxn_mu */

    struct stripe stripes[NSTRIPES];
};

struct vv_vol {
    struct vv_pool *pool;
    struct vv_volume *vol;
    uint64_t as_of;     /* XMAP_LIVE for the volume; a snapshot's gen: read-only, as of it */
    uint64_t snap_id;   /* the snapshot (as_of != XMAP_LIVE) */
    uint64_t snap_size;
    /* reads each block once, in long runs (a delta's source): its reads go direct whatever
     * their length, since a first buffered read of blocks the page cache does not hold cost
     * 3.7 CPU-s per GiB here, against 0.1 direct (see ARCHITECTURE.md, "Deltas") */
    bool stream;
};

/* Slots per chunk: 16 in pools without a `chunk_slots` config key (the first format), else
 * what the key says (new pools: 1 MiB of slots, at least 16). */
#define DATA_CHUNK_SLOTS_V1 16u
#define DATA_CHUNK_BYTES (1u << 20)

/* data file of slot S: chunk (S / chunk_slots) goes to file (chunk % ndata) */
static inline unsigned slot_file(const struct vv_pool *p, uint64_t s)
{
    return (unsigned)((s >> p->chunk_shift) % p->ndata);
}

/* position of slot S in its data file, in slots */
static inline uint64_t slot_pos(const struct vv_pool *p, uint64_t s)
{
    uint64_t cs = p->chunk_slots;
    return s / (cs * p->ndata) * cs + (s & (cs - 1));
}

/* the slot at position POS of data file F (inverse of slot_file/slot_pos) */
static inline uint64_t slot_at(const struct vv_pool *p, unsigned f, uint64_t pos)
{
    uint64_t cs = p->chunk_slots;
    return ((pos >> p->chunk_shift) * p->ndata + f) * cs + (pos & (cs - 1));
}

/* slots per data file (the last chunks may lie past nslots) */
static inline uint64_t slots_per_file(const struct vv_pool *p, uint64_t nslots)
{
    uint64_t chunks = (nslots + p->chunk_slots - 1) >> p->chunk_shift;
    return (chunks + p->ndata - 1) / p->ndata * p->chunk_slots;
}

static inline int slot_fd(const struct vv_pool *p, uint64_t slot)
{
    return p->data_fd[slot_file(p, slot)];
}

static inline int slot_dio_fd(const struct vv_pool *p, uint64_t slot)
{
    return p->dio_fd[slot_file(p, slot)];
}

/* byte offset of slot SLOT (plus OFF inside it) in its data file */
static inline off_t slot_off(const struct vv_pool *p, uint64_t slot, uint64_t off)
{
    return (off_t)((slot_pos(p, slot) << p->extent_shift) + off);
}

/* vol.c: the volume table (vol_mu held for the lookups and vol_append) */
struct vv_volume *vol_new(void);                  /* one reference (the table's); NULL: ENOMEM */
void vol_ref(struct vv_volume *v);                /* V is reachable: a table lookup, a claim */
void vol_put(struct vv_volume *v);                /* no lock needed; the last one frees V */
struct vv_volume *vol_find_id(struct vv_pool *p, uint64_t id);
struct vv_volume *vol_find_name(struct vv_pool *p, const char *name);
/*
 * Claim volume NAME for one control operation (no meta lock held): a reference and its
 * op_mu, waiting while another operation has it.  On return 0, *OUT is still called NAME and
 * not deleted, and stays so until vol_unclaim(): rename and delete need the claim.  ENOENT
 * (E set) when no volume has that name.
 */
int vol_claim(struct vv_pool *p, const char *name, struct vv_volume **out, struct vv_err *e);
void vol_unclaim(struct vv_volume *v);
size_t vol_nsnaps(struct vv_pool *p, struct vv_volume *v); /* its snapshots now (vol_mu) */
/* of those, vvfs's own (names beginning with '.': replication's) */
size_t vol_nsys_snaps(struct vv_pool *p, struct vv_volume *v);
int vol_append(struct vv_pool *p, struct vv_volume *v);                /* ENOMEM */
int vol_load(struct vv_pool *p, MDB_txn *txn);                         /* at open */
/* V (new, or just loaded) is a clone of (ORIGIN as of GEN), for blocks below LIMIT: build its
 * chain of layers from ORIGIN's (vol_mu held or V not yet shared).  ENOMEM, or ELOOP when the
 * chain would pass XMAP_CHAIN_MAX. */
int vol_set_origin(struct vv_volume *v, const struct vv_volume *origin, uint64_t snap_id,
                   uint64_t gen, uint64_t limit);
/* the first volume in the table that is a clone of snapshot SNAP_ID, or NULL (vol_mu) */
struct vv_volume *vol_clone_of(struct vv_pool *p, uint64_t snap_id);
static inline unsigned vol_xflags(const struct vv_volume *v)
{
    return v->clone ? XMAP_KEEP_ZERO : 0;
}
int vol_dying_add(struct vv_pool *p, struct vv_volume *v);   /* commit_mu held; ENOMEM */
void vol_dying_remove(struct vv_pool *p, struct vv_volume *v); /* commit_mu held */
int vol_write_rec(struct vv_pool *p, MDB_txn *txn, const struct vv_volume *v);
void vol_touch(struct vv_volume *v); /* its data changed now (mtime) */

/* pool.c: add V (name and size set; for a clone, its origin) to the pool with the next id:
 * one txn, then the table, then the observer.  Takes commit_mu.  On an error (EEXIST: the
 * name is taken; E set) V is put. */
/* pool.c helpers of volume operations: a valid name and size (EINVAL/EFBIG), a pool that
 * takes changes (EROFS), the observer told of a change */
int vol_check_name(const char *name, struct vv_err *e);
int vol_check_size(uint64_t size, struct vv_err *e);
int vol_writable(struct vv_pool *p, struct vv_err *e);
void vol_notify(struct vv_pool *p, enum vv_volume_event ev, uint64_t id, const char *name,
                const char *oldname);
/* vol_claim of NAME after vol_check_name and vol_writable */
int vol_claim_to_change(struct vv_pool *p, const char *name, struct vv_volume **v,
                        struct vv_err *e);
/* with V claimed (and busy for a shrink): record SIZE, and free what lies past it */
int vol_resize_claimed(struct vv_pool *p, struct vv_volume *v, uint64_t old, uint64_t size);
int vol_insert(struct vv_pool *p, struct vv_volume *v, struct vv_volume_info *out,
               struct vv_err *e);

/* snap.c: snapshots (tables loaded at open; deletes interrupted by a crash finished there) */
int snap_load(struct vv_pool *p, MDB_txn *txn);
/* a user's snapshot name, or '.' and one (vvfs's own): 0 or EINVAL (E set) */
int snap_check_name(const char *name, struct vv_err *e);
int snap_resume(struct vv_pool *p); /* at open, before the committer starts */
int snap_open_count(struct vv_pool *p, struct vv_volume *v); /* open handles on its snapshots */
/* snapshot NAME of each of the N claimed VOLS, all of one gen, in one txn (OUT: N infos, or
 * NULL).  EEXIST when one of them has a snapshot of that name. */
int snap_create_claimed(struct vv_pool *p, struct vv_volume *const *vols, size_t n,
                        const char *name, bool point, struct vv_snapshot_info *out,
                        struct vv_err *e);
/* (POINT: the snapshots become the replicas' newest points, in the same txn) */
/* restore claimed V from its snapshot NAME; V made busy first with snap_refuse_opens (EBUSY
 * while it is open), and snap_allow_opens after */
int snap_refuse_opens(struct vv_pool *p, struct vv_volume *v, struct vv_err *e);
void snap_allow_opens(struct vv_pool *p, struct vv_volume *v);
int snap_restore_busy(struct vv_pool *p, struct vv_volume *v, const char *name,
                      struct vv_err *e);
/* a clone of one of V's snapshots (*SNAP: its name), or NULL (vol_mu) */
struct vv_volume *snap_clone_of_any(struct vv_pool *p, struct vv_volume *v, const char **snap);
/* in TXN (commit_mu held, V claimed and busy): drop every snapshot record of V */
int snap_drop_all(struct vv_pool *p, MDB_txn *txn, struct vv_volume *v);

/* replica.c: a claimed replica refuses user changes: EROFS naming WHAT (0 for others) */
int replica_refuse(const struct vv_volume *v, const char *what, struct vv_err *e);

/* group.c: groups (loaded at open, after the volumes) */
int group_load(struct vv_pool *p, MDB_txn *txn);
const struct vgroup *group_find_id(const struct vv_pool *p, uint64_t id); /* vol_mu */

/* reap.c: freeing deleted volumes and shrunk tails, in bounded txns, resumed at open */
int reap_start(struct vv_pool *p);
void reap_stop(struct vv_pool *p);
void reap_kick(struct vv_pool *p); /* commit_mu held: there is new work */
/* one bounded txn of V's pending drop (commit_mu held); slots freed go to FREED, for the
 * caller to alloc_release(); *DONE when nothing is left */
int reap_step(struct vv_pool *p, struct vv_volume *v, struct slot_list *freed, bool *done);
/* wait (at most MS milliseconds) until no drop is pending; true if none is */
bool reap_wait_idle(struct vv_pool *p, unsigned ms);

/* upgrade.c: bring a format-1 pool (DBs open, config read, nothing else loaded) to format 2
 * in bounded, resumable LMDB txns */
int upgrade_from_v1(struct vv_pool *p, struct vv_err *e);
/* format 3 -> 4, in TXN (the one that sets the format): each volume record gets the count
 * of data blocks on its dead lists (a walk of xdead: what the snapshots of format 3 hold) */
int upgrade_dead_counts(struct vv_pool *p, MDB_txn *txn);

/* alloc.c */
int alloc_init(struct vv_pool *p, MDB_txn *txn);
void alloc_fini(struct vv_pool *p);
/* a free slot, or ENOSPC; *zero: the slot is known to read as zeros (else: stale data) */
/* RESERVE: the slot replaces one that the open txg's commit frees (an overwrite), so it may
 * come from the reserve kept for overwrites */
int alloc_slot(struct vv_pool *p, uint64_t *slot, bool *zero, bool reserve);
/* 1 to MAX free slots in *N, consecutive in one data file as far as free space allows (a
 * sequential write's run), or ENOSPC; ZERO (optional) as alloc_slot's, per slot */
int alloc_run(struct vv_pool *p, size_t max, uint64_t *slots, bool *zero, size_t *n,
              bool reserve);
/* give back N slots taken by alloc_run (ZERO: what it said) and never referenced */
void alloc_unreserve(struct vv_pool *p, const uint64_t *slots, const bool *zero, size_t n);
void alloc_release(struct vv_pool *p, const struct slot_list *l);  /* free (punched later) */
/* punch now, then free (slots nobody references; no lock held; sorts L) */
void alloc_punch_release(struct vv_pool *p, struct slot_list *l);
int alloc_reclaimer_start(struct vv_pool *p);
void alloc_reclaimer_stop(struct vv_pool *p);  /* punches what is still queued */
void alloc_punch_free(struct vv_pool *p);
int alloc_persist(struct vv_pool *p, MDB_txn *txn, const struct slot_list *set,
                  const struct slot_list *clear);

/* txg.c */
int txg_start(struct vv_pool *p);
int txg_stop(struct vv_pool *p);           /* final commit */
int txg_sync(struct vv_pool *p);
int txg_hold(struct vv_pool *p, uint64_t *txg);
void txg_rele(struct vv_pool *p, uint64_t txg);
void txg_wait_quiesced(struct vv_pool *p, uint64_t txg);
/* COUNT new block mappings holding BYTES of data were added to txg TXG */
void txg_note_dirty(struct vv_pool *p, uint64_t txg, uint64_t bytes, uint64_t count);
struct stripe *stripe_of(struct vv_pool *p, uint64_t vol, uint64_t chunk);
/* dirty chunks (stripe mu held) */
struct dchunk *dchunk_find(struct dirty_table *t, uint64_t vol, uint64_t chunk);
/* find, or create empty (ENOMEM) */
int dchunk_get(struct dirty_table *t, uint64_t vol, uint64_t chunk, uint64_t txg,
               struct dchunk **out);
/* the entry of block B (bit B must be in mask) */
static inline struct dblk *dchunk_blk(struct dchunk *d, unsigned b)
{
    return &d->e[__builtin_popcountll(d->mask & ((1ULL << b) - 1))];
}
/* add block B (not in mask) with SLOT; ENOMEM */
int dchunk_add(struct dchunk *d, unsigned b, uint64_t slot);
/* take block B out of mask (a first write of it in this txg failed) */
void dchunk_remove(struct dchunk *d, unsigned b);
void dirty_table_free(struct dirty_table *t);

/* aio.c: several direct I/Os at once from one thread (see its design notes) */
#define AIO_BATCH_MAX 64
struct aio_op {
    int fd;
    void *buf;
    size_t len;
    off_t off;
    size_t done; /* out: bytes done */
    int err;     /* out: the errno of an I/O that failed */
};
/* Run N (at most AIO_BATCH_MAX) reads or writes at once and wait for all of them.  Each
 * op's DONE and ERR tell how it went: DONE < LEN with ERR 0 (short, or not submitted) leaves
 * the rest to the caller.  ENOSYS: this thread has no AIO context; nothing was done. */
int aio_batch(struct aio_op *ops, size_t n, bool write);

/* env.c: the LMDB environment (see its design notes for map_lock) */
uint64_t env_map_size(const struct vv_pool *p, uint64_t nslots); /* map for a pool of NSLOTS */
int env_open(struct vv_pool *p, uint64_t map_size, bool rdonly);
int env_fit(struct vv_pool *p, uint64_t map_size); /* grow the map to MAP_SIZE; no txn active */
/* keep meta.mdb allocated some room past what LMDB uses; ENOSPC (and host_full set) when
 * the filesystem under the pool cannot give it */
int env_keep_room(struct vv_pool *p);
/* double the map; commit_mu held, no txn of the caller open */
int env_grow(struct vv_pool *p);
/* a read txn (from the cache), inside map_lock shared until rtxn_put */
int rtxn_get(struct vv_pool *p, MDB_txn **txn);
void rtxn_put(struct vv_pool *p, MDB_txn *txn);
void rtxn_drain(struct vv_pool *p);               /* abort every cached txn (at close) */

#endif
