/*
 * util/name.c — see name.h.
 */
#include "util/name.h"

#include <string.h>

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *vv_name_check(const char *name)
{
    if (!name || !*name)
        return "name is empty";
    size_t len = strlen(name);
    if (len > VV_NAME_MAX)
        return "name is longer than 64 characters";
    if (!is_alnum(name[0]))
        return "name must start with a letter or digit";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x80)
            return "name must be ASCII: letters, digits, '.', '_' and '-'";
        if (!is_alnum((char)c) && c != '.' && c != '_' && c != '-')
            return "name may contain only letters, digits, '.', '_' and '-'";
    }
    return NULL;
}
