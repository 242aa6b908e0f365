/*
 * meta/kv.c — LMDB error translation and u64 config values (see kv.h).
 */
#include "meta/kv.h"
#include "meta/pool.h"

#include <stdarg.h>
#include <stdio.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kv_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return ENOENT;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
        return ENOSPC;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        return EPROTONOSUPPORT;
    case MDB_READERS_FULL:
        return EAGAIN;
    default:
        if (rc > 0 && rc < 4096)
            return rc; /* already an errno */
        return EIO;
    }
}

int kv_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
    uint8_t buf[8];
    put_le64(buf, v);
    MDB_val k = {strlen(key), (void *)key}, d = {8, buf};
    return kv_err(mdb_put(txn, dbi, &k, &d, 0));
}

int kv_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = mdb_get(txn, dbi, &k, &d);
    if (rc)
        return kv_err(rc);
    if (d.mv_size != 8)
        return EIO;
    *v = get_le64(d.mv_data);
    return 0;
}

int slot_list_add(struct slot_list *l, uint64_t x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return 0;
}

void slot_list_free(struct slot_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int vv_err_set(struct vv_err *e, int code, const char *fmt, ...)
{
    if (e) {
        e->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void slot_list_sort_unique(struct slot_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof(uint64_t), u64_cmp);
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (w == 0 || l->v[w - 1] != l->v[i])
            l->v[w++] = l->v[i];
    l->n = w;
}
