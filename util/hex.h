/*
 * util/hex.h — hexadecimal digits: their value, and bytes written as them.
 */
#ifndef VV_UTIL_HEX_H
#define VV_UTIL_HEX_H

#include <stddef.h>
#include <stdint.h>

/* 0..15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for anything else */
static inline int vv_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* the N bytes at B as 2N lowercase hex digits into OUT (2N + 1 bytes, NUL-terminated) */
static inline char *vv_hex_encode(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

#endif
