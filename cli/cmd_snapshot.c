/*
 * cli/cmd_snapshot.c — vvfs snapshot create|list|show|rename|delete|restore.
 *
 * Design notes
 *   As cmd_volume.c: names are checked here (a bad one is a usage error, exit 2, before any
 *   request), one request is made, and the answer is printed as JSON (--json) or text.
 */
#include "cli/cli_i.h"

#include "util/name.h"
#include "util/size.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* the volume and snapshot names of arguments 0 and 1 are valid (else: usage, exit 2) */
static int check_names(struct cli *c, int n)
{
    int rc = cli_check_name(c, c->args[0]);
    const char *why = n > 1 ? vv_name_check(c->args[1]) : NULL;
    if (!rc && why)
        rc = cli_usage_error(c, "invalid snapshot name '%s': %s", c->args[1], why);
    return rc;
}

/* Check arguments 0 and 1 (volume, snapshot) and make PATH the snapshot's resource plus
 * SUFFIX.  0, or CLI_USAGE (reported). */
static int snap_path(struct cli *c, const char *suffix, char *path, size_t len)
{
    int rc = check_names(c, 2);
    if (!rc)
        snprintf(path, len, "/v1/volumes/%s/snapshots/%s%s", c->args[0], c->args[1], suffix);
    return rc;
}

int cmd_snapshot_create(struct cli *c)
{
    int rc = check_names(c, 2);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/volumes/%s/snapshots", c->args[0]);
    json_t *req = json_pack("{s:s}", "name", c->args[1]), *s = NULL;
    if (!req)
        return cli_fail("out of memory");
    rc = cli_request(c, "POST", path, req, &s);
    json_decref(req);
    if (rc)
        return CLI_FAIL;
    if (c->json)
        cli_print_json(s);
    else
        printf("created snapshot %s of volume %s\n", cli_jstr(s, "name"), cli_jstr(s, "volume"));
    json_decref(s);
    return CLI_OK;
}

int cmd_snapshot_list(struct cli *c)
{
    char path[128] = "/v1/snapshots";
    if (c->nargs) {
        int rc = check_names(c, 1);
        if (rc)
            return rc;
        snprintf(path, sizeof(path), "/v1/volumes/%s/snapshots", c->args[0]);
    }
    if (c->all) /* vvfs's own (replication's) too */
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "?all=true");
    json_t *ans = NULL;
    if (cli_request(c, "GET", path, NULL, &ans))
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(ans);
        json_decref(ans);
        return CLI_OK;
    }
    const json_t *a = json_object_get(ans, "snapshots");
    size_t n = json_array_size(a);
    int wv = 6, wn = 4; /* "VOLUME", "NAME" */
    for (size_t i = 0; i < n; i++) {
        int lv = (int)strlen(cli_jstr(json_array_get(a, i), "volume"));
        int ln = (int)strlen(cli_jstr(json_array_get(a, i), "name"));
        wv = lv > wv ? lv : wv;
        wn = ln > wn ? ln : wn;
    }
    printf("%-*s  %-*s  %8s  %9s  %s\n", wv, "VOLUME", wn, "NAME", "SIZE", "EXCLUSIVE",
           "CREATED");
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(a, i);
        char sz[32], ex[32], t[32];
        printf("%-*s  %-*s  %8s  %9s  %s\n", wv, cli_jstr(s, "volume"), wn, cli_jstr(s, "name"),
               vv_format_size(cli_jnum(s, "size"), sz, sizeof(sz)),
               vv_format_size(cli_jnum(s, "exclusive"), ex, sizeof(ex)),
               cli_fmt_time(cli_jnum(s, "created"), false, t, sizeof(t)));
    }
    json_decref(ans);
    return CLI_OK;
}

int cmd_snapshot_show(struct cli *c)
{
    char path[220];
    int rc = snap_path(c, "", path, sizeof(path));
    if (rc)
        return rc;
    json_t *s = NULL;
    if (cli_request(c, "GET", path, NULL, &s))
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(s);
        json_decref(s);
        return CLI_OK;
    }
    char b[64];
    printf("name:        %s\n", cli_jstr(s, "name"));
    printf("volume:      %s\n", cli_jstr(s, "volume"));
    printf("id:          %llu\n", (unsigned long long)cli_jnum(s, "id"));
    printf("size:        %s (%llu bytes)\n", vv_format_size(cli_jnum(s, "size"), b, sizeof(b)),
           (unsigned long long)cli_jnum(s, "size"));
    printf("created:     %s\n", cli_fmt_time(cli_jnum(s, "created"), true, b, sizeof(b)));
    printf("gen:         %llu\n", (unsigned long long)cli_jnum(s, "gen"));
    printf("exclusive:   %s (%llu bytes: what deleting it frees)\n",
           vv_format_size(cli_jnum(s, "exclusive"), b, sizeof(b)),
           (unsigned long long)cli_jnum(s, "exclusive"));
    printf("open_count:  %llu\n", (unsigned long long)cli_jnum(s, "open_count"));
    json_decref(s);
    return CLI_OK;
}

int cmd_snapshot_delete(struct cli *c)
{
    char path[220];
    int rc = snap_path(c, "", path, sizeof(path));
    if (rc)
        return rc;
    json_t *ans = NULL;
    if (cli_request(c, "DELETE", path, NULL, &ans))
        return CLI_FAIL;
    json_decref(ans);
    if (c->json)
        printf("{}\n");
    else
        printf("deleted snapshot %s of volume %s\n", c->args[1], c->args[0]);
    return CLI_OK;
}

int cmd_snapshot_restore(struct cli *c)
{
    char path[220];
    int rc = snap_path(c, "/restore", path, sizeof(path));
    if (rc)
        return rc;
    json_t *v = NULL;
    if (cli_request(c, "POST", path, NULL, &v))
        return CLI_FAIL;
    if (c->json)
        cli_print_json(v);
    else
        printf("restored volume %s from snapshot %s\n", c->args[0], c->args[1]);
    json_decref(v);
    return CLI_OK;
}

int cmd_snapshot_rename(struct cli *c)
{
    char path[220];
    int rc = snap_path(c, "", path, sizeof(path));
    const char *why = rc ? NULL : vv_name_check(c->args[2]);
    if (!rc && why)
        rc = cli_usage_error(c, "invalid snapshot name '%s': %s", c->args[2], why);
    if (rc)
        return rc;
    json_t *req = json_pack("{s:s}", "name", c->args[2]), *s = NULL;
    if (!req)
        return cli_fail("out of memory");
    rc = cli_request(c, "PATCH", path, req, &s);
    json_decref(req);
    if (rc)
        return CLI_FAIL;
    if (c->json)
        cli_print_json(s);
    else
        printf("renamed snapshot %s of volume %s to %s\n", c->args[1], c->args[0],
               cli_jstr(s, "name"));
    json_decref(s);
    return CLI_OK;
}
