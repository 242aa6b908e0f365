/*
 * tests/tools/apistress.c — many concurrent clients of the control API, for apiconc.sh.
 *
 *   apistress SOCKET SECONDS CLIENTS NAME...
 *
 * CLIENTS threads send random requests on the shared volume NAMEs for SECONDS: create (1-64
 * MiB), delete, resize (1-64 MiB), rename to another NAME, show, list, pool status, and
 * snapshot create and delete (three snapshot names per volume), clones, groups and, with
 * APISTRESS_KEY (a key file), replication sessions to a peer nobody listens at.  Each
 * thread keeps its connection for a few requests and then opens a new one (the API serves
 * each connection on its own thread, so both reuse and churn are exercised).
 *
 * Every answer must have a status the operation may have (see WANT below: never a 5xx but
 * 507) and a JSON body of the right shape: {"error":{"code":"...","message":"..."}} for an
 * error, a volume object, a list, or the pool status.  The first wrong answer is printed on
 * stderr and the exit status is 1; a transport error (no answer at all) is one too.  On
 * success the counts per (method, status) are printed on stdout, one "COUNT METHOD STATUS" a
 * line, and the total last ("total N").  Exit 2: usage.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum op {
    OP_CREATE, OP_DELETE, OP_RESIZE, OP_RENAME, OP_SHOW, OP_LIST, OP_POOL, OP_SNAP, OP_UNSNAP,
    OP_CLONE, OP_GCREATE, OP_GCHANGE, OP_GSNAP, OP_GDELETE, OP_RCREATE, OP_RSYNC, OP_RDELETE,
    OP_N
};

static const struct {
    const char *method;
    const char *want; /* statuses this operation may answer */
} ops[OP_N] = {
    [OP_CREATE] = {"POST", "201 409 507"},
    [OP_DELETE] = {"DELETE", "204 404 409"},
    [OP_RESIZE] = {"PATCH", "200 404 409 507"},
    [OP_RENAME] = {"PATCH", "200 404 409"},
    [OP_SHOW] = {"GET", "200 404"},
    [OP_LIST] = {"GET", "200"},
    [OP_POOL] = {"GET", "200"},
    [OP_SNAP] = {"POST", "201 404 409"},
    [OP_UNSNAP] = {"DELETE", "204 404 409"},
    [OP_CLONE] = {"POST", "201 404 409"},
    /* groups: "g" of the shared names; 400 for adding a member or removing a non-member,
     * or a snapshot of an empty group */
    [OP_GCREATE] = {"POST", "201 404 409"},
    [OP_GCHANGE] = {"PATCH", "200 400 404 409"},
    [OP_GSNAP] = {"POST", "201 400 404 409"},
    [OP_GDELETE] = {"DELETE", "204 404"},
    /* replication sessions "r0", "r1" of a shared volume, to a peer nobody listens at (their
     * syncs fail and retry meanwhile); only with APISTRESS_KEY, a key file */
    [OP_RCREATE] = {"POST", "201 404 409"},
    [OP_RSYNC] = {"POST", "200 404"},
    [OP_RDELETE] = {"DELETE", "204 404"},
};

#define MAX_STATUS 600

static const char *sock_path;
static const char *key_path; /* APISTRESS_KEY: with it, replication sessions too */
static char **names;
static int nnames;
static double deadline;
static _Atomic bool failed;
static _Atomic unsigned long counts[OP_N][MAX_STATUS];
static pthread_mutex_t err_mu = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct buf {
    char *p;
    size_t len, cap;
};

static size_t on_data(char *d, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = size * n;
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->len + len + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, len);
    b->len += len;
    b->p[b->len] = 0;
    return len;
}

/* the first failure: one line on stderr, and every client stops */
static void bad(const char *body, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(const char *body, const char *fmt, ...)
{
    pthread_mutex_lock(&err_mu);
    if (!atomic_exchange(&failed, true)) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "apistress: ");
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "; body: %.300s\n", body ? body : "(none)");
    }
    pthread_mutex_unlock(&err_mu);
}

/* Is BODY (of a STATUS answer to OP) a JSON object of the shape that answer has? */
static bool body_ok(enum op op, long status, const char *body, size_t len)
{
    if (status == 204)
        return len == 0;
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    bool ok = j && json_is_object(j);
    if (ok && status >= 400) {
        json_t *e = json_object_get(j, "error");
        ok = json_is_object(e) && json_is_string(json_object_get(e, "code")) &&
             json_is_string(json_object_get(e, "message")) &&
             json_string_length(json_object_get(e, "message")) > 0;
    } else if (ok && op == OP_LIST) {
        ok = json_is_array(json_object_get(j, "volumes"));
    } else if (ok && op == OP_POOL) {
        ok = json_is_integer(json_object_get(j, "capacity"));
    } else if (ok && op >= OP_RCREATE) {
        ok = json_is_string(json_object_get(j, "name")) &&
             json_is_string(json_object_get(j, "state"));
    } else if (ok && op >= OP_GCREATE) {
        ok = json_is_string(json_object_get(j, "name")) &&
             json_is_array(json_object_get(j, "volumes"));
    } else if (ok) {
        ok = json_is_string(json_object_get(j, "name")) &&
             json_is_integer(json_object_get(j, "size"));
    }
    json_decref(j);
    return ok;
}

static void *client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    CURL *c = curl_easy_init();
    struct buf b = {0};
    if (!c) {
        bad(NULL, "cannot start a curl handle");
        return NULL;
    }
    while (!atomic_load(&failed) && now() < deadline) {
        enum op op = (enum op)(rand_r(&seed) % OP_N);
        if (op >= OP_RCREATE && !key_path)
            continue;
        const char *a = names[rand_r(&seed) % nnames], *to = names[rand_r(&seed) % nnames];
        int mib = 1 + rand_r(&seed) % 64;
        char url[256], data[256] = "";
        if (op == OP_CREATE || op == OP_LIST)
            snprintf(url, sizeof(url), "http://localhost/v1/volumes");
        else if (op == OP_POOL)
            snprintf(url, sizeof(url), "http://localhost/v1/pool");
        else if (op == OP_SNAP)
            snprintf(url, sizeof(url), "http://localhost/v1/volumes/%s/snapshots", a);
        else if (op == OP_UNSNAP)
            snprintf(url, sizeof(url), "http://localhost/v1/volumes/%s/snapshots/snap%d", a,
                     mib % 3);
        else if (op == OP_GCREATE)
            snprintf(url, sizeof(url), "http://localhost/v1/groups");
        else if (op == OP_GCHANGE || op == OP_GDELETE)
            snprintf(url, sizeof(url), "http://localhost/v1/groups/g");
        else if (op == OP_GSNAP)
            snprintf(url, sizeof(url), "http://localhost/v1/groups/g/snapshots");
        else if (op == OP_CLONE)
            snprintf(url, sizeof(url), "http://localhost/v1/volumes/%s/snapshots/snap%d/clone",
                     a, mib % 3);
        else if (op == OP_RCREATE)
            snprintf(url, sizeof(url), "http://localhost/v1/replication");
        else if (op == OP_RSYNC)
            snprintf(url, sizeof(url), "http://localhost/v1/replication/r%d/sync", mib % 2);
        else if (op == OP_RDELETE)
            snprintf(url, sizeof(url), "http://localhost/v1/replication/r%d", mib % 2);
        else
            snprintf(url, sizeof(url), "http://localhost/v1/volumes/%s", a);
        if (op == OP_CREATE)
            snprintf(data, sizeof(data), "{\"name\":\"%s\",\"size\":\"%dM\"}", a, mib);
        else if (op == OP_RESIZE)
            snprintf(data, sizeof(data), "{\"size\":%llu}", (unsigned long long)mib << 20);
        else if (op == OP_RENAME || op == OP_CLONE)
            snprintf(data, sizeof(data), "{\"name\":\"%s\"}", to);
        else if (op == OP_SNAP || op == OP_GSNAP)
            snprintf(data, sizeof(data), "{\"name\":\"snap%d\"}", mib % 3);
        else if (op == OP_GCREATE)
            snprintf(data, sizeof(data), "{\"name\":\"g\",\"volumes\":[\"%s\"]}", a);
        else if (op == OP_GCHANGE)
            snprintf(data, sizeof(data), "{\"%s\":[\"%s\"]}", mib % 2 ? "add" : "remove", a);
        else if (op == OP_RCREATE)
            snprintf(data, sizeof(data),
                     "{\"name\":\"r%d\",\"volume\":\"%s\",\"peer\":\"127.0.0.1:9\","
                     "\"key\":\"%.150s\"}", mib % 2, a, key_path);
        b.len = 0;
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock_path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, ops[op].method);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        /* about one request in four on a new connection */
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, rand_r(&seed) % 4 == 0 ? 1L : 0L);
        struct curl_slist *hdr = NULL;
        if (data[0]) {
            hdr = curl_slist_append(NULL, "Content-Type: application/json");
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
        }
        CURLcode rc = curl_easy_perform(c);
        curl_slist_free_all(hdr);
        long status = 0;
        if (rc != CURLE_OK) {
            bad(NULL, "%s %s %s: no answer: %s", ops[op].method, url, data,
                curl_easy_strerror(rc));
            break;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        char st[8];
        snprintf(st, sizeof(st), "%ld", status);
        if (status <= 0 || status >= MAX_STATUS || !strstr(ops[op].want, st)) {
            bad(b.p, "%s %s %s: HTTP %ld, not one this request may answer (%s)",
                ops[op].method, url, data, status, ops[op].want);
            break;
        }
        if (!body_ok(op, status, b.p ? b.p : "", b.len)) {
            bad(b.p, "%s %s %s: HTTP %ld with a body of the wrong shape", ops[op].method, url,
                data, status);
            break;
        }
        atomic_fetch_add(&counts[op][status], 1);
    }
    curl_easy_cleanup(c);
    free(b.p);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5 || atoi(argv[2]) <= 0 || atoi(argv[3]) <= 0) {
        fprintf(stderr, "usage: apistress SOCKET SECONDS CLIENTS NAME...\n");
        return 2;
    }
    sock_path = argv[1];
    key_path = getenv("APISTRESS_KEY");
    deadline = now() + atoi(argv[2]);
    int nclients = atoi(argv[3]);
    names = argv + 4;
    nnames = argc - 4;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t *t = calloc((size_t)nclients, sizeof(*t));
    int started = 0;
    for (; t && started < nclients; started++)
        if (pthread_create(&t[started], NULL, client, (void *)(uintptr_t)(started + 1)))
            break;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    curl_global_cleanup();
    if (started < nclients) {
        fprintf(stderr, "apistress: could start only %d of %d clients\n", started, nclients);
        return 1;
    }
    if (atomic_load(&failed))
        return 1;
    unsigned long total = 0;
    for (int o = 0; o < OP_N; o++)
        for (int s = 0; s < MAX_STATUS; s++)
            if (counts[o][s]) {
                const char *what = o == OP_RENAME ? "PATCH-name" : o == OP_RESIZE ? "PATCH-size"
                                   : o == OP_LIST ? "GET-list" : o == OP_POOL ? "GET-pool"
                                   : o == OP_SNAP ? "POST-snap" : o == OP_UNSNAP ? "DELETE-snap"
                                   : o == OP_CLONE ? "POST-clone" : o == OP_GCREATE ? "POST-group"
                                   : o == OP_GCHANGE ? "PATCH-group" : o == OP_GSNAP ? "POST-gsnap"
                                   : o == OP_GDELETE ? "DELETE-group"
                                   : o == OP_RCREATE ? "POST-repl" : o == OP_RSYNC ? "POST-rsync"
                                   : o == OP_RDELETE ? "DELETE-repl" : ops[o].method;
                printf("%lu %s %d\n", counts[o][s], what, s);
                total += counts[o][s];
            }
    printf("total %lu\n", total);
    return 0;
}
