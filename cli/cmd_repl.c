/*
 * cli/cmd_repl.c — vvfs replication create|list|status|sync|pause|resume|delete.
 *
 * Design notes
 *   As cmd_volume.c: arguments are checked here (names, the HOST:PORT shape of --peer, --mode,
 *   durations in range: a bad one is a usage error, exit 2, before any request), one request
 *   is made (pause, resume and a sync without --wait answer at once: the daemon's worker
 *   does the syncing), and the answer is printed as JSON (--json) or text.  The daemon does
 *   the real validation (the volume exists, the key file loads); its message is printed as is.
 *   --key is made absolute (the daemon runs in "/") but not resolved: the session records,
 *   and status shows, the path as the user named it, symlinks and all.
 *   sync --wait waits in the daemon (the API's handler blocks until the sync is done or its
 *   timeout runs out), so the request's own timeout is stretched to match.
 */
#include "cli/cli_i.h"

#include "replication/repl.h"
#include "util/addr.h"
#include "util/duration.h"
#include "util/name.h"
#include "util/size.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* seconds: the longest wait, and the default, that the API takes (api/api.h); the CLI must
 * know it to wait as long as the daemon may */
#define SYNC_WAIT_MAX 3600u

/* argument 0 is a valid session name (else: usage, exit 2) */
static int check_session(struct cli *c)
{
    const char *why = vv_name_check(c->args[0]);
    if (why)
        return cli_usage_error(c, "invalid replication session name '%s': %s", c->args[0], why);
    return 0;
}

int cli_key_path(const struct cli *c, char *out, size_t len)
{
    int rc = cli_abs_path(c->key, out, len);
    if (rc && rc != ENAMETOOLONG)
        return cli_fail("cannot make --key %s an absolute path: %s", c->key, strerror(rc));
    if (rc || strlen(out) > VV_REPL_PATH_MAX)
        return cli_usage_error(c, "the path of --key %s is longer than %u bytes", c->key,
                               VV_REPL_PATH_MAX);
    return 0;
}

/* "2026-01-31 12:00" of the session's point, or "-" */
static const char *fmt_point(const json_t *s, bool long_form, char *buf, size_t len)
{
    const json_t *p = json_object_get(s, "point");
    if (!json_is_object(p))
        return "-";
    return cli_fmt_time(cli_jnum(p, "time"), long_form, buf, len);
}

/* the session's mode, "-" for a destination's (null) */
static const char *fmt_mode(const json_t *s)
{
    const char *m = json_string_value(json_object_get(s, "mode"));
    return m ? m : "-";
}

/* STATE, and ", overdue" when the last sync is older than the RPO */
static const char *fmt_state(const json_t *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", cli_jstr(s, "state"),
             json_is_true(json_object_get(s, "overdue")) ? ", overdue" : "");
    return buf;
}

/* a JSON string that may be null: its text or "-" */
static const char *opt_str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v && v[0] ? v : "-";
}

/* METHOD PATH (no body) on session argument 0, then print "VERB replication session NAME" or
 * the JSON answer. */
static int session_op(struct cli *c, const char *method, const char *suffix, const char *verb)
{
    int rc = check_session(c);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/replication/%s%s", c->args[0], suffix);
    json_t *ans = NULL;
    if (cli_request(c, method, path, NULL, &ans))
        return CLI_FAIL;
    if (c->json && ans)
        cli_print_json(ans);
    else if (c->json)
        printf("{}\n"); /* (delete: 204, no body) */
    else
        printf("%s replication session %s\n", verb, c->args[0]);
    json_decref(ans);
    return CLI_OK;
}

/* what session S replicates: "volume NAME" or "group NAME" (WORD: with the word) */
static const char *subject(const json_t *s, bool word, char *buf, size_t len)
{
    const char *g = json_string_value(json_object_get(s, "group"));
    if (g)
        snprintf(buf, len, "%s%s", word ? "group " : "group:", g);
    else
        snprintf(buf, len, "%s%s", word ? "volume " : "", cli_jstr(s, "volume"));
    return buf;
}

int cmd_repl_create(struct cli *c)
{
    char key[VV_REPL_PATH_MAX + 1];
    uint64_t rpo = 0;
    int rc = check_session(c);
    if (rc)
        return rc;
    if (!c->volume == !c->group)
        return cli_usage_error(c, "replication create needs --volume VOL (the volume to "
                                  "replicate) or --group GROUP (a consistency group), not both");
    if ((rc = cli_check_name(c, c->volume ? c->volume : c->group)) != 0)
        return rc;
    if (!c->peer)
        return cli_usage_error(c, "replication create needs --peer HOST:PORT (where the other "
                                  "daemon listens: vvfs mount ... --listen HOST:PORT)");
    const char *why = vv_addr_split(c->peer, NULL, 0, NULL, 0);
    if (!why && strlen(c->peer) > VV_REPL_ADDR_MAX)
        why = "it is longer than 255 bytes";
    if (why)
        return cli_usage_error(c, "invalid --peer '%s': %s", c->peer, why);
    if (!c->key)
        return cli_usage_error(c, "replication create needs --key FILE (the key both daemons "
                                  "have: vvfs key generate)");
    if ((rc = cli_key_path(c, key, sizeof(key))) != 0)
        return rc;
    if (c->mode && !vv_repl_mode_parse(c->mode))
        return cli_usage_error(c, "--mode must be periodic or continuous, not '%s'", c->mode);
    if (c->rpo && (rc = cli_parse_duration(c, "--rpo", c->rpo, VV_REPL_RPO_MIN,
                                           VV_REPL_RPO_MAX, &rpo)) != 0)
        return rc;
    unsigned long keep = 0;
    if (c->keep_remote) {
        char *end;
        errno = 0;
        keep = strtoul(c->keep_remote, &end, 10);
        if (errno || end == c->keep_remote || *end || c->keep_remote[0] == '-' ||
            keep > VV_REPL_KEEP_MAX)
            return cli_usage_error(c, "--keep-remote must be a number from 0 (keep all) to %u",
                                   VV_REPL_KEEP_MAX);
    }

    if (c->compress && strcmp(c->compress, "zstd") != 0 && strcmp(c->compress, "none") != 0)
        return cli_usage_error(c, "--compress must be zstd or none, not '%s'", c->compress);
    uint64_t bw = 0;
    if (c->bwlimit && (vv_parse_size(c->bwlimit, &bw) || bw < VV_REPL_BWLIMIT_MIN))
        return cli_usage_error(c, "--bwlimit must be bytes per second, at least 64K (as 50M), "
                                  "not '%s'", c->bwlimit);

    /* the options only when given: the daemon's defaults are the defaults */
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s*, s:o*, s:o*, s:s*, s:o*}",
                            "name", c->args[0],
                            c->volume ? "volume" : "group", c->volume ? c->volume : c->group,
                            "peer", c->peer, "key", key, "mode", c->mode,
                            "rpo", c->rpo ? json_integer((json_int_t)rpo) : NULL,
                            "keep_remote",
                            c->keep_remote ? json_integer((json_int_t)keep) : NULL,
                            "compress", c->compress,
                            "bwlimit", c->bwlimit ? json_integer((json_int_t)bw) : NULL);
    if (!req)
        return cli_fail("out of memory");
    json_t *s = NULL;
    rc = cli_request(c, "POST", "/v1/replication", req, &s);
    json_decref(req);
    if (rc)
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(s);
    } else {
        char b[32];
        bool periodic = strcmp(fmt_mode(s), "periodic") == 0;
        char sb[80];
        printf("created replication session %s: %s to %s (%s%s%s); the first sync has "
               "started\n",
               cli_jstr(s, "name"), subject(s, true, sb, sizeof(sb)), cli_jstr(s, "peer"),
               fmt_mode(s),
               periodic ? ", every " : "",
               periodic ? vv_format_duration(cli_jnum(s, "rpo"), b, sizeof(b)) : "");
    }
    json_decref(s);
    return CLI_OK;
}

int cmd_repl_list(struct cli *c)
{
    json_t *ans = NULL;
    if (cli_request(c, "GET", "/v1/replication", NULL, &ans))
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(ans);
        json_decref(ans);
        return CLI_OK;
    }
    const json_t *a = json_object_get(ans, "sessions");
    size_t n = json_array_size(a);
    int wn = 4, wv = 6, wp = 4, ws = 5; /* "NAME", "VOLUME", "PEER", "STATE" */
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(a, i);
        char st[64], sb[80];
        int ln = (int)strlen(cli_jstr(s, "name"));
        int lv = (int)strlen(subject(s, false, sb, sizeof(sb)));
        int lp = (int)strlen(cli_jstr(s, "peer")), ls = (int)strlen(fmt_state(s, st, sizeof(st)));
        wn = ln > wn ? ln : wn;
        wv = lv > wv ? lv : wv;
        wp = lp > wp ? lp : wp;
        ws = ls > ws ? ls : ws;
    }
    printf("%-*s  %-11s  %-*s  %-*s  %-10s  %-*s  %-16s  %s\n", wn, "NAME", "ROLE", wv, "VOLUME",
           wp, "PEER", "MODE", ws, "STATE", "POINT", "LAG");
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(a, i);
        char st[64], pt[32], lag[32], sb[80];
        bool has_point = json_is_object(json_object_get(s, "point"));
        printf("%-*s  %-11s  %-*s  %-*s  %-10s  %-*s  %-16s  %s\n", wn, cli_jstr(s, "name"),
               cli_jstr(s, "role"), wv, subject(s, false, sb, sizeof(sb)), wp, cli_jstr(s, "peer"),
               fmt_mode(s), ws, fmt_state(s, st, sizeof(st)), fmt_point(s, false, pt, sizeof(pt)),
               has_point ? vv_format_duration(cli_jnum(s, "lag"), lag, sizeof(lag)) : "-");
    }
    json_decref(ans);
    return CLI_OK;
}

/* When a unix time T is, seen from now: "2026-01-31 12:00:00 +0100 (in 4m)" */
static const char *fmt_when(uint64_t t, char *buf, size_t len)
{
    char at[48], d[32];
    uint64_t now = (uint64_t)time(NULL);
    cli_fmt_time(t, true, at, sizeof(at));
    if (t > now)
        snprintf(buf, len, "%s (in %s)", at, vv_format_duration(t - now, d, sizeof(d)));
    else
        snprintf(buf, len, "%s (%s ago)", at, vv_format_duration(now - t, d, sizeof(d)));
    return buf;
}

static void print_session(const json_t *s)
{
    bool source = strcmp(cli_jstr(s, "role"), "source") == 0;
    const json_t *p = json_object_get(s, "point"), *x = json_object_get(s, "transfer");
    char b[96], b2[32], b3[32];
    printf("name:         %s\n", cli_jstr(s, "name"));
    printf("id:           %s\n", cli_jstr(s, "id"));
    printf("role:         %s\n", cli_jstr(s, "role"));
    if (json_is_string(json_object_get(s, "group")))
        printf("group:        %s\n", cli_jstr(s, "group"));
    else
        printf("volume:       %s\n", cli_jstr(s, "volume"));
    printf("peer:         %s%s\n", opt_str(s, "peer"), source ? "" : " (the source, last seen)");
    if (source) {
        printf("key:          %s\n", opt_str(s, "key"));
        printf("mode:         %s", fmt_mode(s));
        if (strcmp(fmt_mode(s), "periodic") == 0)
            printf(" (RPO %s)", vv_format_duration(cli_jnum(s, "rpo"), b, sizeof(b)));
        printf("\n");
        uint64_t keep = cli_jnum(s, "keep_remote");
        if (keep)
            printf("snapshots:    the peer keeps the %llu newest that travelled\n",
                   (unsigned long long)keep);
        else
            printf("snapshots:    the peer keeps all that travelled\n");
        printf("compress:     %s\n", cli_jstr(s, "compress"));
        uint64_t bw = cli_jnum(s, "bwlimit");
        if (bw)
            printf("bwlimit:      %s/s\n", vv_format_size(bw, b, sizeof(b)));
    }
    printf("state:        %s\n", cli_jstr(s, "state"));
    if (json_is_object(p))
        printf("point:        %s, gen %llu\n", fmt_when(cli_jnum(p, "time"), b, sizeof(b)),
               (unsigned long long)cli_jnum(p, "gen"));
    else
        printf("point:        none yet (the first sync has not completed)\n");
    if (json_is_object(p)) {
        printf("lag:          %s", vv_format_duration(cli_jnum(s, "lag"), b, sizeof(b)));
        if (source)
            printf(" (%s written since)",
                   vv_format_size(cli_jnum(s, "lag_bytes"), b2, sizeof(b2)));
        printf("\n");
    }
    if (source) {
        printf("overdue:      %s\n",
               json_is_true(json_object_get(s, "overdue")) ? "yes (no sync completed within "
                                                             "the RPO)"
                                                           : "no");
        uint64_t next = cli_jnum(s, "next_sync");
        printf("next sync:    %s\n", next ? fmt_when(next, b, sizeof(b)) : "now");
    }
    printf("syncs:        %llu (%s %s)\n", (unsigned long long)cli_jnum(s, "syncs"),
           vv_format_size(cli_jnum(s, "bytes_sent"), b2, sizeof(b2)),
           source ? "sent" : "received");
    if (cli_jnum(x, "started")) {
        bool running = strcmp(cli_jstr(s, "state"), "synchronizing") == 0 ||
                       strcmp(cli_jstr(s, "state"), "initializing") == 0;
        printf("transfer:     %s, started %s: %s %s in %.1f s, %s left\n",
               running ? "running" : "the last one", fmt_when(cli_jnum(x, "started"), b, sizeof(b)),
               vv_format_size(cli_jnum(x, "bytes"), b2, sizeof(b2)),
               source ? "sent" : "received",
               json_real_value(json_object_get(x, "seconds")),
               vv_format_size(cli_jnum(x, "left"), b3, sizeof(b3)));
        printf("rate:         %s/s\n", vv_format_size(cli_jnum(x, "rate"), b, sizeof(b)));
        printf("eta:          %s\n",
               cli_jnum(x, "eta") ? vv_format_duration(cli_jnum(x, "eta"), b, sizeof(b)) : "-");
    }
    const char *err = json_string_value(json_object_get(s, "error"));
    if (err && err[0])
        printf("last error:   %s (%s)\n", err, fmt_when(cli_jnum(s, "error_time"), b, sizeof(b)));
    else
        printf("last error:   none\n");
}

int cmd_repl_status(struct cli *c)
{
    int rc = check_session(c);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/replication/%s", c->args[0]);
    json_t *s = NULL;
    if (cli_request(c, "GET", path, NULL, &s))
        return CLI_FAIL;
    if (c->json)
        cli_print_json(s);
    else
        print_session(s);
    json_decref(s);
    return CLI_OK;
}

int cmd_repl_sync(struct cli *c)
{
    uint64_t timeout = SYNC_WAIT_MAX;
    int rc = check_session(c);
    if (rc)
        return rc;
    if (c->timeout && !c->wait)
        return cli_usage_error(c, "--timeout goes with --wait");
    if (c->timeout &&
        (rc = cli_parse_duration(c, "--timeout", c->timeout, 1, SYNC_WAIT_MAX, &timeout)) != 0)
        return rc;
    if (c->pit && (rc = cli_check_name(c, c->pit)) != 0)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/replication/%s/sync", c->args[0]);
    json_t *req = NULL, *s = NULL;
    if (c->wait || c->pit) {
        req = json_pack("{s:b, s:o*, s:s*}", "wait", c->wait ? 1 : 0, "timeout",
                        c->timeout ? json_integer((json_int_t)timeout) : NULL, "pit", c->pit);
        if (!req)
            return cli_fail("out of memory");
    }
    rc = cli_request_waiting(c, "POST", path, req, c->wait ? (unsigned)timeout : 0, &s);
    json_decref(req);
    if (rc)
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(s);
    } else if (!c->wait) {
        printf("started a sync of replication session %s%s%s\n", c->args[0],
               c->pit ? " with the point in time " : "", c->pit ? c->pit : "");
    } else {
        char pt[48];
        const json_t *p = json_object_get(s, "point");
        char sb[80];
        printf("synced replication session %s: %s holds %s as of %s (gen %llu)\n",
               c->args[0], cli_jstr(s, "peer"), subject(s, true, sb, sizeof(sb)),
               fmt_point(s, true, pt, sizeof(pt)), (unsigned long long)cli_jnum(p, "gen"));
    }
    json_decref(s);
    return CLI_OK;
}

int cmd_repl_pause(struct cli *c)
{
    return session_op(c, "POST", "/pause", "paused");
}

int cmd_repl_resume(struct cli *c)
{
    return session_op(c, "POST", "/resume", "resumed");
}

int cmd_repl_delete(struct cli *c)
{
    return session_op(c, "DELETE", "", "deleted");
}
