/*
 * meta/kv.h — the bottom of meta/: LMDB error translation and the small encodings every
 * other meta/ module shares (big-endian key parts, little-endian u64 config values).
 *
 * Nothing here knows a pool or a volume; xmap, alloc, vol, txg, io and pool all stand on it.
 * LMDB's MDB_* codes never travel above meta/: every caller translates with kv_err().
 */
#ifndef VV_META_KV_H
#define VV_META_KV_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

/* MDB_* code (or an errno, passed through) -> errno.  0 stays 0. */
int kv_err(int rc);

/* Config-style u64 values (little-endian, 8 bytes) under an ASCII key.  Errors: ENOENT (get,
 * no such key), EIO (get, a value that is not 8 bytes), or kv_err() of LMDB's code. */
int kv_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);
int kv_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v);

/* A growable list of u64 (slots, extent indexes). */
struct slot_list {
    uint64_t *v;
    size_t n, cap;
};
int slot_list_add(struct slot_list *l, uint64_t x); /* 0 or ENOMEM */
void slot_list_free(struct slot_list *l);           /* and leaves it empty, reusable */
void slot_list_sort_unique(struct slot_list *l);    /* ascending, each value once */

static inline void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
