/*
 * replication/repl.c — replication sessions (see repl.h).
 *
 * Design notes
 *
 *   A sync, as the source runs it (one connection per sync):
 *     1. the snapshot to send: the one in flight (a sync cut short resumes with it, so the
 *        destination's checkpoint still applies), else a new hidden snapshot ".r-ID-N";
 *     2. connect (TLS-PSK, chan.h), HELLO; the WELCOME says which source gen the replica
 *        holds: the delta starts at our snapshot of that gen (nothing: from scratch);
 *     3. BEGIN, the destination's ACK names the block to resume at, the delta (xfer.h);
 *     4. COMMIT; the destination makes the new point (one txn) and ACKs it;
 *     5. the new point is recorded here and the snapshot of the old one dropped.
 *   Between 4 and 5 the destination may have the new point while we crash before recording
 *   it: the next WELCOME names the in-flight gen, and the sync completes at once.  Every
 *   failure before 4 leaves the replica at its old point.
 *
 *   The destination stages a delta into the replica volume through the normal write path
 *   (many txgs) and records a checkpoint (all blocks below B staged, durably: after a pool
 *   sync) every XFER_CHECKPOINT bytes; a new attempt for the same delta (same from, to and
 *   volume) resumes there.  Users read the replica's point (fs/), so what is staged is never
 *   seen; the point is a snapshot ".p-ID-N" (the Nth sync), made with the replica's flag by
 *   vv_replica_point, the older points dropped after it.
 *
 *   Sessions are records in the pool (vv_record_put), struct sess_rec, little-endian, growing
 *   at the end like meta's records.  In memory: one struct sess each, in r->s, under r->mu
 *   (which no I/O is done under).  Records are written under the session's pmu, from a copy
 *   taken under r->mu after pmu was taken, so the last write has the newest state.
 *
 *   Threads: a worker per source session; a listener; a thread per accepted connection
 *   (joined when the next connection comes, and at stop).  Pause, delete and stop cut a
 *   connection in flight with chan_shutdown, so nothing waits for a timeout.
 */
#include "replication/repl.h"

#include "replication/chan.h"
#include "replication/wire.h"
#include "replication/xfer.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/name.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 15000u
#define XFER_CHECKPOINT (256ull << 20) /* bytes staged between checkpoints (default) */
#define BACKOFF_MAX 60u                /* seconds */
#define CONTINUOUS_POLL_MS 100u

/* ---- names ---------------------------------------------------------------------------------- */

const char *vv_repl_role_to_string(enum vv_repl_role r)
{
    return r == VV_REPL_SOURCE ? "source" : r == VV_REPL_DESTINATION ? "destination" : "unknown";
}

const char *vv_repl_mode_to_string(enum vv_repl_mode m)
{
    return m == VV_REPL_PERIODIC ? "periodic" : m == VV_REPL_CONTINUOUS ? "continuous" : "none";
}

const char *vv_repl_state_to_string(enum vv_repl_state s)
{
    switch (s) {
    case VV_REPL_INITIALIZING: return "initializing";
    case VV_REPL_OK: return "ok";
    case VV_REPL_SYNCHRONIZING: return "synchronizing";
    case VV_REPL_PAUSED: return "paused";
    case VV_REPL_ERROR: return "error";
    }
    return "unknown";
}

enum vv_repl_mode vv_repl_mode_parse(const char *s)
{
    if (s && strcmp(s, "periodic") == 0)
        return VV_REPL_PERIODIC;
    if (s && strcmp(s, "continuous") == 0)
        return VV_REPL_CONTINUOUS;
    return 0;
}

/* ---- sessions --------------------------------------------------------------------------------- */

#define SESS_REC_VERSION 1
#define SESS_F_PAUSED 1u
struct sess_rec {
    uint32_t version;
    uint8_t role, mode, state, flags;
    uint64_t id;
    char name[72];
    char volume[72];
    char peer[VV_REPL_ADDR_MAX + 1];
    char key[VV_REPL_PATH_MAX + 1];
    uint32_t rpo, pad;
    uint8_t peer_pool[16];      /* destination: the source's pool */
    uint64_t point_gen, point_time;
    uint64_t point_seq;         /* source: our snapshot of the point (its number, 0: none) */
    uint64_t inflight_seq, inflight_gen, inflight_time, inflight_mtime; /* source */
    uint64_t point_mtime;       /* source: the last write (ns) before the point's snapshot */
    uint64_t snap_seq;          /* source: the number of our last snapshot (.r-ID-N) */
    uint64_t stage_from, stage_to, stage_block; /* destination: the delta being staged */
    uint64_t syncs, bytes;
    uint64_t error_time;
    char error[256];
    uint64_t created;
    uint32_t keep_remote;       /* source: travelled snapshots the destination keeps (0: all) */
    uint32_t pad2;
    uint64_t chain_gen;         /* destination: the to-gen of the last delta to a snapshot
                                 * of stage_vol staged whole (its snapshot made), 0: none */
    char group[72];             /* source: the group it replicates ("": a volume) */
    char stage_vol[72];         /* destination: the replica that stage_* and chain_gen are of */
    uint32_t ndone, pad3;       /* destination: the replicas whose deltas of the sync in */
    uint64_t done[VV_REPL_MEMBERS_MAX]; /* progress are staged whole (ids), to gen done_to */
    uint64_t done_to;
    uint8_t compress;           /* source: 1: zstd */
    uint8_t pad4[7];
    uint64_t bwlimit;           /* source: bytes per second, 0: none */
};
#define SESS_REC_MIN offsetof(struct sess_rec, created)

struct sess {
    struct vv_repl *r;
    struct sess_rec rec;      /* r->mu */
    pthread_mutex_t pmu;      /* writes of the record */
    pthread_t worker;         /* source */
    bool has_worker;
    bool deleted;             /* r->mu: the worker stops, nobody else finds it */
    bool creating;            /* r->mu: vv_repl_create has not finished with it: its name is
                               * taken, but nobody else finds it (a delete meanwhile would
                               * race the record's write and the worker's start) */
    bool busy;                /* r->mu: a sync (source) or a connection (destination) is on */
    struct chan *active;      /* r->mu: its connection, to cut */
    struct xfer_stats st;     /* the current (or last) transfer */
    uint64_t xfer_started;    /* r->mu */
    uint64_t xfer_t0, xfer_ms; /* r->mu: its start (monotonic ms); how long it took, once done */
    bool xfer_on;             /* r->mu: between xfer_begin and xfer_end */
    uint64_t retry_at, backoff;          /* r->mu: after an error */
    uint64_t sync_req, sync_done;        /* r->mu: sync requests made, and satisfied */
    int sync_err;                        /* r->mu: of the last attempt */
    char sync_msg[256];
    unsigned refs;                       /* r->mu: the list's one, and callers' */
};

struct conn {
    struct vv_repl *r;
    int fd;
    pthread_t t;
    bool done; /* r->mu */
    struct conn *next;
};

struct vv_repl {
    struct vv_pool *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sess **s;
    size_t n, cap;
    bool stopping;
    uint8_t key[CHAN_KEY_BYTES]; /* the listener's */
    uint32_t es;                 /* the pool's extent size */
    uint64_t checkpoint;         /* bytes staged between checkpoints */
    int lfd;
    pthread_t listener;
    bool listening;
    struct conn *conns; /* r->mu */
};

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* a transfer of S starts (r->mu held) */
static void xfer_begin(struct sess *s)
{
    s->xfer_started = now_s();
    s->xfer_t0 = mono_ms();
    s->xfer_ms = 0;
    s->xfer_on = true;
    memset(&s->st, 0, sizeof(s->st));
}

/* S is no longer busy (r->mu held): how long its transfer took */
static void xfer_end(struct sess *s)
{
    s->busy = false;
    if (s->xfer_on)
        s->xfer_ms = mono_ms() - s->xfer_t0;
    s->xfer_on = false;
}

static void sess_put(struct vv_repl *r, struct sess *s)
{
    pthread_mutex_lock(&r->mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) {
        pthread_mutex_destroy(&s->pmu);
        free(s);
    }
}

/* r->mu held */
static struct sess *find_name(struct vv_repl *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->s[i]->rec.name, name) == 0)
            return r->s[i];
    return NULL;
}

static struct sess *find_id(struct vv_repl *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->s[i]->rec.id == id)
            return r->s[i];
    return NULL;
}

/* the session NAME with a reference (sess_put it), or NULL with E set */
static struct sess *sess_get(struct vv_repl *r, const char *name, struct vv_err *e)
{
    const char *why = vv_name_check(name);
    if (why) {
        vv_err_set(e, EINVAL, "invalid session name: %s", why);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    struct sess *s = find_name(r, name);
    if (s && s->creating)
        s = NULL;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&r->mu);
    if (!s)
        vv_err_set(e, ENOENT, "no replication session '%s'", name);
    return s;
}

/* r->mu held: into the list (room made first) */
static int sess_add(struct vv_repl *r, struct sess *s)
{
    if (r->n == r->cap) {
        size_t c = r->cap ? 2 * r->cap : 8;
        struct sess **a = realloc(r->s, c * sizeof(*a));
        if (!a)
            return ENOMEM;
        r->s = a;
        r->cap = c;
    }
    s->refs = 1;
    r->s[r->n++] = s;
    return 0;
}

/* r->mu held: out of the list (its reference is the caller's now) */
static void sess_remove(struct vv_repl *r, struct sess *s)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->s[i] == s) {
            memmove(&r->s[i], &r->s[i + 1], (r->n - i - 1) * sizeof(*r->s));
            r->n--;
            return;
        }
}

/* write S's record as it is now */
static int persist(struct vv_repl *r, struct sess *s, struct vv_err *e)
{
    pthread_mutex_lock(&s->pmu);
    pthread_mutex_lock(&r->mu);
    struct sess_rec copy = s->rec;
    bool gone = s->deleted;
    pthread_mutex_unlock(&r->mu);
    int err = gone ? 0 : vv_record_put(r->p, copy.id, &copy, sizeof(copy), e);
    pthread_mutex_unlock(&s->pmu);
    if (err)
        vv_err(VV_SS_REPL, "session '%s': cannot record its state: %s", copy.name,
               e ? e->msg : strerror(err));
    return err;
}

/* r->mu held: a sync reached its point, the source's gen GEN taken at TIME */
static void set_point(struct sess *s, uint64_t gen, uint64_t time)
{
    s->rec.point_gen = gen;
    s->rec.point_time = time;
    s->rec.syncs++;
    s->rec.bytes += s->st.bytes;
    s->rec.state = VV_REPL_OK;
    s->rec.error[0] = '\0';
}

/* r->mu held: the attempt failed with E */
static void set_error(struct sess *s, const struct vv_err *e, int err)
{
    s->rec.state = VV_REPL_ERROR;
    s->rec.error_time = now_s();
    snprintf(s->rec.error, sizeof(s->rec.error), "%s",
             e && e->code && e->msg[0] ? e->msg : strerror(err));
}

static void fill_info(struct vv_repl *r, const struct sess *s, struct vv_repl_info *o)
{
    const struct sess_rec *c = &s->rec;
    memset(o, 0, sizeof(*o));
    o->id = c->id;
    snprintf(o->name, sizeof(o->name), "%.64s", c->name);
    o->role = c->role;
    o->mode = c->role == VV_REPL_SOURCE ? c->mode : 0;
    o->state = c->flags & SESS_F_PAUSED ? VV_REPL_PAUSED : c->state;
    o->rpo = c->rpo;
    o->keep_remote = c->keep_remote;
    o->zstd = c->compress == 1;
    o->bwlimit = c->bwlimit;
    snprintf(o->volume, sizeof(o->volume), "%.64s", c->volume);
    snprintf(o->group, sizeof(o->group), "%.64s", c->group);
    snprintf(o->peer, sizeof(o->peer), "%s", c->peer);
    snprintf(o->key_path, sizeof(o->key_path), "%s", c->key);
    o->point_gen = c->point_gen;
    o->point_time = c->point_time;
    o->syncs = c->syncs;
    o->bytes_sent = c->bytes + (s->busy ? s->st.bytes : 0);
    uint64_t now = now_s();
    o->xfer_started = s->xfer_started;
    o->xfer_bytes = s->st.bytes;
    o->xfer_ms = s->xfer_on ? mono_ms() - s->xfer_t0 : s->xfer_ms;
    o->rate = o->xfer_ms ? o->xfer_bytes * 1000 / o->xfer_ms : 0;
    if (s->busy && s->xfer_started) {
        uint64_t planned = s->st.planned * r->es; /* (the sender's count; 0 on a receiver) */
        o->xfer_left = planned > o->xfer_bytes ? planned - o->xfer_bytes : 0;
        o->eta = o->rate ? o->xfer_left / o->rate : 0;
    }
    o->lag = c->point_time && now > c->point_time ? now - c->point_time : 0;
    if (c->role == VV_REPL_SOURCE) {
        struct vv_volume_info vi;
        if (c->point_gen && vv_volume_get(r->p, c->volume, &vi, NULL) == 0 &&
            vi.modified_ns != c->point_mtime) {
            /* written since the point: at most what its delta could be, as a rough bound */
            o->lag_bytes = vi.used - vi.snapshots_used;
        }
        if (c->mode == VV_REPL_PERIODIC && c->point_time) {
            o->next_sync = c->point_time + c->rpo;
            o->overdue = o->lag > 2ull * c->rpo;
        }
        if (s->retry_at)
            o->next_sync = s->retry_at;
    }
    snprintf(o->error, sizeof(o->error), "%s", c->error);
    o->error_time = c->error_time;
}

/* "HOST:PORT" or "[V6]:PORT" into HOST and PORT (util/addr.h); false if it is neither */
static bool split_addr(const char *a, char *host, size_t hcap, char *port, size_t pcap)
{
    return vv_addr_split(a, host, hcap, port, pcap) == NULL;
}

/* cut S's connection, if any (r->mu held) */
static void cut(struct sess *s)
{
    if (s->active)
        chan_shutdown(s->active);
}

static void set_active(struct vv_repl *r, struct sess *s, struct chan *c)
{
    pthread_mutex_lock(&r->mu);
    s->active = c;
    bool stop = r->stopping || s->deleted || (s->rec.flags & SESS_F_PAUSED);
    if (c && stop)
        chan_shutdown(c); /* paused or deleted meanwhile */
    pthread_mutex_unlock(&r->mu);
}

/* ---- the source --------------------------------------------------------------------------------- */

/* our snapshot number SEQ of session C: ".r-ID-SEQ" */
static void our_snap(const struct sess_rec *c, uint64_t seq, char name[VV_NAME_MAX + 2])
{
    snprintf(name, VV_NAME_MAX + 2, ".r-%016" PRIx64 "-%" PRIu64, c->id, seq);
}

/* the volumes a sync of C covers: those with its snapshot NAME (a volume, or the members of
 * a group when it was taken), sorted by name; *OUT malloc'd */
struct member {
    char name[VV_NAME_MAX + 1];
    uint64_t snap_id; /* its snapshot NAME */
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

static int members_with(struct vv_repl *r, const struct sess_rec *c, const char *name,
                        struct member **out, size_t *n, struct vv_err *e)
{
    struct vv_volume_info *vi;
    size_t nv;
    *out = NULL;
    *n = 0;
    if (!c->group[0]) { /* a volume's session: that volume, if it has the snapshot */
        struct member *m = calloc(1, sizeof(*m));
        struct vv_snapshot_info si;
        if (!m)
            return vv_err_set(e, ENOMEM, "out of memory");
        if (vv_snapshot_get(r->p, c->volume, name, &si, NULL) == 0) {
            snprintf(m->name, sizeof(m->name), "%.64s", c->volume);
            m->snap_id = si.id;
            *n = 1;
        }
        *out = m;
        return 0;
    }
    int err = vv_volume_list(r->p, &vi, &nv);
    struct member *m = err ? NULL : calloc(nv ? nv : 1, sizeof(*m));
    if (!err && !m)
        err = ENOMEM;
    for (size_t i = 0; !err && i < nv; i++) {
        struct vv_snapshot_info si;
        /* (whoever has the snapshot: members then, whatever they are now) */
        if (vv_snapshot_get(r->p, vi[i].name, name, &si, NULL) == 0) {
            snprintf(m[*n].name, sizeof(m[*n].name), "%s", vi[i].name);
            m[(*n)++].snap_id = si.id;
        }
    }
    free(vi);
    if (err) {
        free(m);
        return vv_err_set(e, err, "cannot list the volumes: %s", strerror(err));
    }
    qsort(m, *n, sizeof(*m), name_cmp);
    *out = m;
    return 0;
}

/* the latest write of C's volume, or of its group's members (unix ns; 0: none there) */
static uint64_t last_write(struct vv_repl *r, const struct sess_rec *c)
{
    if (!c->group[0]) {
        struct vv_volume_info vi;
        return vv_volume_get(r->p, c->volume, &vi, NULL) == 0 ? vi.modified_ns : 0;
    }
    struct vv_group_info g;
    uint64_t t = 0;
    if (vv_group_get(r->p, c->group, &g, NULL) != 0)
        return 0;
    for (size_t i = 0; i < g.nvolumes; i++) {
        struct vv_volume_info vi;
        if (vv_volume_get(r->p, g.volumes[i], &vi, NULL) == 0 && vi.modified_ns > t)
            t = vi.modified_ns;
    }
    vv_group_info_free(&g);
    return t;
}

/* the snapshot to send: the one in flight, or a new one (recorded before it is used): of
 * the volume, or of every member of the group in one txn (one gen) */
static int take_snapshot(struct vv_repl *r, struct sess *s, char name[VV_NAME_MAX + 2],
                         struct vv_err *e)
{
    pthread_mutex_lock(&r->mu);
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    struct member *m = NULL;
    size_t n = 0;
    int err = 0;
    if (c.inflight_seq) {
        our_snap(&c, c.inflight_seq, name);
        if ((err = members_with(r, &c, name, &m, &n, e)))
            return err;
        free(m);
        if (n)
            return 0;
    }
    our_snap(&c, c.snap_seq + 1, name);
    uint64_t mtime = last_write(r, &c);
    const char *first = c.volume;
    struct vv_group_info g = {0};
    if (c.group[0]) {
        err = vv_group_get(r->p, c.group, &g, e);
        if (!err && !g.nvolumes)
            err = vv_err_set(e, EINVAL, "group '%s' has no volumes", c.group);
        if (!err && g.nvolumes > VV_REPL_MEMBERS_MAX)
            err = vv_err_set(e, E2BIG, "group '%s' has %zu volumes, more than a session "
                             "replicates (%u)", c.group, g.nvolumes, VV_REPL_MEMBERS_MAX);
        if (!err)
            err = vv_group_snapshot(r->p, c.group, name, e);
        first = err ? NULL : g.volumes[0];
    } else {
        err = vv_snapshot_create(r->p, c.volume, name, NULL, e);
    }
    struct vv_snapshot_info si;
    if (!err)
        err = vv_snapshot_get(r->p, first, name, &si, e);
    vv_group_info_free(&g);
    if (err)
        return err;
    pthread_mutex_lock(&r->mu);
    s->rec.snap_seq++;
    s->rec.inflight_seq = s->rec.snap_seq;
    s->rec.inflight_gen = si.gen;
    s->rec.inflight_time = si.created;
    s->rec.inflight_mtime = mtime;
    pthread_mutex_unlock(&r->mu);
    return persist(r, s, e);
}

/* delete snapshot NAME of every volume that has it (our own: the name says so) */
static void drop_everywhere(struct vv_repl *r, const struct sess_rec *c, const char *name)
{
    struct member *m;
    size_t n;
    if (members_with(r, c, name, &m, &n, NULL))
        return;
    for (size_t i = 0; i < n; i++)
        vv_snapshot_delete(r->p, m[i].name, name, NULL); /* (if it fails: left, harmless) */
    free(m);
}

/* one frame from the destination, of type WANT */
static int expect(struct xfer_in *in, unsigned want, struct wire_msg *m, struct vv_err *e)
{
    int err = xfer_next(in, m, e);
    if (!err && m->type != want)
        err = vv_err_set(e, EPROTO, "%s sent %s instead of %s", chan_peer(in->c),
                         wire_type_to_string(m->type), wire_type_to_string(want));
    return err;
}

static int snap_id_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct vv_snapshot_info *)a)->id;
    uint64_t y = ((const struct vv_snapshot_info *)b)->id;
    return x < y ? -1 : x > y;
}

/*
 * The deltas of volume VOL in one sync: from FROM (its snapshot of the point, id FROM_ID; NULL
 * for none) to each user snapshot taken since then and before TO (id TO_ID), each travelling
 * with its delta, then to TO.  *DELTAS counts them.  The destination skips what an earlier
 * attempt staged.
 */
static int send_chain(struct vv_repl *r, struct sess *s, struct chan *ch, struct xfer_in *in,
                      uint32_t *seq, const char *vol, const char *from, uint64_t from_id,
                      const char *to, uint64_t to_id, uint32_t *deltas, struct vv_err *e)
{
    struct vv_snapshot_info *si = NULL;
    size_t n = 0, k = 0;
    int err = vv_snapshot_list_brief(r->p, vol, &si, &n, e);
    for (size_t i = 0; !err && i < n; i++)
        if (si[i].name[0] != '.' && si[i].id < to_id && (!from || si[i].id > from_id))
            si[k++] = si[i];
    qsort(si, k, sizeof(*si), snap_id_cmp);
    const char *prev = from;
    for (size_t i = 0; !err && i <= k; i++) {
        const char *next = i < k ? si[i].name : to;
        struct xfer_opts o = {.travel = i < k, .acks = in, .zstd = s->rec.compress == 1,
                              .bwlimit = s->rec.bwlimit};
        err = xfer_send(ch, seq, r->p, vol, prev, next, &o, &s->st, e);
        prev = next;
        ++*deltas;
    }
    if (!err && k)
        vv_info(VV_SS_REPL, "session '%s': %zu snapshot%s of '%s' travelled, the last '%s'",
                s->rec.name, k, k == 1 ? "" : "s", vol, si[k - 1].name);
    free(si);
    return err;
}

/* the deltas of every volume of the sync (to our snapshot TO), and the COMMIT */
static int send_all(struct vv_repl *r, struct sess *s, struct chan *ch, struct xfer_in *in,
                    uint32_t *seq, const struct sess_rec *c, const char *to, struct vv_err *e)
{
    char from[VV_NAME_MAX + 2];
    struct member *m;
    size_t n;
    int err = members_with(r, c, to, &m, &n, e);
    uint32_t deltas = 0;
    if (c->point_seq)
        our_snap(c, c->point_seq, from);
    for (size_t i = 0; !err && i < n; i++) {
        struct vv_snapshot_info fi = {0};
        /* a volume that joined the group since the point has none: it starts from nothing */
        bool has = c->point_seq && vv_snapshot_get(r->p, m[i].name, from, &fi, NULL) == 0;
        err = send_chain(r, s, ch, in, seq, m[i].name, has ? from : NULL, fi.id, to,
                         m[i].snap_id, &deltas, e);
    }
    free(m);
    uint8_t frame[WIRE_HDR + 64];
    struct wire_msg a;
    if (!err)
        err = xfer_out(ch, frame, wire_put_commit(frame, sizeof(frame), (*seq)++, c->inflight_gen,
                                                  c->inflight_time, deltas, c->keep_remote), e);
    if (!err && !(err = expect(in, WIRE_ACK, &a, e)) && a.u.ack.gen != c->inflight_gen)
        err = vv_err_set(e, EPROTO, "%s acknowledged gen %" PRIu64 ", not %" PRIu64,
                         chan_peer(ch), a.u.ack.gen, c->inflight_gen);
    return err;
}

static int do_sync(struct vv_repl *r, struct sess *s, struct vv_err *e)
{
    char to[VV_NAME_MAX + 2], old[VV_NAME_MAX + 2], host[256], port[16];
    uint8_t key[CHAN_KEY_BYTES], frame[WIRE_HDR + 256];
    int err = take_snapshot(r, s, to, e);
    pthread_mutex_lock(&r->mu);
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    if (!err && !split_addr(c.peer, host, sizeof(host), port, sizeof(port)))
        err = vv_err_set(e, EINVAL, "bad peer address '%s'", c.peer);
    if (!err)
        err = chan_key_load(c.key, key, e);
    struct chan *ch = NULL;
    if (!err)
        err = chan_connect(host, port, key, CONNECT_TIMEOUT_MS, &ch, e);
    if (err)
        return err;
    set_active(r, s, ch);
    struct xfer_in in;
    struct wire_msg m;
    struct vv_pool_status ps;
    vv_pool_get_status(r->p, &ps);
    uint32_t seq = 0;
    if ((err = xfer_in_init(&in, ch, WIRE_SIDE_SENDER))) {
        vv_err_set(e, err, "out of memory");
        goto out;
    }
    err = xfer_out(ch, frame, wire_put_hello(frame, sizeof(frame), seq++, WIRE_VERSION,
                                             WIRE_VERSION, ps.id, c.id, c.name), e);
    if (!err && !(err = expect(&in, WIRE_WELCOME, &m, e)) && m.u.welcome.session != c.id)
        err = vv_err_set(e, EPROTO, "%s answered for another session", chan_peer(ch));
    if (err)
        goto out;
    uint64_t held = m.u.welcome.gen;
    if (held && held != c.point_gen && held != c.inflight_gen)
        err = vv_err_set(e, ESTALE, "%s holds a point (gen %" PRIu64 ") that this node has no "
                         "snapshot of (expected gen %" PRIu64 "); to start over with a full "
                         "copy, delete the session on the destination and rename or delete "
                         "its volume", chan_peer(ch), held, c.point_gen);
    if (!err && held && held == c.point_gen && !c.point_seq)
        err = vv_err_set(e, ENOENT, "the snapshot of the last point (gen %" PRIu64 ") is gone",
                         held);
    /* our last COMMIT's ACK was lost: the destination has the point already.  (When the
     * snapshot in flight has the point's gen, nothing changed in between: the empty delta
     * goes anyway, so that both sides record the new point's time.)  A destination that
     * holds nothing gets everything. */
    bool applied = held && held == c.inflight_gen && held != c.point_gen;
    if (!held)
        c.point_seq = 0;
    pthread_mutex_lock(&r->mu);
    xfer_begin(s);
    pthread_mutex_unlock(&r->mu);
    if (!err && !applied)
        err = send_all(r, s, ch, &in, &seq, &c, to, e);
    if (err)
        goto out;
    /* the destination holds the new point: record it, then drop the old one's snapshots */
    pthread_mutex_lock(&r->mu);
    uint64_t old_seq = s->rec.point_seq;
    set_point(s, c.inflight_gen, c.inflight_time);
    s->rec.point_seq = c.inflight_seq;
    s->rec.point_mtime = c.inflight_mtime;
    s->rec.inflight_seq = s->rec.inflight_gen = 0;
    pthread_mutex_unlock(&r->mu);
    err = persist(r, s, e);
    if (!err && old_seq && old_seq != c.inflight_seq) {
        our_snap(&c, old_seq, old);
        drop_everywhere(r, &c, old);
    }
    if (!err)
        vv_info(VV_SS_REPL, "session '%s': %s '%s' is at gen %" PRIu64 " on %s (%" PRIu64
                " data blocks, %" PRIu64 " bytes sent)", c.name, c.group[0] ? "group" : "volume",
                c.group[0] ? c.group : c.volume, c.inflight_gen, chan_peer(ch),
                (uint64_t)s->st.data_blocks, (uint64_t)s->st.bytes);
out:
    set_active(r, s, NULL);
    xfer_in_fini(&in);
    chan_close(ch);
    return err;
}

/* Is a sync due for S now?  (r->mu held, let go for a moment in continuous mode)  *WAIT_MS:
 * how long until it may be. */
static bool sync_due(struct vv_repl *r, struct sess *s, unsigned *wait_ms)
{
    const struct sess_rec *c = &s->rec;
    uint64_t now = now_s();
    *wait_ms = 1000;
    if (c->flags & SESS_F_PAUSED)
        return false;
    if (s->sync_req > s->sync_done)
        return true;
    if (s->retry_at)
        return now >= s->retry_at;
    if (!c->point_gen || c->inflight_seq)
        return true;
    if (c->mode == VV_REPL_CONTINUOUS) {
        /* the last write is meta's to say, and a group's takes group_mu, which a group
         * snapshot holds through a commit: asked with r->mu let go, so that status calls and
         * the other sessions do not wait for it */
        struct sess_rec copy = *c;
        pthread_mutex_unlock(&r->mu);
        uint64_t lw = last_write(r, &copy);
        pthread_mutex_lock(&r->mu);
        *wait_ms = CONTINUOUS_POLL_MS;
        return lw != s->rec.point_mtime;
    }
    return now >= c->point_time + c->rpo;
}

static void *source_worker(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-repl-src");
    struct sess *s = arg;
    struct vv_repl *r = s->r;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping && !s->deleted) {
        unsigned wait_ms;
        if (!sync_due(r, s, &wait_ms)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)wait_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            continue;
        }
        uint64_t req = s->sync_req;
        s->busy = true;
        if (s->rec.state != VV_REPL_ERROR || !s->rec.point_gen)
            s->rec.state = s->rec.point_gen ? VV_REPL_SYNCHRONIZING : VV_REPL_INITIALIZING;
        pthread_mutex_unlock(&r->mu);
        struct vv_err e = {0};
        int err = do_sync(r, s, &e);
        pthread_mutex_lock(&r->mu);
        xfer_end(s);
        bool paused = s->rec.flags & SESS_F_PAUSED;
        if (err && !paused && !r->stopping && !s->deleted) {
            set_error(s, &e, err);
            s->backoff = s->backoff ? s->backoff * 2 : 1;
            if (s->backoff > BACKOFF_MAX)
                s->backoff = BACKOFF_MAX;
            s->retry_at = now_s() + s->backoff;
            vv_warn(VV_SS_REPL, "session '%s': sync failed: %s (retrying in %" PRIu64 " s)",
                    s->rec.name, s->rec.error, s->backoff);
        } else if (!err) {
            s->backoff = s->retry_at = 0;
        }
        if (err && (paused || r->stopping || s->deleted) && s->rec.state != VV_REPL_ERROR)
            s->rec.state = s->rec.point_gen ? VV_REPL_OK : VV_REPL_INITIALIZING;
        s->sync_err = err;
        snprintf(s->sync_msg, sizeof(s->sync_msg), "%s", err ? s->rec.error : "");
        if (err && !s->sync_msg[0])
            snprintf(s->sync_msg, sizeof(s->sync_msg), "%s", e.msg[0] ? e.msg : strerror(err));
        s->sync_done = req;
        pthread_cond_broadcast(&r->cv);
        if (err) {
            pthread_mutex_unlock(&r->mu);
            persist(r, s, NULL);
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* start S's worker (r->mu not held) */
static int start_worker(struct vv_repl *r, struct sess *s)
{
    pthread_mutex_lock(&r->mu);
    s->refs++; /* the worker's */
    int err = pthread_create(&s->worker, NULL, source_worker, s);
    s->has_worker = !err;
    if (err)
        s->refs--;
    pthread_mutex_unlock(&r->mu);
    return err;
}

static void stop_worker(struct vv_repl *r, struct sess *s)
{
    if (!s->has_worker)
        return;
    pthread_join(s->worker, NULL);
    s->has_worker = false;
    sess_put(r, s);
}

/* ---- the destination ----------------------------------------------------------------------------- */

struct cp_arg {
    struct vv_repl *r;
    struct sess *s;
};

static int checkpoint(void *arg, uint64_t block)
{
    struct cp_arg *a = arg;
    pthread_mutex_lock(&a->r->mu);
    a->s->rec.stage_block = block;
    pthread_mutex_unlock(&a->r->mu);
    vv_debug(VV_SS_REPL, "session '%s': staged up to block %" PRIu64, a->s->rec.name, block);
    return persist(a->r, a->s, NULL);
}

/* Send ERROR with E's message (best effort: the connection closes after it) */
static void send_error(struct chan *c, uint32_t *seq, int code, const struct vv_err *e)
{
    uint8_t f[WIRE_HDR + 8 + WIRE_MSG_MAX];
    char msg[WIRE_MSG_MAX + 1];
    size_t j = 0;
    for (const char *q = e->msg; *q && j < WIRE_MSG_MAX; q++)
        msg[j++] = *q >= 0x20 && *q <= 0x7e ? *q : '?';
    msg[j] = '\0';
    size_t n = wire_put_error(f, sizeof(f), (*seq)++, (uint32_t)code, msg);
    if (n)
        chan_send(c, f, n);
}

/* drop the points of S's replica VOLUME older than KEEP (r->mu not held) */
static void drop_old_points(struct vv_repl *r, uint64_t id, const char *volume, uint64_t keep)
{
    struct vv_snapshot_info *si;
    size_t n;
    char prefix[32];
    snprintf(prefix, sizeof(prefix), ".p-%016" PRIx64 "-", id);
    if (vv_snapshot_list_brief(r->p, volume, &si, &n, NULL))
        return;
    for (size_t i = 0; i < n; i++)
        if (si[i].id != keep && strncmp(si[i].name, prefix, strlen(prefix)) == 0 &&
            !si[i].open_count)
            vv_snapshot_delete(r->p, volume, si[i].name, NULL);
    free(si);
}

/* the session of HELLO M, found or made (with a reference, and busy) */
static struct sess *dest_session(struct vv_repl *r, struct chan *c, const struct wire_msg *m,
                                 struct vv_err *e)
{
    pthread_mutex_lock(&r->mu);
    struct sess *s = find_id(r, m->u.hello.session);
    int err = 0;
    if (r->stopping) {
        err = vv_err_set(e, EBUSY, "this node is shutting down");
    } else if (!s && find_name(r, m->u.hello.name)) {
        err = vv_err_set(e, EEXIST, "a replication session named '%s' exists on this node",
                         m->u.hello.name);
    } else if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            err = vv_err_set(e, ENOMEM, "out of memory");
        } else {
            pthread_mutex_init(&s->pmu, NULL);
            s->r = r;
            s->rec = (struct sess_rec){.version = SESS_REC_VERSION,
                                       .role = VV_REPL_DESTINATION,
                                       .state = VV_REPL_INITIALIZING,
                                       .id = m->u.hello.session,
                                       .created = now_s()};
            snprintf(s->rec.name, sizeof(s->rec.name), "%s", m->u.hello.name);
            memcpy(s->rec.peer_pool, m->u.hello.pool, 16);
            if ((err = sess_add(r, s))) {
                pthread_mutex_destroy(&s->pmu);
                free(s);
                s = NULL;
                vv_err_set(e, err, "out of memory");
            } else {
                vv_info(VV_SS_REPL, "session '%s' (%016" PRIx64 ") created by %s", s->rec.name,
                        s->rec.id, chan_peer(c));
            }
        }
    } else if (s->rec.role != VV_REPL_DESTINATION) {
        err = vv_err_set(e, EINVAL, "session '%s' is a source session on this node",
                         s->rec.name);
    } else if (memcmp(s->rec.peer_pool, m->u.hello.pool, 16) != 0) {
        err = vv_err_set(e, EPERM, "session '%s' replicates another pool than %s's",
                         s->rec.name, chan_peer(c));
    } else if (s->busy && s->active) {
        /* the source comes again: the connection it had is dead (a cut link it has noticed
         * first, a restart); cut it and take over once it lets go */
        cut(s);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        while (s->busy && !r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
            ;
        if (s->busy || r->stopping)
            err = vv_err_set(e, EBUSY, "session '%s' has a connection already", s->rec.name);
    } else if (s->busy) {
        err = vv_err_set(e, EBUSY, "session '%s' is being deleted", s->rec.name);
    }
    if (!err) {
        s->refs++;
        s->busy = true;
        s->active = c;
        xfer_begin(s);
        snprintf(s->rec.peer, sizeof(s->rec.peer), "%s", chan_peer(c) + 5); /* "peer " */
    }
    pthread_mutex_unlock(&r->mu);
    return err ? NULL : s;
}

static bool is_done(const struct sess_rec *c, uint64_t vol_id, uint64_t to)
{
    for (uint32_t i = 0; i < c->ndone && i < VV_REPL_MEMBERS_MAX; i++)
        if (c->done[i] == vol_id)
            return to <= c->done_to;
    return false;
}

/* BEGIN M: the replica ready, and the block to resume at (all of them: staged already);
 * *AHEAD: blocks past this delta's gen are staged (the snapshot that travels with it cannot
 * be made as of its gen); *SKIP: this volume's deltas of this sync are all staged */
static int dest_begin(struct vv_repl *r, struct sess *s, const struct wire_msg *m,
                      struct vv_vol **h, uint64_t *resume, bool *ahead, bool *skip,
                      struct vv_err *e)
{
    pthread_mutex_lock(&r->mu);
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    const char *vol = m->u.begin.volume;
    uint64_t from = m->u.begin.from, to = m->u.begin.to;
    struct vv_pool_status ps;
    vv_pool_get_status(r->p, &ps);
    if (m->u.begin.extent_size != ps.extent_size)
        return vv_err_set(e, EINVAL, "the source's extent size is %u bytes, this pool's %u",
                          m->u.begin.extent_size, ps.extent_size);
    struct vv_volume_info vi;
    bool known = vv_volume_get(r->p, vol, &vi, NULL) == 0 && vi.replica &&
                 vi.replica_session == c.id;
    bool staging = strcmp(c.stage_vol, vol) == 0;
    uint64_t chain = staging ? c.chain_gen : 0;
    /* a delta starts at the point, or inside the chain staged since (a retry, a chain that
     * lost a snapshot on the source meanwhile); a replica without a point yet (a volume new
     * to the group) from nothing; and any delta of a replica staged whole for this sync (a
     * retry after everything was staged but the commit) is skipped, wherever it starts */
    bool done = known && is_done(&c, vi.id, to);
    bool from_ok = done || from == c.point_gen ||
                   (chain && from >= c.point_gen && from <= chain) ||
                   (!from && (!known || !vi.point_snapshot_id));
    if (!from_ok)
        return vv_err_set(e, ESTALE, "the delta starts at gen %" PRIu64 ", but replica '%s' "
                          "holds gen %" PRIu64, from, vol, c.point_gen);
    int err = vv_replica_prepare(r->p, vol, c.id, m->u.begin.size, &vi, e);
    if (!err && (err = vv_vol_open(r->p, vi.id, h)))
        vv_err_set(e, err, "cannot open replica '%s': %s", vol, strerror(err));
    if (err)
        return err;
    uint64_t blocks = (m->u.begin.size + ps.extent_size - 1) / ps.extent_size;
    *skip = done;
    if (*skip || (chain && to <= chain))
        *resume = blocks;
    else if (staging && c.stage_to == to && c.stage_from == from)
        *resume = c.stage_block;
    else
        *resume = 0;
    *ahead = staging && c.stage_to > to && c.stage_block && *resume < blocks;
    vv_debug(VV_SS_REPL, "session '%s': delta %" PRIu64 "..%" PRIu64 " of '%s' (staged: %" PRIu64
             "..%" PRIu64 " up to %" PRIu64 ", chain at %" PRIu64 "): from block %" PRIu64,
             c.name, from, to, vol, c.stage_from, c.stage_to, c.stage_block, chain, *resume);
    /* from scratch into a replica that holds something: what the source lacks goes */
    if (!from && !*resume && !chain && vi.used &&
        (err = vv_vol_discard(*h, 0, m->u.begin.size)))
        vv_err_set(e, err, "cannot clear replica '%s': %s", vol, strerror(err));
    if (!err && !from && !*resume)
        err = vv_pool_sync(r->p); /* (the checkpoints come after it) */
    pthread_mutex_lock(&r->mu);
    snprintf(s->rec.volume, sizeof(s->rec.volume), "%s", vol);
    if (*resume < blocks) {
        if (!staging)
            s->rec.chain_gen = 0;
        snprintf(s->rec.stage_vol, sizeof(s->rec.stage_vol), "%s", vol);
        s->rec.stage_from = from;
        s->rec.stage_to = to;
        s->rec.stage_block = *resume;
    }
    s->rec.state = c.point_gen ? VV_REPL_SYNCHRONIZING : VV_REPL_INITIALIZING;
    pthread_mutex_unlock(&r->mu);
    if (!err)
        err = persist(r, s, e);
    if (err) {
        vv_vol_close(*h);
        *h = NULL;
    } else if (*resume && *resume < blocks) {
        vv_info(VV_SS_REPL, "session '%s': resuming the delta to gen %" PRIu64 " of '%s' at "
                "block %" PRIu64, c.name, to, vol, *resume);
    }
    return err;
}

/* The delta of VOL to gen TO is staged whole.  With the snapshot TV that travelled with it:
 * make it (unless an earlier attempt did) and record how far VOL's chain got; without one,
 * it was VOL's last delta of this sync: VOL is done. */
static int dest_staged(struct vv_repl *r, struct sess *s, const char *vol, uint64_t to,
                       bool ahead, const struct xfer_travel *tv, struct vv_err *e)
{
    pthread_mutex_lock(&r->mu);
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    struct vv_snapshot_info si;
    struct vv_volume_info vi;
    int err = vv_volume_get(r->p, vol, &vi, e);
    if (!err && tv->got && ahead)
        vv_warn(VV_SS_REPL, "session '%s': snapshot '%s' of '%s' not made: the replica holds "
                "blocks of a later point already", c.name, tv->name, vol);
    else if (!err && tv->got && vv_snapshot_get(r->p, vol, tv->name, &si, NULL) != 0 &&
             (err = vv_replica_snapshot(r->p, c.id, vol, tv->name, e)) == 0)
        vv_info(VV_SS_REPL, "session '%s': snapshot '%s' of '%s' travelled", c.name, tv->name,
                vol);
    if (err)
        return err;
    pthread_mutex_lock(&r->mu);
    bool staging = strcmp(s->rec.stage_vol, vol) == 0;
    if (tv->got && staging && to > s->rec.chain_gen)
        s->rec.chain_gen = to;
    if (!tv->got && !is_done(&s->rec, vi.id, to)) {
        if (s->rec.done_to != to)
            s->rec.ndone = 0; /* (left from a sync to another gen that did not commit) */
        if (s->rec.ndone < VV_REPL_MEMBERS_MAX)
            s->rec.done[s->rec.ndone++] = vi.id;
        s->rec.done_to = to;
        if (staging)
            s->rec.chain_gen = 0;
    }
    /* (a delta skipped as staged before leaves the checkpoint of a later one alone) */
    if (staging && s->rec.stage_to == to)
        s->rec.stage_from = s->rec.stage_to = s->rec.stage_block = 0;
    pthread_mutex_unlock(&r->mu);
    return persist(r, s, e);
}

/* keep the KEEP newest snapshots that travelled to replica VOLUME (0: all) */
static void dest_retain(struct vv_repl *r, const char *name, const char *volume, uint32_t keep)
{
    struct vv_snapshot_info *si;
    size_t n, k = 0;
    if (!keep || vv_snapshot_list_brief(r->p, volume, &si, &n, NULL))
        return;
    for (size_t i = 0; i < n; i++)
        if (si[i].name[0] != '.')
            si[k++] = si[i];
    qsort(si, k, sizeof(*si), snap_id_cmp);
    for (size_t i = 0; i + keep < k; i++)
        if (vv_snapshot_delete(r->p, volume, si[i].name, NULL) == 0)
            vv_info(VV_SS_REPL, "session '%s': dropped snapshot '%s' of '%s' (keeping the %u "
                    "newest)", name, si[i].name, volume, keep);
    free(si);
}

/* COMMIT M: the replicas staged whole become a point, together (one txn) */
static int dest_commit(struct vv_repl *r, struct sess *s, const struct wire_msg *m,
                       struct vv_err *e)
{
    pthread_mutex_lock(&r->mu);
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    if (c.done_to != m->u.commit.gen || !c.ndone)
        return vv_err_set(e, EPROTO, "commit of gen %" PRIu64 " without its deltas",
                          m->u.commit.gen);
    /* (numbered by the syncs: two points may be of one source gen, nothing changed between) */
    char point[VV_NAME_MAX + 2];
    snprintf(point, sizeof(point), ".p-%016" PRIx64 "-%" PRIu64, c.id, c.syncs + 1);
    struct vv_volume_info vi[VV_REPL_MEMBERS_MAX];
    const char *vols[VV_REPL_MEMBERS_MAX];
    int err = 0;
    for (uint32_t i = 0; !err && i < c.ndone; i++) {
        if ((err = vv_volume_get_by_id(r->p, c.done[i], &vi[i])))
            vv_err_set(e, err, "replica %" PRIu64 " is gone", c.done[i]);
        vols[i] = vi[i].name;
    }
    if (!err)
        err = vv_replica_point(r->p, c.id, vols, c.ndone, point, e);
    if (err)
        return err;
    pthread_mutex_lock(&r->mu);
    set_point(s, m->u.commit.gen, m->u.commit.created);
    s->rec.stage_from = s->rec.stage_to = s->rec.stage_block = s->rec.chain_gen = 0;
    s->rec.stage_vol[0] = '\0';
    s->rec.ndone = 0;
    s->rec.done_to = 0;
    pthread_mutex_unlock(&r->mu);
    err = persist(r, s, e);
    for (uint32_t i = 0; i < c.ndone; i++) {
        struct vv_volume_info now;
        if (vv_volume_get_by_id(r->p, c.done[i], &now) == 0) {
            drop_old_points(r, c.id, now.name, now.point_snapshot_id);
            dest_retain(r, c.name, now.name, m->u.commit.keep);
        }
    }
    return err;
}

static void *dest_conn(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-repl-dst");
    struct conn *cn = arg;
    struct vv_repl *r = cn->r;
    struct vv_err e = {0};
    struct chan *c = NULL;
    struct sess *s = NULL;
    struct xfer_in in = {0};
    uint32_t seq = 0;
    int err = chan_accept(cn->fd, r->key, CONNECT_TIMEOUT_MS, &c, &e);
    if (err) {
        vv_warn(VV_SS_REPL, "refused a connection: %s", e.msg);
        goto done;
    }
    struct wire_msg m;
    if ((err = xfer_in_init(&in, c, WIRE_SIDE_RECEIVER)))
        goto done;
    if ((err = expect(&in, WIRE_HELLO, &m, &e)))
        goto fail;
    if (!(s = dest_session(r, c, &m, &e))) {
        err = e.code;
        goto fail;
    }
    pthread_mutex_lock(&r->mu);
    uint64_t held = s->rec.point_gen;
    pthread_mutex_unlock(&r->mu);
    if ((err = persist(r, s, &e)))
        goto fail;
    struct vv_pool_status ps;
    vv_pool_get_status(r->p, &ps);
    uint8_t f[WIRE_HDR + 64];
    if ((err = xfer_out(c, f, wire_put_welcome(f, sizeof(f), seq++, WIRE_VERSION, ps.id,
                                               m.u.hello.session, held, 0), &e)))
        goto fail;
    for (;;) {
        if ((err = xfer_next(&in, &m, &e))) {
            if (err == EPIPE && !in.rx.in_delta && !in.rx.deltas)
                err = 0; /* the source closed between syncs: the normal end */
            break;
        }
        if (m.type == WIRE_BEGIN) {
            struct vv_vol *h = NULL;
            uint64_t resume = 0, to = m.u.begin.to;
            bool ahead = false, skip = false;
            struct cp_arg ca = {r, s};
            struct xfer_checkpoint cp = {r->checkpoint, checkpoint, &ca};
            struct xfer_travel tv = {0};
            char vol[WIRE_NAME_MAX + 1];
            snprintf(vol, sizeof(vol), "%s", m.u.begin.volume);
            if (!(err = dest_begin(r, s, &m, &h, &resume, &ahead, &skip, &e)))
                err = xfer_out(c, f, wire_put_ack(f, sizeof(f), seq++, to, resume), &e);
            if (!err)
                err = xfer_recv_delta(&in, r->p, h, vol, &cp, &tv, &s->st, &e);
            vv_vol_close(h);
            if (!err && !skip)
                err = dest_staged(r, s, vol, to, ahead, &tv, &e);
        } else if (m.type == WIRE_COMMIT) {
            if (!(err = dest_commit(r, s, &m, &e)))
                err = xfer_out(c, f, wire_put_ack(f, sizeof(f), seq++, m.u.commit.gen, 0), &e);
            if (!err)
                vv_info(VV_SS_REPL, "session '%s': replica is at gen %" PRIu64, s->rec.name,
                        m.u.commit.gen);
        } else {
            err = vv_err_set(&e, EPROTO, "%s sent %s out of place", chan_peer(c),
                             wire_type_to_string(m.type));
        }
        if (err)
            break;
    }
fail:
    if (err) {
        if (err != EPIPE && err != EBADMSG && err != EPROTO)
            send_error(c, &seq, err, &e);
        vv_warn(VV_SS_REPL, "connection from %s: %s", chan_peer(c), e.msg[0] ? e.msg : strerror(err));
    }
done:
    if (s) {
        pthread_mutex_lock(&r->mu);
        if (err && !r->stopping)
            set_error(s, &e, err);
        if (err && s->rec.state == VV_REPL_SYNCHRONIZING)
            s->rec.state = VV_REPL_ERROR;
        xfer_end(s);
        s->active = NULL;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        persist(r, s, NULL);
        sess_put(r, s);
    }
    xfer_in_fini(&in);
    chan_close(c);
    pthread_mutex_lock(&r->mu);
    cn->done = true;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* join the connection threads that ended (ALL: every one, at stop; r->mu not held) */
static void reap_conns(struct vv_repl *r, bool all)
{
    for (;;) {
        pthread_mutex_lock(&r->mu);
        struct conn **pp = &r->conns, *cn = NULL;
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->done || all) {
                cn = *pp;
                *pp = cn->next;
                break;
            }
        pthread_mutex_unlock(&r->mu);
        if (!cn)
            return;
        pthread_join(cn->t, NULL);
        free(cn);
    }
}

static void *listener(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-repl-listen");
    struct vv_repl *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        struct pollfd pf = {.fd = r->lfd, .events = POLLIN};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        reap_conns(r, false);
        struct conn *cn = calloc(1, sizeof(*cn));
        if (!cn) {
            close(fd);
            continue;
        }
        cn->r = r;
        cn->fd = fd;
        pthread_mutex_lock(&r->mu);
        if (pthread_create(&cn->t, NULL, dest_conn, cn) != 0) {
            pthread_mutex_unlock(&r->mu);
            close(fd);
            free(cn);
            continue;
        }
        cn->next = r->conns;
        r->conns = cn;
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

/* is ADDR a loopback address? */
static bool loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static int start_listener(struct vv_repl *r, const struct vv_repl_opts *o, struct vv_err *e)
{
    char host[256], port[16];
    if (!split_addr(o->listen, host, sizeof(host), port, sizeof(port)))
        return vv_err_set(e, EINVAL, "bad listen address '%s' (HOST:PORT, or [V6]:PORT)",
                          o->listen);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc)
        return vv_err_set(e, EINVAL, "cannot resolve listen address '%s': %s", o->listen,
                          gai_strerror(rc));
    bool lo = loopback(res->ai_addr);
    int err = 0;
    if (!o->key_path || !o->key_path[0])
        err = vv_err_set(e, EINVAL, "refusing to listen on %s without a key (--key FILE: "
                         "peers authenticate with it%s)", o->listen,
                         lo ? "" : "; this address is reachable from other hosts");
    if (!err)
        err = chan_key_load(o->key_path, r->key, e);
    r->lfd = err ? -1 : socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!err && r->lfd < 0)
        err = vv_err_set(e, errno, "cannot make a socket: %s", strerror(errno));
    int one = 1;
    if (!err)
        setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (!err && (bind(r->lfd, res->ai_addr, res->ai_addrlen) != 0 || listen(r->lfd, 16) != 0))
        err = vv_err_set(e, errno, "cannot listen on %s: %s", o->listen, strerror(errno));
    freeaddrinfo(res);
    if (!err && (err = pthread_create(&r->listener, NULL, listener, r)))
        vv_err_set(e, err, "cannot start the listener: %s", strerror(err));
    if (err) {
        if (r->lfd >= 0)
            close(r->lfd);
        r->lfd = -1;
        return err;
    }
    r->listening = true;
    vv_info(VV_SS_REPL, "listening for replication peers on %s", o->listen);
    return 0;
}

/* ---- the service ------------------------------------------------------------------------------ */

static int load_sessions(struct vv_repl *r, struct vv_err *e)
{
    uint64_t *ids;
    size_t n;
    int err = vv_record_list(r->p, &ids, &n);
    if (err)
        return vv_err_set(e, err, "cannot read the replication sessions: %s", strerror(err));
    for (size_t i = 0; i < n && !err; i++) {
        struct sess *s = calloc(1, sizeof(*s));
        size_t len = 0;
        if (!s) {
            err = vv_err_set(e, ENOMEM, "out of memory");
            break;
        }
        err = vv_record_get(r->p, ids[i], &s->rec, sizeof(s->rec), &len);
        if (!err && (len < SESS_REC_MIN || s->rec.version < 1 || s->rec.id != ids[i] ||
                     vv_name_check(s->rec.name)))
            err = EIO;
        if (err) {
            free(s);
            vv_err_set(e, err, "replication session record %016" PRIx64 " is unreadable: %s",
                       ids[i], strerror(err));
            break;
        }
        s->rec.name[sizeof(s->rec.name) - 1] = s->rec.volume[sizeof(s->rec.volume) - 1] = '\0';
        s->rec.peer[sizeof(s->rec.peer) - 1] = s->rec.key[sizeof(s->rec.key) - 1] = '\0';
        s->rec.error[sizeof(s->rec.error) - 1] = '\0';
        s->rec.group[sizeof(s->rec.group) - 1] = s->rec.stage_vol[sizeof(s->rec.stage_vol) - 1] = 0;
        if (s->rec.ndone > VV_REPL_MEMBERS_MAX)
            s->rec.ndone = 0;
        pthread_mutex_init(&s->pmu, NULL);
        s->r = r;
        /* a transfer in flight was cut by the stop: it resumes */
        if (s->rec.state == VV_REPL_SYNCHRONIZING)
            s->rec.state = s->rec.point_gen ? VV_REPL_OK : VV_REPL_INITIALIZING;
        if ((err = sess_add(r, s))) {
            pthread_mutex_destroy(&s->pmu);
            free(s);
            vv_err_set(e, err, "out of memory");
        }
    }
    free(ids);
    return err;
}

int vv_repl_start(struct vv_pool *p, const struct vv_repl_opts *o, struct vv_repl **out,
                  struct vv_err *e)
{
    struct vv_repl *r = calloc(1, sizeof(*r));
    if (!r)
        return vv_err_set(e, ENOMEM, "out of memory");
    r->p = p;
    r->lfd = -1;
    struct vv_pool_status ps;
    vv_pool_get_status(p, &ps);
    r->es = ps.extent_size;
    /* VVFS_REPL_CHECKPOINT_MB: tests make transfers that resume without sending gigabytes */
    const char *cpe = getenv("VVFS_REPL_CHECKPOINT_MB");
    r->checkpoint = cpe && atoi(cpe) > 0 ? (uint64_t)atoi(cpe) << 20 : XFER_CHECKPOINT;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error, not the daemon's end */
    int err = load_sessions(r, e);
    if (!err && o && o->listen && o->listen[0])
        err = start_listener(r, o, e);
    for (size_t i = 0; !err && i < r->n; i++)
        if (r->s[i]->rec.role == VV_REPL_SOURCE && (err = start_worker(r, r->s[i])))
            vv_err_set(e, err, "cannot start a replication worker: %s", strerror(err));
    if (err) {
        vv_repl_stop(r);
        return err;
    }
    if (r->n)
        vv_info(VV_SS_REPL, "%zu replication session%s loaded", r->n, r->n == 1 ? "" : "s");
    *out = r;
    return 0;
}

void vv_repl_shutdown(struct vv_repl *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    for (size_t i = 0; i < r->n; i++)
        cut(r->s[i]);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void vv_repl_stop(struct vv_repl *r)
{
    if (!r)
        return;
    vv_repl_shutdown(r);
    if (r->listening)
        pthread_join(r->listener, NULL);
    /* connections: cut again (one may have begun meanwhile), then joined */
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        cut(r->s[i]);
    pthread_mutex_unlock(&r->mu);
    reap_conns(r, true);
    for (size_t i = 0; i < r->n; i++)
        stop_worker(r, r->s[i]);
    for (size_t i = 0; i < r->n; i++)
        sess_put(r, r->s[i]);
    if (r->lfd >= 0)
        close(r->lfd);
    free(r->s);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int vv_repl_create(struct vv_repl *r, const struct vv_repl_params *prm,
                   struct vv_repl_info *out, struct vv_err *e)
{
    const char *why = vv_name_check(prm->name);
    char host[256], port[16];
    uint8_t key[CHAN_KEY_BYTES];
    struct vv_volume_info vi;
    if (why)
        return vv_err_set(e, EINVAL, "invalid session name: %s", why);
    if (!prm->volume == !prm->group || !prm->peer || !prm->key_path)
        return vv_err_set(e, EINVAL, "a session needs a volume or a group (one of them), a "
                          "peer and a key");
    if (!split_addr(prm->peer, host, sizeof(host), port, sizeof(port)) ||
        strlen(prm->peer) > VV_REPL_ADDR_MAX)
        return vv_err_set(e, EINVAL, "bad peer address '%s' (HOST:PORT, or [V6]:PORT)",
                          prm->peer);
    if (prm->key_path[0] != '/' || strlen(prm->key_path) > VV_REPL_PATH_MAX)
        return vv_err_set(e, EINVAL, "the key file must be an absolute path of at most %u "
                          "characters", VV_REPL_PATH_MAX);
    enum vv_repl_mode mode = prm->mode ? prm->mode : VV_REPL_PERIODIC;
    uint32_t rpo = prm->rpo ? prm->rpo : VV_REPL_RPO_DEFAULT;
    if (mode != VV_REPL_PERIODIC && mode != VV_REPL_CONTINUOUS)
        return vv_err_set(e, EINVAL, "unknown mode");
    if (rpo < VV_REPL_RPO_MIN || rpo > VV_REPL_RPO_MAX)
        return vv_err_set(e, EINVAL, "the RPO must be from %u second to %u seconds",
                          VV_REPL_RPO_MIN, VV_REPL_RPO_MAX);
    if (prm->bwlimit && prm->bwlimit < VV_REPL_BWLIMIT_MIN)
        return vv_err_set(e, EINVAL, "a bandwidth limit must be at least %u bytes per second",
                          VV_REPL_BWLIMIT_MIN);
    if (prm->keep_remote > VV_REPL_KEEP_MAX)
        return vv_err_set(e, EINVAL, "keep_remote must be at most %u", VV_REPL_KEEP_MAX);
    int err = chan_key_load(prm->key_path, key, e);
    if (!err && prm->volume)
        err = vv_volume_get(r->p, prm->volume, &vi, e);
    if (!err && prm->volume && vi.replica)
        err = vv_err_set(e, EINVAL, "volume '%s' is a replica itself", prm->volume);
    struct vv_group_info g = {0};
    if (!err && prm->group && !(err = vv_group_get(r->p, prm->group, &g, e)) &&
        g.nvolumes > VV_REPL_MEMBERS_MAX)
        err = vv_err_set(e, E2BIG, "group '%s' has %zu volumes, more than a session "
                         "replicates (%u)", prm->group, g.nvolumes, VV_REPL_MEMBERS_MAX);
    vv_group_info_free(&g);
    if (err)
        return err;
    const char *what = prm->volume ? prm->volume : prm->group;
    struct sess *s = calloc(1, sizeof(*s));
    if (!s)
        return vv_err_set(e, ENOMEM, "out of memory");
    pthread_mutex_init(&s->pmu, NULL);
    s->r = r;
    s->creating = true;
    s->rec = (struct sess_rec){.version = SESS_REC_VERSION, .role = VV_REPL_SOURCE,
                               .mode = (uint8_t)mode, .state = VV_REPL_INITIALIZING,
                               .rpo = rpo, .created = now_s(),
                               .keep_remote = prm->keep_remote,
                               .compress = prm->zstd ? 1 : 0, .bwlimit = prm->bwlimit};
    while (!s->rec.id)
        if (getrandom(&s->rec.id, sizeof(s->rec.id), 0) != sizeof(s->rec.id))
            s->rec.id = 0;
    snprintf(s->rec.name, sizeof(s->rec.name), "%s", prm->name);
    snprintf(s->rec.volume, sizeof(s->rec.volume), "%s", prm->volume ? prm->volume : "");
    snprintf(s->rec.group, sizeof(s->rec.group), "%s", prm->group ? prm->group : "");
    snprintf(s->rec.peer, sizeof(s->rec.peer), "%s", prm->peer);
    snprintf(s->rec.key, sizeof(s->rec.key), "%s", prm->key_path);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n && !err; i++)
        if (strcmp(r->s[i]->rec.name, prm->name) == 0)
            err = vv_err_set(e, EEXIST, "replication session '%s' already exists", prm->name);
        else if (r->s[i]->rec.role == VV_REPL_SOURCE &&
                 strcmp(prm->volume ? r->s[i]->rec.volume : r->s[i]->rec.group, what) == 0)
            err = vv_err_set(e, EEXIST, "%s '%s' is replicated by session '%s' already",
                             prm->volume ? "volume" : "group", what, r->s[i]->rec.name);
    if (!err && r->stopping)
        err = vv_err_set(e, EBUSY, "the daemon is shutting down");
    if (!err && (err = sess_add(r, s)))
        vv_err_set(e, err, "out of memory");
    if (!err)
        s->refs++; /* ours, until the end of this call */
    pthread_mutex_unlock(&r->mu);
    if (err) {
        pthread_mutex_destroy(&s->pmu);
        free(s);
        return err;
    }
    err = persist(r, s, e);
    if (!err && (err = start_worker(r, s)))
        vv_err_set(e, err, "cannot start the session's worker: %s", strerror(err));
    if (err) {
        pthread_mutex_lock(&r->mu);
        sess_remove(r, s);
        pthread_mutex_unlock(&r->mu);
        vv_record_delete(r->p, s->rec.id, NULL);
        sess_put(r, s); /* the list's */
    } else {
        vv_info(VV_SS_REPL, "created session '%s' (%016" PRIx64 "): %s '%s' to %s, %s%s%s",
                prm->name, s->rec.id, prm->volume ? "volume" : "group", what, prm->peer,
                vv_repl_mode_to_string(mode), mode == VV_REPL_PERIODIC ? " sync" : "",
                prm->zstd ? ", zstd" : "");
        pthread_mutex_lock(&r->mu);
        s->creating = false;
        if (out)
            fill_info(r, s, out);
        pthread_mutex_unlock(&r->mu);
    }
    sess_put(r, s);
    return err;
}

/* every replica of destination session C becomes an ordinary volume, as of its point (the
 * points go) */
static int release_all(struct vv_repl *r, const struct sess_rec *c, struct vv_err *e)
{
    struct vv_volume_info *vi;
    size_t n;
    int err = vv_volume_list(r->p, &vi, &n);
    if (err)
        return vv_err_set(e, err, "cannot list the volumes: %s", strerror(err));
    for (size_t i = 0; !err && i < n; i++) {
        if (!vi[i].replica || vi[i].replica_session != c->id)
            continue;
        err = vv_replica_release(r->p, vi[i].name, c->id, e);
        if (!err)
            drop_old_points(r, c->id, vi[i].name, 0);
    }
    free(vi);
    return err;
}

int vv_repl_delete(struct vv_repl *r, const char *name, struct vv_err *e)
{
    struct sess *s = sess_get(r, name, e);
    if (!s)
        return e ? e->code : ENOENT;
    int err = 0;
    pthread_mutex_lock(&r->mu);
    bool dest = s->rec.role == VV_REPL_DESTINATION;
    if (s->deleted)
        err = vv_err_set(e, ENOENT, "no replication session '%s'", name);
    else if (dest && s->busy)
        err = vv_err_set(e, EBUSY, "session '%s' is receiving from %s now: pause or delete it "
                         "on the source first", name, s->rec.peer);
    else if (dest)
        s->busy = true; /* no connection takes it meanwhile */
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    /* a destination's replicas become volumes again, as of their points */
    if (!err && dest)
        err = release_all(r, &c, e);
    pthread_mutex_lock(&r->mu);
    if (!err) {
        s->deleted = true;
        sess_remove(r, s);
        cut(s);
        pthread_cond_broadcast(&r->cv);
    } else if (dest && !s->deleted) {
        s->busy = false;
    }
    pthread_mutex_unlock(&r->mu);
    if (err) {
        sess_put(r, s);
        return err;
    }
    stop_worker(r, s);
    pthread_mutex_lock(&s->pmu); /* (a persist in flight is done) */
    err = vv_record_delete(r->p, c.id, e);
    pthread_mutex_unlock(&s->pmu);
    if (err == ENOENT)
        err = 0;
    /* the source's own snapshots go (as the stopped worker left them); a destination's
     * points but the newest went with the release */
    pthread_mutex_lock(&r->mu);
    c = s->rec;
    pthread_mutex_unlock(&r->mu);
    char sn[VV_NAME_MAX + 2];
    uint64_t seqs[2] = {c.point_seq, c.inflight_seq};
    for (int i = 0; !dest && i < 2; i++) {
        if (seqs[i]) {
            our_snap(&c, seqs[i], sn);
            drop_everywhere(r, &c, sn);
        }
    }
    vv_info(VV_SS_REPL, "deleted session '%s' (%s)", name, vv_repl_role_to_string(c.role));
    sess_put(r, s); /* the list's */
    sess_put(r, s);
    return err;
}

int vv_repl_get(struct vv_repl *r, const char *name, struct vv_repl_info *out,
                struct vv_err *e)
{
    struct sess *s = sess_get(r, name, e);
    if (!s)
        return e ? e->code : ENOENT;
    pthread_mutex_lock(&r->mu);
    fill_info(r, s, out);
    pthread_mutex_unlock(&r->mu);
    sess_put(r, s);
    return 0;
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const struct vv_repl_info *)a)->name, ((const struct vv_repl_info *)b)->name);
}

int vv_repl_list(struct vv_repl *r, struct vv_repl_info **out, size_t *n)
{
    pthread_mutex_lock(&r->mu);
    struct vv_repl_info *a = calloc(r->n ? r->n : 1, sizeof(*a));
    size_t k = 0;
    for (size_t i = 0; a && i < r->n; i++)
        if (!r->s[i]->creating)
            fill_info(r, r->s[i], &a[k++]);
    *n = k;
    pthread_mutex_unlock(&r->mu);
    if (!a)
        return ENOMEM;
    qsort(a, *n, sizeof(*a), info_cmp);
    *out = a;
    return 0;
}

/* pause (PAUSE) or resume a source session */
static int set_paused(struct vv_repl *r, const char *name, bool pause, struct vv_err *e)
{
    struct sess *s = sess_get(r, name, e);
    if (!s)
        return e ? e->code : ENOENT;
    int err = 0;
    pthread_mutex_lock(&r->mu);
    if (s->rec.role != VV_REPL_SOURCE) {
        err = vv_err_set(e, EROFS, "session '%s' is a destination here: %s it on the source",
                         name, pause ? "pause" : "resume");
    } else if (pause) {
        s->rec.flags |= SESS_F_PAUSED;
        cut(s);
    } else {
        s->rec.flags &= ~SESS_F_PAUSED;
        s->retry_at = s->backoff = 0;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (!err)
        err = persist(r, s, e);
    if (!err)
        vv_info(VV_SS_REPL, "session '%s' %s", name, pause ? "paused" : "resumed");
    sess_put(r, s);
    return err;
}

int vv_repl_pause(struct vv_repl *r, const char *name, struct vv_err *e)
{
    return set_paused(r, name, true, e);
}

int vv_repl_resume(struct vv_repl *r, const char *name, struct vv_err *e)
{
    return set_paused(r, name, false, e);
}

int vv_repl_sync(struct vv_repl *r, const char *name, const char *pit, bool wait,
                 unsigned timeout_s, struct vv_repl_info *out, struct vv_err *e)
{
    struct sess *s = sess_get(r, name, e);
    if (!s)
        return e ? e->code : ENOENT;
    int err = 0;
    pthread_mutex_lock(&r->mu);
    struct sess_rec c = s->rec;
    pthread_mutex_unlock(&r->mu);
    const char *why = pit ? vv_name_check(pit) : NULL;
    if (c.role != VV_REPL_SOURCE)
        err = vv_err_set(e, EROFS, "session '%s' is a destination here: sync it on the source",
                         name);
    else if (c.flags & SESS_F_PAUSED)
        err = vv_err_set(e, EAGAIN, "session '%s' is paused (resume it first)", name);
    else if (why)
        err = vv_err_set(e, EINVAL, "invalid snapshot name: %s", why);
    /* the named point in time: a user snapshot like any, taken before the sync's own */
    else if (pit && c.group[0])
        err = vv_group_snapshot(r->p, c.group, pit, e);
    else if (pit)
        err = vv_snapshot_create(r->p, c.volume, pit, NULL, e);
    pthread_mutex_lock(&r->mu);
    /* a request is satisfied by a sync that starts after it: one already running is not */
    uint64_t req = s->busy ? s->sync_req + 2 : s->sync_req + 1;
    if (!err) {
        s->sync_req = req;
        s->retry_at = 0;
        pthread_cond_broadcast(&r->cv);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_s;
    while (!err && wait && s->sync_done < req && !s->deleted && !r->stopping &&
           !(s->rec.flags & SESS_F_PAUSED))
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
            err = vv_err_set(e, ETIMEDOUT, "session '%s': the sync has not completed within "
                             "%u s (it goes on)", name, timeout_s);
    if (!err && wait && s->sync_done < req)
        err = vv_err_set(e, ECANCELED, "session '%s': the sync was cut (paused, deleted or "
                         "shutting down)", name);
    else if (!err && wait && s->sync_err)
        err = vv_err_set(e, s->sync_err, "%s", s->sync_msg);
    if (out)
        fill_info(r, s, out);
    pthread_mutex_unlock(&r->mu);
    sess_put(r, s);
    return err;
}
