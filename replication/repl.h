/*
 * replication/repl.h — replication sessions: the service a daemon runs to keep replicas of
 * its volumes on a peer daemon, and to hold the replicas a peer keeps on it.
 *
 * A session has a role on each node.  On the source it names what it replicates (a volume or
 * a consistency group, whose members are then replicated at one gen and made points together)
 * and the peer (HOST:PORT, the key file); a worker thread takes a hidden replication
 * snapshot of the volume, connects to the peer, sends the delta since the point the peer
 * holds (replication/xfer.h) and, once the peer has made it its new point, records that
 * point and drops the snapshot before it.  On the destination the session is created by the
 * source's first connection (the key is the authorisation): the replica volume, of the
 * source volume's name, is written by the session only; what users see of it (its file, read
 * only) is its newest point.  Both sides keep their session in the pool (a record per
 * session, surviving restarts) with its state, the last consistent point (the source's gen
 * and time) and the last error.
 *
 * Snapshots travel: a sync sends a delta to each user snapshot of the volume taken since the
 * last point (before the sync's own), in order, and the destination makes each on the replica
 * with its name once its delta is staged: snapshots/VOLUME/NAME on both nodes read alike.
 *
 * Modes: periodic (a sync every RPO seconds; status says when one is overdue) and continuous
 * (a sync as soon as a txg commits a change).  Any failure (the peer is down, the link cut,
 * either daemon killed) leaves the replica at its previous point; the worker retries with
 * backoff (1 s doubling to 60 s), and a retry resumes the transfer where the destination's
 * last checkpoint left it.
 *
 * All functions are thread-safe.  Names are vvfs names (util/name.h).  Errors: positive
 * errnos with E filled: ENOENT (no such session/volume), EEXIST (the name is taken, or the
 * volume is already replicated), EINVAL (a bad parameter, named), EROFS (the operation is
 * not for this role: e.g. sync on a destination), EBUSY (shutting down).
 */
#ifndef VV_REPLICATION_REPL_H
#define VV_REPLICATION_REPL_H

#include "meta/pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vv_repl_role { VV_REPL_SOURCE = 1, VV_REPL_DESTINATION = 2 };
enum vv_repl_mode { VV_REPL_PERIODIC = 1, VV_REPL_CONTINUOUS = 2 };
enum vv_repl_state {
    VV_REPL_INITIALIZING = 1, /* no point yet: the first (full) sync has not completed */
    VV_REPL_OK,               /* the last sync completed; the next is not overdue */
    VV_REPL_SYNCHRONIZING,    /* a sync is running */
    VV_REPL_PAUSED,           /* paused by a user: no syncs until resumed */
    VV_REPL_ERROR,            /* the last attempt failed (error says why); retrying */
};
const char *vv_repl_role_to_string(enum vv_repl_role r);
const char *vv_repl_mode_to_string(enum vv_repl_mode m);
const char *vv_repl_state_to_string(enum vv_repl_state s);
/* "periodic" / "continuous" -> the mode, or 0 */
enum vv_repl_mode vv_repl_mode_parse(const char *s);

#define VV_REPL_RPO_MIN 1u            /* seconds */
#define VV_REPL_RPO_MAX (7u * 86400u) /* a week */
#define VV_REPL_RPO_DEFAULT 300u

#define VV_REPL_KEEP_MAX 100000u /* --keep-remote */
#define VV_REPL_MEMBERS_MAX 32u  /* volumes of a group session */
#define VV_REPL_BWLIMIT_MIN 65536u /* bytes per second, when limited */

#define VV_REPL_ADDR_MAX 255u /* HOST:PORT */
#define VV_REPL_PATH_MAX 255u /* key file path */

struct vv_repl_info {
    uint64_t id; /* the session's id, the same on both nodes */
    char name[65];
    enum vv_repl_role role;
    enum vv_repl_mode mode;   /* source: its mode; destination: 0 */
    enum vv_repl_state state;
    uint32_t rpo;             /* seconds (periodic) */
    uint32_t keep_remote;     /* source: user snapshots the destination keeps (0: all) */
    bool zstd;                /* source: DATA frames are compressed */
    uint64_t bwlimit;         /* source: bytes per second at most on the wire, 0: no limit */
    char volume[65];          /* source: the volume ("" for a group); destination: the replica
                               * (of a group's: the last one written) */
    char group[65];           /* source: the group it replicates, "" for a volume */
    char peer[VV_REPL_ADDR_MAX + 1];     /* source: HOST:PORT; destination: the source as last seen */
    char key_path[VV_REPL_PATH_MAX + 1]; /* source: the key file it connects with */
    /* the last consistent point: the source's gen and when the source took it (unix s);
     * 0: none yet */
    uint64_t point_gen, point_time;
    uint64_t syncs;           /* completed syncs */
    uint64_t bytes_sent;      /* source: bytes sent over all syncs (destination: received) */
    /* the current transfer (synchronizing), else the last one */
    uint64_t xfer_started;    /* unix s */
    uint64_t xfer_bytes;      /* bytes of data sent so far */
    uint64_t xfer_left;       /* bytes of data still to send (estimate), 0 when done */
    uint64_t xfer_ms;         /* how long it has taken (ms) */
    uint64_t rate;            /* bytes/s (of the last one: on average) */
    uint64_t eta;             /* seconds to go, 0 when unknown or done */
    uint64_t lag;             /* now - point_time (s), 0 without a point */
    uint64_t lag_bytes;       /* source: bytes written to the volume since the point (estimate) */
    bool overdue;             /* periodic: no completed sync within the last RPO */
    uint64_t next_sync;       /* source: when the next sync is due (unix s), 0: now/unknown */
    char error[256];          /* the last error ("" if none since the last success) */
    uint64_t error_time;      /* unix s */
};

struct vv_repl_params {
    const char *name;
    const char *volume;       /* the volume to replicate, or NULL and: */
    const char *group;        /* the consistency group: every member, at one gen (the group's
                               * members when each sync starts) */
    const char *peer;         /* HOST:PORT of the destination daemon's --listen */
    const char *key_path;     /* key file (0600); the peer has the same key */
    enum vv_repl_mode mode;   /* 0: periodic */
    uint32_t rpo;             /* seconds; 0: VV_REPL_RPO_DEFAULT */
    uint32_t keep_remote;     /* of the user snapshots that travelled, the destination keeps
                               * this many, the newest (0: all; deleting one on the source
                               * never deletes its copy) */
    bool zstd;                /* compress the data on the wire (zstd, per frame) */
    uint64_t bwlimit;         /* bytes per second at most on the wire, 0: no limit */
};

struct vv_repl_opts {
    const char *listen;       /* HOST:PORT to accept peers on, or NULL: none */
    const char *key_path;     /* the key file peers must have (required with a non-loopback
                               * listen address) */
};

struct vv_repl;

/*
 * Start the service on pool P: load its sessions, start a worker per source session (each
 * resumes where it was), and listen on O->listen if set.  Errors: EINVAL (a bad address, a
 * non-loopback address without a key), EPERM/EINVAL from the key file (chan_key_load), an
 * errno of bind (EADDRINUSE...).
 */
int vv_repl_start(struct vv_pool *p, const struct vv_repl_opts *o, struct vv_repl **out,
                  struct vv_err *e);
/* Begin the stop: transfers in flight are cut, waiting syncs return (ECANCELED), nothing new
 * starts; returns at once (so that the control plane's handlers can finish).  NULL is fine. */
void vv_repl_shutdown(struct vv_repl *r);
/* Stop every worker and connection (a transfer in flight is cut: it resumes at the next
 * start) and free.  Accepts NULL.  The pool stays open. */
void vv_repl_stop(struct vv_repl *r);

/* Create a source session and start its worker (the first sync starts at once).  The key
 * file is loaded now, so a bad one is refused here. */
int vv_repl_create(struct vv_repl *r, const struct vv_repl_params *prm,
                   struct vv_repl_info *out, struct vv_err *e);
/* Delete a session.  Source: stops its worker, drops its replication snapshots.
 * Destination: the replica becomes an ordinary writable volume, as of its last point
 * (refused with EBUSY while the source is connected). */
int vv_repl_delete(struct vv_repl *r, const char *name, struct vv_err *e);
int vv_repl_get(struct vv_repl *r, const char *name, struct vv_repl_info *out,
                struct vv_err *e);
/* every session, by name; *OUT malloc'd */
int vv_repl_list(struct vv_repl *r, struct vv_repl_info **out, size_t *n);
/* Source only (EROFS otherwise).  Pause: no new sync starts, one in flight is cut (it
 * resumes later).  Resume: syncs start again. */
int vv_repl_pause(struct vv_repl *r, const char *name, struct vv_err *e);
int vv_repl_resume(struct vv_repl *r, const char *name, struct vv_err *e);
/*
 * Source only: start a sync now (whatever the schedule).  PIT (or NULL): first take user
 * snapshot PIT of the volume (of every member of the group, at one gen): a named point in
 * time, which the sync carries to the destination (EEXIST if the name is taken).  WAIT:
 * return when a sync that started after this call has completed (0, *OUT the session then)
 * or failed (its errno and message), or after TIMEOUT_S seconds (ETIMEDOUT; the sync goes
 * on).  EAGAIN when paused.
 */
int vv_repl_sync(struct vv_repl *r, const char *name, const char *pit, bool wait,
                 unsigned timeout_s, struct vv_repl_info *out, struct vv_err *e);

#endif
