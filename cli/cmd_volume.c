/*
 * cli/cmd_volume.c — the commands that talk to a running daemon: volume *, status, sync.
 *
 * Design notes
 *   Each command checks its arguments here (names with vv_name_check, sizes with
 *   vv_parse_size: a bad one is a usage error, exit 2, before any request), makes one request
 *   (status: plus a look at /proc/self/mountinfo), and prints either the API's JSON (--json)
 *   or text.  The daemon does the real validation; its error message is printed as is.
 *   Sizes in requests are sent as integers of bytes.
 */
#include "cli/cli_i.h"

#include "util/name.h"
#include "util/size.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- formatting ---------------------------------------------------------------------------- */

/* "20G" */
static const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
    return vv_format_size(bytes, buf, len);
}

/* "20G (21474836480 bytes)" */
static const char *fmt_size_exact(uint64_t bytes, char *buf, size_t len)
{
    char h[32];
    snprintf(buf, len, "%s (%llu bytes)", vv_format_size(bytes, h, sizeof(h)),
             (unsigned long long)bytes);
    return buf;
}

static json_t *new_object(void)
{
    json_t *o = json_object();
    if (!o)
        cli_fail("out of memory");
    return o;
}

/* ---- volume -------------------------------------------------------------------------------- */

int cmd_volume_create(struct cli *c)
{
    const char *name = c->args[0];
    uint64_t size;
    int rc = cli_check_name(c, name);
    if (rc || (rc = cli_parse_size(c, "size", c->args[1], &size)) != 0)
        return rc;

    json_t *req = json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)size);
    json_t *vol = NULL;
    if (!req)
        return cli_fail("out of memory");
    rc = cli_request(c, "POST", "/v1/volumes", req, &vol);
    json_decref(req);
    if (rc)
        return CLI_FAIL;
    char b[32];
    if (c->json)
        cli_print_json(vol);
    else
        printf("created volume %s (%s)\n", cli_jstr(vol, "name"),
               fmt_size(cli_jnum(vol, "size"), b, sizeof(b)));
    json_decref(vol);
    return CLI_OK;
}

int cmd_volume_list(struct cli *c)
{
    json_t *ans = NULL;
    if (cli_request(c, "GET", "/v1/volumes", NULL, &ans))
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(ans);
        json_decref(ans);
        return CLI_OK;
    }
    const json_t *vols = json_object_get(ans, "volumes");
    size_t n = json_array_size(vols);
    int width = 4; /* "NAME" */
    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(cli_jstr(json_array_get(vols, i), "name"));
        if (len > width)
            width = len;
    }
    printf("%-*s  %8s  %8s  %-16s  %s\n", width, "NAME", "SIZE", "USED", "CREATED", "ORIGIN");
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(vols, i);
        char sz[32], used[32], created[32], origin[140];
        printf("%-*s  %8s  %8s  %-16s  %s\n", width, cli_jstr(v, "name"),
               fmt_size(cli_jnum(v, "size"), sz, sizeof(sz)),
               fmt_size(cli_jnum(v, "used"), used, sizeof(used)),
               cli_fmt_time(cli_jnum(v, "created"), false, created, sizeof(created)),
               cli_origin(v, origin, sizeof(origin)));
    }
    json_decref(ans);
    return CLI_OK;
}

int cmd_volume_show(struct cli *c)
{
    char path[128];
    json_t *v = NULL;
    int rc = cli_check_name(c, c->args[0]);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/v1/volumes/%s", c->args[0]);
    if (cli_request(c, "GET", path, NULL, &v))
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(v);
        json_decref(v);
        return CLI_OK;
    }
    char b[64];
    printf("name:        %s\n", cli_jstr(v, "name"));
    printf("id:          %llu\n", (unsigned long long)cli_jnum(v, "id"));
    printf("size:        %s\n", fmt_size_exact(cli_jnum(v, "size"), b, sizeof(b)));
    printf("used:        %s\n", fmt_size_exact(cli_jnum(v, "used"), b, sizeof(b)));
    printf("snapshots:   %s (of used: held by its snapshots only)\n",
           fmt_size_exact(cli_jnum(v, "snapshots_used"), b, sizeof(b)));
    printf("created:     %s\n", cli_fmt_time(cli_jnum(v, "created"), true, b, sizeof(b)));
    printf("modified:    %s\n", cli_fmt_time(cli_jnum(v, "modified"), true, b, sizeof(b)));
    printf("create_gen:  %llu\n", (unsigned long long)cli_jnum(v, "create_gen"));
    printf("open_count:  %llu\n", (unsigned long long)cli_jnum(v, "open_count"));
    char origin[140];
    printf("origin:      %s\n", cli_origin(v, origin, sizeof(origin)));
    const char *g = json_string_value(json_object_get(v, "group"));
    printf("group:       %s\n", g ? g : "-");
    json_decref(v);
    return CLI_OK;
}

/* PATCH /v1/volumes/NAME with BODY (consumed); print the result with VERB. */
static int patch_volume(struct cli *c, const char *name, json_t *body, const char *verb)
{
    char path[128];
    json_t *v = NULL;
    if (!body)
        return CLI_FAIL;
    snprintf(path, sizeof(path), "/v1/volumes/%s", name);
    int rc = cli_request(c, "PATCH", path, body, &v);
    json_decref(body);
    if (rc)
        return CLI_FAIL;
    char b[32];
    if (c->json)
        cli_print_json(v);
    else if (strcmp(verb, "resized") == 0)
        printf("resized volume %s to %s\n", cli_jstr(v, "name"),
               fmt_size(cli_jnum(v, "size"), b, sizeof(b)));
    else
        printf("renamed volume %s to %s\n", name, cli_jstr(v, "name"));
    json_decref(v);
    return CLI_OK;
}

int cmd_volume_resize(struct cli *c)
{
    uint64_t size;
    int rc = cli_check_name(c, c->args[0]);
    if (rc || (rc = cli_parse_size(c, "size", c->args[1], &size)) != 0)
        return rc;
    json_t *body = new_object();
    if (body && json_object_set_new(body, "size", json_integer((json_int_t)size)) != 0) {
        json_decref(body);
        body = NULL;
        cli_fail("out of memory");
    }
    return patch_volume(c, c->args[0], body, "resized");
}

int cmd_volume_rename(struct cli *c)
{
    int rc = cli_check_name(c, c->args[0]);
    if (rc || (rc = cli_check_name(c, c->args[1])) != 0)
        return rc;
    json_t *body = new_object();
    if (body && json_object_set_new(body, "name", json_string(c->args[1])) != 0) {
        json_decref(body);
        body = NULL;
        cli_fail("out of memory");
    }
    return patch_volume(c, c->args[0], body, "renamed");
}

int cmd_volume_delete(struct cli *c)
{
    char path[128];
    json_t *ans = NULL;
    int rc = cli_check_name(c, c->args[0]);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/v1/volumes/%s%s", c->args[0],
             c->recursive ? "?recursive=true" : "");
    if (cli_request(c, "DELETE", path, NULL, &ans))
        return CLI_FAIL;
    json_decref(ans);
    if (c->json)
        printf("{}\n");
    else
        printf("deleted volume %s%s\n", c->args[0], c->recursive ? " and its snapshots" : "");
    return CLI_OK;
}

/* ---- pool ---------------------------------------------------------------------------------- */

static void print_status(const json_t *st)
{
    char mnt[4096], b[64], b2[32];
    const char *dir = cli_jstr(st, "pool_dir");
    uint64_t cap = cli_jnum(st, "capacity"), used = cli_jnum(st, "used"), prov = cli_jnum(st, "provisioned");
    printf("pool:             %s\n", dir);
    printf("mountpoint:       %s\n",
           cli_find_mountpoint(dir, mnt, sizeof(mnt)) == 0 ? mnt : "(unknown)");
    printf("capacity:         %s\n", fmt_size_exact(cap, b, sizeof(b)));
    printf("used:             %s (%.1f%%)\n", fmt_size(used, b2, sizeof(b2)),
           cap ? 100.0 * (double)used / (double)cap : 0.0);
    printf("free:             %s", fmt_size(cli_jnum(st, "free"), b, sizeof(b)));
    printf("; %s available for new data (%s kept for overwrites)",
           fmt_size(cli_jnum(st, "available"), b2, sizeof(b2)),
           fmt_size(cli_jnum(st, "reserve"), mnt, sizeof(mnt)));
    if (cli_jnum(st, "freeing"))
        printf(" (and %s of deleted volumes being freed)",
               fmt_size(cli_jnum(st, "freeing"), b2, sizeof(b2)));
    printf("\n");
    printf("snapshot space:   %s (of used: held by snapshots only)\n",
           fmt_size(cli_jnum(st, "snapshots"), b, sizeof(b)));
    printf("volumes:          %llu (%llu clones), %llu snapshots, %llu groups\n",
           (unsigned long long)cli_jnum(st, "volumes"), (unsigned long long)cli_jnum(st, "clones"),
           (unsigned long long)cli_jnum(st, "snapshot_count"),
           (unsigned long long)cli_jnum(st, "groups"));
    printf("provisioned:      %s (%.0f%% of capacity)\n", fmt_size(prov, b2, sizeof(b2)),
           cap ? 100.0 * (double)prov / (double)cap : 0.0);
    printf("extent size:      %s\n", fmt_size(cli_jnum(st, "extent_size"), b, sizeof(b)));
    printf("generation:       %llu\n", (unsigned long long)cli_jnum(st, "committed_gen"));
    printf("dirty:            %s\n", fmt_size(cli_jnum(st, "dirty_bytes"), b, sizeof(b)));
    printf("commits:          %llu\n", (unsigned long long)cli_jnum(st, "commits"));
    printf("checksum errors:  %llu\n", (unsigned long long)cli_jnum(st, "checksum_errors"));
    const char *state = cli_jstr(st, "state");
    printf("state:            %s", state);
    if (strcmp(state, "ok") != 0) {
        time_t since = (time_t)cli_jnum(st, "state_since");
        char when[64] = "?";
        struct tm tm;
        if (localtime_r(&since, &tm))
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        printf(" since %s: %s", when, cli_jstr(st, "state_reason"));
    }
    printf("\n");
    if (json_is_true(json_object_get(st, "direct_io")))
        printf("data writes:      direct I/O (%llu bounced, %llu in batches)\n",
               (unsigned long long)cli_jnum(st, "bounced_writes"),
               (unsigned long long)cli_jnum(st, "batched_ios"));
    else
        printf("data writes:      buffered (the pool's filesystem refused O_DIRECT)\n");
    printf("format version:   %llu", (unsigned long long)cli_jnum(st, "format_version"));
    if (cli_jnum(st, "upgraded_from"))
        printf(" (upgraded from format %llu when this daemon opened it)",
               (unsigned long long)cli_jnum(st, "upgraded_from"));
    printf("\n");
}

int cmd_status(struct cli *c)
{
    json_t *st = NULL;
    if (cli_request(c, "GET", "/v1/pool", NULL, &st))
        return CLI_FAIL;
    if (c->json)
        cli_print_json(st);
    else
        print_status(st);
    json_decref(st);
    return CLI_OK;
}

int cmd_sync(struct cli *c)
{
    json_t *st = NULL;
    if (cli_request(c, "POST", "/v1/pool/sync", NULL, &st))
        return CLI_FAIL;
    if (c->json)
        cli_print_json(st);
    else
        printf("committed pool %s (generation %llu)\n", cli_jstr(st, "pool_dir"),
               (unsigned long long)cli_jnum(st, "committed_gen"));
    json_decref(st);
    return CLI_OK;
}

const char *cli_origin(const json_t *v, char *buf, size_t len)
{
    const json_t *o = json_object_get(v, "origin");
    if (!json_is_object(o))
        return "-";
    snprintf(buf, len, "%s@%s", cli_jstr(o, "volume"), cli_jstr(o, "snapshot"));
    return buf;
}

/* vvfs clone create VOLUME@SNAPSHOT NAME */
int cmd_clone_create(struct cli *c)
{
    char src[160];
    snprintf(src, sizeof(src), "%s", c->args[0]);
    char *at = strchr(src, '@');
    if (!at)
        return cli_usage_error(c, "the source is VOLUME@SNAPSHOT, e.g. data@before-upgrade");
    *at = '\0';
    const char *vol = src, *snap = at + 1, *why;
    int rc = cli_check_name(c, vol);
    if (!rc && (why = vv_name_check(snap)))
        rc = cli_usage_error(c, "invalid snapshot name '%s': %s", snap, why);
    if (!rc)
        rc = cli_check_name(c, c->args[1]);
    if (rc)
        return rc;
    char path[220];
    snprintf(path, sizeof(path), "/v1/volumes/%s/snapshots/%s/clone", vol, snap);
    json_t *req = json_pack("{s:s}", "name", c->args[1]), *v = NULL;
    if (!req)
        return cli_fail("out of memory");
    rc = cli_request(c, "POST", path, req, &v);
    json_decref(req);
    if (rc)
        return CLI_FAIL;
    if (c->json)
        cli_print_json(v);
    else
        printf("created volume %s, a clone of %s@%s\n", cli_jstr(v, "name"), vol, snap);
    json_decref(v);
    return CLI_OK;
}

/* vvfs clone list [VOLUME]: the volumes that are clones (of VOLUME's snapshots) */
int cmd_clone_list(struct cli *c)
{
    if (c->nargs && cli_check_name(c, c->args[0]))
        return CLI_USAGE;
    json_t *ans = NULL;
    if (cli_request(c, "GET", "/v1/volumes", NULL, &ans))
        return CLI_FAIL;
    json_t *out = json_array();
    const json_t *vols = json_object_get(ans, "volumes");
    for (size_t i = 0; out && i < json_array_size(vols); i++) {
        json_t *v = json_array_get(vols, i);
        const json_t *o = json_object_get(v, "origin");
        if (json_is_object(o) &&
            (!c->nargs || strcmp(cli_jstr(o, "volume"), c->args[0]) == 0))
            json_array_append(out, v);
    }
    json_decref(ans);
    if (!out)
        return cli_fail("out of memory");
    if (c->json) {
        json_t *w = json_pack("{s:o}", "clones", out);
        cli_print_json(w);
        json_decref(w);
        return CLI_OK;
    }
    int width = 4;
    for (size_t i = 0; i < json_array_size(out); i++) {
        int len = (int)strlen(cli_jstr(json_array_get(out, i), "name"));
        width = len > width ? len : width;
    }
    printf("%-*s  %8s  %8s  %s\n", width, "NAME", "SIZE", "USED", "ORIGIN");
    for (size_t i = 0; i < json_array_size(out); i++) {
        const json_t *v = json_array_get(out, i);
        char sz[32], used[32], origin[140];
        printf("%-*s  %8s  %8s  %s\n", width, cli_jstr(v, "name"),
               fmt_size(cli_jnum(v, "size"), sz, sizeof(sz)),
               fmt_size(cli_jnum(v, "used"), used, sizeof(used)),
               cli_origin(v, origin, sizeof(origin)));
    }
    json_decref(out);
    return CLI_OK;
}
