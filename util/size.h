/*
 * util/size.h — byte sizes as users write them.
 */
#ifndef VV_UTIL_SIZE_H
#define VV_UTIL_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse "20G", "512M", "4096", "1.5T"? — no: only whole numbers with an optional binary suffix
 * K, M, G, T, P (case-insensitive, an optional trailing "iB" or "B" accepted: "20GiB", "20GB"
 * both mean 20*2^30).  Returns 0 and sets *out, or EINVAL (not a size) or ERANGE (over 2^63-1).
 */
int vv_parse_size(const char *s, uint64_t *out);

/* Format BYTES as "20G", "1.5G", "512K" or "123" (bytes) into BUF; returns BUF. */
char *vv_format_size(uint64_t bytes, char *buf, size_t len);

#endif
