/*
 * cli/client.c — the CLI's side of the control API: one HTTP request over the pool's Unix
 * socket with libcurl (see api/api.h for the resources and the error format).
 *
 * Design notes
 *   One request per call, one curl handle per request: the CLI makes one or two requests per
 *   run, so there is nothing to gain from keeping a connection.  The answer is collected in
 *   memory (at most CLIENT_ANSWER_MAX bytes) and parsed with jansson.
 *   When curl cannot connect we connect() once more ourselves to learn why (the errno that
 *   curl keeps to itself), so the user sees "not mounted" or "permission denied", not a
 *   curl error code.
 */
#include "cli/cli_i.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_ANSWER_MAX (64u << 20) /* bytes: a list of many volumes still fits */
#define CLIENT_CONNECT_TIMEOUT 10L    /* seconds */
#define CLIENT_TIMEOUT 900L           /* seconds for a whole request (a sync, a big delete) */
#define CLIENT_WAIT_MARGIN 60L        /* seconds beyond a wait the daemon was asked for */

struct answer {
    char *data;
    size_t len;
    bool too_big;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct answer *a = userdata;
    size_t n = size * nmemb;
    if (n > CLIENT_ANSWER_MAX - a->len) {
        a->too_big = true;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    char *p = realloc(a->data, a->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + a->len, ptr, n);
    a->data = p;
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

/* curl could not connect to SOCK: say why, as helpfully as we can.  Returns the errno. */
static int explain_no_connect(const char *pool, const char *sock)
{
    struct stat st;
    if (stat(pool, &st) != 0) {
        int rc = errno;
        cli_fail("pool %s: %s", pool, strerror(rc));
        return rc;
    }
    char meta[PATH_MAX + 16];
    snprintf(meta, sizeof(meta), "%s/meta.mdb", pool);
    if (stat(meta, &st) != 0) {
        cli_fail("%s holds no vvfs pool (no meta.mdb)", pool);
        return ENOENT;
    }
    int rc = ECONNREFUSED;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && strlen(sock) < sizeof(sa.sun_path)) { /* checked by the caller */
        memcpy(sa.sun_path, sock, strlen(sock) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            rc = errno;
    }
    if (fd >= 0)
        close(fd);
    if (rc == EACCES || rc == EPERM) {
        cli_fail("no permission to use %s (the daemon's socket is mode 0600: run as its owner, "
                 "e.g. with sudo)",
                 sock);
        return rc;
    }
    cli_fail("pool %s is not mounted (no daemon listening on %s); run: vvfs mount %s MNT", pool,
             sock, pool);
    return ECONNREFUSED;
}

/* Report an error answer (HTTP STATUS, body A) and return the matching errno. */
static int explain_error_answer(long status, const struct answer *a)
{
    json_t *j = a->data ? json_loadb(a->data, a->len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (msg)
        cli_fail("%s", msg);
    else
        cli_fail("the daemon answered HTTP %ld", status);
    json_decref(j);
    switch (status) {
    case 400:
        return EINVAL;
    case 404:
        return ENOENT;
    case 409:
        return EEXIST;
    case 507:
        return ENOSPC;
    default:
        return EIO;
    }
}

int cli_request(const struct cli *c, const char *method, const char *path, json_t *body,
                json_t **out)
{
    return cli_request_waiting(c, method, path, body, 0, out);
}

int cli_request_waiting(const struct cli *c, const char *method, const char *path,
                        json_t *body, unsigned wait_s, json_t **out)
{
    char sock[PATH_MAX], url[256], errbuf[CURL_ERROR_SIZE] = "";
    struct answer a = {0};
    struct curl_slist *headers = NULL;
    char *text = NULL;
    int rc = 0;
    long status = 0;
    CURL *curl = NULL;

    *out = NULL;
    snprintf(sock, sizeof(sock), "%s/vvfs.sock", c->pool);
    if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        cli_fail("the socket path %s is too long for a Unix socket", sock);
        return ENAMETOOLONG;
    }
    snprintf(url, sizeof(url), "http://localhost%s", path);
    if (body && !(text = json_dumps(body, JSON_COMPACT))) {
        cli_fail("out of memory");
        return ENOMEM;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(text);
        cli_fail("cannot initialise libcurl");
        return EIO;
    }
    curl = curl_easy_init();
    headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!curl || !headers) {
        rc = ENOMEM;
        cli_fail("cannot initialise libcurl");
        goto cleanup;
    }
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, sock);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT);
    long timeout = (long)wait_s + CLIENT_WAIT_MARGIN;
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout > CLIENT_TIMEOUT ? timeout : CLIENT_TIMEOUT);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text ? text : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(text ? strlen(text) : 0));
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode cc = curl_easy_perform(curl);
    if (cc == CURLE_COULDNT_CONNECT) {
        rc = explain_no_connect(c->pool, sock);
        goto cleanup;
    }
    if (cc != CURLE_OK) {
        rc = EIO;
        if (a.too_big)
            cli_fail("the daemon's answer is larger than %u bytes", CLIENT_ANSWER_MAX);
        else
            cli_fail("request to the daemon on %s failed: %s", sock,
                     errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto cleanup;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        rc = explain_error_answer(status, &a);
        goto cleanup;
    }
    if (a.len) {
        json_error_t jerr;
        *out = json_loadb(a.data, a.len, 0, &jerr);
        if (!*out) {
            rc = EPROTO;
            cli_fail("the daemon's answer is not valid JSON: %s", jerr.text);
        }
    }

cleanup:
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    free(a.data);
    free(text);
    return rc;
}

/* ---- reading the API's JSON ---------------------------------------------------------------- */

uint64_t cli_jnum(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

const char *cli_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

const char *cli_fmt_time(uint64_t t, bool long_form, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    size_t n = 0;
    if (localtime_r(&tt, &tm))
        n = long_form ? strftime(buf, len, "%Y-%m-%d %H:%M:%S %z", &tm)
                      : strftime(buf, len, "%Y-%m-%d %H:%M", &tm);
    if (n == 0)
        snprintf(buf, len, "%llu", (unsigned long long)t);
    return buf;
}
