/*
 * util/duration.c — see duration.h.
 */
#include "util/duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>

static const struct {
    char unit;
    uint64_t seconds;
} units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

int vv_parse_duration(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return EINVAL;
    uint64_t total = 0;
    size_t next = 0; /* index in units[] of the largest unit still allowed */
    for (const char *p = s; *p;) {
        uint64_t v = 0;
        if (!isdigit((unsigned char)*p))
            return EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
            uint64_t d = (uint64_t)(*p - '0');
            if (v > (UINT64_MAX - d) / 10)
                return ERANGE;
            v = v * 10 + d;
        }
        uint64_t mult = 1;
        if (*p == '\0') {
            if (next) /* "1h30": 30 of what?  A bare number only on its own */
                return EINVAL;
        } else {
            size_t u = next;
            while (u < N_UNITS && units[u].unit != *p)
                u++;
            if (u == N_UNITS) /* an unknown unit, or one out of order ("30s5m", "1h1h") */
                return EINVAL;
            mult = units[u].seconds;
            next = u + 1;
            p++;
        }
        if (v > (uint64_t)INT64_MAX / mult || v * mult > (uint64_t)INT64_MAX - total)
            return ERANGE;
        total += v * mult;
    }
    *out = total;
    return 0;
}

char *vv_format_duration(uint64_t seconds, char *buf, size_t len)
{
    size_t u = 0;
    while (u + 1 < N_UNITS && seconds < units[u].seconds)
        u++;
    uint64_t big = seconds / units[u].seconds;
    uint64_t rest = u + 1 < N_UNITS ? (seconds % units[u].seconds) / units[u + 1].seconds : 0;
    if (rest)
        snprintf(buf, len, "%llu%c%llu%c", (unsigned long long)big, units[u].unit,
                 (unsigned long long)rest, units[u + 1].unit);
    else
        snprintf(buf, len, "%llu%c", (unsigned long long)big, units[u].unit);
    return buf;
}
