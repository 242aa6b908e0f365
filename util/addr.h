/*
 * util/addr.h — network addresses as users write them: HOST:PORT.
 */
#ifndef VV_UTIL_ADDR_H
#define VV_UTIL_ADDR_H

#include <stddef.h>

/*
 * Is S shaped as HOST:PORT?  HOST is a host name or IPv4 address ([A-Za-z0-9._-], at most 253
 * characters) or an IPv6 address in brackets ("[::1]:7700", "[fe80::1%eth0]:7700"); PORT is a
 * decimal number from 1 to 65535.  Only the shape is checked: nothing is looked up.  Returns
 * NULL if it is, else a static English sentence saying why not.  When it is, HOST and PORT
 * (either may be NULL) get the parts, HOST without its brackets, truncated to HOST_LEN and
 * PORT_LEN bytes (254 and 6 always suffice).
 */
const char *vv_addr_split(const char *s, char *host, size_t host_len, char *port,
                          size_t port_len);

#endif
