/*
 * cli/cmd_group.c — vvfs group create|list|show|add|remove|delete|snapshot|restore.
 *
 * Design notes
 *   As cmd_volume.c: names are checked here (a bad one is a usage error, exit 2, before any
 *   request), one request is made (add and remove of several volumes are one request, so
 *   they happen together or not at all), and the answer is printed as JSON or text.
 */
#include "cli/cli_i.h"

#include "util/name.h"

#include <stdio.h>
#include <string.h>

/* argument 0 is a valid group name, FROM.. are volume names; else usage (exit 2) */
static int check_args(struct cli *c, int from)
{
    const char *why = vv_name_check(c->args[0]);
    if (why)
        return cli_usage_error(c, "invalid group name '%s': %s", c->args[0], why);
    for (int i = from; i < c->nargs; i++)
        if (cli_check_name(c, c->args[i]))
            return CLI_USAGE;
    return 0;
}

static json_t *vol_array(struct cli *c, int from)
{
    json_t *a = json_array();
    for (int i = from; a && i < c->nargs; i++)
        if (json_array_append_new(a, json_string(c->args[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

static void print_group(const json_t *g)
{
    printf("name:       %s\n", cli_jstr(g, "name"));
    printf("id:         %llu\n", (unsigned long long)cli_jnum(g, "id"));
    char b[64];
    printf("created:    %s\n", cli_fmt_time(cli_jnum(g, "created"), true, b, sizeof(b)));
    const json_t *v = json_object_get(g, "volumes"), *s = json_object_get(g, "snapshots");
    printf("volumes:   ");
    for (size_t i = 0; i < json_array_size(v); i++)
        printf(" %s", json_string_value(json_array_get(v, i)));
    printf("%s\nsnapshots: ", json_array_size(v) ? "" : " -");
    for (size_t i = 0; i < json_array_size(s); i++)
        printf(" %s", json_string_value(json_array_get(s, i)));
    printf("%s\n", json_array_size(s) ? "" : " -");
}

/* METHOD PATH with BODY (consumed; may be NULL); print the group answer with VERB */
static int group_request(struct cli *c, const char *method, const char *path, json_t *body,
                         const char *verb)
{
    json_t *g = NULL;
    int rc = cli_request(c, method, path, body, &g);
    json_decref(body);
    if (rc)
        return CLI_FAIL;
    if (c->json)
        cli_print_json(g);
    else if (verb)
        printf("%s group %s (%zu volume%s)\n", verb, cli_jstr(g, "name"),
               json_array_size(json_object_get(g, "volumes")),
               json_array_size(json_object_get(g, "volumes")) == 1 ? "" : "s");
    else
        print_group(g);
    json_decref(g);
    return CLI_OK;
}

int cmd_group_create(struct cli *c)
{
    int rc = check_args(c, 1);
    if (rc)
        return rc;
    json_t *vols = vol_array(c, 1);
    json_t *req = vols ? json_pack("{s:s, s:o}", "name", c->args[0], "volumes", vols) : NULL;
    if (!req)
        return cli_fail("out of memory");
    return group_request(c, "POST", "/v1/groups", req, "created");
}

static int change(struct cli *c, const char *field, const char *verb)
{
    int rc = check_args(c, 1);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/groups/%s", c->args[0]);
    json_t *vols = vol_array(c, 1);
    json_t *req = vols ? json_pack("{s:o}", field, vols) : NULL;
    if (!req)
        return cli_fail("out of memory");
    return group_request(c, "PATCH", path, req, verb);
}

int cmd_group_add(struct cli *c)
{
    return change(c, "add", "changed");
}

int cmd_group_remove(struct cli *c)
{
    return change(c, "remove", "changed");
}

int cmd_group_show(struct cli *c)
{
    int rc = check_args(c, 1);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/groups/%s", c->args[0]);
    return group_request(c, "GET", path, NULL, NULL);
}

int cmd_group_list(struct cli *c)
{
    json_t *ans = NULL;
    if (cli_request(c, "GET", "/v1/groups", NULL, &ans))
        return CLI_FAIL;
    if (c->json) {
        cli_print_json(ans);
        json_decref(ans);
        return CLI_OK;
    }
    const json_t *a = json_object_get(ans, "groups");
    int w = 4;
    for (size_t i = 0; i < json_array_size(a); i++) {
        int len = (int)strlen(cli_jstr(json_array_get(a, i), "name"));
        w = len > w ? len : w;
    }
    printf("%-*s  %7s  %9s  %s\n", w, "NAME", "VOLUMES", "SNAPSHOTS", "MEMBERS");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *g = json_array_get(a, i), *v = json_object_get(g, "volumes");
        printf("%-*s  %7zu  %9zu ", w, cli_jstr(g, "name"), json_array_size(v),
               json_array_size(json_object_get(g, "snapshots")));
        for (size_t j = 0; j < json_array_size(v); j++)
            printf(" %s", json_string_value(json_array_get(v, j)));
        printf("\n");
    }
    json_decref(ans);
    return CLI_OK;
}

int cmd_group_delete(struct cli *c)
{
    int rc = check_args(c, 1);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/groups/%s", c->args[0]);
    json_t *ans = NULL;
    if (cli_request(c, "DELETE", path, NULL, &ans))
        return CLI_FAIL;
    json_decref(ans);
    if (c->json)
        printf("{}\n");
    else
        printf("deleted group %s (its volumes stay)\n", c->args[0]);
    return CLI_OK;
}

/* argument 1 is a valid snapshot name */
static int check_snap(struct cli *c)
{
    int rc = check_args(c, 2);
    const char *why = rc ? NULL : vv_name_check(c->args[1]);
    if (why)
        rc = cli_usage_error(c, "invalid snapshot name '%s': %s", c->args[1], why);
    return rc;
}

int cmd_group_snapshot(struct cli *c)
{
    int rc = check_snap(c);
    if (rc)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/v1/groups/%s/snapshots", c->args[0]);
    json_t *req = json_pack("{s:s}", "name", c->args[1]);
    if (!req)
        return cli_fail("out of memory");
    return group_request(c, "POST", path, req, "snapshotted");
}

int cmd_group_restore(struct cli *c)
{
    int rc = check_snap(c);
    if (rc)
        return rc;
    char path[220];
    snprintf(path, sizeof(path), "/v1/groups/%s/snapshots/%s/restore", c->args[0], c->args[1]);
    return group_request(c, "POST", path, NULL, "restored");
}
