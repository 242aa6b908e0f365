/*
 * cli/cmd_mount.c — vvfs mount and vvfs umount: starting and stopping the daemon.
 *
 * Design notes
 *   mount.  Settings the command line leaves out come from POOL/vvfs.conf if there is one
 *   (listen, key, threads: "key = value" lines, util/conf.h), so that a service manager's
 *   plain `vvfs mount POOL MNT` starts a listening daemon; a line it does not know fails the
 *   mount, naming the file and line.  Paths are made absolute first (the daemon runs in
 *   "/"); the --key file's is not resolved (cli_key_path): the daemon reads it and says what
 *   is wrong with it.  --listen is checked for the shape HOST:PORT only: what the address
 *   means is for the daemon's replication service to say, on the ready pipe.  A
 *   mount point left behind by a killed daemon fails stat() with ENOTCONN; it is detached
 *   (MNT_DETACH) so the new mount can take its place.  Then, unless --foreground, we fork: the
 *   child becomes a session leader with stdin/stdout on /dev/null (stderr stays until the
 *   daemon opens its log) and runs vv_daemon_run() with the write end of a pipe; the parent
 *   waits up to READY_TIMEOUT for one line on it:
 *       "OK\n"          the mount and the control socket are usable: success;
 *       "ERR <msg>\n"   start-up failed: report msg;
 *       EOF, no line    the daemon died: point at its log.
 *   The pipe is O_CLOEXEC so that a helper the daemon may exec (fusermount3) does not hold
 *   its write end and delay our EOF.  After ERR or EOF we reap the child (bounded), so when
 *   "vvfs mount" fails no daemon is left holding the pool.
 *
 *   umount.  The mount point is looked up in /proc/self/mountinfo (type fuse.vvfs); its source
 *   is the pool directory, which holds the daemon's pid file.  After umount2() succeeds the
 *   daemon commits everything and exits; "all data committed" is printed only once its pid is
 *   gone.  Without root, umount2() gets EPERM and we fall back to fusermount3 -u.
 *
 *   A daemon whose mount was taken away (fusermount3 -u, umount) commits before it exits and
 *   holds the pool lock until then, so a mount right after an unmount would fail with "in
 *   use".  So before forking, mount looks at the lock: if it is held (a LOCK_SH|LOCK_NB probe
 *   fails) by a live pid and no fuse.vvfs mount in mountinfo has this pool directory as its
 *   source (compared by device and inode, so symlinks and bind mounts of the pool count),
 *   it waits up to PREV_TIMEOUT_MS for the lock to be released, saying so once.  A holder
 *   with a live mount is left to the daemon's own refusal ("in use by process N"), at once.
 *   The probe holds the lock for an instant when it is free; a daemon starting in that
 *   instant from another "vvfs mount" fails as if the two had raced for the pool anyway.
 *
 *   mountinfo fields are space-separated with " \t\n\\" written as octal escapes ("\040").
 */
#include "cli/cli_i.h"

#include "daemon/daemon.h"
#include "replication/repl.h"
#include "util/addr.h"
#include "util/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 30000 /* for the daemon's "OK" */
#define REAP_TIMEOUT_MS 10000  /* for a daemon that reported failure to exit */
#define PREV_TIMEOUT_MS 30000  /* for an unmounted daemon to finish committing, at mount */
#define EXIT_TIMEOUT_MS 120000 /* for the daemon to commit and exit after umount */
#define EXIT_NOTICE_MS 2000    /* say that we are waiting after this long */
#define POLL_MS 50
#define VVFS_FSTYPE "fuse.vvfs"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- mountinfo ----------------------------------------------------------------------------- */

/* Undo mountinfo's octal escapes in place. */
static void unescape_octal(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

struct mount_entry {
    char point[PATH_MAX];
    char fstype[64];
    char source[PATH_MAX];
};

/* Split one mountinfo LINE (modified) into E.  Returns 0 or EINVAL. */
static int parse_mountinfo_line(char *line, struct mount_entry *e)
{
    char *save = NULL, *tok, *point = NULL, *fstype = NULL, *source = NULL;
    int field = 0;
    bool after_dash = false;
    for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), field++) {
        if (!after_dash) {
            if (field == 4) {
                point = tok;
            } else if (field > 5 && strcmp(tok, "-") == 0) {
                after_dash = true; /* then: type, source, super options */
                field = -1;
            }
        } else if (field == 0) {
            fstype = tok;
        } else if (field == 1) {
            source = tok;
        }
    }
    if (!point || !fstype || !source)
        return EINVAL;
    unescape_octal(point);
    unescape_octal(source);
    snprintf(e->point, sizeof(e->point), "%s", point);
    snprintf(e->fstype, sizeof(e->fstype), "%s", fstype);
    snprintf(e->source, sizeof(e->source), "%s", source);
    return 0;
}

/*
 * Find the last (topmost) mount whose mount point is POINT (if not NULL) and, if FSTYPE and
 * SOURCE are not NULL, whose type and source match.  Returns 0 with *E, ENOENT, or an errno
 * of reading mountinfo.  Prints nothing.
 */
static int find_mount(const char *point, const char *fstype, const char *source,
                      struct mount_entry *e)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return errno;
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    struct mount_entry cur;
    while (getline(&line, &cap, f) > 0) {
        if (parse_mountinfo_line(line, &cur) != 0)
            continue;
        if ((point && strcmp(cur.point, point) != 0) ||
            (fstype && strcmp(cur.fstype, fstype) != 0) ||
            (source && strcmp(cur.source, source) != 0))
            continue;
        *e = cur;
        found = true;
    }
    free(line);
    fclose(f);
    return found ? 0 : ENOENT;
}

int cli_find_mountpoint(const char *pool_dir, char *mnt, size_t len)
{
    struct mount_entry e;
    int rc = find_mount(NULL, VVFS_FSTYPE, pool_dir, &e);
    if (rc == 0)
        snprintf(mnt, len, "%s", e.point);
    return rc;
}

/* ---- unmounting ---------------------------------------------------------------------------- */

/* fusermount3 -u [-z] MNT, for users who may not umount2().  Returns 0 or EPERM. */
static int fusermount_u(const char *mnt, bool lazy)
{
    char *argv[] = {(char *)"fusermount3", (char *)"-u", (char *)(lazy ? "-z" : mnt),
                    (char *)(lazy ? mnt : NULL), NULL};
    pid_t pid, r;
    int st = 0;
    if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0)
        return EPERM;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    return r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : EPERM;
}

/* Unmount MNT (lazily if LAZY).  Returns 0 or an errno; prints nothing. */
static int unmount(const char *mnt, bool lazy)
{
    if (umount2(mnt, lazy ? MNT_DETACH : 0) == 0)
        return 0;
    int rc = errno;
    if (rc == EPERM && fusermount_u(mnt, lazy) == 0)
        return 0;
    return rc;
}

/* ---- mount --------------------------------------------------------------------------------- */

enum ready { READY_OK, READY_ERR, READY_EOF, READY_TIMEOUT };

/* Read the daemon's one status line from FD; for READY_ERR, LINE gets the message. */
static enum ready wait_ready(int fd, char *line, size_t len)
{
    size_t n = 0;
    long deadline = now_ms() + READY_TIMEOUT_MS;
    line[0] = '\0';
    while (n + 1 < len && !memchr(line, '\n', n)) {
        long left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0)
            return READY_TIMEOUT;
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return READY_TIMEOUT;
        ssize_t got = read(fd, line + n, len - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        line[n] = '\0';
    }
    char *nl = strchr(line, '\n');
    if (!nl)
        return READY_EOF;
    *nl = '\0';
    if (strcmp(line, "OK") == 0)
        return READY_OK;
    if (strncmp(line, "ERR", 3) == 0) {
        const char *msg = line + 3;
        if (*msg == ' ')
            msg++;
        memmove(line, msg, strlen(msg) + 1);
    }
    return READY_ERR; /* an unexpected line is an error too; show it as it is */
}

/* Wait (bounded) for child PID to exit, so it no longer holds the pool. */
static void reap(pid_t pid)
{
    for (long waited = 0; waited < REAP_TIMEOUT_MS; waited += POLL_MS) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        sleep_ms(POLL_MS);
    }
}

/* In the child: become the daemon.  Never returns. */
static void run_daemon_child(const struct vv_daemon_opts *opts, int rfd, int wfd)
    __attribute__((noreturn));
static void run_daemon_child(const struct vv_daemon_opts *opts, int rfd, int wfd)
{
    close(rfd);
    setsid();
    signal(SIGPIPE, SIG_IGN); /* "vvfs mount" may be gone (^C) when we report on the pipe */
    if (chdir("/") != 0)
        _exit(1);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    _exit(vv_daemon_run(opts, wfd));
}

/* {"pool_dir":..., "mountpoint":..., "pid":N} on stdout. */
static void print_mount_json(const char *pool, const char *mnt, pid_t pid)
{
    json_t *j =
        json_pack("{s:s, s:s, s:I}", "pool_dir", pool, "mountpoint", mnt, "pid", (json_int_t)pid);
    if (j)
        cli_print_json(j);
    json_decref(j);
}

/* Fork the daemon and wait for its report (print the result as JSON if JSON).  Returns an
 * exit status. */
static int start_daemon(const struct vv_daemon_opts *opts, bool json)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return cli_fail("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int rc = errno;
        close(fds[0]);
        close(fds[1]);
        return cli_fail("fork: %s", strerror(rc));
    }
    if (pid == 0)
        run_daemon_child(opts, fds[0], fds[1]);

    close(fds[1]);
    char line[512];
    enum ready r = wait_ready(fds[0], line, sizeof(line));
    close(fds[0]);
    switch (r) {
    case READY_OK:
        if (json)
            print_mount_json(opts->pool_dir, opts->mountpoint, pid);
        else
            printf("vvfs: pool %s mounted at %s (pid %ld)\n", opts->pool_dir, opts->mountpoint,
                   (long)pid);
        return CLI_OK;
    case READY_ERR:
        reap(pid);
        return cli_fail("mount failed: %s", line);
    case READY_TIMEOUT:
        return cli_fail("the daemon (pid %ld) did not finish starting within %d s; see %s/vvfs.log",
                        (long)pid, READY_TIMEOUT_MS / 1000, opts->pool_dir);
    case READY_EOF:
    default:
        reap(pid);
        return cli_fail("daemon exited during start-up; see %s/vvfs.log", opts->pool_dir);
    }
}

/* MNT may be the corpse of a killed daemon's mount: detach it.  0 or CLI_FAIL (reported). */
static int clear_stale_mount(const char *mnt)
{
    struct stat st;
    if (stat(mnt, &st) == 0 || errno != ENOTCONN)
        return 0;
    int rc = unmount(mnt, true);
    if (rc)
        return cli_fail("%s is a stale mount (its daemon died) and cannot be detached: %s", mnt,
                        strerror(rc));
    fprintf(stderr, "vvfs: %s was a stale mount left by a daemon that died; detached it\n", mnt);
    return 0;
}

/* ---- the previous daemon ------------------------------------------------------------------ */

static bool alive(pid_t pid);

/* Does a fuse.vvfs mount have the directory POOL as its source (by device and inode)?  When
 * mountinfo cannot be read, says yes (so we do not wait on what we cannot see). */
static bool pool_has_mount(const char *pool)
{
    struct stat want, st;
    if (stat(pool, &want) != 0)
        return true;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return true;
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    struct mount_entry cur;
    while (!found && getline(&line, &cap, f) > 0) {
        if (parse_mountinfo_line(line, &cur) != 0 || strcmp(cur.fstype, VVFS_FSTYPE) != 0)
            continue;
        /* the source of a vvfs mount is a plain directory, never a FUSE mount: stat is safe */
        found = strcmp(cur.source, pool) == 0 ||
                (cur.source[0] == '/' && stat(cur.source, &st) == 0 && st.st_dev == want.st_dev &&
                 st.st_ino == want.st_ino);
    }
    free(line);
    fclose(f);
    return found;
}

/* Is POOL/lock held?  Returns true with *PID (0 if unreadable) when another process holds it;
 * false when it is free, missing, or cannot be probed (the daemon will say why). */
static bool lock_held(const char *pool, pid_t *pid)
{
    char path[PATH_MAX + 16], buf[32];
    snprintf(path, sizeof(path), "%s/lock", pool);
    *pid = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK) {
        close(fd); /* releases our probe */
        return false;
    }
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    long v = strtol(buf, NULL, 10);
    *pid = v > 0 ? (pid_t)v : 0;
    return true;
}

/* Wait (bounded) for a daemon of POOL that has lost its mount to release the pool.  Returns 0
 * (go ahead: the pool is free, or held by a mounted daemon, which the daemon will report) or
 * CLI_FAIL (reported). */
static int wait_previous_daemon(const char *pool)
{
    long start = now_ms();
    bool told = false;
    pid_t pid;
    while (lock_held(pool, &pid)) {
        if (pid <= 0 || !alive(pid) || pool_has_mount(pool))
            return 0;
        if (now_ms() - start >= PREV_TIMEOUT_MS)
            return cli_fail("pool %s is still in use by process %ld, %d s after its mount went "
                            "away; see %s/vvfs.log",
                            pool, (long)pid, PREV_TIMEOUT_MS / 1000, pool);
        if (!told) {
            fprintf(stderr,
                    "vvfs: waiting for the previous daemon of %s (pid %ld) to finish "
                    "committing\n",
                    pool, (long)pid);
            told = true;
        }
        sleep_ms(POLL_MS);
    }
    return 0;
}

/* POOL/vvfs.conf: what a mount takes from it when the command line does not say */
struct settings {
    char listen[VV_REPL_ADDR_MAX + 1];
    char key[VV_REPL_PATH_MAX + 1];
    char threads[16];
};

static const char *setting(void *arg, const char *k, const char *v)
{
    struct settings *st = arg;
    char *dst = NULL;
    size_t cap = 0;
    if (strcmp(k, "listen") == 0) {
        dst = st->listen;
        cap = sizeof(st->listen);
    } else if (strcmp(k, "key") == 0) {
        if (v[0] != '/')
            return "key must be an absolute path";
        dst = st->key;
        cap = sizeof(st->key);
    } else if (strcmp(k, "threads") == 0) {
        dst = st->threads;
        cap = sizeof(st->threads);
    } else {
        return "unknown setting (vvfs.conf takes listen, key and threads)";
    }
    if (strlen(v) >= cap)
        return "value too long";
    memcpy(dst, v, strlen(v) + 1);
    return NULL;
}

int cmd_mount(struct cli *c)
{
    char pool[PATH_MAX], mnt[PATH_MAX], meta[PATH_MAX + 16], key[VV_REPL_PATH_MAX + 1];
    char conf[PATH_MAX + 16], why[PATH_MAX + 128];
    struct stat st;
    struct vv_daemon_opts opts = {.pool_dir = pool, .mountpoint = mnt, .debug_fuse = c->debug};
    if (!realpath(c->args[0], pool))
        return cli_fail("pool %s: %s", c->args[0], strerror(errno));
    /* the pool's settings (for a service manager's plain "vvfs mount POOL MNT"); the command
     * line's options win */
    struct settings set = {"", "", ""};
    snprintf(conf, sizeof(conf), "%s/vvfs.conf", pool);
    int crc = vv_conf_read(conf, setting, &set, why, sizeof(why));
    if (crc && crc != ENOENT)
        return cli_fail("%s", why);
    const char *threads = c->threads ? c->threads : set.threads[0] ? set.threads : NULL;
    const char *listen = c->listen ? c->listen : set.listen[0] ? set.listen : NULL;
    bool key_from_conf = !c->key && set.key[0];
    if (threads) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(threads, &end, 10);
        if (errno || end == threads || *end || n < 1 || n > 1024 || threads[0] == '-')
            return cli_usage_error(c, "--threads must be a number from 1 to 1024");
        opts.threads = (unsigned)n;
    }
    if (listen) {
        const char *bad = vv_addr_split(listen, NULL, 0, NULL, 0);
        if (!bad && strlen(listen) > VV_REPL_ADDR_MAX)
            bad = "it is longer than 255 bytes";
        if (bad)
            return cli_usage_error(c, "invalid --listen '%s': %s", listen, bad);
        opts.listen = listen;
    }
    if (c->key || key_from_conf) {
        if (!listen)
            return cli_usage_error(c, "--key goes with --listen: it is the key that the peers "
                                      "connecting there must have");
        int rc = 0;
        if (key_from_conf)
            snprintf(key, sizeof(key), "%s", set.key);
        else
            rc = cli_key_path(c, key, sizeof(key));
        if (rc)
            return rc;
        opts.key_path = key;
    }
    snprintf(meta, sizeof(meta), "%s/meta.mdb", pool);
    if (stat(meta, &st) != 0)
        return cli_fail("%s holds no vvfs pool (no meta.mdb); create one with: vvfs init %s", pool,
                        c->args[0]);
    if (clear_stale_mount(c->args[1]) != 0)
        return CLI_FAIL;
    if (!realpath(c->args[1], mnt))
        return cli_fail("mount point %s: %s", c->args[1], strerror(errno));
    if (stat(mnt, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_fail("mount point %s is not a directory", mnt);
    struct mount_entry e;
    if (find_mount(NULL, VVFS_FSTYPE, pool, &e) == 0)
        return cli_fail("pool %s is already mounted at %s", pool, e.point);
    if (find_mount(mnt, VVFS_FSTYPE, NULL, &e) == 0)
        return cli_fail("%s is already the mount point of pool %s", mnt, e.source);
    if (wait_previous_daemon(pool) != 0)
        return CLI_FAIL;

    if (c->foreground)
        return vv_daemon_run(&opts, -1) == 0 ? CLI_OK : CLI_FAIL;
    return start_daemon(&opts, c->json);
}

/* ---- umount -------------------------------------------------------------------------------- */

/* MNT as an absolute path: resolved, or as written for a mount point whose stat() fails. */
static int absolute_path(const char *mnt, char *out, size_t len)
{
    if (realpath(mnt, out))
        return 0;
    if (errno != ENOTCONN)
        return errno;
    return cli_abs_path(mnt, out, len);
}

/* The daemon's pid from POOL/vvfs.pid.  Returns 0 or an errno. */
static int read_pid(const char *pool, pid_t *pid)
{
    char path[PATH_MAX + 16], buf[32];
    snprintf(path, sizeof(path), "%s/vvfs.pid", pool);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int rc = n < 0 ? errno : 0;
    close(fd);
    if (rc)
        return rc;
    buf[n > 0 ? n : 0] = '\0';
    long v = strtol(buf, NULL, 10);
    if (v <= 0)
        return EINVAL;
    *pid = (pid_t)v;
    return 0;
}

/* Is PID running?  A zombie is not: it has exited, and nobody has reaped it yet. */
static bool alive(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    const char *paren = strrchr(buf, ')'); /* "pid (comm) S ...": comm may hold spaces */
    return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}

/* Wait for PID to exit, up to EXIT_TIMEOUT_MS.  Returns true if it did. */
static bool wait_exit(pid_t pid)
{
    long start = now_ms();
    bool told = false;
    while (alive(pid)) {
        long waited = now_ms() - start;
        if (waited >= EXIT_TIMEOUT_MS)
            return false;
        if (!told && waited >= EXIT_NOTICE_MS) {
            fprintf(stderr, "vvfs: waiting for the daemon (pid %ld) to commit and exit...\n",
                    (long)pid);
            told = true;
        }
        sleep_ms(POLL_MS);
    }
    return true;
}

int cmd_umount(struct cli *c)
{
    char mnt[PATH_MAX];
    struct mount_entry e;
    pid_t pid = 0;
    int rc = absolute_path(c->args[0], mnt, sizeof(mnt));
    if (rc)
        return cli_fail("%s: %s", c->args[0], strerror(rc));
    rc = find_mount(mnt, NULL, NULL, &e);
    if (rc == ENOENT)
        return cli_fail("%s is not a vvfs mount (nothing is mounted there)", mnt);
    if (rc)
        return cli_fail("cannot read /proc/self/mountinfo: %s", strerror(rc));
    if (strcmp(e.fstype, VVFS_FSTYPE) != 0)
        return cli_fail("%s is not a vvfs mount (it is a %s mount)", mnt, e.fstype);

    int pid_rc = read_pid(e.source, &pid);
    bool was_alive = pid_rc == 0 && alive(pid);
    rc = unmount(mnt, false);
    if (rc == EBUSY)
        return cli_fail("%s is busy: a process or loop device still uses a volume (see "
                        "losetup -a, fuser -m %s)",
                        mnt, mnt);
    if (rc)
        return cli_fail("cannot unmount %s: %s", mnt, strerror(rc));

    if (pid_rc)
        return cli_fail("unmounted %s, but cannot read %s/vvfs.pid (%s) to wait for the daemon "
                        "to commit",
                        mnt, e.source, strerror(pid_rc));
    if (!was_alive) {
        if (c->json) {
            print_mount_json(e.source, mnt, pid);
            return CLI_OK;
        }
        printf("vvfs: unmounted %s; its daemon (pid %ld) had died: pool %s holds its last "
               "committed state\n",
               mnt, (long)pid, e.source);
        return CLI_OK;
    }
    if (!wait_exit(pid))
        return cli_fail("unmounted %s, but the daemon (pid %ld) has not exited after %d s; see "
                        "%s/vvfs.log",
                        mnt, (long)pid, EXIT_TIMEOUT_MS / 1000, e.source);
    if (c->json)
        print_mount_json(e.source, mnt, pid);
    else
        printf("vvfs: unmounted %s; all data committed\n", mnt);
    return CLI_OK;
}
