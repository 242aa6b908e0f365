/*
 * util/duration.h — spans of time as users write them ("30s", "5m", "1h30m").
 */
#ifndef VV_UTIL_DURATION_H
#define VV_UTIL_DURATION_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse seconds: a whole number ("300"), or whole numbers each followed by a unit d, h, m or
 * s, largest unit first and each unit at most once ("30s", "5m", "2h", "1d", "1h30m").  Units
 * are lower case only ("5M" could as well mean months).  Returns 0 and sets *OUT, or EINVAL
 * (not a duration) or ERANGE (over 2^63-1 seconds); *OUT is untouched on failure.
 */
int vv_parse_duration(const char *s, uint64_t *out);

/* Format SECONDS as "45s", "5m", "5m30s", "2h5m" or "3d4h" (its two largest units, rounded
 * down: what vv_parse_duration() reads back) into BUF; returns BUF. */
char *vv_format_duration(uint64_t seconds, char *buf, size_t len);

#endif
