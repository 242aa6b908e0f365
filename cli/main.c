/*
 * cli/main.c — the vvfs command: command line parsing and dispatch.
 *
 * Design notes
 *   Every command is one row of commands[]: its words ("volume" "create"), its arguments and
 *   options for the usage text, how many positional arguments it takes, which command-specific
 *   options it accepts, whether it talks to a pool's daemon, and its handler (cmd_*.c).  The
 *   help text is generated from the table, so it cannot drift from what is accepted.
 *
 *   Parsing is one getopt_long() pass in "return in order" mode ("-" in the option string), so
 *   global options (--pool, --json, --help, --version) and command options may come before or
 *   after the command words, regardless of POSIXLY_CORRECT.  Problems are collected, not
 *   printed, during the pass: --help anywhere wins over them (usage on stdout, exit 0).  Then:
 *   --version, the first problem (exit 2), the command lookup, the argument count, options
 *   that the command does not take (exit 2), the pool for commands that need a daemon, and
 *   finally the handler, whose return value is the exit status (see cli_i.h).
 */
#include "cli/cli_i.h"

#include "util/duration.h"
#include "util/log.h"
#include "util/name.h"
#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_POOL "/var/lib/vvfs/default"

/* Command-specific options. */
enum {
    O_EXTENT = 1u << 0,
    O_CAPACITY = 1u << 1,
    O_THREADS = 1u << 2,
    O_FOREGROUND = 1u << 3,
    O_DEBUG = 1u << 4,
    O_NO_DATA = 1u << 5,
    O_RECURSIVE = 1u << 6,
    O_LISTEN = 1u << 7,
    O_KEY = 1u << 8,
    O_VOLUME = 1u << 9,
    O_PEER = 1u << 10,
    O_MODE = 1u << 11,
    O_RPO = 1u << 12,
    O_WAIT = 1u << 13,
    O_TIMEOUT = 1u << 14,
    O_KEEP_REMOTE = 1u << 15,
    O_GROUP = 1u << 16,
    O_COMPRESS = 1u << 17,
    O_BWLIMIT = 1u << 18,
    O_PIT = 1u << 19,
    O_ALL = 1u << 20,
};

struct cli_cmd {
    const char *group; /* first word ("volume"), or NULL for a one-word command */
    const char *name;
    const char *synopsis; /* arguments and options, for the usage text */
    const char *summary;
    int min_args, max_args;
    unsigned opts;   /* O_* accepted */
    bool needs_pool; /* talks to the daemon of --pool / $VVFS_POOL / the default pool */
    int (*run)(struct cli *c);
};

static const struct cli_cmd commands[] = {
    {NULL, "init", "DIR [--extent-size SIZE] [--capacity SIZE]",
     "create a pool in DIR (capacity: default the free space there)", 1, 1, O_EXTENT | O_CAPACITY,
     false, cmd_init},
    {NULL, "mount",
     "POOL MNT [--threads N] [--foreground] [--debug] [--listen HOST:PORT [--key FILE]]",
     "start POOL's daemon at MNT (--listen: take replicas from peers)", 2, 2,
     O_THREADS | O_FOREGROUND | O_DEBUG | O_LISTEN | O_KEY, false, cmd_mount},
    {NULL, "umount", "MNT", "unmount and wait until the daemon has committed all data", 1, 1, 0,
     false, cmd_umount},
    {NULL, "fsck", "POOL [--no-data]", "check an unmounted pool (--no-data: skip checksums)", 1, 1,
     O_NO_DATA, false, cmd_fsck},
    {NULL, "upgrade", "POOL", "upgrade an unmounted pool of an older format in place", 1, 1, 0,
     false, cmd_upgrade},
    {NULL, "status", "", "capacity, use and volumes of the pool", 0, 0, 0, true, cmd_status},
    {NULL, "sync", "", "commit everything written so far, now", 0, 0, 0, true, cmd_sync},
    {"volume", "create", "NAME SIZE", "create a thin volume", 2, 2, 0, true, cmd_volume_create},
    {"volume", "list", "", "list the volumes", 0, 0, 0, true, cmd_volume_list},
    {"volume", "show", "NAME", "show one volume", 1, 1, 0, true, cmd_volume_show},
    {"volume", "resize", "NAME SIZE", "grow or shrink a volume", 2, 2, 0, true, cmd_volume_resize},
    {"volume", "rename", "NAME NEWNAME", "rename a volume", 2, 2, 0, true, cmd_volume_rename},
    {"volume", "delete", "NAME [--recursive]",
     "delete a volume and its data (--recursive: and its snapshots)", 1, 1, O_RECURSIVE, true,
     cmd_volume_delete},
    {"snapshot", "create", "VOLUME NAME", "take a read-only point-in-time copy of a volume", 2, 2,
     0, true, cmd_snapshot_create},
    {"snapshot", "list", "[VOLUME] [--all]",
     "list the snapshots (of one volume; --all: replication's own too)", 0, 1, O_ALL, true,
     cmd_snapshot_list},
    {"snapshot", "show", "VOLUME NAME", "show one snapshot", 2, 2, 0, true, cmd_snapshot_show},
    {"snapshot", "delete", "VOLUME NAME", "delete a snapshot, freeing what only it held", 2, 2,
     0, true, cmd_snapshot_delete},
    {"snapshot", "rename", "VOLUME NAME NEWNAME", "rename a snapshot", 3, 3, 0, true,
     cmd_snapshot_rename},
    {"snapshot", "restore", "VOLUME NAME",
     "make the volume read as the snapshot again (every snapshot stays)", 2, 2, 0, true,
     cmd_snapshot_restore},
    {"key", "generate", "", "print a new replication key (both peers use the same one)", 0, 0, 0,
     false, cmd_key_generate},
    {"clone", "create", "VOLUME@SNAPSHOT NAME",
     "make a writable volume of a snapshot, sharing what it does not change", 2, 2, 0, true,
     cmd_clone_create},
    {"clone", "list", "[VOLUME]", "list the clones (of one volume's snapshots)", 0, 1, 0, true,
     cmd_clone_list},
    {"group", "create", "NAME [VOLUME...]",
     "make a consistency group: volumes snapshotted together", 1, 257, 0, true,
     cmd_group_create},
    {"group", "add", "NAME VOLUME...", "add volumes to a group", 2, 257, 0, true, cmd_group_add},
    {"group", "remove", "NAME VOLUME...", "take volumes out of a group", 2, 257, 0, true,
     cmd_group_remove},
    {"group", "list", "", "list the groups", 0, 0, 0, true, cmd_group_list},
    {"group", "show", "NAME", "show a group, its volumes and its snapshots", 1, 1, 0, true,
     cmd_group_show},
    {"group", "delete", "NAME", "delete a group (its volumes and snapshots stay)", 1, 1, 0, true,
     cmd_group_delete},
    {"group", "snapshot", "NAME SNAPSHOT",
     "snapshot every volume of the group at one point in time", 2, 2, 0, true,
     cmd_group_snapshot},
    {"group", "restore", "NAME SNAPSHOT", "restore every volume of the group from its snapshot",
     2, 2, 0, true, cmd_group_restore},
    {"replication", "create",
     "NAME (--volume VOL | --group GROUP) --peer HOST:PORT --key FILE [--mode MODE] "
     "[--rpo DURATION] [--keep-remote N] [--compress zstd] [--bwlimit RATE]",
     "replicate VOL (or every volume of GROUP, at one point in time) and its snapshots to "
     "HOST:PORT (MODE periodic: every RPO, 5m; continuous); the peer keeps the N newest "
     "snapshots (default: all); RATE: bytes per second on the wire, as 50M", 1, 1,
     O_VOLUME | O_GROUP | O_PEER | O_KEY | O_MODE | O_RPO | O_KEEP_REMOTE | O_COMPRESS |
         O_BWLIMIT,
     true, cmd_repl_create},
    {"replication", "list", "", "list the replication sessions (as source and as destination)",
     0, 0, 0, true, cmd_repl_list},
    {"replication", "status", "NAME",
     "show a session: its point in time, lag, transfer and last error", 1, 1, 0, true,
     cmd_repl_status},
    {"replication", "sync", "NAME [--pit SNAPSHOT] [--wait [--timeout DURATION]]",
     "sync now (--pit: first take snapshot SNAPSHOT, a named point in time the sync carries "
     "over; --wait: until done, at most --timeout, default 1h)", 1, 1,
     O_WAIT | O_TIMEOUT | O_PIT, true, cmd_repl_sync},
    {"replication", "pause", "NAME", "stop syncing (a transfer in flight resumes on resume)", 1,
     1, 0, true, cmd_repl_pause},
    {"replication", "resume", "NAME", "sync again after a pause", 1, 1, 0, true,
     cmd_repl_resume},
    {"replication", "delete", "NAME",
     "end a session (a destination's replica becomes writable)", 1, 1, 0, true,
     cmd_repl_delete},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* getopt_long values of the options; the command-specific ones map to O_* via opt_bits[]. */
enum {
    OV_POOL = 256,
    OV_JSON,
    OV_VERSION,
    OV_EXTENT,
    OV_CAPACITY,
    OV_THREADS,
    OV_FOREGROUND,
    OV_DEBUG,
    OV_NO_DATA,
    OV_RECURSIVE,
    OV_LISTEN,
    OV_KEY,
    OV_VOLUME,
    OV_PEER,
    OV_MODE,
    OV_RPO,
    OV_WAIT,
    OV_TIMEOUT,
    OV_KEEP_REMOTE,
    OV_GROUP,
    OV_COMPRESS,
    OV_BWLIMIT,
    OV_PIT,
    OV_ALL
};

static const struct option longopts[] = {
    {"pool", required_argument, NULL, OV_POOL},
    {"json", no_argument, NULL, OV_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OV_VERSION},
    {"extent-size", required_argument, NULL, OV_EXTENT},
    {"capacity", required_argument, NULL, OV_CAPACITY},
    {"threads", required_argument, NULL, OV_THREADS},
    {"foreground", no_argument, NULL, OV_FOREGROUND},
    {"debug", no_argument, NULL, OV_DEBUG},
    {"no-data", no_argument, NULL, OV_NO_DATA},
    {"recursive", no_argument, NULL, OV_RECURSIVE},
    {"listen", required_argument, NULL, OV_LISTEN},
    {"key", required_argument, NULL, OV_KEY},
    {"volume", required_argument, NULL, OV_VOLUME},
    {"peer", required_argument, NULL, OV_PEER},
    {"mode", required_argument, NULL, OV_MODE},
    {"rpo", required_argument, NULL, OV_RPO},
    {"wait", no_argument, NULL, OV_WAIT},
    {"timeout", required_argument, NULL, OV_TIMEOUT},
    {"keep-remote", required_argument, NULL, OV_KEEP_REMOTE},
    {"group", required_argument, NULL, OV_GROUP},
    {"compress", required_argument, NULL, OV_COMPRESS},
    {"bwlimit", required_argument, NULL, OV_BWLIMIT},
    {"pit", required_argument, NULL, OV_PIT},
    {"all", no_argument, NULL, OV_ALL},
    {NULL, 0, NULL, 0},
};

static const struct {
    unsigned bit;
    const char *name;
} opt_bits[] = {
    {O_EXTENT, "--extent-size"},    {O_CAPACITY, "--capacity"}, {O_THREADS, "--threads"},
    {O_FOREGROUND, "--foreground"}, {O_DEBUG, "--debug"},       {O_NO_DATA, "--no-data"},
    {O_RECURSIVE, "--recursive"},   {O_LISTEN, "--listen"},     {O_KEY, "--key"},
    {O_VOLUME, "--volume"},         {O_PEER, "--peer"},         {O_MODE, "--mode"},
    {O_RPO, "--rpo"},               {O_WAIT, "--wait"},         {O_TIMEOUT, "--timeout"},
    {O_KEEP_REMOTE, "--keep-remote"}, {O_GROUP, "--group"},     {O_COMPRESS, "--compress"},
    {O_BWLIMIT, "--bwlimit"},         {O_PIT, "--pit"},           {O_ALL, "--all"},
};

/* What one pass over argv found. */
struct cmdline {
    char **pos; /* positional words, in order (command words included) */
    int npos;
    unsigned given; /* O_* seen */
    bool help, version;
    char error[192]; /* the first problem, or "" */
};

/* ---- helpers shared by the commands (cli_i.h) ---------------------------------------------- */

static void print_cmd_usage(FILE *f, const struct cli_cmd *cmd)
{
    fprintf(f, "usage: vvfs %s%s%s%s%s\n", cmd->group ? cmd->group : "", cmd->group ? " " : "",
            cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis);
}

int cli_usage_error(const struct cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vvfs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (c && c->cmd)
        print_cmd_usage(stderr, c->cmd);
    return CLI_USAGE;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("vvfs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_FAIL;
}

int cli_parse_size(const struct cli *c, const char *what, const char *s, uint64_t *out)
{
    int rc = vv_parse_size(s, out);
    if (rc == ERANGE)
        return cli_usage_error(c, "%s '%s' is too large", what, s);
    if (rc)
        return cli_usage_error(c,
                               "invalid %s '%s': write bytes, or a whole number with K, M, "
                               "G, T or P (20G = 20 GiB)",
                               what, s);
    return 0;
}

int cli_parse_duration(const struct cli *c, const char *what, const char *s, uint64_t min,
                       uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    int rc = vv_parse_duration(s, &v);
    if (rc == EINVAL)
        return cli_usage_error(c,
                               "invalid %s '%s': write seconds, or whole numbers with d, h, m "
                               "or s (30s, 5m, 1h30m)",
                               what, s);
    if (rc || v < min || v > max) {
        char a[32], b[32];
        return cli_usage_error(c, "%s must be from %s to %s", what,
                               vv_format_duration(min, a, sizeof(a)),
                               vv_format_duration(max, b, sizeof(b)));
    }
    *out = v;
    return 0;
}

int cli_check_name(const struct cli *c, const char *name)
{
    const char *why = vv_name_check(name);
    if (why)
        return cli_usage_error(c, "invalid volume name '%s': %s", name, why);
    return 0;
}

int cli_abs_path(const char *path, char *out, size_t len)
{
    char cwd[PATH_MAX];
    int n;
    while (path[0] == '.' && path[1] == '/') { /* "./k.key": the same file, said shorter */
        path += 2;
        while (*path == '/')
            path++;
    }
    if (path[0] == '/')
        n = snprintf(out, len, "%s", path);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(out, len, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
    else
        return errno;
    if (n < 0 || (size_t)n >= len)
        return ENAMETOOLONG;
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

void cli_print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
}

/* ---- usage --------------------------------------------------------------------------------- */

static void print_usage(FILE *f)
{
    fputs("usage: vvfs [--pool DIR] [--json] COMMAND [ARGUMENTS]\n\nCommands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct cli_cmd *cmd = &commands[i];
        char words[160];
        snprintf(words, sizeof(words), "%s%s%s%s%s", cmd->group ? cmd->group : "",
                 cmd->group ? " " : "", cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis);
        if (strlen(words) > 30)
            fprintf(f, "  %s\n  %-30s  %s\n", words, "", cmd->summary);
        else
            fprintf(f, "  %-30s  %s\n", words, cmd->summary);
    }
    fputs("\nOptions:\n"
          "  --pool DIR   pool whose daemon status, sync and volume talk to; default $VVFS_POOL,\n"
          "               else " DEFAULT_POOL "\n"
          "  --json       print JSON instead of text on stdout (volume, status and sync print the\n"
          "               API's JSON; errors stay text on stderr)\n"
          "  --help       show this help; --version  show the version\n"
          "\nSIZE is bytes, or a whole number with K, M, G, T or P (binary: 20G = 20 GiB).\n"
          "DURATION is seconds, or whole numbers with d, h, m or s (30s, 5m, 1h30m).\n"
          "Exit status: 0 success, 1 the operation failed, 2 bad usage.\n",
          f);
}

static void print_cmd_help(const struct cli_cmd *cmd)
{
    print_cmd_usage(stdout, cmd);
    printf("%c%s.\n", toupper((unsigned char)cmd->summary[0]), cmd->summary + 1);
    printf("Global options: --pool DIR, --json, --help, --version (see vvfs --help).\n");
}

/* ---- parsing ------------------------------------------------------------------------------- */

static void set_error(struct cmdline *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_error(struct cmdline *cl, const char *fmt, ...)
{
    if (cl->error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cl->error, sizeof(cl->error), fmt, ap);
    va_end(ap);
}

static void parse_args(int argc, char **argv, struct cli *c, struct cmdline *cl)
{
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "-:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 1:
            cl->pos[cl->npos++] = optarg;
            break;
        case 'h':
            cl->help = true;
            break;
        case OV_VERSION:
            cl->version = true;
            break;
        case OV_POOL:
            c->pool = optarg;
            break;
        case OV_JSON:
            c->json = true;
            break;
        case OV_EXTENT:
            c->extent_size = optarg;
            cl->given |= O_EXTENT;
            break;
        case OV_CAPACITY:
            c->capacity = optarg;
            cl->given |= O_CAPACITY;
            break;
        case OV_THREADS:
            c->threads = optarg;
            cl->given |= O_THREADS;
            break;
        case OV_FOREGROUND:
            c->foreground = true;
            cl->given |= O_FOREGROUND;
            break;
        case OV_DEBUG:
            c->debug = true;
            cl->given |= O_DEBUG;
            break;
        case OV_NO_DATA:
            c->no_data = true;
            cl->given |= O_NO_DATA;
            break;
        case OV_RECURSIVE:
            c->recursive = true;
            cl->given |= O_RECURSIVE;
            break;
        case OV_LISTEN:
            c->listen = optarg;
            cl->given |= O_LISTEN;
            break;
        case OV_KEY:
            c->key = optarg;
            cl->given |= O_KEY;
            break;
        case OV_VOLUME:
            c->volume = optarg;
            cl->given |= O_VOLUME;
            break;
        case OV_PEER:
            c->peer = optarg;
            cl->given |= O_PEER;
            break;
        case OV_MODE:
            c->mode = optarg;
            cl->given |= O_MODE;
            break;
        case OV_RPO:
            c->rpo = optarg;
            cl->given |= O_RPO;
            break;
        case OV_KEEP_REMOTE:
            c->keep_remote = optarg;
            cl->given |= O_KEEP_REMOTE;
            break;
        case OV_GROUP:
            c->group = optarg;
            cl->given |= O_GROUP;
            break;
        case OV_COMPRESS:
            c->compress = optarg;
            cl->given |= O_COMPRESS;
            break;
        case OV_BWLIMIT:
            c->bwlimit = optarg;
            cl->given |= O_BWLIMIT;
            break;
        case OV_PIT:
            c->pit = optarg;
            cl->given |= O_PIT;
            break;
        case OV_ALL:
            c->all = true;
            cl->given |= O_ALL;
            break;
        case OV_WAIT:
            c->wait = true;
            cl->given |= O_WAIT;
            break;
        case OV_TIMEOUT:
            c->timeout = optarg;
            cl->given |= O_TIMEOUT;
            break;
        case ':':
            set_error(cl, "option %s needs an argument", argv[optind - 1]);
            break;
        default:
            if (optopt && optopt != '?')
                set_error(cl, "unknown option '-%c'", optopt);
            else
                set_error(cl, "unknown option '%s'", argv[optind - 1]);
            break;
        }
    }
    while (optind < argc) /* after "--" */
        cl->pos[cl->npos++] = argv[optind++];
}

/* Look the command up in CL's first words; *USED gets the number of words it took. */
static const struct cli_cmd *find_cmd(struct cmdline *cl, int *used)
{
    const char *group = NULL, *name = cl->pos[0];
    *used = 1;
    for (size_t i = 0; i < N_COMMANDS && !group; i++)
        if (commands[i].group && strcmp(cl->pos[0], commands[i].group) == 0)
            group = commands[i].group;
    if (group) {
        if (cl->npos < 2) {
            char subs[160] = "";
            size_t len = 0;
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (commands[i].group && strcmp(commands[i].group, group) == 0)
                    len += (size_t)snprintf(subs + len, len < sizeof(subs) ? sizeof(subs) - len : 0,
                                            "%s%s", len ? ", " : "", commands[i].name);
            set_error(cl, "'%s' needs a subcommand: %s", group, subs);
            return NULL;
        }
        name = cl->pos[1];
        *used = 2;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct cli_cmd *cmd = &commands[i];
        if (((!group && !cmd->group) || (group && cmd->group && !strcmp(group, cmd->group))) &&
            strcmp(cmd->name, name) == 0)
            return cmd;
    }
    if (group)
        set_error(cl, "unknown %s subcommand '%s'", group, name);
    else
        set_error(cl, "unknown command '%s'", name);
    return NULL;
}

/* The command's arguments and options fit it?  Returns 0 or CLI_USAGE (reported). */
static int check_args(const struct cli *c, const struct cmdline *cl)
{
    const struct cli_cmd *cmd = c->cmd;
    if (c->nargs < cmd->min_args)
        return cli_usage_error(c, "missing argument");
    if (c->nargs > cmd->max_args)
        return cli_usage_error(c, "unexpected argument '%s'", c->args[cmd->max_args]);
    for (size_t i = 0; i < sizeof(opt_bits) / sizeof(opt_bits[0]); i++)
        if ((cl->given & opt_bits[i].bit) && !(cmd->opts & opt_bits[i].bit))
            return cli_usage_error(c, "option %s does not apply to this command", opt_bits[i].name);
    return 0;
}

/* The pool of the daemon to talk to: --pool, $VVFS_POOL, the default.  0 or CLI_USAGE. */
static int resolve_pool(struct cli *c)
{
    struct stat st;
    if (c->pool && c->pool[0])
        return 0;
    c->pool = getenv("VVFS_POOL");
    if (c->pool && c->pool[0])
        return 0;
    c->pool = DEFAULT_POOL;
    if (stat(DEFAULT_POOL, &st) == 0)
        return 0;
    return cli_usage_error(
        c, "which pool? Give --pool DIR or set VVFS_POOL (there is no " DEFAULT_POOL ")");
}

static int run(int argc, char **argv, struct cmdline *cl)
{
    struct cli c = {0};
    const struct cli_cmd *cmd = NULL;
    int used = 0;

    parse_args(argc, argv, &c, cl);
    if (cl->npos > 0)
        cmd = find_cmd(cl, &used);
    if (cl->help) {
        if (cmd)
            print_cmd_help(cmd);
        else
            print_usage(stdout);
        return CLI_OK;
    }
    if (cl->version) {
        printf("vvfs %s\n", VVFS_VERSION);
        return CLI_OK;
    }
    c.cmd = cmd;
    if (cl->error[0])
        return cli_usage_error(&c, "%s", cl->error);
    if (!cmd) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    c.args = cl->pos + used;
    c.nargs = cl->npos - used;
    int rc = check_args(&c, cl);
    if (rc)
        return rc;
    if (cmd->needs_pool && (rc = resolve_pool(&c)) != 0)
        return rc;
    return cmd->run(&c);
}

int main(int argc, char **argv)
{
    vv_log_init();
    /* the CLI speaks in its own sentences; meta's info lines belong to the daemon's log */
    vv_log_set_level(VV_LOG_WARN);
    struct cmdline cl = {.pos = calloc((size_t)argc + 1, sizeof(char *))};
    if (!cl.pos) {
        fputs("vvfs: out of memory\n", stderr);
        return CLI_FAIL;
    }
    int rc = run(argc, argv, &cl);
    free(cl.pos);
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        perror("vvfs: stdout");
        rc = CLI_FAIL;
    }
    return rc;
}
