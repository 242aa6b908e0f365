/* meta/pool.c — placeholder until the pool lands. */
#include "meta/pool.h"

const char *vv_meta_version(void)
{
    return VVFS_VERSION;
}
