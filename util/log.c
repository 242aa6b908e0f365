/*
 * util/log.c — see log.h.
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const ss_names[VV_SS__COUNT] = {"main", "meta", "txg", "fs", "api", "cli", "repl"};
static const char *const lvl_names[] = {"error", "warning", "info", "debug"};

static int log_fd = STDERR_FILENO;
static unsigned debug_mask;
static enum vv_log_level min_level = VV_LOG_INFO;

void vv_log_set_level(enum vv_log_level lvl)
{
    min_level = lvl;
}

void vv_log_init(void)
{
    const char *env = getenv("VVFS_DEBUG");
    debug_mask = 0;
    if (!env)
        return;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", env);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "all") == 0) {
            debug_mask = ~0u;
            continue;
        }
        for (int i = 0; i < VV_SS__COUNT; i++)
            if (strcmp(tok, ss_names[i]) == 0)
                debug_mask |= 1u << i;
    }
}

int vv_log_open(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return 0;
}

bool vv_log_debug_on(enum vv_subsys ss)
{
    return (debug_mask >> ss) & 1u;
}

void vv_log(enum vv_log_level lvl, enum vv_subsys ss, const char *fmt, ...)
{
    if (lvl > min_level && lvl != VV_LOG_DEBUG)
        return;
    int saved = errno; /* so callers may use %m after us, and we may use it inside */
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ vvfs[%d] %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(), lvl_names[lvl], ss_names[ss]);
    va_list ap;
    va_start(ap, fmt);
    errno = saved;
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w;
    errno = saved;
}
