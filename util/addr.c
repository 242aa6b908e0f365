/*
 * util/addr.c — see addr.h.
 */
#include "util/addr.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define HOST_MAX 253 /* the longest text form of a DNS name */
#define EXAMPLE "write HOST:PORT, e.g. 10.0.0.2:7700 or [::1]:7700"

/* The inside of "[...]": hex digits, ':' and '.' (an IPv4 tail), then maybe "%ZONE". */
static bool ipv6_shape(const char *p, const char *end)
{
    bool colon = false;
    for (; p < end && *p != '%'; p++) {
        if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
            return false;
        colon |= *p == ':';
    }
    if (p < end && ++p == end) /* "%" and no zone */
        return false;
    for (; p < end; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return false;
    return colon;
}

const char *vv_addr_split(const char *s, char *host, size_t host_len, char *port,
                          size_t port_len)
{
    const char *h, *hend, *colon;
    if (!s || !*s)
        return "the address is empty (" EXAMPLE ")";
    if (s[0] == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (!hend)
            return "the address has '[' but no ']' (" EXAMPLE ")";
        if (!ipv6_shape(h, hend))
            return "the host in brackets is not an IPv6 address (" EXAMPLE ")";
        colon = hend + 1;
        if (*colon != ':')
            return "the address has no :PORT after its ']' (" EXAMPLE ")";
    } else {
        h = s;
        colon = strchr(s, ':');
        hend = colon;
        if (!colon)
            return "the address has no :PORT (" EXAMPLE ")";
        if (strchr(colon + 1, ':'))
            return "an IPv6 address must be in brackets (" EXAMPLE ")";
        if (hend == h)
            return "the address has no host (" EXAMPLE "; to listen on every address: "
                   "0.0.0.0:PORT or [::]:PORT)";
        if (hend - h > HOST_MAX)
            return "the host name is longer than 253 characters";
        for (const char *p = h; p < hend; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
                return "the host may contain only letters, digits, '.', '-' and '_' (" EXAMPLE
                       ")";
    }
    const char *pt = colon + 1;
    size_t n = strlen(pt);
    unsigned v = 0;
    size_t digits = 0;
    while (digits < n && digits < 5 && isdigit((unsigned char)pt[digits]))
        v = v * 10 + (unsigned)(pt[digits++] - '0');
    if (n == 0 || digits != n || v < 1 || v > 65535)
        return "the port must be a number from 1 to 65535 (" EXAMPLE ")";
    if (host && host_len)
        snprintf(host, host_len, "%.*s", (int)(hend - h), h);
    if (port && port_len)
        snprintf(port, port_len, "%s", pt);
    return NULL;
}
