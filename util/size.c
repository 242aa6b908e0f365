/*
 * util/size.c — see size.h.
 */
#include "util/size.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <strings.h>

int vv_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return EINVAL;
    uint64_t v = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p)) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return ERANGE;
        v = v * 10 + d;
        p++;
    }
    unsigned shift = 0;
    switch (toupper((unsigned char)*p)) {
    case '\0':
        break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    case 'P': shift = 50; break;
    case 'B':
        if (p[1] != '\0')
            return EINVAL;
        break;
    default:
        return EINVAL;
    }
    if (shift) {
        p++;
        if (strcasecmp(p, "") != 0 && strcasecmp(p, "B") != 0 && strcasecmp(p, "iB") != 0)
            return EINVAL;
    }
    if (shift && v > (UINT64_MAX >> 1) >> shift)
        return ERANGE;
    v <<= shift;
    if (v > (uint64_t)INT64_MAX)
        return ERANGE;
    *out = v;
    return 0;
}

char *vv_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char units[] = "KMGTPE";
    if (bytes < 1024) {
        snprintf(buf, len, "%llu", (unsigned long long)bytes);
        return buf;
    }
    int u = -1;
    double v = (double)bytes;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (v == (double)(uint64_t)v)
        snprintf(buf, len, "%llu%c", (unsigned long long)v, units[u]);
    else
        snprintf(buf, len, "%.1f%c", v, units[u]);
    return buf;
}
