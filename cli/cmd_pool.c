/*
 * cli/cmd_pool.c — the commands that work on a pool directly, without a daemon: init, fsck.
 *
 * Design notes
 *   init sizes the pool: the extent size is checked here (power of two in
 *   VV_EXTENT_MIN..VV_EXTENT_MAX) so a typo is a usage error; the capacity defaults to the
 *   space free for unprivileged users (f_bavail) on the filesystem that will hold DIR — DIR
 *   itself if it exists, else its nearest existing parent — and any capacity is rounded down
 *   to a whole number of extents.  meta checks everything again.
 *   fsck runs meta's checker, which prints one line per problem on stdout; we add a summary.
 *   With --json those lines go to stderr instead, so that stdout holds only the JSON report.
 *   It takes the pool lock, so it refuses (EBUSY) while a daemon runs.
 */
#include "cli/cli_i.h"

#include "replication/chan.h"
#include <sys/stat.h>

#include "meta/pool.h"
#include "util/size.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Free space (bytes) of the filesystem that holds DIR or would hold it.  0 or an errno. */
static int free_space(const char *dir, uint64_t *out)
{
    char path[PATH_MAX];
    struct statvfs sv;
    snprintf(path, sizeof(path), "%s", dir);
    for (;;) {
        if (statvfs(path, &sv) == 0) {
            *out = (uint64_t)sv.f_bavail * sv.f_frsize;
            return 0;
        }
        if (errno != ENOENT && errno != ENOTDIR)
            break;
        char *slash = strrchr(path, '/');
        if (!slash) {
            snprintf(path, sizeof(path), ".");
            continue;
        }
        if (slash == path) {
            path[1] = '\0';
            continue;
        }
        *slash = '\0';
    }
    int rc = errno;
    cli_fail("cannot find the free space for %s: %s: %s", dir, path, strerror(rc));
    return rc;
}

int cmd_init(struct cli *c)
{
    const char *dir = c->args[0];
    uint64_t extent = VV_EXTENT_DEFAULT, capacity;
    bool default_capacity = !c->capacity;
    int rc;

    if (c->extent_size) {
        if ((rc = cli_parse_size(c, "--extent-size", c->extent_size, &extent)) != 0)
            return rc;
        if (extent < VV_EXTENT_MIN || extent > VV_EXTENT_MAX || (extent & (extent - 1)))
            return cli_usage_error(c, "--extent-size must be a power of two from 4K to 1M");
    }
    if (c->capacity) {
        if ((rc = cli_parse_size(c, "--capacity", c->capacity, &capacity)) != 0)
            return rc;
    } else if (free_space(dir, &capacity) != 0) {
        return CLI_FAIL;
    }
    capacity -= capacity % extent;
    char b1[32], b2[32];
    if (capacity == 0) {
        if (default_capacity)
            return cli_fail("no free space for a pool in %s", dir);
        return cli_usage_error(c, "--capacity must hold at least one extent (%s)",
                               vv_format_size(extent, b1, sizeof(b1)));
    }

    struct vv_pool_params params = {.extent_size = (uint32_t)extent, .capacity = capacity};
    struct vv_err e = {0};
    if ((rc = vv_pool_create(dir, &params, &e)) != 0)
        return cli_fail("%s", e.msg[0] ? e.msg : strerror(rc));

    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        snprintf(abs, sizeof(abs), "%s", dir);
    if (c->json) {
        json_t *j = json_pack("{s:s, s:I, s:I}", "pool_dir", abs, "capacity", (json_int_t)capacity,
                              "extent_size", (json_int_t)extent);
        if (j)
            cli_print_json(j);
        json_decref(j);
    } else {
        printf("created pool %s: capacity %s%s, extent size %s\n", abs,
               vv_format_size(capacity, b1, sizeof(b1)),
               default_capacity ? " (the free space of its filesystem)" : "",
               vv_format_size(extent, b2, sizeof(b2)));
        printf("mount it with: vvfs mount %s MNT\n", abs);
    }
    return CLI_OK;
}

/* Print R as JSON. */
static void print_report_json(const char *dir, const struct vv_fsck_report *r)
{
    /* clang-format off */
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                          "pool_dir", dir,
                          "volumes", (json_int_t)r->volumes,
                          "versions", (json_int_t)r->versions,
                          "extents", (json_int_t)r->extents,
                          "tombstones", (json_int_t)r->tombstones,
                          "births", (json_int_t)r->births,
                          "used_slots", (json_int_t)r->used_slots,
                          "checked_checksums", (json_int_t)r->checked_checksums,
                          "errors", (json_int_t)r->errors,
                          "clean", r->errors == 0);
    /* clang-format on */
    if (j)
        cli_print_json(j);
    json_decref(j);
}

int cmd_fsck(struct cli *c)
{
    const char *dir = c->args[0];
    struct vv_fsck_report r;
    struct vv_err e = {0};
    int saved_stdout = -1;
    memset(&r, 0, sizeof(r));
    if (c->json) { /* meta prints one line per problem on stdout: keep stdout for the JSON */
        fflush(stdout);
        saved_stdout = dup(STDOUT_FILENO);
        if (saved_stdout >= 0)
            dup2(STDERR_FILENO, STDOUT_FILENO);
    }
    int rc = vv_pool_fsck(dir, !c->no_data, &r, &e);
    if (saved_stdout >= 0) {
        fflush(stdout);
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
    }
    if (rc)
        return cli_fail("fsck of %s failed: %s", dir, e.msg[0] ? e.msg : strerror(rc));
    if (c->json) {
        print_report_json(dir, &r);
        return r.errors ? CLI_FAIL : CLI_OK;
    }
    printf("fsck %s: volumes %llu, map entries %llu, extents %llu, tombstones %llu, births %llu, "
           "used slots %llu, checksums verified %llu%s\n",
           dir, (unsigned long long)r.volumes, (unsigned long long)r.versions,
           (unsigned long long)r.extents,
           (unsigned long long)r.tombstones, (unsigned long long)r.births,
           (unsigned long long)r.used_slots, (unsigned long long)r.checked_checksums,
           c->no_data ? " (--no-data)" : "");
    if (r.errors) {
        printf("fsck %s: %llu error%s: the pool is inconsistent\n", dir,
               (unsigned long long)r.errors, r.errors == 1 ? "" : "s");
        return CLI_FAIL;
    }
    printf("fsck %s: clean\n", dir);
    return CLI_OK;
}

int cmd_upgrade(struct cli *c)
{
    const char *dir = c->args[0];
    struct vv_pool *p;
    struct vv_err e = {0};
    int rc = vv_pool_open(dir, 0, &p, &e);
    if (rc)
        return cli_fail("%s", e.msg[0] ? e.msg : strerror(rc));
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    rc = vv_pool_close(p);
    if (rc)
        return cli_fail("closing pool %s failed: %s", dir, strerror(rc));
    if (c->json) {
        json_t *j = json_pack("{s:s, s:I, s:I}", "pool_dir", dir, "format_version",
                              (json_int_t)st.format_version, "upgraded_from",
                              (json_int_t)st.upgraded_from);
        if (j)
            cli_print_json(j);
        json_decref(j);
    } else if (st.upgraded_from) {
        printf("upgraded pool %s from format %u to format %u\n", dir, st.upgraded_from,
               st.format_version);
    } else {
        printf("pool %s already has format %u\n", dir, st.format_version);
    }
    return CLI_OK;
}

/* vvfs key generate: a new replication key on stdout (made 0600 when stdout is a file) */
int cmd_key_generate(struct cli *c)
{
    (void)c;
    char hex[2 * CHAN_KEY_BYTES + 1];
    if (chan_key_generate(hex))
        return cli_fail("cannot get random bytes for a key");
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && fchmod(STDOUT_FILENO, 0600))
        return cli_fail("cannot make the key file 0600: %s", strerror(errno));
    if (printf("%s\n", hex) < 0 || fflush(stdout) != 0)
        return cli_fail("cannot write the key: %s", strerror(errno));
    if (isatty(STDOUT_FILENO))
        fprintf(stderr, "vvfs: keep it secret: save it to a file of mode 0600 on both nodes "
                        "(vvfs key generate > /etc/vvfs/peer.key)\n");
    return CLI_OK;
}
