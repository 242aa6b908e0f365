/*
 * meta/pool.h — the vvfs pool: volumes, their extent maps, space, and transaction groups.
 *
 * This is the one public header of meta/.  Everything above meta/ (fs/, api/, the daemon)
 * uses only what is declared here; LMDB never shows through.
 *
 * Conventions
 *   - Functions return 0 or a positive errno.  Functions that take a `struct vv_err *` also
 *     fill it (if not NULL) with the same code and an English sentence fit to show a user
 *     ("volume 'db' already exists").  Failures are logged once, where they happen.
 *   - All functions are thread-safe unless stated otherwise.
 *   - Sizes and offsets are bytes.
 *
 * Durability: a write is durable once vv_vol_flush() (or vv_pool_sync()) that started after it
 * returned 0; the pool commits by itself about once a second and when dirty data passes a bound.
 * After a crash the pool is exactly the last committed transaction group.
 */
#ifndef VV_META_POOL_H
#define VV_META_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2: extent map of chunk versions (meta/xmap.h); 3: snapshots; 4: clones; 5: replicas */
#define VV_POOL_FORMAT_VERSION 5
#define VV_EXTENT_MIN 4096u
#define VV_EXTENT_MAX (1u << 20)
#define VV_EXTENT_DEFAULT (4u << 10) /* see docs/ARCHITECTURE.md, "Extent size" */

struct vv_pool;
struct vv_vol;

struct vv_err {
    int code;       /* errno, 0 if none */
    char msg[256];  /* user-facing sentence, no trailing newline */
};

/* Fill E (if not NULL) with CODE and a printf-formatted message; returns CODE. */
int vv_err_set(struct vv_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- pool lifecycle ---------------------------------------------------------------------- */

struct vv_pool_params {
    uint32_t extent_size; /* power of two, VV_EXTENT_MIN..VV_EXTENT_MAX; 0 = default */
    uint64_t capacity;    /* bytes of volume data the pool may hold; multiple of extent_size */
    uint64_t map_size;    /* LMDB map size in bytes; 0 = default (see pool_map_size) */
};

/*
 * Create a new pool in directory DIR (created if missing; must be empty of pool files).
 * Errors: EEXIST (a pool is already there), EINVAL (bad parameters), or an I/O errno.
 */
int vv_pool_create(const char *dir, const struct vv_pool_params *params, struct vv_err *e);

enum {
    VV_POOL_RDONLY = 1u << 0, /* open for inspection (fsck): no committer, no writes */
};

/*
 * Open the pool in DIR.  Read-write opens take the pool lock: a second opener gets EBUSY
 * ("pool ... is in use by process N").  A pool of a newer format gets EPROTONOSUPPORT; a
 * directory that holds no pool gets ENOENT.  A read-write open starts the committer thread.
 * RDONLY opens also take the lock (so fsck never races a daemon).
 */
int vv_pool_open(const char *dir, unsigned flags, struct vv_pool **out, struct vv_err *e);

/*
 * Commit everything written so far, stop the committer and release the pool.  Every vv_vol
 * must have been closed.  Accepts NULL.  Returns 0, or the errno of a failed final commit
 * (the pool is then exactly its last committed state, as after a crash).
 */
int vv_pool_close(struct vv_pool *p);

/* Commit the open transaction group now and wait for it.  Returns 0 or an errno (EIO). */
int vv_pool_sync(struct vv_pool *p);

const char *vv_pool_dir(const struct vv_pool *p);

struct vv_pool_status {
    uint8_t id[16];          /* the pool's id: random, made with the pool (or its upgrade to 5) */
    uint32_t format_version;
    uint32_t upgraded_from;  /* format this daemon upgraded the pool from when it opened it, or 0 */
    uint32_t extent_size;
    uint64_t capacity;       /* bytes */
    uint64_t used;           /* bytes held by committed and dirty extents */
    uint64_t free;           /* capacity - used */
    uint64_t reserve;        /* of the capacity, kept for overwrites of data already written */
    uint64_t available;      /* what new data may still take: free - reserve, or less when
                              * the filesystem under the pool has less room */
    bool host_full;          /* that filesystem is full: new data is refused for now */
    uint64_t freeing;        /* bytes of deleted volumes (and shrunk tails) still being freed */
    uint64_t volumes;        /* number of volumes */
    uint64_t provisioned;    /* sum of volume sizes (may exceed capacity: thin) */
    uint64_t snapshots;      /* of used, bytes only snapshots hold */
    uint64_t snapshot_count; /* users' snapshots in the pool (not replication's) */
    uint64_t clones;         /* volumes that are clones */
    uint64_t groups;         /* consistency groups */
    uint64_t committed_gen;  /* generation of the last committed txg */
    uint64_t dirty_bytes;    /* data written to the open txg, not yet committed */
    uint64_t commits;        /* txgs committed since open */
    uint64_t checksum_errors;/* checksum mismatches seen on reads since open */
    int read_only_errno;     /* 0: the pool takes writes; else a commit failed with this errno
                              * and every write fails (EIO) until the pool is remounted */
    uint64_t read_only_since;/* when that commit failed (unix seconds) */
    bool direct_io;          /* whole-extent writes bypass the page cache (O_DIRECT) */
    uint64_t bounced_writes; /* of those, runs copied first because the buffer was unaligned */
    uint64_t batched_ios;    /* direct reads and writes issued together with others of their
                              * request (Linux AIO; meta/aio.c) */
};

void vv_pool_get_status(struct vv_pool *p, struct vv_pool_status *st);

/* ---- volumes ----------------------------------------------------------------------------- */

struct vv_volume_info {
    uint64_t id;           /* stable for the volume's life, survives rename */
    char name[65];
    uint64_t size;         /* bytes, a multiple of 4096 */
    uint64_t used;         /* bytes of pool space its extents hold (committed view), its
                            * snapshots' included: what deleting it with them frees */
    uint64_t snapshots_used; /* of those, bytes only its snapshots hold (hidden from it) */
    uint64_t created;      /* unix seconds */
    uint64_t modified_ns;  /* last write, discard or resize, unix ns (created if never) */
    uint64_t create_gen;   /* pool generation when it was created */
    uint32_t open_count;   /* open handles (FUSE opens, loop devices...) */
    /* a clone: made from snapshot origin_snapshot of volume origin_volume */
    bool clone;
    uint64_t origin_volume_id, origin_snapshot_id;
    char origin_volume[65], origin_snapshot[65];
    char group[65];        /* the consistency group it is in, "" if none */
    /* a replica: written by replication session replica_session only (users get EROFS);
     * users read its newest point, snapshot point_snapshot_id (0: none yet) */
    bool replica;
    uint64_t replica_session, point_snapshot_id;
};

/*
 * Volume operations.  Each claims the volume it works on for its whole run: operations on one
 * volume (delete, resize, rename) run one after another (a second one waits for the first,
 * then finds the volume as the first left it: gone, or under its new name, is ENOENT);
 * operations on different volumes run side by side.  A volume's memory lives as long as any
 * claim or handle on it, so no call ever sees it freed.
 * Names are checked with vv_name_check() (EINVAL).  Sizes must be a
 * positive multiple of 4096 (EINVAL) and at most VV_VOLUME_MAX_SIZE (EFBIG).
 *   create: EEXIST if the name is taken.
 *   delete: ENOENT; EBUSY while the volume is open.  Returns at once (one small txn); its
 *           space is freed in the background in bounded txns (status: freeing), resumed at
 *           the next open after a crash.
 *   resize: ENOENT; shrinking discards data past the new end; EBUSY when shrinking an open volume.
 *   rename: ENOENT, EEXIST.
 */
#define VV_VOLUME_MAX_SIZE (1ULL << 50) /* 1 PiB */
int vv_volume_create(struct vv_pool *p, const char *name, uint64_t size,
                     struct vv_volume_info *out, struct vv_err *e);
int vv_volume_delete(struct vv_pool *p, const char *name, struct vv_err *e);
/* delete with every snapshot of the volume (EBUSY while one of them is open) */
int vv_volume_delete_recursive(struct vv_pool *p, const char *name, struct vv_err *e);
int vv_volume_resize(struct vv_pool *p, const char *name, uint64_t size, struct vv_err *e);
int vv_volume_rename(struct vv_pool *p, const char *name, const char *newname, struct vv_err *e);
int vv_volume_get(struct vv_pool *p, const char *name, struct vv_volume_info *out,
                  struct vv_err *e);
int vv_volume_get_by_id(struct vv_pool *p, uint64_t id, struct vv_volume_info *out);

/*
 * Observer of volume changes (the FUSE layer uses it to drop what the kernel cached).
 * Called after the change is committed, in the thread that made it, with no meta lock held;
 * NAME is the volume's (new) name, OLDNAME is set for renames only.  Set it once, before
 * the pool is used concurrently; FN may be NULL.
 */
enum vv_volume_event {
    VV_VOL_CREATED, VV_VOL_DELETED, VV_VOL_RENAMED, VV_VOL_RESIZED,
    VV_VOL_RESTORED, /* its content changed under any cached copy (snapshot restore) */
};
typedef void (*vv_volume_observer)(void *ctx, enum vv_volume_event ev, uint64_t id,
                                   const char *name, const char *oldname);
void vv_pool_set_observer(struct vv_pool *p, vv_volume_observer fn, void *ctx);

/*
 * List volumes, sorted by name.  *OUT is malloc'd (caller frees); *N its length.
 */
int vv_volume_list(struct vv_pool *p, struct vv_volume_info **out, size_t *n);

/* ---- snapshots ----------------------------------------------------------------------------- */

struct vv_snapshot_info {
    uint64_t id;          /* unique in the pool, never reused */
    char name[65];
    uint64_t volume_id;
    char volume[65];
    uint64_t gen;         /* the volume as of this pool generation */
    uint64_t created;     /* unix seconds */
    uint64_t size;        /* the volume's size when it was taken */
    uint64_t exclusive;   /* bytes only it holds: what deleting it frees (list, get) */
    uint32_t open_count;
};

/*
 * Snapshots of a volume: read-only, point-in-time.  Names are checked like volume names and
 * unique per volume.  Each operation claims the volume (see above).
 *   create: O(1): commits the open txg first, so the snapshot holds every write that returned
 *           before the call.  ENOENT (no volume), EEXIST.
 *   delete: frees what only this snapshot held, in bounded txns (O(blocks it held alone));
 *           finished at the next open if a crash interrupts it.  ENOENT; EBUSY while open.
 *   list:   VOLUME NULL: every volume's.  Sorted by volume (as vv_volume_list), then age.
 * A volume with snapshots cannot be deleted or shrunk (EBUSY); growing it is fine.
 */
int vv_snapshot_create(struct vv_pool *p, const char *volume, const char *name,
                       struct vv_snapshot_info *out, struct vv_err *e);
int vv_snapshot_delete(struct vv_pool *p, const char *volume, const char *name,
                       struct vv_err *e);
int vv_snapshot_get(struct vv_pool *p, const char *volume, const char *name,
                    struct vv_snapshot_info *out, struct vv_err *e);
int vv_snapshot_list(struct vv_pool *p, const char *volume, struct vv_snapshot_info **out,
                     size_t *n, struct vv_err *e);
/* the same without the exclusive bytes (left 0): for listings that do not show them, such as
 * a directory's, which must not count what each snapshot holds */
int vv_snapshot_list_brief(struct vv_pool *p, const char *volume,
                           struct vv_snapshot_info **out, size_t *n, struct vv_err *e);
/* rename: ENOENT, EEXIST; the snapshot's file follows (same inode) */
int vv_snapshot_rename(struct vv_pool *p, const char *volume, const char *name,
                       const char *newname, struct vv_err *e);
/* by snapshot id (unique in the pool): 0 or ENOENT */
int vv_snapshot_get_by_id(struct vv_pool *p, uint64_t snap_id, struct vv_snapshot_info *out);
/*
 * Make volume VOLUME read as its snapshot NAME again: every block written since the snapshot
 * is put back (copied from the snapshot, or discarded where the snapshot has none), O(blocks
 * changed since).  Every snapshot, older and newer, stays.  The volume keeps its size; what
 * lies past the snapshot's size reads as zeros.  EBUSY while the volume is open (detach loop
 * devices, unmount what is on it first).  Not atomic: a crash in the middle leaves the volume
 * partly restored, and the restore can simply be run again.
 */
int vv_snapshot_restore(struct vv_pool *p, const char *volume, const char *name,
                        struct vv_err *e);

/*
 * Clones: a writable volume NAME made from snapshot SNAPSHOT of VOLUME, O(1): it shares every
 * block it has not written with the snapshot, whose size it gets.  It is a volume like any
 * other (I/O, snapshots, clones of its snapshots, resize, rename, delete); the snapshot it
 * was made from cannot be deleted while it exists (EBUSY naming the clone).  ENOENT (no
 * volume or snapshot), EEXIST (the name is taken), EINVAL (bad name), ELOOP (a clone of a
 * clone ... more than 32 deep).
 */
int vv_clone_create(struct vv_pool *p, const char *volume, const char *snapshot,
                    const char *name, struct vv_volume_info *out, struct vv_err *e);

/* ---- replicas and records, for replication/ ----------------------------------------------- */

/*
 * A replica is a volume written by one replication session only: users' changes to it
 * (delete, resize, rename, snapshot, restore, joining a group) are refused with EROFS, and
 * what users read of it is its newest point, a snapshot that only vvfs names (its name begins
 * with '.', which no user's name may: such snapshots are vvfs's own, left out of listings).
 *   prepare: NAME (SIZE bytes) becomes, or already is, the replica of SESSION: created if
 *            missing, grown if smaller.  EEXIST if NAME is an ordinary volume or another
 *            session's replica; EINVAL if it is larger than SIZE.
 *   point:   commit, then take snapshot POINT of each of the N replicas VOLS of SESSION, all
 *            in one txn, and make them their newest points (a crash before leaves the old).
 *   snapshot: take snapshot NAME of replica VOL of SESSION as it is now (a snapshot that
 *            travelled, which users see); EEXIST if it has one of that name.
 *   release: the replica becomes an ordinary volume, as of its newest point (restored to it
 *            first: EBUSY while open), or as it is if it has none.
 */
int vv_replica_prepare(struct vv_pool *p, const char *name, uint64_t session, uint64_t size,
                       struct vv_volume_info *out, struct vv_err *e);
int vv_replica_point(struct vv_pool *p, uint64_t session, const char *const *vols, size_t n,
                     const char *point, struct vv_err *e);
int vv_replica_snapshot(struct vv_pool *p, uint64_t session, const char *vol, const char *name,
                        struct vv_err *e);
int vv_replica_release(struct vv_pool *p, const char *name, uint64_t session,
                       struct vv_err *e);

/*
 * Records that the layers above keep in the pool (replication sessions), by id, of at most
 * VV_RECORD_MAX bytes; meta does not look inside.  Put (insert or replace) and delete are
 * committed, durable, when they return.  get: ENOENT, or ENOSPC if CAP is too small.
 */
#define VV_RECORD_MAX 4096u
int vv_record_put(struct vv_pool *p, uint64_t id, const void *rec, size_t len,
                  struct vv_err *e);
int vv_record_get(struct vv_pool *p, uint64_t id, void *buf, size_t cap, size_t *len);
int vv_record_delete(struct vv_pool *p, uint64_t id, struct vv_err *e);
/* the ids, ascending; *IDS malloc'd */
int vv_record_list(struct vv_pool *p, uint64_t **ids, size_t *n);

/* ---- consistency groups ------------------------------------------------------------------ */

/*
 * A group is a named set of volumes (a volume is in at most one) whose snapshots are taken
 * together: one snapshot of each member, all of one gen, committed in one txn, so that the
 * set is crash-consistent as a whole.  Group names are checked like volume names.
 *   create:   with the members VOLS (may be none).  EEXIST (the name), ENOENT (a volume),
 *             EBUSY (a volume is in another group), EINVAL (a name; a volume named twice).
 *   change:   add the volumes ADD and remove REMOVE, in one txn; ENOENT, EBUSY as create,
 *             EINVAL (to remove a volume that is not a member, or to add one that is).
 *   delete:   the set goes, the volumes and their snapshots stay.  ENOENT.
 *   snapshot: snapshot NAME of every member.  EINVAL for an empty group, EEXIST when a
 *             member already has a snapshot NAME (nothing is taken then).
 *   restore:  every member reads as its snapshot NAME again (see vv_snapshot_restore); NAME
 *             must be a group snapshot: every member has it, all of one gen (EINVAL), and no
 *             member may be open (EBUSY).  Not atomic across members: after a crash, rerun.
 * A deleted volume leaves its group.  Every refusal changes nothing.
 */
struct vv_group_info {
    uint64_t id;
    char name[65];
    uint64_t created;    /* unix seconds */
    size_t nvolumes;
    char (*volumes)[65]; /* members, by name (sorted); free() it */
    size_t nsnapshots;
    char (*snapshots)[65]; /* group snapshots: names every member has, of one gen, oldest
                            * first; free() it */
};
int vv_group_create(struct vv_pool *p, const char *name, const char *const *vols, size_t n,
                    struct vv_err *e);
int vv_group_change(struct vv_pool *p, const char *name, const char *const *add, size_t nadd,
                    const char *const *remove, size_t nremove, struct vv_err *e);
int vv_group_delete(struct vv_pool *p, const char *name, struct vv_err *e);
int vv_group_get(struct vv_pool *p, const char *name, struct vv_group_info *out,
                 struct vv_err *e);
void vv_group_info_free(struct vv_group_info *g);
/* every group, by name; free each with vv_group_info_free, then the array */
int vv_group_list(struct vv_pool *p, struct vv_group_info **out, size_t *n);
int vv_group_snapshot(struct vv_pool *p, const char *name, const char *snap,
                      struct vv_err *e);
int vv_group_restore(struct vv_pool *p, const char *name, const char *snap, struct vv_err *e);

/* ---- deltas (what replication sends) ------------------------------------------------------ */

/*
 * What changed in VOLUME from its snapshot FROM (NULL: from nothing, an initial copy) to its
 * snapshot TO: runs of blocks (of the pool's extent size) that read in TO as data, or as
 * zeros (a discard since FROM).  O(changes): the births between the two snapshots, never a
 * walk of the volume; from nothing, the blocks with data only (a thin volume's written part).
 * TO stays open (it cannot be deleted) until vv_delta_close.  ENOENT (no volume or snapshot),
 * EINVAL (FROM newer than TO).
 */
struct vv_delta;
int vv_delta_open(struct vv_pool *p, const char *volume, const char *from, const char *to,
                  struct vv_delta **out, struct vv_err *e);
/* The next run, in ascending block order: 0 with *BLOCK, *COUNT (1..64) and *ZERO; ENOENT at
 * the end; another errno on a read error. */
int vv_delta_next(struct vv_delta *d, uint64_t *block, uint32_t *count, bool *zero);
/* TO, open: read the runs' data with vv_vol_read on it (around the page cache: each block
 * is read once; direct I/O wants BUF aligned to 4096, else the reads are buffered) */
struct vv_vol *vv_delta_source(struct vv_delta *d);
void vv_delta_close(struct vv_delta *d);

/*
 * Open snapshot SNAP_ID of volume VOL_ID for reading (vv_vol_read, vv_vol_seek, vv_vol_size
 * work as on a volume; write and discard fail with EROFS).  ENOENT.  Close with
 * vv_vol_close(); while open the snapshot is not deleted.
 */
int vv_snap_open(struct vv_pool *p, uint64_t vol_id, uint64_t snap_id, struct vv_vol **out);

/* ---- volume I/O -------------------------------------------------------------------------- */

/*
 * Open volume ID for I/O.  ENOENT if it does not exist (or is being deleted), EBUSY while a
 * delete or shrink of it runs.  The handle keeps the volume from being deleted or shrunk
 * (EBUSY) and holds a reference to it until vv_vol_close().
 */
int vv_vol_open(struct vv_pool *p, uint64_t id, struct vv_vol **out);
void vv_vol_close(struct vv_vol *v);
uint64_t vv_vol_size(const struct vv_vol *v);

/*
 * Read LEN bytes at OFF into BUF.  The range must lie inside the volume (the caller clamps).
 * Unwritten ranges read as zeros.  EIO on a checksum mismatch or a data-file read error.
 */
int vv_vol_read(struct vv_vol *v, void *buf, size_t len, uint64_t off);

/*
 * Write LEN bytes from BUF at OFF (inside the volume).  The data is copied before return.
 * ENOSPC when the pool has no free extent even after committing pending frees.
 */
int vv_vol_write(struct vv_vol *v, const void *buf, size_t len, uint64_t off);

/*
 * Whole extents, with their checksums (what replication moves: the block's xxh3-64 travels
 * with it and is checked once at each end, not computed again).  OFF and LEN are multiples of
 * the extent size (EINVAL otherwise); CS has LEN / extent size entries.
 *   vv_vol_read_csums: as vv_vol_read, and CS[i] is block i's xxh3-64 (the stored checksum
 *     the read has just verified, or computed for a hole or data of an open txg).
 *   vv_vol_write_csums: as vv_vol_write, with CS[i] the xxh3-64 of block i of BUF, which the
 *     caller has checked: it is stored as given (a wrong one makes every later read of the
 *     block fail with EIO).
 */
int vv_vol_read_csums(struct vv_vol *v, void *buf, size_t len, uint64_t off, uint64_t *cs);
int vv_vol_write_csums(struct vv_vol *v, const void *buf, size_t len, uint64_t off,
                       const uint64_t *cs);

/*
 * Make [OFF, OFF+LEN) read as zeros.  Whole extents are released (their space returns to the
 * pool once the txg commits); partial extents are zeroed in place (copy-on-write).
 */
int vv_vol_discard(struct vv_vol *v, uint64_t off, uint64_t len);

/* Commit the open txg (which holds every write that returned before) and wait for it. */
int vv_vol_flush(struct vv_vol *v);

/*
 * lseek(2) SEEK_DATA / SEEK_HOLE at extent granularity: *OUT gets the next offset >= OFF that
 * is data (resp. hole).  ENXIO when there is no data at or after OFF (SEEK_DATA) or OFF is
 * at/after the end.  A hole is never reported as data... the other way round: data is never
 * reported as a hole.
 */
int vv_vol_seek(struct vv_vol *v, uint64_t off, int whence, uint64_t *out);

/* ---- consistency check ------------------------------------------------------------------- */

struct vv_fsck_report {
    uint64_t volumes;
    uint64_t versions;     /* extent map entries (chunk versions) */
    uint64_t extents;      /* data blocks they map */
    uint64_t tombstones;   /* blocks they mark as zeros (hiding older data) */
    uint64_t births, used_slots, checked_checksums;
    uint64_t errors;       /* inconsistencies found; 0 means the pool is clean */
};

/*
 * Check the pool in DIR (which must not be in use): volumes and names, the extent map and the
 * births index against each other, every slot referenced once and marked used in the space
 * map (and every used slot referenced), counters, and, if VERIFY_DATA, every extent's
 * checksum.  Each problem is printed on stdout as one line.  Returns 0 if it could run (see
 * report.errors), else an errno with E filled.
 */
int vv_pool_fsck(const char *dir, bool verify_data, struct vv_fsck_report *report,
                 struct vv_err *e);

#endif
