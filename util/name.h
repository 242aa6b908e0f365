/*
 * util/name.h — validation of user-given names (volumes, snapshots, groups).
 */
#ifndef VV_UTIL_NAME_H
#define VV_UTIL_NAME_H

#include <stddef.h>

#define VV_NAME_MAX 64 /* bytes, not counting the NUL */

/*
 * Is NAME acceptable as an object name?  [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
 * Returns NULL if it is, else a static English sentence saying why not
 * ("name is empty", "name is longer than 64 characters", ...).
 */
const char *vv_name_check(const char *name);

#endif
