/*
 * api/server.c — the control plane: HTTP/1.1 + JSON on a Unix socket (see api.h).
 *
 * Design notes
 *
 *   Threads.  libmicrohttpd runs one listener thread plus one thread per connection (at most
 *   API_MAX_CONNECTIONS; an idle connection is closed after API_IDLE_TIMEOUT seconds), so a
 *   slow request (a sync waiting for its commit, the delete of a big volume) never stalls the
 *   others.  Handlers share nothing but the pool and the replication service, which are
 *   thread-safe, so there is no lock in this file.  vv_api_stop() -> MHD_stop_daemon() closes
 *   every connection and joins its thread, so no handler runs once it returns and the caller
 *   may stop replication and close the pool.  A replication sync with "wait" blocks its
 *   connection's thread until the sync ends or its timeout (at most API_SYNC_WAIT_MAX) runs
 *   out; MHD does not time a connection out while its handler runs, and vv_api_stop() waits
 *   for it too.
 *
 *   Life of a request.  MHD calls on_request() several times per request:
 *     1. after the headers (*req_cls == NULL): we allocate a struct request.  A Content-Length
 *        over API_BODY_MAX marks the request too large.  It is answered 413 at once if the
 *        client waits for "100 Continue" or the body is over API_DISCARD_MAX (MHD then drops
 *        the connection, and a client still sending sees a broken pipe); otherwise we read and
 *        drop the body and answer 413 at the end, so the client gets to read the answer;
 *     2. once per piece of body: appended to req->body; past API_BODY_MAX the rest is discarded
 *        and req->too_large set (this covers chunked bodies, which carry no Content-Length),
 *        past API_DISCARD_MAX we answer 413 without reading on;
 *     3. at the end (upload_data_size == 0): route, run the handler, queue the reply.
 *   on_completed() frees the struct request however the request ended.
 *
 *   Routing.  A table of (path, method, handler).  MHD is told not to %-decode the path
 *   (unescape_nothing), so a raw '/' always separates segments: "/v1/volumes/a/b" is no route
 *   (404), while "/v1/volumes/a%2Fb" is the volume name "a/b", which we decode and reject with
 *   vv_name_check() (400) — as we reject '%' and everything else outside [A-Za-z0-9._-].
 *
 *   Errors.  Handlers fill a struct reply.  An errno from meta or replication becomes a status
 *   and a slug via errno_map[]; the message is their vv_err sentence (they have logged the
 *   failure).  We log 5xx answers as errors (502/504, the peer's failure or a wait that ran
 *   out, as warnings), successful changes at info level and client mistakes at debug level
 *   (VVFS_DEBUG=api).  Text taken from the request is sanitised before it is echoed, so every
 *   answer is valid UTF-8 JSON.
 *
 *   PATCH with both "name" and "size" renames first, then resizes; if the resize fails the
 *   rename is undone, so the request has no effect (unless the undo fails: logged, and the
 *   answer's message says so).
 */
#include "api/api.h"

#include "replication/repl.h"
#include "util/addr.h"
#include "util/duration.h"
#include "util/hex.h"
#include "util/log.h"
#include "util/name.h"
#include "util/size.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define API_BODY_MAX (64u << 10) /* bytes of request body we accept */
#define API_DISCARD_MAX (1u << 20) /* bytes of a larger body we read and drop before the 413 */
#define API_MAX_CONNECTIONS 64u  /* concurrent connections (one thread each) */
#define API_IDLE_TIMEOUT 60u     /* seconds before an idle connection is closed */
#define API_LISTEN_BACKLOG 64
#define API_SYNC_WAIT_MAX 3600u  /* seconds a replication sync with "wait" may block */

struct vv_api {
    struct vv_pool *pool; /* not owned */
    struct vv_repl *repl; /* not owned */
    struct MHD_Daemon *mhd;
    char *sock_path;
};

/* Per-request state, in MHD's *req_cls; owned by the connection's thread. */
struct request {
    char *body; /* not NUL-terminated */
    size_t len, cap;
    uint64_t received; /* bytes of body seen, kept or not */
    bool too_large;    /* body passed API_BODY_MAX; the excess was discarded */
};

/* What a handler answers. */
struct reply {
    unsigned status;
    json_t *json;      /* body (owned), or NULL for none */
    char location[200]; /* Location header, or "" */
};

/* What a handler gets. */
struct call {
    struct vv_api *api;
    const char *name; /* decoded, checked volume (group, replication session) name from the
                       * path; NULL if the route has none */
    const char *snap; /* decoded, checked snapshot name from the path, or NULL */
    json_t *body;     /* parsed JSON object for routes that take a body (an optional one: NULL
                       * when none was sent), else NULL */
    bool flag;        /* the route's query parameter (route.param) was given as true */
};

/* ---- replies ------------------------------------------------------------------------------- */

/* Copy S into OUT with every byte outside printable ASCII replaced by '?'. */
static const char *sanitize(const char *s, char *out, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
    return out;
}

static void reply_json(struct reply *r, unsigned status, json_t *json)
{
    json_decref(r->json);
    r->status = status;
    r->json = json;
}

/* Answer {"error":{"code":SLUG,"message":...}}.  The message must be valid UTF-8. */
static void reply_error(struct reply *r, unsigned status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(struct reply *r, unsigned status, const char *slug, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", slug, "message", msg));
}

static const struct {
    int err;
    unsigned status;
    const char *slug;
} errno_map[] = {
    {EINVAL, MHD_HTTP_BAD_REQUEST, "invalid"},
    {ENOENT, MHD_HTTP_NOT_FOUND, "not_found"},
    {EEXIST, MHD_HTTP_CONFLICT, "exists"},
    {EBUSY, MHD_HTTP_CONFLICT, "busy"},
    {ENOSPC, MHD_HTTP_INSUFFICIENT_STORAGE, "no_space"},
    {EFBIG, MHD_HTTP_BAD_REQUEST, "too_large"},
    {ELOOP, MHD_HTTP_CONFLICT, "too_deep"},
    /* a replica volume, or a replication session of the destination (its source drives it) */
    {EROFS, MHD_HTTP_CONFLICT, "read_only"},
    /* a key file that others may read; a peer that does not take our key */
    {EPERM, MHD_HTTP_FORBIDDEN, "forbidden"},
    {EACCES, MHD_HTTP_FORBIDDEN, "forbidden"},
    /* the peer failed a sync that was waited for */
    {ECONNREFUSED, MHD_HTTP_BAD_GATEWAY, "peer_failed"},
    {ECONNRESET, MHD_HTTP_BAD_GATEWAY, "peer_failed"},
    {EHOSTUNREACH, MHD_HTTP_BAD_GATEWAY, "peer_failed"},
    {ENETUNREACH, MHD_HTTP_BAD_GATEWAY, "peer_failed"},
    {EPIPE, MHD_HTTP_BAD_GATEWAY, "peer_failed"},
    {EPROTO, MHD_HTTP_BAD_GATEWAY, "peer_failed"},
    /* a sync's wait ran out (the sync goes on), or the peer stopped answering */
    {ETIMEDOUT, MHD_HTTP_GATEWAY_TIMEOUT, "timeout"},
};

/* The status and slug that answer errno CODE from meta. */
static void errno_to_http(int code, unsigned *status, const char **slug)
{
    *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    *slug = "internal";
    for (size_t i = 0; i < sizeof(errno_map) / sizeof(errno_map[0]); i++) {
        if (errno_map[i].err == code) {
            *status = errno_map[i].status;
            *slug = errno_map[i].slug;
            return;
        }
    }
}

/* Answer the failure CODE of a meta call; E (may be NULL) holds meta's sentence. */
static void reply_errno(struct reply *r, int code, const struct vv_err *e)
{
    unsigned status;
    const char *slug;
    errno_to_http(code, &status, &slug);
    char buf[128];
    const char *msg = (e && e->code && e->msg[0]) ? e->msg : strerror_r(code, buf, sizeof(buf));
    reply_error(r, status, slug, "%s", msg);
}

/* As reply_errno(), for replication's calls: EAGAIN means the session is paused there (from
 * meta it would be LMDB's reader table, full: an internal error). */
static void reply_repl_errno(struct reply *r, int code, const struct vv_err *e)
{
    if (code == EAGAIN)
        reply_error(r, MHD_HTTP_CONFLICT, "paused", "%s",
                    e && e->code && e->msg[0] ? e->msg : "the session is paused");
    else
        reply_errno(r, code, e);
}

/* ---- JSON in and out ----------------------------------------------------------------------- */

/* One key and its value per line: */
/* clang-format off */
static json_t *volume_json(const struct vv_volume_info *v)
{
    json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                          "id", (json_int_t)v->id,
                          "name", v->name,
                          "size", (json_int_t)v->size,
                          "used", (json_int_t)v->used,
                          "snapshots_used", (json_int_t)v->snapshots_used,
                          "created", (json_int_t)v->created,
                          "modified", (json_int_t)(v->modified_ns / 1000000000ULL),
                          "create_gen", (json_int_t)v->create_gen,
                          "open_count", (json_int_t)v->open_count);
    json_t *origin = !v->clone ? json_null()
                     : json_pack("{s:s, s:I, s:s, s:I}",
                                 "volume", v->origin_volume,
                                 "volume_id", (json_int_t)v->origin_volume_id,
                                 "snapshot", v->origin_snapshot,
                                 "snapshot_id", (json_int_t)v->origin_snapshot_id);
    json_t *group = v->group[0] ? json_string(v->group) : json_null();
    if (o && (!group || json_object_set_new(o, "group", group) != 0)) {
        json_decref(o);
        o = NULL;
    }
    if (o && (!origin || json_object_set_new(o, "origin", origin) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *snapshot_json(const struct vv_snapshot_info *s)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "id", (json_int_t)s->id,
                     "name", s->name,
                     "volume", s->volume,
                     "volume_id", (json_int_t)s->volume_id,
                     "gen", (json_int_t)s->gen,
                     "created", (json_int_t)s->created,
                     "size", (json_int_t)s->size,
                     "exclusive", (json_int_t)s->exclusive,
                     "open_count", (json_int_t)s->open_count);
}

static json_t *status_json(struct vv_pool *pool)
{
    struct vv_pool_status st;
    memset(&st, 0, sizeof(st));
    vv_pool_get_status(pool, &st);
    char idhex[33];
    /* one specifier per line, beside its key: a shifted format reads garbage varargs */
    json_t *j = json_pack("{"
                          "s:s," "s:I," "s:I," "s:I," "s:I," "s:I," "s:I,"
                          "s:I," "s:I," "s:I," "s:b," "s:I," "s:I," "s:I,"
                          "s:I," "s:I," "s:I," "s:b," "s:I," "s:I," "s:s}",
                          "pool_dir", vv_pool_dir(pool),
                          "format_version", (json_int_t)st.format_version,
                          "upgraded_from", (json_int_t)st.upgraded_from,
                          "extent_size", (json_int_t)st.extent_size,
                          "capacity", (json_int_t)st.capacity,
                          "used", (json_int_t)st.used,
                          "free", (json_int_t)st.free,
                          "freeing", (json_int_t)st.freeing,
                          "reserve", (json_int_t)st.reserve,
                          "available", (json_int_t)st.available,
                          "host_full", (int)st.host_full,
                          "volumes", (json_int_t)st.volumes,
                          "provisioned", (json_int_t)st.provisioned,
                          "committed_gen", (json_int_t)st.committed_gen,
                          "dirty_bytes", (json_int_t)st.dirty_bytes,
                          "commits", (json_int_t)st.commits,
                          "checksum_errors", (json_int_t)st.checksum_errors,
                          "direct_io", (int)st.direct_io,
                          "bounced_writes", (json_int_t)st.bounced_writes,
                          "batched_ios", (json_int_t)st.batched_ios,
                          "state", st.read_only_errno ? "read-only" : "ok");
    if (j && (json_object_set_new(j, "snapshots", json_integer((json_int_t)st.snapshots)) ||
              json_object_set_new(j, "snapshot_count",
                                  json_integer((json_int_t)st.snapshot_count)) ||
              json_object_set_new(j, "clones", json_integer((json_int_t)st.clones)) ||
              json_object_set_new(j, "groups", json_integer((json_int_t)st.groups)) ||
              json_object_set_new(j, "id", json_string(vv_hex_encode(st.id, sizeof(st.id), idhex))))) {
        json_decref(j);
        j = NULL;
    }
    if (j && st.read_only_errno) {
        char why[200];
        snprintf(why, sizeof(why), "a commit failed (%s); writes fail until the pool is "
                 "remounted, which brings it back at its last committed state",
                 strerror(st.read_only_errno));
        json_object_set_new(j, "state_reason", json_string(why));
        json_object_set_new(j, "state_since", json_integer((json_int_t)st.read_only_since));
    }
    return j;
}

/* S as a JSON string: as it is if it is valid UTF-8, else sanitised (a path, a peer's text) */
static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    if (!j) {
        char clean[512];
        j = json_string(sanitize(s, clean, sizeof(clean)));
    }
    return j;
}

/* S as a JSON string, or null when it is "" */
static json_t *opt_text_json(const char *s)
{
    return s[0] ? text_json(s) : json_null();
}

static json_t *session_json(const struct vv_repl_info *s)
{
    json_t *point = !s->point_gen ? json_null()
                    : json_pack("{s:I, s:I}",
                                "gen", (json_int_t)s->point_gen,
                                "time", (json_int_t)s->point_time);
    json_t *transfer = json_pack("{s:I, s:f, s:I, s:I, s:I, s:I}",
                                 "started", (json_int_t)s->xfer_started,
                                 "seconds", (double)s->xfer_ms / 1000.0,
                                 "bytes", (json_int_t)s->xfer_bytes,
                                 "left", (json_int_t)s->xfer_left,
                                 "rate", (json_int_t)s->rate,
                                 "eta", (json_int_t)s->eta);
    /* the session id as 16 hex digits, as the logs show it (and a u64 may not fit a JSON
     * integer) */
    char id[17];
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
    /* one specifier per line, beside its key; each "o" takes over its reference */
    return json_pack("{"
                     "s:s," "s:s," "s:s," "s:s?," "s:s," "s:I," "s:I," "s:s," "s:I," "s:s?," "s:s?,"
                     "s:o,"
                     "s:o,"
                     "s:o," "s:I," "s:I," "s:o," "s:I," "s:I," "s:b," "s:I," "s:o,"
                     "s:I}",
                     "id", id,
                     "name", s->name,
                     "role", vv_repl_role_to_string(s->role),
                     "mode", s->mode ? vv_repl_mode_to_string(s->mode) : NULL,
                     "state", vv_repl_state_to_string(s->state),
                     "rpo", (json_int_t)s->rpo,
                     "keep_remote", (json_int_t)s->keep_remote,
                     "compress", s->zstd ? "zstd" : "none",
                     "bwlimit", (json_int_t)s->bwlimit,
                     "volume", s->volume[0] ? s->volume : NULL,
                     "group", s->group[0] ? s->group : NULL,
                     "peer", text_json(s->peer),
                     "key", opt_text_json(s->key_path),
                     "point", point,
                     "syncs", (json_int_t)s->syncs,
                     "bytes_sent", (json_int_t)s->bytes_sent,
                     "transfer", transfer,
                     "lag", (json_int_t)s->lag,
                     "lag_bytes", (json_int_t)s->lag_bytes,
                     "overdue", (int)s->overdue,
                     "next_sync", (json_int_t)s->next_sync,
                     "error", opt_text_json(s->error),
                     "error_time", (json_int_t)s->error_time);
}
/* clang-format on */

/* Every key of BODY must be in ALLOWED (NULL-terminated).  Returns 0 or EINVAL (answered). */
static int check_fields(const json_t *body, const char *const *allowed, struct reply *r)
{
    json_t *obj = (json_t *)body; /* jansson's iterators take no const */
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i]) {
            char clean[72];
            reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "unknown field \"%s\" in request body",
                        sanitize(key, clean, sizeof(clean)));
            return EINVAL;
        }
    }
    return 0;
}

/* VAL (a body's FIELD) must be a string that is a valid name of a KIND ("volume").  Returns 0
 * or EINVAL (answered). */
static int get_name_of(const json_t *val, const char *field, const char *kind, const char **out,
                       struct reply *r)
{
    if (!json_is_string(val)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "\"%s\" must be a string", field);
        return EINVAL;
    }
    const char *why = vv_name_check(json_string_value(val));
    if (why || strlen(json_string_value(val)) != json_string_length(val)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "invalid %s name: %s", kind,
                    why ? why : "name contains a NUL byte");
        return EINVAL;
    }
    *out = json_string_value(val);
    return 0;
}

/* VAL (a body's "name") must be a string that is a valid volume name.  0 or EINVAL. */
static int get_name(const json_t *val, const char **out, struct reply *r)
{
    return get_name_of(val, "name", "volume", out, r);
}

/* VAL (a body's FIELD) is bytes as a JSON integer, or a string such as "20G".  0 or EINVAL. */
static int get_size_of(const json_t *val, const char *field, uint64_t *out, struct reply *r)
{
    if (json_is_integer(val)) {
        if (json_integer_value(val) < 0) {
            reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "%s must not be negative", field);
            return EINVAL;
        }
        *out = (uint64_t)json_integer_value(val);
        return 0;
    }
    if (!json_is_string(val)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "\"%s\" must be a number of bytes or a string such as \"20G\"", field);
        return EINVAL;
    }
    char clean[72];
    sanitize(json_string_value(val), clean, sizeof(clean));
    int rc = vv_parse_size(json_string_value(val), out);
    if (rc == ERANGE) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "too_large", "%s \"%s\" is too large", field,
                    clean);
        return EINVAL;
    }
    if (rc) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                    "%s \"%s\" is not a size (write bytes, or a number with K, M, G, T or P)",
                    field, clean);
        return EINVAL;
    }
    return 0;
}

/* VAL (a body's FIELD) is a string of 1 to MAX bytes without NUL.  Returns 0 or EINVAL. */
static int get_text(const json_t *val, const char *field, size_t max, const char **out,
                    struct reply *r)
{
    if (!json_is_string(val) || strlen(json_string_value(val)) != json_string_length(val)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "\"%s\" must be a string", field);
        return EINVAL;
    }
    if (json_string_length(val) == 0 || json_string_length(val) > max) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "\"%s\" must be 1 to %zu bytes long",
                    field, max);
        return EINVAL;
    }
    *out = json_string_value(val);
    return 0;
}

/* VAL (a body's FIELD) is seconds as a JSON integer, or a string such as "5m" (util/duration.h),
 * from MIN to MAX.  Returns 0 or EINVAL (answered). */
static int get_duration(const json_t *val, const char *field, uint64_t min, uint64_t max,
                        uint64_t *out, struct reply *r)
{
    uint64_t v = 0;
    bool in_range;
    if (json_is_integer(val)) {
        json_int_t i = json_integer_value(val);
        v = i < 0 ? 0 : (uint64_t)i;
        in_range = i >= 0 && v >= min && v <= max;
    } else if (json_is_string(val) && strlen(json_string_value(val)) == json_string_length(val)) {
        int rc = vv_parse_duration(json_string_value(val), &v);
        if (rc == EINVAL) {
            char clean[72];
            reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                        "%s \"%s\" is not a duration (write seconds, or whole numbers with d, "
                        "h, m or s: \"30s\", \"5m\", \"1h30m\")",
                        field, sanitize(json_string_value(val), clean, sizeof(clean)));
            return EINVAL;
        }
        in_range = rc == 0 && v >= min && v <= max;
    } else {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "\"%s\" must be a number of seconds or a string such as \"5m\"", field);
        return EINVAL;
    }
    if (!in_range) {
        char a[32], b[32];
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                    "%s must be from %s to %s (%llu seconds)", field,
                    vv_format_duration(min, a, sizeof(a)), vv_format_duration(max, b, sizeof(b)),
                    (unsigned long long)max);
        return EINVAL;
    }
    *out = v;
    return 0;
}

/* ---- handlers ------------------------------------------------------------------------------ */

static void h_pool_get(struct call *c, struct reply *r)
{
    reply_json(r, MHD_HTTP_OK, status_json(c->api->pool));
}

static void h_pool_sync(struct call *c, struct reply *r)
{
    int rc = vv_pool_sync(c->api->pool);
    if (rc) {
        char buf[128];
        reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "commit failed: %s",
                    strerror_r(rc, buf, sizeof(buf)));
        return;
    }
    reply_json(r, MHD_HTTP_OK, status_json(c->api->pool));
}

static void h_vol_list(struct call *c, struct reply *r)
{
    struct vv_volume_info *vols = NULL;
    size_t n = 0;
    int rc = vv_volume_list(c->api->pool, &vols, &n);
    if (rc) {
        reply_errno(r, rc, NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, volume_json(&vols[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(vols);
    reply_json(r, MHD_HTTP_OK, arr ? json_pack("{s:o}", "volumes", arr) : NULL);
}

static void h_vol_create(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"name", "size", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    const json_t *jsize = json_object_get(c->body, "size");
    const char *name;
    uint64_t size;
    if (check_fields(c->body, fields, r))
        return;
    if (!jname || !jsize) {
        reply_error(
            r, MHD_HTTP_BAD_REQUEST, "bad_request",
            "request body needs \"name\" and \"size\", e.g. {\"name\":\"db\",\"size\":\"20G\"}");
        return;
    }
    if (get_name(jname, &name, r) || get_size_of(jsize, "size", &size, r))
        return;

    struct vv_volume_info info;
    struct vv_err e = {0};
    int rc = vv_volume_create(c->api->pool, name, size, &info, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_CREATED, volume_json(&info));
    snprintf(r->location, sizeof(r->location), "/v1/volumes/%s", info.name);
}

static void h_vol_get(struct call *c, struct reply *r)
{
    struct vv_volume_info info;
    struct vv_err e = {0};
    int rc = vv_volume_get(c->api->pool, c->name, &info, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_OK, volume_json(&info));
}

static void h_vol_patch(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"name", "size", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    const json_t *jsize = json_object_get(c->body, "size");
    const char *newname = NULL;
    uint64_t size = 0;
    if (check_fields(c->body, fields, r))
        return;
    if (!jname && !jsize) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "request body needs \"size\" (resize) and/or \"name\" (rename)");
        return;
    }
    if ((jname && get_name(jname, &newname, r)) || (jsize && get_size_of(jsize, "size", &size, r)))
        return;

    struct vv_api *api = c->api;
    const char *cur = c->name;
    struct vv_err e = {0};
    int rc;
    bool renamed = false;
    if (newname && strcmp(newname, c->name) != 0) {
        rc = vv_volume_rename(api->pool, c->name, newname, &e);
        if (rc) {
            reply_errno(r, rc, &e);
            return;
        }
        renamed = true;
        cur = newname;
    }
    if (jsize) {
        rc = vv_volume_resize(api->pool, cur, size, &e);
        if (rc) {
            reply_errno(r, rc, &e);
            struct vv_err undo = {0};
            if (renamed && vv_volume_rename(api->pool, newname, c->name, &undo) != 0) {
                vv_err(VV_SS_API,
                       "cannot undo the rename of volume '%s' to '%s' after a failed "
                       "resize: %s",
                       c->name, newname, undo.msg);
                unsigned status;
                const char *slug;
                errno_to_http(rc, &status, &slug);
                reply_error(r, status, slug, "%s (the volume keeps its new name '%s')",
                            e.code && e.msg[0] ? e.msg : "resize failed", newname);
            }
            return;
        }
    }
    struct vv_volume_info info;
    rc = vv_volume_get(api->pool, cur, &info, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_OK, volume_json(&info));
}

static void h_vol_delete(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = c->flag ? vv_volume_delete_recursive(c->api->pool, c->name, &e)
                     : vv_volume_delete(c->api->pool, c->name, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_NO_CONTENT, NULL);
}

/* ---- snapshots ----------------------------------------------------------------------------- */

/* ALL: vvfs's own snapshots too (replication's, names beginning with '.'), which listings
 * leave out unless asked */
static void reply_snapshots(struct reply *r, const struct vv_snapshot_info *a, size_t n, bool all)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if ((all || a[i].name[0] != '.') &&
            json_array_append_new(arr, snapshot_json(&a[i]))) {
            json_decref(arr);
            arr = NULL;
        }
    reply_json(r, MHD_HTTP_OK, arr ? json_pack("{s:o}", "snapshots", arr) : NULL);
}

static void list_snapshots(struct call *c, struct reply *r, const char *volume)
{
    struct vv_snapshot_info *a = NULL;
    size_t n = 0;
    struct vv_err e = {0};
    int rc = vv_snapshot_list(c->api->pool, volume, &a, &n, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_snapshots(r, a, n, c->flag);
    free(a);
}

static void h_snap_list_all(struct call *c, struct reply *r)
{
    list_snapshots(c, r, NULL);
}

static void h_snap_list(struct call *c, struct reply *r)
{
    list_snapshots(c, r, c->name);
}

static void h_snap_create(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"name", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    const char *name = NULL;
    if (check_fields(c->body, fields, r))
        return;
    if (!jname) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "request body needs \"name\"");
        return;
    }
    if (!json_is_string(jname)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "\"name\" must be a string");
        return;
    }
    name = json_string_value(jname);
    const char *why = vv_name_check(name);
    if (why || strlen(name) != json_string_length(jname)) {
        char clean[160];
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "invalid snapshot name \"%s\": %s",
                    sanitize(name, clean, sizeof(clean)), why ? why : "it contains a NUL");
        return;
    }
    struct vv_snapshot_info info;
    struct vv_err e = {0};
    int rc = vv_snapshot_create(c->api->pool, c->name, name, &info, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_CREATED, snapshot_json(&info));
    snprintf(r->location, sizeof(r->location), "/v1/volumes/%s/snapshots/%s", info.volume,
             info.name);
}

static void h_snap_get(struct call *c, struct reply *r)
{
    struct vv_snapshot_info info;
    struct vv_err e = {0};
    int rc = vv_snapshot_get(c->api->pool, c->name, c->snap, &info, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_json(r, MHD_HTTP_OK, snapshot_json(&info));
}

static void h_snap_delete(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_snapshot_delete(c->api->pool, c->name, c->snap, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_json(r, MHD_HTTP_NO_CONTENT, NULL);
}

/* A body that is {"name": NAME} and nothing else, NAME a valid name: 0 with *NAME, or an
 * error answered (HINT says what the name is for, as "(rename)"). */
static int body_name(struct call *c, struct reply *r, const char *hint, const char **name)
{
    static const char *const fields[] = {"name", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    if (check_fields(c->body, fields, r))
        return EINVAL;
    if (!jname) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "request body needs \"name\" %s",
                    hint);
        return EINVAL;
    }
    return get_name(jname, name, r);
}

static void h_snap_patch(struct call *c, struct reply *r)
{
    const char *newname = NULL;
    if (body_name(c, r, "(rename)", &newname))
        return;
    struct vv_err e = {0};
    int rc = vv_snapshot_rename(c->api->pool, c->name, c->snap, newname, &e);
    struct vv_snapshot_info info;
    if (!rc)
        rc = vv_snapshot_get(c->api->pool, c->name, newname, &info, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_json(r, MHD_HTTP_OK, snapshot_json(&info));
}

static void h_snap_restore(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_snapshot_restore(c->api->pool, c->name, c->snap, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    struct vv_volume_info info;
    rc = vv_volume_get(c->api->pool, c->name, &info, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_json(r, MHD_HTTP_OK, volume_json(&info));
}

static void h_snap_clone(struct call *c, struct reply *r)
{
    const char *name = NULL;
    if (body_name(c, r, "(of the new volume), e.g. {\"name\":\"test\"}", &name))
        return;
    struct vv_volume_info info;
    struct vv_err e = {0};
    int rc = vv_clone_create(c->api->pool, c->name, c->snap, name, &info, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_CREATED, volume_json(&info));
    snprintf(r->location, sizeof(r->location), "/v1/volumes/%s", info.name);
}

/* ---- groups -------------------------------------------------------------------------------- */

static json_t *names_json(char (*a)[65], size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_string(a[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    return arr;
}

static json_t *group_json(const struct vv_group_info *g)
{
    return json_pack("{s:I, s:s, s:I, s:o*, s:o*}", "id", (json_int_t)g->id, "name", g->name,
                     "created", (json_int_t)g->created, "volumes",
                     names_json(g->volumes, g->nvolumes), "snapshots",
                     names_json(g->snapshots, g->nsnapshots));
}

static void reply_group(struct call *c, struct reply *r, unsigned status, const char *name)
{
    struct vv_group_info g;
    struct vv_err e = {0};
    int rc = vv_group_get(c->api->pool, name, &g, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_json(r, status, group_json(&g));
    vv_group_info_free(&g);
}

/* FIELD of the body: absent (*N = 0), or an array of volume names (at most MAX) */
static int get_names(const json_t *body, const char *field, const char **out, size_t max,
                     size_t *n, struct reply *r)
{
    const json_t *a = json_object_get(body, field);
    *n = 0;
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > max) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "\"%s\" must be an array of at most %zu volume names", field, max);
        return EINVAL;
    }
    for (size_t i = 0; i < json_array_size(a); i++)
        if (get_name(json_array_get(a, i), &out[i], r))
            return EINVAL;
    *n = json_array_size(a);
    return 0;
}

#define API_MEMBERS_MAX 256

static void h_group_list(struct call *c, struct reply *r)
{
    struct vv_group_info *a = NULL;
    size_t n = 0;
    int rc = vv_group_list(c->api->pool, &a, &n);
    if (rc) {
        reply_errno(r, rc, NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (arr && json_array_append_new(arr, group_json(&a[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
        vv_group_info_free(&a[i]);
    }
    free(a);
    reply_json(r, MHD_HTTP_OK, arr ? json_pack("{s:o}", "groups", arr) : NULL);
}

static void h_group_create(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"name", "volumes", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    const char *name = NULL, *vols[API_MEMBERS_MAX];
    size_t n;
    if (check_fields(c->body, fields, r))
        return;
    if (!jname) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "request body needs \"name\", e.g. {\"name\":\"app\",\"volumes\":[\"db\",\"logs\"]}");
        return;
    }
    if (!json_is_string(jname) || strlen(json_string_value(jname)) != json_string_length(jname)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "\"name\" must be a string");
        return;
    }
    name = json_string_value(jname); /* (checked by vv_group_create: "invalid group name") */
    if (get_names(c->body, "volumes", vols, API_MEMBERS_MAX, &n, r))
        return;
    struct vv_err e = {0};
    int rc = vv_group_create(c->api->pool, name, vols, n, &e);
    if (rc) {
        reply_errno(r, rc, &e);
        return;
    }
    reply_group(c, r, MHD_HTTP_CREATED, name);
    snprintf(r->location, sizeof(r->location), "/v1/groups/%s", name);
}

static void h_group_get(struct call *c, struct reply *r)
{
    reply_group(c, r, MHD_HTTP_OK, c->name);
}

static void h_group_patch(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"add", "remove", NULL};
    const char *add[API_MEMBERS_MAX], *rem[API_MEMBERS_MAX];
    size_t nadd, nrem;
    if (check_fields(c->body, fields, r))
        return;
    if (!json_object_get(c->body, "add") && !json_object_get(c->body, "remove")) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "request body needs \"add\" and/or \"remove\" (arrays of volume names)");
        return;
    }
    if (get_names(c->body, "add", add, API_MEMBERS_MAX, &nadd, r) ||
        get_names(c->body, "remove", rem, API_MEMBERS_MAX, &nrem, r))
        return;
    struct vv_err e = {0};
    int rc = vv_group_change(c->api->pool, c->name, add, nadd, rem, nrem, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_group(c, r, MHD_HTTP_OK, c->name);
}

static void h_group_delete(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_group_delete(c->api->pool, c->name, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_json(r, MHD_HTTP_NO_CONTENT, NULL);
}

static void h_group_snapshot(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"name", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    if (check_fields(c->body, fields, r))
        return;
    if (!jname || !json_is_string(jname)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "request body needs \"name\" (of the snapshots), a string");
        return;
    }
    struct vv_err e = {0};
    int rc = vv_group_snapshot(c->api->pool, c->name, json_string_value(jname), &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_group(c, r, MHD_HTTP_CREATED, c->name);
}

static void h_group_restore(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_group_restore(c->api->pool, c->name, c->snap, &e);
    if (rc)
        reply_errno(r, rc, &e);
    else
        reply_group(c, r, MHD_HTTP_OK, c->name);
}

/* ---- replication --------------------------------------------------------------------------- */

static void h_repl_list(struct call *c, struct reply *r)
{
    struct vv_repl_info *a = NULL;
    size_t n = 0;
    int rc = vv_repl_list(c->api->repl, &a, &n);
    if (rc) {
        reply_repl_errno(r, rc, NULL);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, session_json(&a[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    free(a);
    reply_json(r, MHD_HTTP_OK, arr ? json_pack("{s:o}", "sessions", arr) : NULL);
}

/* Answer STATUS and session NAME as it is now (after an operation that returns no info). */
static void reply_session(struct call *c, struct reply *r, unsigned status, const char *name)
{
    struct vv_repl_info info;
    struct vv_err e = {0};
    int rc = vv_repl_get(c->api->repl, name, &info, &e);
    if (rc)
        reply_repl_errno(r, rc, &e);
    else
        reply_json(r, status, session_json(&info));
}

static void h_repl_create(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"name", "volume", "group", "peer", "key", "mode",
                                         "rpo", "keep_remote", "compress", "bwlimit", NULL};
    const json_t *jname = json_object_get(c->body, "name");
    const json_t *jvol = json_object_get(c->body, "volume");
    const json_t *jgroup = json_object_get(c->body, "group");
    const json_t *jpeer = json_object_get(c->body, "peer");
    const json_t *jkey = json_object_get(c->body, "key");
    const json_t *jmode = json_object_get(c->body, "mode");
    const json_t *jrpo = json_object_get(c->body, "rpo");
    const json_t *jkeep = json_object_get(c->body, "keep_remote");
    const json_t *jcomp = json_object_get(c->body, "compress");
    const json_t *jbw = json_object_get(c->body, "bwlimit");
    struct vv_repl_params prm = {.mode = VV_REPL_PERIODIC, .rpo = VV_REPL_RPO_DEFAULT};
    uint64_t rpo = VV_REPL_RPO_DEFAULT;
    if (check_fields(c->body, fields, r))
        return;
    if (!jname || !jvol == !jgroup || !jpeer || !jkey) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "request body needs \"name\", \"volume\" or \"group\" (one of them), "
                    "\"peer\" and \"key\", e.g. "
                    "{\"name\":\"db-dr\",\"volume\":\"db\",\"peer\":\"10.0.0.2:7700\","
                    "\"key\":\"/etc/vvfs/peer.key\"}");
        return;
    }
    if (get_name_of(jname, "name", "replication session", &prm.name, r) ||
        (jvol && get_name_of(jvol, "volume", "volume", &prm.volume, r)) ||
        (jgroup && get_name_of(jgroup, "group", "group", &prm.group, r)) ||
        get_text(jpeer, "peer", VV_REPL_ADDR_MAX, &prm.peer, r) ||
        get_text(jkey, "key", VV_REPL_PATH_MAX, &prm.key_path, r) ||
        (jrpo && get_duration(jrpo, "rpo", VV_REPL_RPO_MIN, VV_REPL_RPO_MAX, &rpo, r)))
        return;
    char clean[VV_REPL_ADDR_MAX + 1];
    const char *why = vv_addr_split(prm.peer, NULL, 0, NULL, 0);
    if (why) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "peer \"%s\": %s",
                    sanitize(prm.peer, clean, sizeof(clean)), why);
        return;
    }
    /* the daemon runs in "/": a relative path would name another file than the client's */
    if (prm.key_path[0] != '/') {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid", "key \"%s\" must be an absolute path",
                    sanitize(prm.key_path, clean, sizeof(clean)));
        return;
    }
    if (jmode) {
        prm.mode = json_is_string(jmode) ? vv_repl_mode_parse(json_string_value(jmode)) : 0;
        if (!prm.mode) {
            reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                        "\"mode\" must be \"periodic\" or \"continuous\"");
            return;
        }
    }
    prm.rpo = (uint32_t)rpo;
    if (jkeep) {
        json_int_t k = json_is_integer(jkeep) ? json_integer_value(jkeep) : -1;
        if (k < 0 || k > VV_REPL_KEEP_MAX) {
            reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                        "\"keep_remote\" must be an integer from 0 (keep all) to %u",
                        VV_REPL_KEEP_MAX);
            return;
        }
        prm.keep_remote = (uint32_t)k;
    }
    if (jcomp) {
        const char *cs = json_string_value(jcomp);
        if (!cs || (strcmp(cs, "zstd") != 0 && strcmp(cs, "none") != 0)) {
            reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                        "\"compress\" must be \"zstd\" or \"none\"");
            return;
        }
        prm.zstd = strcmp(cs, "zstd") == 0;
    }
    if (jbw && get_size_of(jbw, "bwlimit", &prm.bwlimit, r))
        return;

    struct vv_repl_info info;
    struct vv_err e = {0};
    int rc = vv_repl_create(c->api->repl, &prm, &info, &e);
    if (rc) {
        reply_repl_errno(r, rc, &e);
        return;
    }
    reply_json(r, MHD_HTTP_CREATED, session_json(&info));
    snprintf(r->location, sizeof(r->location), "/v1/replication/%s", info.name);
}

static void h_repl_get(struct call *c, struct reply *r)
{
    reply_session(c, r, MHD_HTTP_OK, c->name);
}

static void h_repl_delete(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_repl_delete(c->api->repl, c->name, &e);
    if (rc)
        reply_repl_errno(r, rc, &e);
    else
        reply_json(r, MHD_HTTP_NO_CONTENT, NULL);
}

/* POST .../sync, body optional: {"wait": true, "timeout": seconds} */
static void h_repl_sync(struct call *c, struct reply *r)
{
    static const char *const fields[] = {"wait", "timeout", "pit", NULL};
    const json_t *jwait = json_object_get(c->body, "wait"); /* (NULL without a body) */
    const json_t *jtimeout = json_object_get(c->body, "timeout");
    const json_t *jpit = json_object_get(c->body, "pit");
    const char *pit = NULL;
    uint64_t timeout = API_SYNC_WAIT_MAX;
    if (c->body && check_fields(c->body, fields, r))
        return;
    if (jwait && !json_is_boolean(jwait)) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "\"wait\" must be true or false");
        return;
    }
    bool wait = json_is_true(jwait);
    if (jtimeout && !wait) {
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                    "\"timeout\" applies only with \"wait\": true");
        return;
    }
    if (jtimeout && get_duration(jtimeout, "timeout", 1, API_SYNC_WAIT_MAX, &timeout, r))
        return;
    if (jpit && get_name_of(jpit, "pit", "snapshot", &pit, r))
        return;

    struct vv_repl_info info;
    struct vv_err e = {0};
    int rc = vv_repl_sync(c->api->repl, c->name, pit, wait, (unsigned)timeout, &info, &e);
    if (rc)
        reply_repl_errno(r, rc, &e);
    else if (wait)
        reply_json(r, MHD_HTTP_OK, session_json(&info)); /* as the sync left it */
    else
        reply_session(c, r, MHD_HTTP_OK, c->name);
}

static void h_repl_pause(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_repl_pause(c->api->repl, c->name, &e);
    if (rc)
        reply_repl_errno(r, rc, &e);
    else
        reply_session(c, r, MHD_HTTP_OK, c->name);
}

static void h_repl_resume(struct call *c, struct reply *r)
{
    struct vv_err e = {0};
    int rc = vv_repl_resume(c->api->repl, c->name, &e);
    if (rc)
        reply_repl_errno(r, rc, &e);
    else
        reply_session(c, r, MHD_HTTP_OK, c->name);
}

/* ---- routing ------------------------------------------------------------------------------- */

/* What a route takes as its body. */
enum body { BODY_NONE, BODY_OBJECT /* a JSON object */, BODY_OPTIONAL /* none, or an object */ };

struct route {
    const char *path; /* segments; "*" stands for a name (a volume's, then a snapshot's) */
    bool named;       /* has a "*" */
    const char *method;
    enum body body;
    bool changes;    /* logged at info level when it succeeds */
    void (*fn)(struct call *c, struct reply *r);
    const char *param; /* the one query parameter it takes (true/false: call.flag), or NULL */
};

static const struct route routes[] = {
    {"/v1/pool", false, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_pool_get, NULL},
    {"/v1/pool/sync", false, MHD_HTTP_METHOD_POST, BODY_NONE, true, h_pool_sync, NULL},
    {"/v1/volumes", false, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_vol_list, NULL},
    {"/v1/volumes", false, MHD_HTTP_METHOD_POST, BODY_OBJECT, true, h_vol_create, NULL},
    {"/v1/volumes/*", true, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_vol_get, NULL},
    {"/v1/volumes/*", true, "PATCH", BODY_OBJECT, true, h_vol_patch, NULL},
    {"/v1/volumes/*", true, MHD_HTTP_METHOD_DELETE, BODY_NONE, true, h_vol_delete, "recursive"},
    {"/v1/snapshots", false, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_snap_list_all, "all"},
    {"/v1/volumes/*/snapshots", true, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_snap_list, "all"},
    {"/v1/volumes/*/snapshots", true, MHD_HTTP_METHOD_POST, BODY_OBJECT, true, h_snap_create,
     NULL},
    {"/v1/volumes/*/snapshots/*", true, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_snap_get, NULL},
    {"/v1/volumes/*/snapshots/*", true, MHD_HTTP_METHOD_DELETE, BODY_NONE, true, h_snap_delete,
     NULL},
    {"/v1/volumes/*/snapshots/*", true, "PATCH", BODY_OBJECT, true, h_snap_patch, NULL},
    {"/v1/volumes/*/snapshots/*/restore", true, MHD_HTTP_METHOD_POST, BODY_NONE, true,
     h_snap_restore, NULL},
    {"/v1/volumes/*/snapshots/*/clone", true, MHD_HTTP_METHOD_POST, BODY_OBJECT, true,
     h_snap_clone, NULL},
    {"/v1/groups", false, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_group_list, NULL},
    {"/v1/groups", false, MHD_HTTP_METHOD_POST, BODY_OBJECT, true, h_group_create, NULL},
    {"/v1/groups/*", true, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_group_get, NULL},
    {"/v1/groups/*", true, "PATCH", BODY_OBJECT, true, h_group_patch, NULL},
    {"/v1/groups/*", true, MHD_HTTP_METHOD_DELETE, BODY_NONE, true, h_group_delete, NULL},
    {"/v1/groups/*/snapshots", true, MHD_HTTP_METHOD_POST, BODY_OBJECT, true, h_group_snapshot,
     NULL},
    {"/v1/groups/*/snapshots/*/restore", true, MHD_HTTP_METHOD_POST, BODY_NONE, true,
     h_group_restore, NULL},
    {"/v1/replication", false, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_repl_list, NULL},
    {"/v1/replication", false, MHD_HTTP_METHOD_POST, BODY_OBJECT, true, h_repl_create, NULL},
    {"/v1/replication/*", true, MHD_HTTP_METHOD_GET, BODY_NONE, false, h_repl_get, NULL},
    {"/v1/replication/*", true, MHD_HTTP_METHOD_DELETE, BODY_NONE, true, h_repl_delete, NULL},
    {"/v1/replication/*/sync", true, MHD_HTTP_METHOD_POST, BODY_OPTIONAL, true, h_repl_sync,
     NULL},
    {"/v1/replication/*/pause", true, MHD_HTTP_METHOD_POST, BODY_NONE, true, h_repl_pause, NULL},
    {"/v1/replication/*/resume", true, MHD_HTTP_METHOD_POST, BODY_NONE, true, h_repl_resume,
     NULL},
};

#define ROUTE_SEGS 2 /* names a path can hold */
#define SEG_MAX 200  /* bytes of one raw (still %-encoded) name segment we look at */

/* Does URL match RT's path?  SEG[i] gets the i-th raw name segment (for "*"). */
static bool route_matches(const struct route *rt, const char *url,
                          char seg[ROUTE_SEGS][SEG_MAX])
{
    if (!rt->named)
        return strcmp(url, rt->path) == 0;
    const char *p = rt->path, *u = url;
    int k = 0;
    while (*p) {
        if (*p == '*') {
            size_t n = strcspn(u, "/");
            if (n == 0 || k >= ROUTE_SEGS)
                return false;
            snprintf(seg[k++], SEG_MAX, "%.*s", (int)(n < SEG_MAX ? n : SEG_MAX - 1), u);
            if (n >= SEG_MAX)
                seg[k - 1][SEG_MAX - 2] = '%'; /* too long: fails the decode below */
            p++;
            u += n;
        } else if (*p++ != *u++) {
            return false;
        }
    }
    return *u == '\0';
}

/* %-decode IN into OUT (LEN bytes).  Returns 0, or EINVAL (bad escape, NUL) / ENAMETOOLONG. */
static int pct_decode(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p; p++) {
        char ch = *p;
        if (ch == '%') {
            int hi = vv_hexval(p[1]), lo = hi < 0 ? -1 : vv_hexval(p[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return EINVAL;
            ch = (char)(hi * 16 + lo);
            p += 2;
        }
        if (o + 1 >= len)
            return ENAMETOOLONG;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Route METHOD URL with body REQ and query parameter QARG (the first one the request had, or
 * NULL); fill R (and *ALLOW for a 405). */
static void dispatch(struct vv_api *api, const char *method, const char *url, const char *qarg,
                     const char *qval, unsigned qcount, const struct request *req,
                     struct reply *r, char *allow, size_t allow_len,
                     const struct route **matched)
{
    const char *want = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? MHD_HTTP_METHOD_GET : method;
    const struct route *rt = NULL;
    char seg[ROUTE_SEGS][SEG_MAX];
    bool path_known = false;
    allow[0] = '\0';
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!route_matches(&routes[i], url, seg))
            continue;
        path_known = true;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", routes[i].method);
        if (strcmp(routes[i].method, MHD_HTTP_METHOD_GET) == 0) {
            used = strlen(allow);
            snprintf(allow + used, allow_len - used, ", %s", MHD_HTTP_METHOD_HEAD);
        }
        if (!rt && strcmp(routes[i].method, want) == 0)
            rt = &routes[i];
    }
    char clean[160];
    if (!path_known) {
        reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such resource: %s",
                    sanitize(url, clean, sizeof(clean)));
        return;
    }
    if (!rt) {
        char cmethod[32];
        reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                    "method %s is not allowed on %s (allowed: %s)",
                    sanitize(method, cmethod, sizeof(cmethod)), sanitize(url, clean, sizeof(clean)),
                    allow);
        return;
    }
    *matched = rt;
    /* Only the routes that say so take a parameter or a body; one sent anyway is a mistake
     * (a typo, a client that thinks "?force=1" does something), not noise. */
    bool flag = false;
    if (qarg && (!rt->param || strcmp(qarg, rt->param) != 0 || qcount > 1)) {
        if (rt->param)
            reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "unknown query parameter \"%s\" (%s %s takes only \"%s\", once)",
                        sanitize(qarg, clean, sizeof(clean)), method, rt->path, rt->param);
        else
            reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "unknown query parameter \"%s\" (this resource takes none)",
                        sanitize(qarg, clean, sizeof(clean)));
        return;
    }
    if (qarg) {
        if (qval && strcmp(qval, "true") == 0) {
            flag = true;
        } else if (!qval || strcmp(qval, "false") != 0) {
            reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "query parameter \"%s\" must be true or false", rt->param);
            return;
        }
    }
    if (rt->body == BODY_NONE && req->len) {
        char cmethod[32];
        reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s %s takes no request body",
                    sanitize(method, cmethod, sizeof(cmethod)), rt->path);
        return;
    }

    struct call c = {.api = api, .flag = flag};
    char name[ROUTE_SEGS][VV_NAME_MAX + 2];
    if (rt->named) {
        route_matches(rt, url, seg);
        int nseg = strstr(rt->path, "/snapshots/*") ? 2 : 1;
        const char *kind0 = "volume";
        if (strncmp(rt->path, "/v1/groups/", 11) == 0)
            kind0 = "group";
        else if (strncmp(rt->path, "/v1/replication/", 16) == 0)
            kind0 = "replication session";
        for (int i = 0; i < nseg; i++) {
            const char *why = NULL;
            if (pct_decode(seg[i], name[i], sizeof(name[i])) != 0)
                why = "it is not a valid %-encoded name of at most 64 characters";
            else
                why = vv_name_check(name[i]);
            if (why) {
                reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid",
                            "invalid %s name \"%s\" in URL: %s", i ? "snapshot" : kind0,
                            sanitize(seg[i], clean, sizeof(clean)), why);
                return;
            }
        }
        c.name = name[0];
        c.snap = nseg > 1 ? name[1] : NULL;
    }
    if (rt->body == BODY_OBJECT || (rt->body == BODY_OPTIONAL && req->len)) {
        json_error_t jerr;
        c.body = json_loadb(req->body ? req->body : "", req->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!c.body) {
            reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "request body is not valid JSON: %s (line %d, column %d)",
                        sanitize(jerr.text, clean, sizeof(clean)), jerr.line, jerr.column);
            return;
        }
        if (!json_is_object(c.body)) {
            json_decref(c.body);
            reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
                        "request body must be a JSON object");
            return;
        }
    }
    rt->fn(&c, r);
    json_decref(c.body);
}

/* ---- MHD glue ------------------------------------------------------------------------------ */

/* MHD_KeyValueIterator: copy the first key and value into CLS (struct qarg), count them all. */
struct qarg {
    char key[64];
    char value[16];
    bool found, has_value;
    unsigned count;
};

static enum MHD_Result first_key(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct qarg *q = cls;
    if (q->count++ == 0) {
        snprintf(q->key, sizeof(q->key), "%s", key ? key : "");
        snprintf(q->value, sizeof(q->value), "%s", value ? value : "");
        q->has_value = value != NULL;
        q->found = true;
    }
    return MHD_YES;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct reply *r, const char *allow)
{
    static const char oom[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory building the answer\"}}\n";
    char *text = NULL;
    if (r->status != MHD_HTTP_NO_CONTENT) {
        if (r->json)
            text = json_dumps(r->json, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
            r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    struct MHD_Response *resp;
    if (r->status == MHD_HTTP_NO_CONTENT) {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* the NUL's byte; curl and shell users like a final newline */
        resp = MHD_create_response_from_buffer(n + 1, text, MHD_RESPMEM_MUST_COPY);
    } else {
        resp =
            MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
    }
    free(text);
    if (!resp)
        return MHD_NO;
    if (r->status != MHD_HTTP_NO_CONTENT)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r->status == MHD_HTTP_METHOD_NOT_ALLOWED && allow && allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A body of more than API_BODY_MAX bytes: 413. */
static enum MHD_Result send_too_large(struct MHD_Connection *conn)
{
    struct reply r = {0};
    reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "request body is larger than %u bytes",
                API_BODY_MAX);
    enum MHD_Result ret = send_reply(conn, &r, NULL);
    json_decref(r.json);
    return ret;
}

/* Append a piece of body; past API_BODY_MAX, discard and remember. */
static void body_append(struct request *req, const char *data, size_t n)
{
    if (req->too_large)
        return;
    if (n > API_BODY_MAX - req->len) {
        req->too_large = true;
        return;
    }
    if (req->len + n > req->cap) {
        size_t cap = req->cap ? req->cap : 1024;
        while (cap < req->len + n)
            cap *= 2;
        char *p = realloc(req->body, cap);
        if (!p) {
            req->too_large = true; /* answered 413: the best we can say without memory */
            return;
        }
        req->body = p;
        req->cap = cap;
    }
    memcpy(req->body + req->len, data, n);
    req->len += n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct vv_api *api = cls;
    struct request *req = *req_cls;

    if (!req) { /* headers are in */
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        *req_cls = req;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *expect =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
        unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
        if (clen > API_BODY_MAX) {
            if (expect || clen > API_DISCARD_MAX)
                return send_too_large(conn);
            req->too_large = true;
        }
        return MHD_YES;
    }
    if (*upload_data_size) { /* a piece of body */
        req->received += *upload_data_size;
        body_append(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (req->too_large && req->received > API_DISCARD_MAX)
            return send_too_large(conn);
        return MHD_YES;
    }
    if (req->too_large)
        return send_too_large(conn);

    struct reply r = {0};
    char allow[64];
    const struct route *rt = NULL;
    struct qarg q = {.found = false};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, first_key, &q);
    dispatch(api, method, url, q.found ? q.key : NULL, q.has_value ? q.value : NULL, q.count,
             req, &r, allow, sizeof(allow), &rt);
    if (!r.json && r.status != MHD_HTTP_NO_CONTENT)
        reply_error(&r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory");

    const json_t *msg = json_object_get(json_object_get(r.json, "error"), "message");
    if (r.status == MHD_HTTP_BAD_GATEWAY || r.status == MHD_HTTP_GATEWAY_TIMEOUT)
        vv_warn(VV_SS_API, "%s %s: %u %s", method, url, r.status, json_string_value(msg));
    else if (r.status >= 500)
        vv_err(VV_SS_API, "%s %s: %u %s", method, url, r.status, json_string_value(msg));
    else if (r.status < 300 && rt && rt->changes)
        vv_info(VV_SS_API, "%s %s: %u", method, url, r.status);
    else
        vv_debug(VV_SS_API, "%s %s: %u%s%s", method, url, r.status, msg ? " " : "",
                 msg ? json_string_value(msg) : "");

    enum MHD_Result ret = send_reply(conn, &r, allow);
    json_decref(r.json);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *req = *req_cls;
    if (req) {
        free(req->body);
        free(req);
        *req_cls = NULL;
    }
}

/* Leave the URL as sent; dispatch() splits it on raw '/' and decodes the name segment. */
static size_t unescape_nothing(void *cls, struct MHD_Connection *conn, char *s)
{
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    vv_warn(VV_SS_API, "libmicrohttpd: %s", msg);
}

/* ---- start and stop ------------------------------------------------------------------------ */

/* Bind a listening Unix socket at PATH, mode 0600.  Returns 0 and *FD, or an errno with E. */
static int listen_unix(const char *path, int *fd_out, struct vv_err *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return vv_err_set(e, ENAMETOOLONG, "control socket path %s is longer than %zu bytes", path,
                          sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, path, strlen(path) + 1);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return vv_err_set(e, EEXIST, "%s exists and is not a socket; not replacing it", path);
        if (unlink(path) != 0 && errno != ENOENT) {
            int rc = errno;
            vv_err(VV_SS_API, "unlink %s: %s", path, strerror(rc));
            return vv_err_set(e, rc, "cannot remove the old control socket %s: %s", path,
                              strerror(rc));
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int rc = errno;
        vv_err(VV_SS_API, "socket(AF_UNIX): %s", strerror(rc));
        return vv_err_set(e, rc, "cannot create the control socket: %s", strerror(rc));
    }
    /* Nobody can connect before listen(), so chmod after bind leaves no window. */
    const char *what = "bind";
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail_1;
    what = "chmod";
    if (chmod(path, 0600) != 0)
        goto fail_2;
    what = "listen";
    if (listen(fd, API_LISTEN_BACKLOG) != 0)
        goto fail_2;
    *fd_out = fd;
    return 0;

fail_2:;
    int rc = errno;
    unlink(path);
    errno = rc;
fail_1:
    rc = errno;
    vv_err(VV_SS_API, "%s %s: %s", what, path, strerror(rc));
    close(fd);
    return vv_err_set(e, rc, "cannot set up the control socket %s (%s): %s", path, what,
                      strerror(rc));
}

int vv_api_start(struct vv_pool *pool, struct vv_repl *repl, const char *sock_path,
                 struct vv_api **out, struct vv_err *e)
{
    int rc, fd, mhd_fd;
    struct vv_api *api = calloc(1, sizeof(*api));
    if (!api)
        return vv_err_set(e, ENOMEM, "out of memory");
    api->pool = pool;
    api->repl = repl;
    api->sock_path = strdup(sock_path);
    if (!api->sock_path) {
        rc = vv_err_set(e, ENOMEM, "out of memory");
        goto fail_1;
    }
    rc = listen_unix(sock_path, &fd, e);
    if (rc)
        goto fail_2;
    /*
     * MHD closes its listen socket in MHD_stop_daemon(); whether it does when start-up fails
     * varies between versions.  Hand it a duplicate so a failure can at worst leak that one
     * descriptor, never close a number that another thread may have reused meanwhile.
     */
    mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (mhd_fd < 0) {
        rc = errno;
        vv_err(VV_SS_API, "dup: %s", strerror(rc));
        vv_err_set(e, rc, "cannot set up the control socket: %s", strerror(rc));
        goto fail_3;
    }
    /* One option and its arguments per line: */
    /* clang-format off */
    api->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO |
            MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, api,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)mhd_fd,
        MHD_OPTION_CONNECTION_LIMIT, API_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, API_IDLE_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_nothing, NULL,
        MHD_OPTION_END);
    /* clang-format on */
    if (!api->mhd) {
        rc = EIO;
        vv_err(VV_SS_API, "cannot start the HTTP server on %s", sock_path);
        vv_err_set(e, rc, "cannot start the HTTP server on %s", sock_path);
        goto fail_3;
    }
    close(fd);
    vv_info(VV_SS_API, "serving the control API on %s", sock_path);
    *out = api;
    return 0;

fail_3:
    close(fd);
    unlink(sock_path);
fail_2:
    free(api->sock_path);
fail_1:
    free(api);
    return rc;
}

void vv_api_stop(struct vv_api *api)
{
    if (!api)
        return;
    MHD_stop_daemon(api->mhd);
    if (unlink(api->sock_path) != 0 && errno != ENOENT)
        vv_warn(VV_SS_API, "unlink %s: %s", api->sock_path, strerror(errno));
    free(api->sock_path);
    free(api);
}
