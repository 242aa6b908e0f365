/*
 * util/conf.h — settings files as administrators write them: one "key = value" a line,
 * '#' to the end of a line a comment, blank lines ignored, spaces around key and value
 * dropped.  (vvfs mount reads POOL/vvfs.conf: see cli/cmd_mount.c.)
 */
#ifndef VV_UTIL_CONF_H
#define VV_UTIL_CONF_H

#include <stddef.h>

/* Called for each setting; returns NULL, or a sentence saying what is wrong with it. */
typedef const char *(*vv_conf_fn)(void *arg, const char *key, const char *value);

/*
 * Read PATH, calling FN for each setting in order.  Returns 0; ENOENT when there is no such
 * file (nothing called); EINVAL with WHY ("PATH:LINE: sentence") for a line that is not a
 * setting, one longer than 1023 bytes, or one FN refused; another errno (WHY says) when the
 * file cannot be read.
 */
int vv_conf_read(const char *path, vv_conf_fn fn, void *arg, char *why, size_t whylen);

#endif
