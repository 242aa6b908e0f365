/*
 * util/log.h — the one logger of vvfs.
 *
 * Messages go to stderr (or to the file given to vv_log_open()), one line each, prefixed with
 * time, level and subsystem.  Debug output is chosen per subsystem at run time with
 * VVFS_DEBUG=meta,fs,api (or "all"); nothing is compiled out.
 *
 * Thread-safe: each message is written with one write(2).
 */
#ifndef VV_UTIL_LOG_H
#define VV_UTIL_LOG_H

#include <stdbool.h>

enum vv_log_level { VV_LOG_ERR, VV_LOG_WARN, VV_LOG_INFO, VV_LOG_DEBUG };

/* Subsystems for debug selection. */
enum vv_subsys { VV_SS_MAIN, VV_SS_META, VV_SS_TXG, VV_SS_FS, VV_SS_API, VV_SS_CLI, VV_SS_REPL, VV_SS__COUNT };

/* Read VVFS_DEBUG from the environment.  Call once at start; safe to call again. */
void vv_log_init(void);
/* Drop messages less severe than LVL (default VV_LOG_INFO; debug is chosen by VVFS_DEBUG). */
void vv_log_set_level(enum vv_log_level lvl);
/* Send log lines to PATH (appending) instead of stderr.  Returns 0 or an errno. */
int vv_log_open(const char *path);
bool vv_log_debug_on(enum vv_subsys ss);

void vv_log(enum vv_log_level lvl, enum vv_subsys ss, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define vv_err(ss, ...) vv_log(VV_LOG_ERR, ss, __VA_ARGS__)
#define vv_warn(ss, ...) vv_log(VV_LOG_WARN, ss, __VA_ARGS__)
#define vv_info(ss, ...) vv_log(VV_LOG_INFO, ss, __VA_ARGS__)
#define vv_debug(ss, ...)                                                                          \
    do {                                                                                           \
        if (vv_log_debug_on(ss))                                                                   \
            vv_log(VV_LOG_DEBUG, ss, __VA_ARGS__);                                                 \
    } while (0)

#endif
