/*
 * cli/cli_i.h — private to cli/: what the command modules share.
 *
 * Conventions inside cli/
 *   - Command handlers (cmd_*) return an exit status: CLI_OK, CLI_FAIL (the operation failed)
 *     or CLI_USAGE (bad command line).  They print their own result and errors.
 *   - Helpers return 0 or a positive errno, like the rest of vvfs, having printed the reason
 *     of a failure once ("vvfs: ..." on stderr) unless their comment says otherwise.
 *   - Human output goes to stdout, errors to stderr; --json makes the commands that talk to the
 *     daemon print the API's JSON on stdout instead of text.
 */
#ifndef VV_CLI_CLI_I_H
#define VV_CLI_CLI_I_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli_cmd;

/* The parsed command line.  Strings point into argv. */
struct cli {
    const struct cli_cmd *cmd;
    char **args; /* positional arguments after the command words */
    int nargs;
    const char *pool;        /* --pool, $VVFS_POOL or the default; set for commands that need it */
    bool json;               /* --json */
    const char *extent_size; /* init --extent-size, raw */
    const char *capacity;    /* init --capacity, raw */
    const char *threads;     /* mount --threads, raw */
    bool foreground, debug;  /* mount --foreground, --debug */
    bool no_data;            /* fsck --no-data */
    bool recursive;          /* volume delete --recursive */
    const char *listen;      /* mount --listen HOST:PORT, raw */
    const char *key;         /* mount, replication create --key FILE, raw */
    const char *volume;      /* replication create --volume */
    const char *peer;        /* replication create --peer HOST:PORT, raw */
    const char *mode;        /* replication create --mode, raw */
    const char *rpo;         /* replication create --rpo DURATION, raw */
    const char *keep_remote; /* replication create --keep-remote N, raw */
    const char *group;       /* replication create --group GROUP */
    const char *compress;    /* replication create --compress zstd|none */
    const char *bwlimit;     /* replication create --bwlimit RATE, raw */
    const char *pit;         /* replication sync --pit NAME */
    bool all;                /* snapshot list --all */
    bool wait;               /* replication sync --wait */
    const char *timeout;     /* replication sync --timeout DURATION, raw */
};

/* Print "vvfs: <message>" and the usage of C's command on stderr; returns CLI_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "vvfs: <message>" on stderr; returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a SIZE argument named WHAT ("size", "--capacity") into *OUT; on failure report a
 * usage error.  Returns 0 or CLI_USAGE. */
int cli_parse_size(const struct cli *c, const char *what, const char *s, uint64_t *out);

/* Parse a DURATION argument named WHAT ("--rpo") into seconds in *OUT, from MIN to MAX; on
 * failure report a usage error.  Returns 0 or CLI_USAGE. */
int cli_parse_duration(const struct cli *c, const char *what, const char *s, uint64_t min,
                       uint64_t max, uint64_t *out);

/* Check a volume name argument; on failure report a usage error.  Returns 0 or CLI_USAGE. */
int cli_check_name(const struct cli *c, const char *name);

/* PATH made absolute against the working directory, without resolving it (no symlink is
 * followed, the file need not exist; trailing slashes go).  0, or ENAMETOOLONG when it does
 * not fit in LEN bytes, or getcwd's errno.  Prints nothing. */
int cli_abs_path(const char *path, char *out, size_t len);

/* Print J on stdout, indented, with a final newline. */
void cli_print_json(const json_t *j);

/* An answer's field: an integer (0 if absent or negative), a string ("?" if absent). */
uint64_t cli_jnum(const json_t *o, const char *key);
const char *cli_jstr(const json_t *o, const char *key);
/* "2026-01-31 12:00", or with LONG_FORM "2026-01-31 12:00:00 +0100" (local time) */
const char *cli_fmt_time(uint64_t t, bool long_form, char *buf, size_t len);

/*
 * client.c — one HTTP request to the daemon of C->pool, over C->pool/vvfs.sock.
 * METHOD is GET, POST, PATCH or DELETE; PATH starts with "/v1/"; BODY (may be NULL) is sent
 * as JSON.  On a 2xx answer returns 0 and *OUT gets the answer's JSON (NULL if it had no
 * body; caller decrefs).  Otherwise prints the reason (the API's error message, or "pool ...
 * is not mounted ...") and returns an errno: EINVAL, ENOENT, EEXIST, ENOSPC for the matching
 * HTTP errors, ECONNREFUSED when no daemon listens, EIO or EPROTO for anything else.
 */
int cli_request(const struct cli *c, const char *method, const char *path, json_t *body,
                json_t **out);
/* As cli_request, for a request the daemon may take up to WAIT_S seconds to answer (a sync
 * that waits): the client gives up only a minute after that. */
int cli_request_waiting(const struct cli *c, const char *method, const char *path,
                        json_t *body, unsigned wait_s, json_t **out);

/*
 * mountinfo (cmd_mount.c).  Find the vvfs mount whose source is the pool directory POOL_DIR
 * (absolute) and copy its mount point into MNT (LEN bytes).  Returns 0, or ENOENT when there
 * is none.  Prints nothing.
 */
int cli_find_mountpoint(const char *pool_dir, char *mnt, size_t len);

/*
 * cmd_repl.c.  C->key (--key FILE) made absolute (cli_abs_path) into OUT (LEN bytes, at least
 * VV_REPL_PATH_MAX + 1): the daemon runs in "/".  Returns 0, CLI_USAGE (too long) or CLI_FAIL
 * (no working directory), reported.
 */
int cli_key_path(const struct cli *c, char *out, size_t len);

/* The command handlers. */
int cmd_init(struct cli *c);
int cmd_fsck(struct cli *c);
int cmd_upgrade(struct cli *c);
int cmd_mount(struct cli *c);
int cmd_umount(struct cli *c);
int cmd_status(struct cli *c);
int cmd_sync(struct cli *c);
int cmd_key_generate(struct cli *c);
int cmd_volume_create(struct cli *c);
int cmd_volume_list(struct cli *c);
int cmd_volume_show(struct cli *c);
int cmd_volume_resize(struct cli *c);
int cmd_volume_rename(struct cli *c);
int cmd_volume_delete(struct cli *c);
int cmd_group_create(struct cli *c);
int cmd_group_add(struct cli *c);
int cmd_group_remove(struct cli *c);
int cmd_group_show(struct cli *c);
int cmd_group_list(struct cli *c);
int cmd_group_delete(struct cli *c);
int cmd_group_snapshot(struct cli *c);
int cmd_group_restore(struct cli *c);
int cmd_clone_create(struct cli *c);
int cmd_clone_list(struct cli *c);
/* "volume@snapshot" of a volume's origin, or "-" */
const char *cli_origin(const json_t *v, char *buf, size_t len);
int cmd_snapshot_create(struct cli *c);
int cmd_snapshot_list(struct cli *c);
int cmd_snapshot_show(struct cli *c);
int cmd_snapshot_delete(struct cli *c);
int cmd_snapshot_restore(struct cli *c);
int cmd_snapshot_rename(struct cli *c);
int cmd_repl_create(struct cli *c);
int cmd_repl_list(struct cli *c);
int cmd_repl_status(struct cli *c);
int cmd_repl_sync(struct cli *c);
int cmd_repl_pause(struct cli *c);
int cmd_repl_resume(struct cli *c);
int cmd_repl_delete(struct cli *c);

#endif
