#ifndef VV_META_POOL_H
#define VV_META_POOL_H
const char *vv_meta_version(void);
#endif
