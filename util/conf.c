/*
 * util/conf.c — settings files (see conf.h).
 */
#include "util/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* S without the spaces at either end (in place) */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int vv_conf_read(const char *path, vv_conf_fn fn, void *arg, char *why, size_t whylen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int err = errno;
        if (err != ENOENT)
            snprintf(why, whylen, "cannot read %s: %s", path, strerror(err));
        return err;
    }
    char line[1026];
    unsigned no = 0;
    int err = 0;
    while (!err && fgets(line, sizeof(line), f)) {
        no++;
        size_t n = strlen(line);
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
            snprintf(why, whylen, "%s:%u: line longer than 1023 bytes", path, no);
            err = EINVAL;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(why, whylen, "%s:%u: not a setting (key = value): '%.64s'", path, no, s);
            err = EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        const char *bad = !*key ? "a setting without a name" : fn(arg, key, val);
        if (bad) {
            snprintf(why, whylen, "%s:%u: %s", path, no, bad);
            err = EINVAL;
        }
    }
    if (!err && ferror(f)) {
        err = EIO;
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(err));
    }
    fclose(f);
    return err;
}
