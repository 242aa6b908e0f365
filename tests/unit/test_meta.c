/*
 * Unit tests for meta/: pool lifecycle, extent map across generations, allocator, txg commit,
 * frees after commit, discard, seek, and a randomized multi-threaded model check.
 * Each test works in its own temporary pool directory.
 */
#include "meta/pool.h"
#include "meta/xmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static char pooldir[256];

static void mkpool(uint64_t capacity, uint32_t extent)
{
    snprintf(pooldir, sizeof(pooldir), "/tmp/vvfs-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(pooldir));
    struct vv_pool_params pp = {.extent_size = extent, .capacity = capacity};
    struct vv_err e = {0};
    cr_assert_eq(vv_pool_create(pooldir, &pp, &e), 0, "create: %s", e.msg);
}

static void rmpool(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", pooldir);
    cr_assert_eq(system(cmd), 0);
}

static struct vv_pool *openpool(void)
{
    struct vv_pool *p = NULL;
    struct vv_err e = {0};
    cr_assert_eq(vv_pool_open(pooldir, 0, &p, &e), 0, "open: %s", e.msg);
    return p;
}

static struct vv_vol *mkvol(struct vv_pool *p, const char *name, uint64_t size)
{
    struct vv_volume_info vi;
    struct vv_err e = {0};
    cr_assert_eq(vv_volume_create(p, name, size, &vi, &e), 0, "volume create: %s", e.msg);
    struct vv_vol *v;
    cr_assert_eq(vv_vol_open(p, vi.id, &v), 0);
    return v;
}

static struct vv_vol *openvol(struct vv_pool *p, const char *name)
{
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, name, &vi, NULL), 0);
    struct vv_vol *v;
    cr_assert_eq(vv_vol_open(p, vi.id, &v), 0);
    return v;
}

/* byte at absolute offset o of a write tagged TAG */
static uint8_t pat(uint64_t o, uint32_t tag)
{
    uint64_t x = (o >> 3) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)tag << 32 | tag);
    return (uint8_t)(x >> ((o & 7) * 8));
}

static void fill(uint8_t *b, uint64_t off, size_t len, uint32_t tag)
{
    for (size_t i = 0; i < len; i++)
        b[i] = pat(off + i, tag);
}

static void fsck_clean(void)
{
    struct vv_fsck_report r;
    struct vv_err e = {0};
    cr_assert_eq(vv_pool_fsck(pooldir, true, &r, &e), 0, "fsck: %s", e.msg);
    cr_assert_eq(r.errors, 0, "fsck found %llu errors", (unsigned long long)r.errors);
}

Test(pool, create_open_close_and_refusals)
{
    mkpool(64 << 20, 65536);
    struct vv_pool_params pp = {.capacity = 64 << 20};
    struct vv_err e = {0};
    cr_assert_eq(vv_pool_create(pooldir, &pp, &e), EEXIST);
    struct vv_pool *p = openpool();
    struct vv_pool *p2 = NULL;
    cr_assert_eq(vv_pool_open(pooldir, 0, &p2, &e), EBUSY, "second opener must be refused");
    cr_assert(strstr(e.msg, "in use") != NULL, "message: %s", e.msg);
    cr_assert_eq(vv_pool_close(p), 0);
    p = openpool();
    cr_assert_eq(vv_pool_close(p), 0);
    cr_assert_eq(vv_pool_open("/nonexistent-vvfs", 0, &p2, &e), ENOENT);
    rmpool();
}

Test(pool, bad_parameters)
{
    struct vv_err e = {0};
    struct vv_pool_params pp = {.extent_size = 3000, .capacity = 1 << 20};
    cr_assert_eq(vv_pool_create("/tmp/vvfs-unit-never", &pp, &e), EINVAL);
    pp.extent_size = 65536;
    pp.capacity = 1000;
    cr_assert_eq(vv_pool_create("/tmp/vvfs-unit-never", &pp, &e), EINVAL);
    cr_assert_neq(access("/tmp/vvfs-unit-never/meta.mdb", F_OK), 0);
    rmdir("/tmp/vvfs-unit-never");
}

/* open the pool's LMDB environment directly, and DB NAME in a txn (FLAGS: MDB_RDONLY or 0) */
static void meta_db_open(const char *name, unsigned flags, MDB_env **env, MDB_txn **txn,
                         MDB_dbi *dbi)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/meta.mdb", pooldir);
    cr_assert_eq(mdb_env_create(env), 0);
    mdb_env_set_maxdbs(*env, 16);
    cr_assert_eq(mdb_env_open(*env, path, MDB_NOSUBDIR | flags, 0600), 0);
    cr_assert_eq(mdb_txn_begin(*env, NULL, flags, txn), 0);
    cr_assert_eq(mdb_dbi_open(*txn, name, 0, dbi), 0);
}

Test(pool, newer_format_refused)
{
    mkpool(16 << 20, 65536);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    meta_db_open("config", 0, &env, &txn, &dbi);
    uint8_t v[8] = {99};
    MDB_val k = {14, (void *)"format_version"}, d = {8, v};
    cr_assert_eq(mdb_put(txn, dbi, &k, &d, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    struct vv_pool *p = NULL;
    struct vv_err e = {0};
    cr_assert_eq(vv_pool_open(pooldir, 0, &p, &e), EPROTONOSUPPORT);
    cr_assert(strstr(e.msg, "newer") != NULL, "message: %s", e.msg);
    rmpool();
}

Test(volume, create_list_rename_resize_delete)
{
    mkpool(64 << 20, 65536);
    struct vv_pool *p = openpool();
    struct vv_err e = {0};
    cr_assert_eq(vv_volume_create(p, "b", 1 << 20, NULL, &e), 0);
    cr_assert_eq(vv_volume_create(p, "a", 2 << 20, NULL, &e), 0);
    cr_assert_eq(vv_volume_create(p, "a", 2 << 20, NULL, &e), EEXIST);
    cr_assert_eq(vv_volume_create(p, "../x", 1 << 20, NULL, &e), EINVAL);
    cr_assert_eq(vv_volume_create(p, "", 1 << 20, NULL, &e), EINVAL);
    cr_assert_eq(vv_volume_create(p, "c", 1000, NULL, &e), EINVAL);
    cr_assert_eq(vv_volume_create(p, "c", 0, NULL, &e), EINVAL);
    struct vv_volume_info *l;
    size_t n;
    cr_assert_eq(vv_volume_list(p, &l, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(l[0].name, "a");
    cr_assert_str_eq(l[1].name, "b");
    free(l);
    cr_assert_eq(vv_volume_rename(p, "a", "b", &e), EEXIST);
    cr_assert_eq(vv_volume_rename(p, "nope", "z", &e), ENOENT);
    cr_assert_eq(vv_volume_rename(p, "a", "z", &e), 0);
    cr_assert_eq(vv_volume_resize(p, "z", 8 << 20, &e), 0);
    cr_assert_eq(vv_volume_delete(p, "b", &e), 0);
    cr_assert_eq(vv_volume_delete(p, "b", &e), ENOENT);
    cr_assert_eq(vv_pool_close(p), 0);
    /* everything persisted */
    p = openpool();
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, "z", &vi, &e), 0);
    cr_assert_eq(vi.size, 8 << 20);
    cr_assert_eq(vv_volume_get(p, "a", &vi, &e), ENOENT);
    cr_assert_eq(vv_volume_get(p, "b", &vi, &e), ENOENT);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    rmpool();
}

Test(io, unaligned_writes_read_back_and_survive_reopen)
{
    mkpool(64 << 20, 16384);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 4 << 20);
    uint8_t *buf = malloc(2 << 20), *chk = malloc(2 << 20);
    /* unwritten reads as zeros */
    memset(chk, 0xaa, 100000);
    cr_assert_eq(vv_vol_read(v, chk, 100000, 12345), 0);
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(chk[i], 0);
    struct { uint64_t off; size_t len; } w[] = {
        {0, 1}, {16383, 2}, {20000, 511}, {65536 * 3 - 100, 70000}, {1 << 20, (1 << 20) + 3},
        {(4 << 20) - 1, 1}, {100, 16384},
    };
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        fill(buf, w[i].off, w[i].len, 7);
        cr_assert_eq(vv_vol_write(v, buf, w[i].len, w[i].off), 0);
    }
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
            cr_assert_eq(vv_vol_read(v, chk, w[i].len, w[i].off), 0);
            fill(buf, w[i].off, w[i].len, 7);
            cr_assert(memcmp(buf, chk, w[i].len) == 0, "round %d write %zu differs", round, i);
        }
        /* a byte between writes is still zero */
        cr_assert_eq(vv_vol_read(v, chk, 1, 30000), 0);
        cr_assert_eq(chk[0], 0);
        if (round == 0) {
            vv_vol_close(v);
            cr_assert_eq(vv_pool_close(p), 0); /* close commits */
            p = openpool();
            v = openvol(p, "v");
        }
    }
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(chk);
    rmpool();
}

Test(io, overwrite_across_gens_frees_old_slots)
{
    mkpool(8 << 20, 65536);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 4 << 20);
    uint8_t *buf = malloc(1 << 20), *chk = malloc(1 << 20);
    struct vv_pool_status st0, st;
    for (uint32_t gen = 1; gen <= 20; gen++) {
        fill(buf, 0, 1 << 20, gen);
        cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0);
        /* a partial overwrite merges the rest of the extent from the previous generation */
        fill(buf, 1000, 10, gen + 100);
        cr_assert_eq(vv_vol_write(v, buf, 10, 1000), 0);
        cr_assert_eq(vv_vol_flush(v), 0);
        vv_pool_get_status(p, &st);
        if (gen == 1)
            st0 = st;
        cr_assert_eq(st.used, 1 << 20, "gen %u: used %llu: superseded slots not freed", gen,
                     (unsigned long long)st.used);
        cr_assert_eq(vv_vol_read(v, chk, 1 << 20, 0), 0);
        fill(buf, 0, 1 << 20, gen);
        fill(buf + 1000, 1000, 10, gen + 100);
        cr_assert(memcmp(buf, chk, 1 << 20) == 0, "gen %u content", gen);
    }
    cr_assert(st.committed_gen > st0.committed_gen);
    /* 8 MiB pool, 1 MiB volume data: 20 rewrites only work if freed slots are reused */
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(chk);
    rmpool();
}

Test(io, enospc_then_recovers_after_delete)
{
    mkpool(1 << 20, 65536); /* 16 slots */
    struct vv_pool *p = openpool();
    struct vv_vol *a = mkvol(p, "a", 2 << 20);
    uint8_t *buf = calloc(1, 2 << 20);
    memset(buf, 0x5a, 2 << 20);
    int err = vv_vol_write(a, buf, 2 << 20, 0);
    cr_assert_eq(err, ENOSPC);
    vv_vol_close(a);
    struct vv_err e = {0};
    cr_assert_eq(vv_volume_delete(p, "a", &e), 0, "%s", e.msg);
    struct vv_vol *b = mkvol(p, "b", 1 << 20);
    cr_assert_eq(vv_vol_write(b, buf, 15 * 65536, 0), 0, "pool must have space again");
    cr_assert_eq(vv_vol_flush(b), 0);
    /* one slot left: overwrites still work one extent per txg, since each commit frees the
     * slot its overwrite superseded (redirect-on-write needs the new slot first) */
    for (int i = 0; i < 15; i++) {
        cr_assert_eq(vv_vol_write(b, buf, 65536, (uint64_t)i * 65536), 0, "overwrite %d", i);
        cr_assert_eq(vv_vol_flush(b), 0);
    }
    vv_vol_close(b);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    rmpool();
}

Test(io, discard_returns_space_and_reads_zeros)
{
    mkpool(16 << 20, 65536);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 8 << 20);
    uint8_t *buf = malloc(4 << 20), *chk = malloc(4 << 20);
    fill(buf, 0, 4 << 20, 3);
    cr_assert_eq(vv_vol_write(v, buf, 4 << 20, 0), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    cr_assert_eq(st.used, 4 << 20);
    /* discard [100000, 3 MiB + 5): partial head and tail are zeroed, the rest released */
    cr_assert_eq(vv_vol_discard(v, 100000, (3 << 20) + 5 - 100000), 0);
    cr_assert_eq(vv_vol_read(v, chk, 4 << 20, 0), 0);
    for (uint64_t i = 0; i < (4u << 20); i++) {
        uint8_t want = (i >= 100000 && i < (3u << 20) + 5) ? 0 : pat(i, 3);
        cr_assert_eq(chk[i], want, "byte %llu", (unsigned long long)i);
    }
    cr_assert_eq(vv_vol_flush(v), 0);
    vv_pool_get_status(p, &st);
    /* extents 2..47 released (3 MiB / 64K = 48; the one at 3M is partial) */
    cr_assert_eq(st.used, (uint64_t)(4 << 20) - 46 * 65536, "used %llu",
                 (unsigned long long)st.used);
    /* seek */
    uint64_t o;
    cr_assert_eq(vv_vol_seek(v, 0, 3 /* SEEK_DATA */, &o), 0);
    cr_assert_eq(o, 0);
    cr_assert_eq(vv_vol_seek(v, 0, 4 /* SEEK_HOLE */, &o), 0);
    cr_assert_eq(o, 2 * 65536);
    cr_assert_eq(vv_vol_seek(v, 2 * 65536, 3, &o), 0);
    cr_assert_eq(o, 3 << 20);
    cr_assert_eq(vv_vol_seek(v, 4 << 20, 3, &o), ENXIO);
    cr_assert_eq(vv_vol_seek(v, 4 << 20, 4, &o), 0);
    cr_assert_eq(o, 4 << 20);
    /* discard of everything, including never-written space, then shrink */
    cr_assert_eq(vv_vol_discard(v, 0, 8 << 20), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    vv_pool_get_status(p, &st);
    cr_assert_eq(st.used, 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(chk);
    rmpool();
}

Test(volume, shrink_drops_data_and_zeroes_the_tail)
{
    mkpool(16 << 20, 65536);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 4 << 20);
    uint8_t *buf = malloc(4 << 20);
    memset(buf, 0x77, 4 << 20);
    cr_assert_eq(vv_vol_write(v, buf, 4 << 20, 0), 0);
    struct vv_err e = {0};
    cr_assert_eq(vv_volume_resize(p, "v", 4096, &e), EBUSY, "shrinking an open volume");
    vv_vol_close(v);
    cr_assert_eq(vv_volume_resize(p, "v", 4096, &e), 0, "%s", e.msg);
    cr_assert_eq(vv_volume_resize(p, "v", 4 << 20, &e), 0, "%s", e.msg);
    v = openvol(p, "v");
    cr_assert_eq(vv_vol_read(v, buf, 4 << 20, 0), 0);
    for (int i = 0; i < (4 << 20); i++)
        cr_assert_eq(buf[i], i < 4096 ? 0x77 : 0, "byte %d after shrink+grow", i);
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    cr_assert_eq(st.used, 65536);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    rmpool();
}

/* ---- randomized model check: threads write/discard/read their own regions and compare ---- */

#define MC_THREADS 4
#define MC_REGION (1u << 20)

struct mc {
    struct vv_pool *p;
    struct vv_vol *v;
    int id;
    uint8_t model[MC_REGION];
    int failures;
};

static void *mc_thread(void *arg)
{
    struct mc *m = arg;
    unsigned seed = (unsigned)m->id * 7919u + 1;
    uint64_t base = (uint64_t)m->id * MC_REGION;
    uint8_t *buf = malloc(MC_REGION);
    for (int op = 0; op < 400 && !m->failures; op++) {
        uint32_t off = (uint32_t)rand_r(&seed) % MC_REGION;
        uint32_t len = 1 + (uint32_t)rand_r(&seed) % (rand_r(&seed) % 4 ? 8192 : 200000);
        if (off + len > MC_REGION)
            len = MC_REGION - off;
        int kind = rand_r(&seed) % 10;
        if (kind < 6) {
            fill(buf, base + off, len, (uint32_t)op);
            if (vv_vol_write(m->v, buf, len, base + off))
                m->failures++;
            memcpy(m->model + off, buf, len);
        } else if (kind < 7) {
            if (vv_vol_discard(m->v, base + off, len))
                m->failures++;
            memset(m->model + off, 0, len);
        } else if (kind < 8) {
            if (vv_vol_flush(m->v))
                m->failures++;
        } else {
            if (vv_vol_read(m->v, buf, len, base + off) || memcmp(buf, m->model + off, len))
                m->failures++;
        }
    }
    free(buf);
    return NULL;
}

Test(model, threads_against_in_memory_model, .timeout = 120)
{
    setenv("VVFS_TXG_INTERVAL_MS", "20", 1); /* many commits race with the I/O */
    mkpool(64 << 20, 16384);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "m", MC_THREADS * MC_REGION);
    static struct mc mcs[MC_THREADS];
    pthread_t th[MC_THREADS];
    for (int i = 0; i < MC_THREADS; i++) {
        memset(&mcs[i], 0, sizeof(mcs[i]));
        mcs[i].p = p;
        mcs[i].v = v;
        mcs[i].id = i;
        pthread_create(&th[i], NULL, mc_thread, &mcs[i]);
    }
    for (int i = 0; i < MC_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < MC_THREADS; i++)
        cr_assert_eq(mcs[i].failures, 0, "thread %d saw %d mismatches/errors", i,
                     mcs[i].failures);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    p = openpool();
    v = openvol(p, "m");
    uint8_t *buf = malloc(MC_REGION);
    for (int i = 0; i < MC_THREADS; i++) {
        cr_assert_eq(vv_vol_read(v, buf, MC_REGION, (uint64_t)i * MC_REGION), 0);
        cr_assert(memcmp(buf, mcs[i].model, MC_REGION) == 0, "region %d after reopen", i);
    }
    free(buf);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    unsetenv("VVFS_TXG_INTERVAL_MS");
    rmpool();
}

/*
 * Randomized model check with threads sharing extents: thread i owns the 512-byte sectors s
 * with s % MS_THREADS == i of one shared region, so every 4 KiB block is written by all of
 * them at once, each write a partial-block merge of the block's other sectors.  If two merges
 * of one block in one txg are not serialized, one thread's sector is lost (the later merge
 * copies the block as it was before the earlier one).  Commits every few ms race with it.
 */
#define MS_THREADS 4
#define MS_REGION (256u << 10)
#define MS_SECTORS (MS_REGION / 512u)

struct ms {
    struct vv_vol *v;
    int id;
    uint32_t tag[MS_SECTORS]; /* write tag of each owned sector, 0: never written */
    int failures;
};

static void *ms_thread(void *arg)
{
    struct ms *m = arg;
    unsigned seed = (unsigned)m->id * 104729u + 3;
    uint8_t buf[512], exp[512];
    for (int op = 1; op <= 3000 && !m->failures; op++) {
        uint32_t s = ((uint32_t)rand_r(&seed) % (MS_SECTORS / MS_THREADS)) * MS_THREADS +
                     (uint32_t)m->id;
        uint64_t off = (uint64_t)s * 512;
        if (rand_r(&seed) % 3) {
            uint32_t tag = (uint32_t)op << 4 | (uint32_t)m->id;
            fill(buf, off, 512, tag);
            if (vv_vol_write(m->v, buf, 512, off))
                m->failures++;
            m->tag[s] = tag;
        } else {
            if (vv_vol_read(m->v, buf, 512, off))
                m->failures++;
            if (m->tag[s])
                fill(exp, off, 512, m->tag[s]);
            else
                memset(exp, 0, 512);
            if (memcmp(buf, exp, 512))
                m->failures++;
        }
    }
    return NULL;
}

static void ms_verify(struct vv_vol *v, struct ms *ms)
{
    uint8_t buf[512], exp[512];
    for (uint32_t s = 0; s < MS_SECTORS; s++) {
        uint32_t tag = ms[s % MS_THREADS].tag[s];
        cr_assert_eq(vv_vol_read(v, buf, 512, (uint64_t)s * 512), 0);
        if (tag)
            fill(exp, (uint64_t)s * 512, 512, tag);
        else
            memset(exp, 0, 512);
        cr_assert(memcmp(buf, exp, 512) == 0, "sector %u (thread %u) lost its last write", s,
                  s % MS_THREADS);
    }
}

static void ms_run(uint32_t extent)
{
    setenv("VVFS_TXG_INTERVAL_MS", "7", 1);
    mkpool(64 << 20, extent);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "s", MS_REGION);
    static struct ms ms[MS_THREADS];
    pthread_t th[MS_THREADS];
    for (int i = 0; i < MS_THREADS; i++) {
        memset(&ms[i], 0, sizeof(ms[i]));
        ms[i].v = v;
        ms[i].id = i;
        pthread_create(&th[i], NULL, ms_thread, &ms[i]);
    }
    for (int i = 0; i < MS_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < MS_THREADS; i++)
        cr_assert_eq(ms[i].failures, 0, "thread %d saw %d mismatches/errors", i,
                     ms[i].failures);
    ms_verify(v, ms);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    p = openpool();
    v = openvol(p, "s");
    ms_verify(v, ms);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    unsetenv("VVFS_TXG_INTERVAL_MS");
    rmpool();
}

Test(model, threads_sharing_extents_by_sector_4k, .timeout = 120)
{
    ms_run(4096);
}

Test(model, threads_sharing_extents_by_sector_16k, .timeout = 120)
{
    ms_run(16384);
}

/* Freed slots are reused before they are punched: a reused slot's old data must never show. */
Test(io, reused_slots_never_show_old_data)
{
    mkpool(16 << 20, 65536);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 8 << 20);
    uint8_t *buf = malloc(65536), *chk = malloc(65536);
    memset(buf, 0xab, 65536);
    cr_assert_eq(vv_vol_write(v, buf, 65536, 0), 0);
    cr_assert_eq(vv_vol_write(v, buf, 65536, 65536), 0);
    cr_assert_eq(vv_vol_write(v, buf, 65536, 2 * 65536), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    /* free extent 0's slot, then write 100 bytes into never-written extent 5 */
    cr_assert_eq(vv_vol_discard(v, 0, 65536), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    memset(buf, 0x11, 100);
    cr_assert_eq(vv_vol_write(v, buf, 100, 5 * 65536 + 1000), 0);
    /* free extent 2's slot; discard extent 1 and rewrite 10 bytes of it in the same txg */
    cr_assert_eq(vv_vol_discard(v, 2 * 65536, 65536), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    cr_assert_eq(vv_vol_discard(v, 65536, 65536), 0);
    memset(buf, 0x22, 10);
    cr_assert_eq(vv_vol_write(v, buf, 10, 65536 + 30000), 0);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(vv_vol_read(v, chk, 65536, 5 * 65536), 0);
        for (int i = 0; i < 65536; i++)
            cr_assert_eq(chk[i], i >= 1000 && i < 1100 ? 0x11 : 0, "round %d ext 5 byte %d",
                         round, i);
        cr_assert_eq(vv_vol_read(v, chk, 65536, 65536), 0);
        for (int i = 0; i < 65536; i++)
            cr_assert_eq(chk[i], i >= 30000 && i < 30010 ? 0x22 : 0, "round %d ext 1 byte %d",
                         round, i);
        cr_assert_eq(vv_vol_flush(v), 0); /* second round: from committed state */
    }
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(chk);
    rmpool();
}

/* the slot of every extent of the pool (one entry per extent: the test wrote each once),
 * read from the extent map in LMDB; IDX_MAX entries at most, by extent index */
static void extent_slots(uint64_t *slots, size_t idx_max)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    meta_db_open("xmap", MDB_RDONLY, &env, &txn, &dbi);
    struct xmap x = {.map = dbi, .nslots = UINT64_MAX};
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    struct xkey k;
    static struct xver v;
    const char *bad = NULL;
    int rc;
    for (rc = xmap_cursor_get(&x, cur, MDB_FIRST, &k, &v, &bad); rc == 0;
         rc = xmap_cursor_get(&x, cur, MDB_NEXT, &k, &v, &bad)) {
        for (uint64_t m = xmap_datamask(&v); m; m &= m - 1) {
            uint64_t idx = (k.chunk << XMAP_CHUNK_SHIFT) + (uint64_t)__builtin_ctzll(m);
            cr_assert_lt(idx, idx_max);
            slots[idx] = v.slot[__builtin_ctzll(m)];
        }
    }
    cr_assert_eq(rc, ENOENT, "map walk: %s", bad ? bad : strerror(rc));
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* bytes allocated to data file I of the pool */
static uint64_t data_file_bytes(int i)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/data.%d", pooldir, i);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

struct seq_arg {
    struct vv_vol *v;
    uint64_t off;
};

static void *seq_writer(void *arg)
{
    struct seq_arg *a = arg;
    uint8_t *buf = malloc(1 << 20);
    for (uint64_t o = a->off; o < a->off + (4 << 20); o += 1 << 20) {
        fill(buf, o, 1 << 20, 7);
        cr_assert_eq(vv_vol_write(a->v, buf, 1 << 20, o), 0);
    }
    free(buf);
    return NULL;
}

/* Concurrent sequential writers each get whole runs of slots: every 1 MiB request at 4K
 * extents lands in 256 consecutive slots of one chunk, that is contiguously in one data file
 * (slots are taken a run at a time, and a chunk of a new pool is 1 MiB). */
Test(io, concurrent_sequential_writes_stay_contiguous)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    pthread_t th[4];
    struct seq_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct seq_arg){v, (uint64_t)i << 22};
        cr_assert_eq(pthread_create(&th[i], NULL, seq_writer, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(vv_vol_flush(v), 0);
    uint64_t total = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t b = data_file_bytes(i);
        cr_assert_eq(b % (1 << 20), 0, "data.%d holds %llu bytes, not whole MiB", i,
                     (unsigned long long)b);
        total += b;
    }
    cr_assert_eq(total, 16 << 20);
    uint8_t *buf = malloc(1 << 20), *exp = malloc(1 << 20);
    for (uint64_t o = 0; o < (16 << 20); o += 1 << 20) {
        cr_assert_eq(vv_vol_read(v, buf, 1 << 20, o), 0);
        fill(exp, o, 1 << 20, 7);
        cr_assert_eq(memcmp(buf, exp, 1 << 20), 0, "data at %llu", (unsigned long long)o);
    }
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    static uint64_t slots[4096];
    extent_slots(slots, 4096);
    for (size_t i = 0; i < 4096; i++)
        if (i % 256)
            cr_assert_eq(slots[i], slots[i - 1] + 1, "extent %zu: slot %llu after %llu", i,
                         (unsigned long long)slots[i], (unsigned long long)slots[i - 1]);
        else
            cr_assert_eq(slots[i] % 256, 0, "extent %zu starts a chunk", i);
    free(buf);
    free(exp);
    rmpool();
}

/* A pool made before the `chunk_slots` config key keeps its layout: chunks of 16 slots. */
Test(pool, first_format_layout_is_kept)
{
    mkpool(64 << 20, 4096);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    meta_db_open("config", 0, &env, &txn, &dbi);
    MDB_val k = {11, (void *)"chunk_slots"};
    cr_assert_eq(mdb_del(txn, dbi, &k, NULL), 0, "a new pool records its chunk size");
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    uint8_t *buf = malloc(1 << 20), *exp = malloc(1 << 20);
    fill(buf, 0, 1 << 20, 3);
    cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    /* 256 slots in chunks of 16 dealt round-robin over 8 files: 128 KiB in each */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(data_file_bytes(i), 128 << 10, "data.%d holds %llu bytes", i,
                     (unsigned long long)data_file_bytes(i));
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    p = openpool();
    v = openvol(p, "v");
    cr_assert_eq(vv_vol_read(v, exp, 1 << 20, 0), 0);
    cr_assert_eq(memcmp(buf, exp, 1 << 20), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(exp);
    rmpool();
}

/* After random overwrites the reclaim queue holds scattered slots; a sequential write must
 * still get long runs (from empty space), not be built from those scattered slots. */
Test(io, sequential_write_after_random_overwrites_gets_long_runs)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    uint8_t *buf = malloc(1 << 20);
    for (uint64_t o = 0; o < (16 << 20); o += 1 << 20) {
        fill(buf, o, 1 << 20, 1);
        cr_assert_eq(vv_vol_write(v, buf, 1 << 20, o), 0);
    }
    cr_assert_eq(vv_vol_flush(v), 0);
    srand(42);
    for (int i = 0; i < 2000; i++) {
        uint64_t o = (uint64_t)(rand() % 4096) * 4096;
        fill(buf, o, 4096, 2);
        cr_assert_eq(vv_vol_write(v, buf, 4096, o), 0);
    }
    cr_assert_eq(vv_vol_flush(v), 0); /* the old slots of the overwritten extents are freed */
    for (uint64_t o = 0; o < (4 << 20); o += 1 << 20) {
        fill(buf, o, 1 << 20, 3);
        cr_assert_eq(vv_vol_write(v, buf, 1 << 20, o), 0);
    }
    cr_assert_eq(vv_vol_flush(v), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    static uint64_t slots[4096];
    extent_slots(slots, 4096);
    for (size_t mib = 0; mib < 4; mib++) {
        unsigned breaks = 0;
        for (size_t i = mib * 256 + 1; i < (mib + 1) * 256; i++)
            breaks += slots[i] != slots[i - 1] + 1;
        cr_assert_leq(breaks, 8, "MiB %zu of a sequential write is in %u pieces", mib,
                      breaks + 1);
    }
    free(buf);
    rmpool();
}

static uint64_t data_bytes_total(void)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t += data_file_bytes(i);
    return t;
}

/* Freed slots return to the host as holes: a discarded contiguous range at once (a few long
 * punches), isolated slots over a few seconds (the reclaimer's budget is 512 punches a
 * second). */
Test(io, freed_space_is_punched_in_the_background, .timeout = 60)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *a = mkvol(p, "a", 32 << 20);
    struct vv_vol *b = mkvol(p, "b", 32 << 20);
    uint8_t *buf = malloc(1 << 20);
    for (uint64_t o = 0; o < (16 << 20); o += 1 << 20) {
        fill(buf, o, 1 << 20, 1);
        cr_assert_eq(vv_vol_write(a, buf, 1 << 20, o), 0);
    }
    /* 2000 extents each in a and b, alternating: a's slots end up isolated */
    for (uint64_t i = 0; i < 2000; i++) {
        fill(buf, i * 4096, 4096, 2);
        cr_assert_eq(vv_vol_write(a, buf, 4096, (16 << 20) + i * 4096), 0);
        cr_assert_eq(vv_vol_write(b, buf, 4096, i * 4096), 0);
    }
    cr_assert_eq(vv_vol_flush(a), 0);
    uint64_t before = data_bytes_total();
    cr_assert_geq(before, (16 << 20) + 4000 * 4096);
    cr_assert_eq(vv_vol_discard(a, 0, 32 << 20), 0);
    cr_assert_eq(vv_vol_flush(a), 0);
    /* b's data, and the filesystem's extent tree blocks for files this fragmented (one leaf
     * block per file is 32 KiB in all) */
    uint64_t now = before, want = 2000 * 4096 + 8 * 16384;
    for (int i = 0; i < 150 && now > want; i++) {
        usleep(100 * 1000);
        now = data_bytes_total();
    }
    cr_assert_leq(now, want, "%llu bytes allocated to the data files 15 s after a discard, "
                  "not at most %llu", (unsigned long long)now, (unsigned long long)want);
    for (uint64_t i = 0; i < 2000; i += 97) {
        uint8_t chk[4096];
        cr_assert_eq(vv_vol_read(b, chk, 4096, i * 4096), 0);
        fill(buf, i * 4096, 4096, 2);
        cr_assert_eq(memcmp(chk, buf, 4096), 0, "b extent %llu", (unsigned long long)i);
    }
    vv_vol_close(a);
    vv_vol_close(b);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    rmpool();
}

/* pages of data file I resident in the page cache in [off, off+len) */
static size_t resident_pages(int i, off_t off, size_t len)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/data.%d", pooldir, i);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off);
    cr_assert_neq(m, MAP_FAILED);
    unsigned char vec[1024];
    cr_assert_leq(len / 4096, sizeof(vec));
    cr_assert_eq(mincore(m, len, vec), 0);
    size_t n = 0;
    for (size_t k = 0; k < len / 4096; k++)
        n += vec[k] & 1;
    munmap(m, len);
    close(fd);
    return n;
}

/* A long run read back is dropped from the data file's page cache (streaming data must not
 * push LMDB's pages out of a memory-limited daemon); a single extent stays cached. */
Test(io, reads_leave_no_page_cache_behind)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    uint8_t *buf = malloc(1 << 20);
    fill(buf, 0, 1 << 20, 5);
    cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0); /* slots 0..255: data.0 at 0 */
    cr_assert_eq(vv_vol_flush(v), 0);
    cr_assert_eq(vv_vol_read(v, buf, 1 << 20, 0), 0);
    cr_assert_eq(resident_pages(0, 0, 1 << 20), 0, "a 1 MiB run stayed in the page cache");
    /* a short run into an aligned buffer goes around the page cache (direct I/O), into an
     * unaligned one through it; both read the right data */
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    uint8_t *al, want[4096];
    cr_assert_eq(posix_memalign((void **)&al, 4096, 8192), 0);
    fill(want, 8192, 4096, 5);
    cr_assert_eq(vv_vol_read(v, al, 4096, 8192), 0);
    cr_assert(memcmp(al, want, 4096) == 0);
    cr_assert_eq(resident_pages(0, 8192, 4096), st.direct_io ? 0 : 1,
                 "a short read into an aligned buffer %s",
                 st.direct_io ? "stayed in the page cache" : "was not cached");
    cr_assert_eq(vv_vol_read(v, al + 1, 4096, 8192), 0);
    cr_assert(memcmp(al + 1, want, 4096) == 0);
    cr_assert_eq(resident_pages(0, 8192, 4096), 1, "an unaligned short read is not cached");
    /* a partial read of a block (verified as a whole) goes direct too, and so does a read of
     * data written but not yet committed (the kernel writes back what is dirty first) */
    fill(buf, 3 << 20, 4096, 6);
    cr_assert_eq(vv_vol_write(v, buf + 100, 1000, (3 << 20) + 100), 0); /* buffered, dirty */
    cr_assert_eq(vv_vol_read(v, al, 1000, (3 << 20) + 100), 0);
    cr_assert(memcmp(al, buf + 100, 1000) == 0, "uncommitted partial write reads back");
    cr_assert_eq(vv_vol_flush(v), 0);
    memset(al, 0, 4096);
    cr_assert_eq(vv_vol_read(v, al, 512, 20480), 0);
    fill(want, 20480, 512, 5);
    cr_assert(memcmp(al, want, 512) == 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    free(al);
    free(buf);
    rmpool();
}

/* A write whose data cannot reach the data file fails with EIO and changes nothing: the block
 * keeps what it had (full and partial writes, a block discarded earlier in the same txg, and a
 * batch of whole blocks).  RLIMIT_FSIZE makes every pwrite past the first slot of each data
 * file fail with EFBIG, like a disk error would. */
Test(io, failed_write_keeps_the_old_content)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    uint8_t *a = malloc(1 << 20), *b = malloc(1 << 20), *r = malloc(1 << 20);
    fill(a, 0, 4096, 1);
    fill(a + 4096, 4096, 4096, 1);
    cr_assert_eq(vv_vol_write(v, a, 8192, 0), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    cr_assert_eq(vv_vol_discard(v, 4096, 4096), 0); /* block 1: a hole, in the open txg */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    fill(b, 0, 1 << 20, 2);
    int e1 = vv_vol_write(v, b, 4096, 0);        /* whole block */
    int e2 = vv_vol_write(v, b, 100, 1000);      /* partial block: merge */
    int e3 = vv_vol_write(v, b, 4096, 4096);     /* block discarded in this txg */
    int e4 = vv_vol_write(v, b, 1 << 20, 1 << 20); /* a batch of whole blocks */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(e1, EIO);
    cr_assert_eq(e2, EIO);
    cr_assert_eq(e3, EIO);
    cr_assert_eq(e4, EIO);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(vv_vol_read(v, r, 8192, 0), 0);
        cr_assert(memcmp(r, a, 4096) == 0, "block 0 changed by a failed write (round %d)", round);
        for (int i = 4096; i < 8192; i++)
            cr_assert_eq(r[i], 0, "discarded block 1 changed by a failed write");
        cr_assert_eq(vv_vol_read(v, r, 1 << 20, 1 << 20), 0);
        for (int i = 0; i < (1 << 20); i++)
            cr_assert_eq(r[i], 0, "a failed batch left data at byte %d", i);
        cr_assert_eq(vv_vol_flush(v), 0);
        if (round == 0) {
            vv_vol_close(v);
            cr_assert_eq(vv_pool_close(p), 0);
            p = openpool();
            v = openvol(p, "v");
        }
    }
    /* and the volume still takes writes */
    cr_assert_eq(vv_vol_write(v, b, 4096, 0), 0);
    cr_assert_eq(vv_vol_read(v, r, 4096, 0), 0);
    cr_assert(memcmp(r, b, 4096) == 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(a);
    free(b);
    free(r);
    rmpool();
}

/* The runs of one request that go direct are issued together (meta/aio.c) and land where
 * they belong: a write that spans two data files, a read of 256 blocks whose slots are in
 * reverse order, and a batch that fails (RLIMIT_FSIZE: EFBIG on every write past the first
 * slot of a file) keeps the old content. */
Test(io, runs_of_one_request_go_to_disk_together)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    uint8_t *w = aligned_alloc(4096, 3 << 20), *r = aligned_alloc(4096, 3 << 20);
    struct vv_pool_status st0, st;
    vv_pool_get_status(p, &st0);
    /* slots 0..15, then 16..271: 960 KiB in data.0 and 64 KiB in data.1, one batch of two */
    fill(w, 0, 64 << 10, 1);
    cr_assert_eq(vv_vol_write(v, w, 64 << 10, 0), 0);
    fill(w + (64 << 10), 64 << 10, 1 << 20, 1);
    cr_assert_eq(vv_vol_write(v, w + (64 << 10), 1 << 20, 64 << 10), 0);
    vv_pool_get_status(p, &st);
    cr_assert_geq(st.batched_ios, st0.batched_ios + 2, "the write's two runs went together");
    /* blocks of [2M, 3M) written last to first: every block is a run of its own */
    fill(w + (2 << 20), 2 << 20, 1 << 20, 2);
    for (int b = 255; b >= 0; b--)
        cr_assert_eq(vv_vol_write(v, w + (2 << 20) + b * 4096, 4096, (2 << 20) + b * 4096), 0);
    memset(w + (64 << 10) + (1 << 20), 0, (2 << 20) - (64 << 10) - (1 << 20)); /* a hole */
    for (int round = 0; round < 2; round++) { /* uncommitted, then committed (verified) */
        vv_pool_get_status(p, &st0);
        memset(r, 0xee, 3 << 20);
        cr_assert_eq(vv_vol_read(v, r, 3 << 20, 0), 0);
        cr_assert(memcmp(r, w, 3 << 20) == 0, "round %d: the volume reads back wrong", round);
        vv_pool_get_status(p, &st);
        if (round == 1)
            cr_assert_geq(st.batched_ios, st0.batched_ios + 256,
                          "the 256 reversed blocks were read in batches");
        cr_assert_eq(vv_vol_flush(v), 0);
    }
    /* a batch whose writes fail: EIO, and the blocks keep what they had */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    uint8_t *n = aligned_alloc(4096, 1 << 20);
    fill(n, 0, 1 << 20, 3);
    vv_pool_get_status(p, &st0);
    int err = vv_vol_write(v, n, 1 << 20, 32 << 10);
    vv_pool_get_status(p, &st);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(err, EIO);
    cr_assert_gt(st.batched_ios, st0.batched_ios, "the failed write went as a batch");
    cr_assert_eq(vv_vol_read(v, r, 3 << 20, 0), 0);
    cr_assert(memcmp(r, w, 3 << 20) == 0, "a failed batch changed the volume");
    cr_assert_eq(vv_vol_flush(v), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(w);
    free(r);
    free(n);
    rmpool();
}

/* Whole blocks with their checksums (what replication moves): a read gives each block's
 * xxh3-64 (stored, or computed for holes and open-txg data), a write stores the ones it is
 * given (a wrong one then fails every read of the block), and a range that is not whole
 * blocks is EINVAL. */
Test(io, blocks_travel_with_their_checksums)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 4 << 20);
    const size_t bs = 4096, nb = 64;
    uint8_t *w = aligned_alloc(4096, nb * bs), *r = aligned_alloc(4096, nb * bs);
    uint64_t cs[64], want[64];
    fill(w, 0, 8 * bs, 1); /* blocks 0..7 committed, 8..9 holes, 10 in the open txg */
    cr_assert_eq(vv_vol_write(v, w, 8 * bs, 0), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    fill(w + 10 * bs, 10 * bs, bs, 2);
    cr_assert_eq(vv_vol_write(v, w + 10 * bs, bs, 10 * bs), 0);
    memset(cs, 0, sizeof(cs));
    cr_assert_eq(vv_vol_read_csums(v, r, 12 * bs, 0, cs), 0);
    for (size_t i = 0; i < 12; i++)
        cr_assert_eq(cs[i], XXH3_64bits(r + i * bs, bs), "block %zu's checksum", i);
    cr_assert_eq(vv_vol_read_csums(v, r, bs, 512, cs), EINVAL);
    cr_assert_eq(vv_vol_read_csums(v, r, 100, 0, cs), EINVAL);
    cr_assert_eq(vv_vol_write_csums(v, w, bs + 1, 0, cs), EINVAL);
    /* written with the right checksums: a run (16..47) and a single block (50) */
    fill(w, 16 * bs, 33 * bs, 3);
    for (size_t i = 0; i < 33; i++)
        want[i] = XXH3_64bits(w + i * bs, bs);
    cr_assert_eq(vv_vol_write_csums(v, w, 32 * bs, 16 * bs, want), 0);
    cr_assert_eq(vv_vol_write_csums(v, w + 32 * bs, bs, 50 * bs, want + 32), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    cr_assert_eq(vv_vol_read_csums(v, r, 32 * bs, 16 * bs, cs), 0);
    cr_assert(memcmp(r, w, 32 * bs) == 0 && memcmp(cs, want, 32 * 8) == 0);
    cr_assert_eq(vv_vol_read(v, r, bs, 50 * bs), 0);
    cr_assert(memcmp(r, w + 32 * bs, bs) == 0);
    /* written with wrong ones (a run, 52..53, and a single block, 60): they are stored */
    want[0] ^= 1;
    want[1] ^= 1;
    want[2] ^= 1;
    cr_assert_eq(vv_vol_write_csums(v, w, 2 * bs, 52 * bs, want), 0);
    cr_assert_eq(vv_vol_write_csums(v, w + 2 * bs, bs, 60 * bs, want + 2), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    cr_assert_eq(vv_vol_read(v, r, bs, 52 * bs), EIO);
    cr_assert_eq(vv_vol_read(v, r, bs, 53 * bs), EIO);
    cr_assert_eq(vv_vol_read(v, r, bs, 60 * bs), EIO);
    cr_assert_eq(vv_vol_discard(v, 52 * bs, 2 * bs), 0);
    cr_assert_eq(vv_vol_discard(v, 60 * bs, bs), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(w);
    free(r);
    rmpool();
}

/* Deleting a record that is not there (a replication session deleted while its create was
 * still recording it) is ENOENT and leaves no write txn open: the next write goes through
 * (it waited for ever on LMDB's writer lock: a DELETE in apiconc hung the daemon). */
Test(pool, deleting_a_missing_record_leaves_no_txn_open, .timeout = 30)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_err e = {0};
    cr_assert_eq(vv_record_delete(p, 42, &e), ENOENT);
    cr_assert_eq(vv_record_put(p, 42, "x", 1, &e), 0, "%s", e.msg);
    cr_assert_eq(vv_record_delete(p, 42, &e), 0, "%s", e.msg);
    cr_assert_eq(vv_pool_close(p), 0);
    rmpool();
}

/* A pool whose LMDB map fills grows it and goes on: no MDB_MAP_FULL, no poisoned pool. */
Test(pool, full_metadata_map_grows, .timeout = 60)
{
    mkpool(256 << 20, 4096);
    setenv("VVFS_LMDB_MAP_SIZE", "262144", 1); /* 256 KiB: full after a few thousand blocks */
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 128 << 20);
    uint8_t *buf = malloc(4096), *r = malloc(4096);
    srand(7);
    for (int i = 0; i < 20000; i++) {
        uint64_t blk = (uint64_t)(rand() % 32768);
        fill(buf, blk * 4096, 4096, 3);
        cr_assert_eq(vv_vol_write(v, buf, 4096, blk * 4096), 0, "write %d", i);
        if (i % 2000 == 1999)
            cr_assert_eq(vv_vol_flush(v), 0, "commit %d with a full map", i / 2000);
    }
    cr_assert_eq(vv_vol_flush(v), 0);
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    srand(7);
    for (int i = 0; i < 20000; i++) {
        uint64_t blk = (uint64_t)(rand() % 32768);
        fill(buf, blk * 4096, 4096, 3);
        cr_assert_eq(vv_vol_read(v, r, 4096, blk * 4096), 0);
        cr_assert(memcmp(r, buf, 4096) == 0, "block %llu", (unsigned long long)blk);
    }
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    unsetenv("VVFS_LMDB_MAP_SIZE");
    char path[300];
    snprintf(path, sizeof(path), "%s/meta.mdb", pooldir);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_gt(sb.st_size, 262144, "the metadata outgrew the first map (%lld bytes)",
                 (long long)sb.st_size);
    fsck_clean();
    free(buf);
    free(r);
    rmpool();
}

static uint64_t pool_used(struct vv_pool *p, uint64_t *freeing)
{
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    if (freeing)
        *freeing = st.freeing;
    return st.used;
}

/* Deleting a volume returns at once and frees its blocks in the background, in small txns;
 * a close in the middle leaves a pool that fsck finds clean and that the next open finishes
 * freeing.  The name is free for a new volume at once. */
Test(volume, delete_frees_in_the_background_and_resumes, .timeout = 60)
{
    setenv("VVFS_REAP_BATCH", "4", 1);     /* 4 chunk versions (1 MiB) a txn */
    setenv("VVFS_REAP_PAUSE_MS", "100", 1); /* and slowly: the close comes in the middle */
    mkpool(256 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "big", 64 << 20);
    uint8_t *buf = malloc(1 << 20);
    for (uint64_t o = 0; o < (64 << 20); o += 1 << 20) {
        fill(buf, o, 1 << 20, 9);
        cr_assert_eq(vv_vol_write(v, buf, 1 << 20, o), 0);
    }
    vv_vol_close(v);
    struct vv_err e = {0};
    cr_assert_eq(vv_volume_delete(p, "big", &e), 0, "%s", e.msg);
    uint64_t freeing;
    uint64_t used = pool_used(p, &freeing);
    cr_assert_gt(freeing, 32 << 20, "freeing %llu right after the delete",
                 (unsigned long long)freeing);
    cr_assert_gt(used, 32 << 20, "the blocks are freed in the background, not in the delete");
    v = mkvol(p, "big", 4 << 20); /* the name is free again */
    fill(buf, 0, 1 << 20, 10);
    cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean(); /* in the middle of freeing: clean */
    unsetenv("VVFS_REAP_PAUSE_MS");
    p = openpool();
    for (int i = 0; i < 100 && (pool_used(p, &freeing) > (1 << 20) || freeing); i++)
        usleep(100000);
    cr_assert_eq(pool_used(p, &freeing), 1 << 20, "only the new volume's 1 MiB is in use");
    cr_assert_eq(freeing, 0);
    v = openvol(p, "big");
    uint8_t *r = malloc(1 << 20);
    cr_assert_eq(vv_vol_read(v, r, 1 << 20, 0), 0);
    cr_assert(memcmp(r, buf, 1 << 20) == 0, "the new volume of the same name kept its data");
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    unsetenv("VVFS_REAP_BATCH");
    fsck_clean();
    free(buf);
    free(r);
    rmpool();
}

/* SEEK_DATA, SEEK_HOLE and discard on a 1 PiB thin volume, data only near its end and in the
 * open txg: they visit chunks that have data, not the range (the test's timeout bounds it). */
Test(io, seek_and_discard_on_a_huge_sparse_volume, .timeout = 60)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    uint64_t size = 1ULL << 50, at = size - (1 << 20);
    struct vv_vol *v = mkvol(p, "huge", size);
    uint8_t buf[4096];
    fill(buf, at, 4096, 5);
    cr_assert_eq(vv_vol_write(v, buf, 4096, at), 0);
    for (int round = 0; round < 2; round++) { /* dirty, then committed */
        uint64_t o = 0;
        cr_assert_eq(vv_vol_seek(v, 0, 3 /* SEEK_DATA */, &o), 0);
        cr_assert_eq(o, at, "SEEK_DATA found %llu", (unsigned long long)o);
        cr_assert_eq(vv_vol_seek(v, at, 4 /* SEEK_HOLE */, &o), 0);
        cr_assert_eq(o, at + 4096);
        cr_assert_eq(vv_vol_seek(v, at + 4096, 3, &o), ENXIO);
        cr_assert_eq(vv_vol_flush(v), 0);
    }
    cr_assert_eq(vv_vol_discard(v, 0, size), 0);
    uint64_t o;
    cr_assert_eq(vv_vol_seek(v, 0, 3, &o), ENXIO);
    cr_assert_eq(vv_vol_flush(v), 0);
    cr_assert_eq(vv_vol_seek(v, 0, 3, &o), ENXIO);
    cr_assert_eq(pool_used(p, NULL), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    rmpool();
}

/* A full pool keeps a reserve for overwrites: once new data is refused (ENOSPC), data already
 * written can still be rewritten, whole or in part, again and again, and partial discards
 * work; the status says what new data may still take. */
static void full_pool_overwrites(uint32_t extent)
{
    mkpool(4 << 20, extent);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 8 << 20);
    uint8_t *buf = malloc(extent), *r = malloc(extent);
    uint64_t n = 0;
    for (;; n++) {
        fill(buf, n * extent, extent, 1);
        int err = vv_vol_write(v, buf, extent, n * extent);
        if (err) {
            cr_assert_eq(err, ENOSPC, "write %llu: %d", (unsigned long long)n, err);
            break;
        }
    }
    cr_assert_eq(vv_vol_flush(v), 0);
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    cr_assert_gt(st.reserve, 0);
    cr_assert_eq(st.available, 0, "available %llu when full", (unsigned long long)st.available);
    cr_assert_eq(st.used + st.reserve, st.capacity, "the pool fills up to its reserve");
    for (int round = 2; round < 40; round++) {
        for (uint64_t i = 0; i < n; i += 3) {
            fill(buf, i * extent, extent, (uint32_t)round);
            cr_assert_eq(vv_vol_write(v, buf, extent, i * extent), 0,
                         "overwrite of block %llu in round %d", (unsigned long long)i, round);
        }
        fill(buf, 1 * extent + 100, 200, (uint32_t)round);
        cr_assert_eq(vv_vol_write(v, buf, 200, 1 * extent + 100), 0, "partial overwrite");
        cr_assert_eq(vv_vol_discard(v, 4 * extent + 10, 100), 0, "partial discard");
        if (round % 8 == 0)
            cr_assert_eq(vv_vol_flush(v), 0);
    }
    fill(buf, n * extent, extent, 1);
    cr_assert_eq(vv_vol_write(v, buf, extent, n * extent), ENOSPC, "new data is still refused");
    fill(buf, 0, extent, 39);
    cr_assert_eq(vv_vol_read(v, r, extent, 0), 0);
    cr_assert(memcmp(r, buf, extent) == 0);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(r);
    rmpool();
}

Test(io, full_pool_still_takes_overwrites_4k, .timeout = 60)
{
    full_pool_overwrites(4096);
}

Test(io, full_pool_still_takes_overwrites_64k, .timeout = 60)
{
    full_pool_overwrites(65536);
}

/* The births index answers "which chunks changed between gen a and gen b" (what replication
 * and snapshot deletion walk): chunks written in three txgs, walked between their gens. */
Test(xmap, births_walk_between_gens)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 32 << 20);
    uint8_t buf[4096];
    memset(buf, 7, sizeof(buf));
    uint64_t gens[3];
    /* txg k writes chunks 10k .. 10k+k (256 KiB each at 4 KiB blocks) */
    for (int k = 0; k < 3; k++) {
        for (int c = 10 * k; c <= 10 * k + k; c++)
            cr_assert_eq(vv_vol_write(v, buf, 4096, (uint64_t)c << 18), 0);
        cr_assert_eq(vv_vol_flush(v), 0);
        struct vv_pool_status st;
        vv_pool_get_status(p, &st);
        gens[k] = st.committed_gen;
    }
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    meta_db_open("xbirths", MDB_RDONLY, &env, &txn, &dbi);
    struct xmap x = {.births = dbi};
    struct {
        uint64_t after, upto;
        int n;
        int chunks[8];
    } cases[] = {
        {0, UINT64_MAX - 1, 6, {0, 10, 11, 20, 21, 22}},
        {gens[0], gens[1], 2, {10, 11}},
        {gens[0], gens[2], 5, {10, 11, 20, 21, 22}},
        {gens[1], gens[2], 3, {20, 21, 22}},
        {gens[2], UINT64_MAX - 1, 0, {0}},
        {0, gens[0], 1, {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct xmap_births c;
        cr_assert_eq(xmap_births_open(&x, txn, 1, cases[i].after, cases[i].upto, &c), 0);
        uint64_t birth, chunk, prev_birth = 0;
        int n = 0;
        int err;
        while ((err = xmap_births_next(&c, &birth, &chunk)) == 0) {
            cr_assert_lt(n, cases[i].n, "case %zu: more chunks than expected", i);
            cr_assert_eq(chunk, (uint64_t)cases[i].chunks[n], "case %zu: chunk %d", i, n);
            cr_assert(birth > cases[i].after && birth <= cases[i].upto);
            cr_assert_geq(birth, prev_birth, "births come in gen order");
            prev_birth = birth;
            n++;
        }
        cr_assert_eq(err, ENOENT);
        cr_assert_eq(n, cases[i].n, "case %zu: %d chunks", i, n);
        xmap_births_close(&c);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    rmpool();
}

/* A commit that fails makes the pool read-only, and the status says so, with the errno and
 * when; a remount brings the pool back at its last committed state.  RLIMIT_FSIZE makes
 * LMDB's page writes fail (EFBIG) at the commit. */
Test(pool, failed_commit_shows_read_only_state, .timeout = 60)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 16 << 20);
    uint8_t *buf = malloc(1 << 20), *r = malloc(1 << 20);
    fill(buf, 0, 1 << 20, 1);
    cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0);
    cr_assert_eq(vv_vol_flush(v), 0);
    struct vv_pool_status st;
    vv_pool_get_status(p, &st);
    cr_assert_eq(st.read_only_errno, 0);
    fill(buf, 0, 1 << 20, 2);
    cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0); /* data written, not committed */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim = {.rlim_cur = 8192, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int err = vv_vol_flush(v);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_neq(err, 0, "the commit must fail");
    vv_pool_get_status(p, &st);
    cr_assert_neq(st.read_only_errno, 0, "the status must say the pool is read-only");
    cr_assert_gt(st.read_only_since, 0);
    cr_assert_neq(vv_vol_write(v, buf, 4096, 0), 0, "writes are refused");
    vv_vol_close(v);
    cr_assert_neq(vv_pool_close(p), 0, "close reports the failed commit");
    p = openpool();
    vv_pool_get_status(p, &st);
    cr_assert_eq(st.read_only_errno, 0, "a remount clears it");
    v = openvol(p, "v");
    fill(buf, 0, 1 << 20, 1);
    cr_assert_eq(vv_vol_read(v, r, 1 << 20, 0), 0);
    cr_assert(memcmp(r, buf, 1 << 20) == 0, "the pool is at its last committed state");
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(r);
    rmpool();
}

/* ---- control operations under concurrency ----------------------------------------------- */

#define CC_NAMES 5
#define CC_THREADS 6

struct cc {
    struct vv_pool *p;
    _Atomic bool stop;
    _Atomic unsigned long ops, bad;
    char bad_msg[512];
    pthread_mutex_t mu;
};

static void cc_check(struct cc *c, const char *op, int err, const struct vv_err *e)
{
    atomic_fetch_add(&c->ops, 1);
    if (err == 0 || err == ENOENT || err == EEXIST || err == EBUSY || err == ENOSPC)
        return;
    if (atomic_fetch_add(&c->bad, 1) == 0) {
        pthread_mutex_lock(&c->mu);
        snprintf(c->bad_msg, sizeof(c->bad_msg), "%s: %s (%s)", op, strerror(err),
                 e ? e->msg : "");
        pthread_mutex_unlock(&c->mu);
    }
}

/* create / resize / rename / delete / get / list / open+write on a few shared names */
static void *cc_thread(void *arg)
{
    struct cc *c = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    uint8_t blk[4096];
    memset(blk, 0xa5, sizeof(blk));
    while (!atomic_load(&c->stop)) {
        char a[8], b[8];
        snprintf(a, sizeof(a), "s%d", rand_r(&seed) % CC_NAMES);
        snprintf(b, sizeof(b), "s%d", rand_r(&seed) % CC_NAMES);
        uint64_t size = (uint64_t)(1 + rand_r(&seed) % 64) << 16;
        struct vv_err e = {0};
        struct vv_volume_info vi;
        int err;
        switch (rand_r(&seed) % 8) {
        case 0:
            err = vv_volume_create(c->p, a, size, &vi, &e);
            cc_check(c, "create", err, &e);
            break;
        case 1:
            err = vv_volume_delete(c->p, a, &e);
            cc_check(c, "delete", err, &e);
            break;
        case 2:
        case 3:
            err = vv_volume_resize(c->p, a, size, &e);
            cc_check(c, "resize", err, &e);
            break;
        case 4:
            err = vv_volume_rename(c->p, a, b, &e);
            cc_check(c, "rename", err, &e);
            break;
        case 5:
            err = vv_volume_get(c->p, a, &vi, &e);
            cc_check(c, "get", err, &e);
            if (!err && (strcmp(vi.name, a) || vi.size == 0 || vi.size % 4096))
                cc_check(c, "get returned a wrong record", EPROTO, NULL);
            break;
        case 6: {
            struct vv_volume_info *l;
            size_t n;
            err = vv_volume_list(c->p, &l, &n);
            cc_check(c, "list", err, NULL);
            for (size_t i = 0; !err && i + 1 < n; i++)
                if (strcmp(l[i].name, l[i + 1].name) >= 0)
                    cc_check(c, "list has a name twice or unsorted", EPROTO, NULL);
            if (!err)
                free(l);
            break;
        }
        default: {
            /* a handle on a volume keeps it from being deleted or shrunk meanwhile */
            err = vv_volume_get(c->p, a, &vi, NULL);
            struct vv_vol *h;
            if (!err)
                err = vv_vol_open(c->p, vi.id, &h);
            cc_check(c, "open", err, NULL);
            if (!err) {
                uint64_t sz = vv_vol_size(h);
                err = vv_vol_write(h, blk, sizeof(blk), (rand_r(&seed) % (sz / 4096)) * 4096);
                cc_check(c, "write", err, NULL);
                vv_vol_close(h);
            }
        }
        }
    }
    return NULL;
}

/* a writer on a volume of its own: every block it wrote reads back */
static void *cc_writer(void *arg)
{
    struct cc *c = arg;
    struct vv_vol *v = openvol(c->p, "data");
    uint8_t *buf = malloc(65536), *r = malloc(65536);
    uint32_t tag = 0;
    while (!atomic_load(&c->stop)) {
        uint64_t off = (uint64_t)(tag % 256) * 65536;
        fill(buf, off, 65536, ++tag);
        int err = vv_vol_write(v, buf, 65536, off);
        if (!err)
            err = vv_vol_read(v, r, 65536, off);
        if (err || memcmp(r, buf, 65536))
            cc_check(c, "data volume write/read back", err ? err : EILSEQ, NULL);
        if (tag % 64 == 0)
            cc_check(c, "flush", vv_vol_flush(v), NULL);
    }
    vv_vol_close(v);
    free(buf);
    free(r);
    return NULL;
}

static char *cc_list(struct vv_pool *p)
{
    struct vv_volume_info *l;
    size_t n;
    cr_assert_eq(vv_volume_list(p, &l, &n), 0);
    char *s = calloc(n + 1, 128);
    for (size_t i = 0; i < n; i++)
        sprintf(s + strlen(s), "%llu %s %llu\n", (unsigned long long)l[i].id, l[i].name,
                (unsigned long long)l[i].size);
    free(l);
    return s;
}

/* The operations of the control API against meta/ directly, from many threads on a few
 * shared names, while a writer works on another volume: every call answers 0 or an expected
 * refusal, the writer reads back what it wrote, the pool reopens to the same volumes, and
 * fsck is clean. */
Test(volume, concurrent_control_operations, .timeout = 120)
{
    mkpool(256 << 20, 4096);
    struct cc c = {.p = openpool()};
    pthread_mutex_init(&c.mu, NULL);
    vv_vol_close(mkvol(c.p, "data", 16 << 20));
    pthread_t t[CC_THREADS], w;
    for (int i = 0; i < CC_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, cc_thread, &c), 0);
    cr_assert_eq(pthread_create(&w, NULL, cc_writer, &c), 0);
    const char *s = getenv("VVFS_CC_SECONDS");
    sleep(s && atoi(s) > 0 ? (unsigned)atoi(s) : 6);
    atomic_store(&c.stop, true);
    for (int i = 0; i < CC_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_join(w, NULL);
    cr_assert_eq(atomic_load(&c.bad), 0, "%lu of %lu calls failed; first: %s",
                 atomic_load(&c.bad), atomic_load(&c.ops), c.bad_msg);
    cr_assert_gt(atomic_load(&c.ops), 1000, "only %lu operations ran", atomic_load(&c.ops));
    char *before = cc_list(c.p);
    cr_assert_eq(vv_pool_close(c.p), 0);
    c.p = openpool();
    char *after = cc_list(c.p);
    cr_assert(strcmp(after, before) == 0, "the volumes after a reopen differ: before:\n%s\nafter:\n%s",
              before, after);
    cr_assert_eq(vv_pool_close(c.p), 0);
    fsck_clean();
    free(before);
    free(after);
    rmpool();
}

/* ---- snapshots ---------------------------------------------------------------------------- */

#define SN_BLOCKS 512 /* 2 MiB at 4K: 8 chunks, so that writes and snapshots collide often */
#define SN_MAX 6

struct sn_model {
    uint32_t live[SN_BLOCKS];        /* tag of each block's content, 0: zeros */
    uint32_t snap[SN_MAX][SN_BLOCKS];
    char name[SN_MAX][16];
    uint64_t id[SN_MAX];
    int nsnaps;
};

static void sn_block(uint8_t *b, uint64_t blk, uint32_t tag)
{
    if (tag)
        fill(b, blk * 4096, 4096, tag);
    else
        memset(b, 0, 4096);
}

static void sn_verify(struct vv_vol *v, const uint32_t *want, const char *what)
{
    uint8_t *buf = malloc(SN_BLOCKS * 4096), blk[4096];
    cr_assert_eq(vv_vol_read(v, buf, SN_BLOCKS * 4096, 0), 0, "%s: read", what);
    for (uint64_t i = 0; i < SN_BLOCKS; i++) {
        sn_block(blk, i, want[i]);
        cr_assert(memcmp(buf + i * 4096, blk, 4096) == 0, "%s: block %llu is not tag %u",
                  what, (unsigned long long)i, want[i]);
    }
    free(buf);
}

static void sn_verify_all(struct vv_pool *p, struct vv_vol *live, struct sn_model *m)
{
    sn_verify(live, m->live, "live volume");
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, "v", &vi, NULL), 0);
    for (int s = 0; s < m->nsnaps; s++) {
        struct vv_vol *h;
        cr_assert_eq(vv_snap_open(p, vi.id, m->id[s], &h), 0, "open snapshot %s", m->name[s]);
        cr_assert_eq(vv_vol_size(h), SN_BLOCKS * 4096);
        uint8_t b[4096] = {0};
        cr_assert_eq(vv_vol_write(h, b, 4096, 0), EROFS, "snapshots are read-only");
        cr_assert_eq(vv_vol_discard(h, 0, 4096), EROFS);
        char what[64];
        snprintf(what, sizeof(what), "snapshot %s", m->name[s]);
        sn_verify(h, m->snap[s], what);
        vv_vol_close(h);
    }
}

static void sn_delete(struct vv_pool *p, struct sn_model *m, int s)
{
    struct vv_err e = {0};
    /* what it holds alone is exactly what its delete frees */
    struct vv_volume_info before, after;
    struct vv_snapshot_info si;
    cr_assert_eq(vv_pool_sync(p), 0);
    cr_assert_eq(vv_volume_get(p, "v", &before, NULL), 0);
    cr_assert_eq(vv_snapshot_get(p, "v", m->name[s], &si, NULL), 0);
    cr_assert_leq(si.exclusive, before.snapshots_used);
    cr_assert_leq(before.snapshots_used, before.used);
    cr_assert_eq(vv_snapshot_delete(p, "v", m->name[s], &e), 0, "delete %s: %s", m->name[s],
                 e.msg);
    cr_assert_eq(vv_volume_get(p, "v", &after, NULL), 0);
    cr_assert_eq(before.used - after.used, si.exclusive, "deleting %s freed %llu bytes, it "
                 "held %llu alone", m->name[s], (unsigned long long)(before.used - after.used),
                 (unsigned long long)si.exclusive);
    cr_assert_eq(before.snapshots_used - after.snapshots_used, si.exclusive);
    for (int j = s; j + 1 < m->nsnaps; j++) {
        memcpy(m->snap[j], m->snap[j + 1], sizeof(m->snap[j]));
        memcpy(m->name[j], m->name[j + 1], sizeof(m->name[j]));
        m->id[j] = m->id[j + 1];
    }
    m->nsnaps--;
}

/* Writes, discards and commits with snapshots taken, deleted (oldest, newest, middle) and
 * restored in between, against a model of every block's content: every snapshot reads back exactly as it
 * was taken, after reopens too; fsck is clean (nothing leaked, the dead lists add up); and
 * once every snapshot is gone the pool holds exactly the live data. */
Test(snapshot, model_of_writes_discards_and_snapshots, .timeout = 180)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", SN_BLOCKS * 4096);
    struct sn_model *m = calloc(1, sizeof(*m));
    unsigned seed = 12345;
    uint32_t tag = 0;
    uint8_t *buf = malloc(8 * 4096);
    int made = 0;
    for (int round = 0; round < 600; round++) {
        if (round == 300) { /* halfway: reopen, and release in many small txns from now on */
            sn_verify_all(p, v, m);
            vv_vol_close(v);
            cr_assert_eq(vv_pool_close(p), 0);
            fsck_clean();
            p = openpool();
            v = openvol(p, "v");
            sn_verify_all(p, v, m);
            setenv("VVFS_SNAP_BATCH", "3", 1);
        }
        unsigned op = (unsigned)rand_r(&seed) % 16;
        uint64_t b0 = (uint64_t)rand_r(&seed) % SN_BLOCKS;
        uint64_t n = 1 + (uint64_t)rand_r(&seed) % 8;
        if (b0 + n > SN_BLOCKS)
            n = SN_BLOCKS - b0;
        if (op < 8) {
            tag++;
            for (uint64_t i = 0; i < n; i++) {
                sn_block(buf + i * 4096, b0 + i, tag);
                m->live[b0 + i] = tag;
            }
            cr_assert_eq(vv_vol_write(v, buf, n * 4096, b0 * 4096), 0);
        } else if (op < 10) {
            cr_assert_eq(vv_vol_discard(v, b0 * 4096, n * 4096), 0);
            for (uint64_t i = 0; i < n; i++)
                m->live[b0 + i] = 0;
        } else if (op < 12) {
            cr_assert_eq(vv_vol_flush(v), 0);
        } else if (op < 14 && m->nsnaps < SN_MAX) {
            struct vv_snapshot_info si;
            struct vv_err e = {0};
            int s = m->nsnaps++;
            snprintf(m->name[s], sizeof(m->name[s]), "s%d", made++);
            cr_assert_eq(vv_snapshot_create(p, "v", m->name[s], &si, &e), 0, "create: %s",
                         e.msg);
            cr_assert_str_eq(si.name, m->name[s]);
            m->id[s] = si.id;
            memcpy(m->snap[s], m->live, sizeof(m->live));
        } else if (op == 14 && m->nsnaps > 0) {
            sn_delete(p, m, rand_r(&seed) % m->nsnaps); /* any: oldest, newest, middle */
        } else if (m->nsnaps > 0 && rand_r(&seed) % 2) {
            /* restore: refused while open; then the volume reads as the snapshot again */
            int s = rand_r(&seed) % m->nsnaps;
            struct vv_err e = {0};
            cr_assert_eq(vv_snapshot_restore(p, "v", m->name[s], &e), EBUSY);
            vv_vol_close(v);
            cr_assert_eq(vv_snapshot_restore(p, "v", m->name[s], &e), 0, "restore: %s", e.msg);
            memcpy(m->live, m->snap[s], sizeof(m->live));
            v = openvol(p, "v");
        } else if (m->nsnaps > 0) {
            sn_verify_all(p, v, m);
        }
    }
    sn_verify_all(p, v, m);
    /* refusals: a second snapshot of that name, a bad name, no such volume or snapshot,
     * deleting or shrinking a volume that has snapshots, deleting an open snapshot */
    struct vv_err e = {0};
    if (m->nsnaps) {
        cr_assert_eq(vv_snapshot_create(p, "v", m->name[0], NULL, &e), EEXIST);
        struct vv_volume_info vi;
        cr_assert_eq(vv_volume_get(p, "v", &vi, NULL), 0);
        struct vv_vol *h;
        cr_assert_eq(vv_snap_open(p, vi.id, m->id[0], &h), 0);
        cr_assert_eq(vv_snapshot_delete(p, "v", m->name[0], &e), EBUSY);
        vv_vol_close(h);
        cr_assert_eq(vv_volume_delete(p, "v", &e), EBUSY);
        cr_assert_eq(vv_volume_resize(p, "v", 4096, &e), EBUSY);
        sn_verify_all(p, v, m);
    }
    cr_assert_eq(vv_snapshot_create(p, "v", "a/b", NULL, &e), EINVAL);
    cr_assert_eq(vv_snapshot_create(p, "nope", "x", NULL, &e), ENOENT);
    cr_assert_eq(vv_snapshot_delete(p, "v", "nope", &e), ENOENT);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    p = openpool();
    v = openvol(p, "v");
    sn_verify_all(p, v, m);
    while (m->nsnaps)
        sn_delete(p, m, 0);
    sn_verify(v, m->live, "live volume after every snapshot is gone");
    cr_assert_eq(vv_vol_flush(v), 0);
    uint64_t live_blocks = 0;
    for (int i = 0; i < SN_BLOCKS; i++)
        live_blocks += m->live[i] != 0;
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, "v", &vi, NULL), 0);
    cr_assert_eq(vi.used, live_blocks * 4096, "the volume holds %llu bytes, its data is %llu",
                 (unsigned long long)vi.used, (unsigned long long)(live_blocks * 4096));
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    unsetenv("VVFS_SNAP_BATCH");
    free(buf);
    free(m);
    rmpool();
}

/* A snapshot delete that a crash interrupted (its record marked deleting, nothing released
 * yet) is finished by the next open: the snapshot is gone, what only it held is free, the
 * other snapshot and the volume read as before, fsck is clean. */
Test(snapshot, interrupted_delete_is_finished_at_open, .timeout = 60)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 4 << 20);
    uint8_t *buf = malloc(4 << 20), *r = malloc(4 << 20);
    struct vv_snapshot_info a, b;
    fill(buf, 0, 4 << 20, 1);
    cr_assert_eq(vv_vol_write(v, buf, 4 << 20, 0), 0);
    cr_assert_eq(vv_snapshot_create(p, "v", "a", &a, NULL), 0);
    fill(buf, 0, 2 << 20, 2);
    cr_assert_eq(vv_vol_write(v, buf, 2 << 20, 0), 0); /* hides 2 MiB that "a" keeps */
    cr_assert_eq(vv_snapshot_create(p, "v", "b", &b, NULL), 0);
    fill(buf, 0, 1 << 20, 3);
    cr_assert_eq(vv_vol_write(v, buf, 1 << 20, 0), 0); /* hides 1 MiB only "b" keeps */
    cr_assert_eq(vv_vol_flush(v), 0);
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, "v", &vi, NULL), 0);
    cr_assert_eq(vi.used, (4 + 2 + 1) << 20, "used %llu", (unsigned long long)vi.used);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    /* what the first txn of `vvfs snapshot delete v b` leaves behind */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    meta_db_open("snapshots", 0, &env, &txn, &dbi);
    uint8_t kb[16];
    for (int i = 0; i < 8; i++) {
        kb[i] = (uint8_t)(vi.id >> (56 - 8 * i));
        kb[8 + i] = (uint8_t)(b.id >> (56 - 8 * i));
    }
    MDB_val k = {16, kb}, d;
    cr_assert_eq(mdb_get(txn, dbi, &k, &d), 0);
    uint8_t *rec = malloc(d.mv_size);
    memcpy(rec, d.mv_data, d.mv_size);
    rec[4] |= 1; /* SNAP_F_DELETING (flags, little-endian, after the u32 version) */
    MDB_val nd = {d.mv_size, rec};
    cr_assert_eq(mdb_put(txn, dbi, &k, &nd, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(rec);
    p = openpool();
    struct vv_snapshot_info *l;
    size_t n;
    cr_assert_eq(vv_snapshot_list(p, "v", &l, &n, NULL), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(l[0].name, "a");
    free(l);
    cr_assert_eq(vv_volume_get(p, "v", &vi, NULL), 0);
    cr_assert_eq(vi.used, (4 + 2 + 1 - 1) << 20, "after the finished delete: used %llu",
                 (unsigned long long)vi.used);
    struct vv_vol *h;
    cr_assert_eq(vv_snap_open(p, vi.id, a.id, &h), 0);
    fill(buf, 0, 4 << 20, 1);
    cr_assert_eq(vv_vol_read(h, r, 4 << 20, 0), 0);
    cr_assert(memcmp(r, buf, 4 << 20) == 0, "snapshot a changed");
    vv_vol_close(h);
    v = openvol(p, "v");
    fill(buf, 0, 1 << 20, 3);
    fill(buf + (1 << 20), 1 << 20, 1 << 20, 2);
    fill(buf + (2 << 20), 2 << 20, 2 << 20, 1);
    cr_assert_eq(vv_vol_read(v, r, 4 << 20, 0), 0);
    cr_assert(memcmp(r, buf, 4 << 20) == 0, "the volume changed");
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(r);
    rmpool();
}

/* A volume with snapshots (and blocks only they hold, on dead lists) is deleted with them:
 * refused without "recursive" and while a snapshot is open; then everything, snapshots,
 * versions and dead lists, is freed in the background and fsck is clean.  Renaming a
 * snapshot keeps its content and its handle. */
Test(snapshot, rename_and_recursive_delete, .timeout = 60)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", 8 << 20);
    uint8_t *buf = malloc(4 << 20), *r = malloc(4 << 20);
    struct vv_snapshot_info a, b;
    struct vv_err e = {0};
    fill(buf, 0, 4 << 20, 1);
    cr_assert_eq(vv_vol_write(v, buf, 4 << 20, 0), 0);
    cr_assert_eq(vv_snapshot_create(p, "v", "a", &a, NULL), 0);
    fill(buf, 0, 4 << 20, 2);
    cr_assert_eq(vv_vol_write(v, buf, 4 << 20, 0), 0);
    cr_assert_eq(vv_snapshot_create(p, "v", "b", &b, NULL), 0);
    vv_vol_close(v);
    cr_assert_eq(vv_snapshot_rename(p, "v", "a", "b", &e), EEXIST);
    cr_assert_eq(vv_snapshot_rename(p, "v", "nope", "c", &e), ENOENT);
    cr_assert_eq(vv_snapshot_rename(p, "v", "a", "x/y", &e), EINVAL);
    cr_assert_eq(vv_snapshot_rename(p, "v", "a", "first", &e), 0, "%s", e.msg);
    struct vv_snapshot_info got;
    cr_assert_eq(vv_snapshot_get(p, "v", "first", &got, NULL), 0);
    cr_assert_eq(got.id, a.id, "a rename keeps the snapshot's id");
    cr_assert_eq(vv_snapshot_get(p, "v", "a", &got, NULL), ENOENT);
    struct vv_vol *h;
    cr_assert_eq(vv_snap_open(p, a.volume_id, a.id, &h), 0);
    fill(buf, 0, 4 << 20, 1);
    cr_assert_eq(vv_vol_read(h, r, 4 << 20, 0), 0);
    cr_assert(memcmp(r, buf, 4 << 20) == 0, "the renamed snapshot reads as before");
    cr_assert_eq(vv_volume_delete(p, "v", &e), EBUSY);
    cr_assert_eq(vv_volume_delete_recursive(p, "v", &e), EBUSY, "a snapshot is open");
    vv_vol_close(h);
    cr_assert_eq(vv_volume_delete_recursive(p, "v", &e), 0, "%s", e.msg);
    struct vv_snapshot_info *l;
    size_t n;
    cr_assert_eq(vv_snapshot_list(p, NULL, &l, &n, NULL), 0);
    cr_assert_eq(n, 0);
    free(l);
    uint64_t freeing;
    for (int i = 0; i < 100 && (pool_used(p, &freeing) || freeing); i++)
        usleep(100000);
    cr_assert_eq(pool_used(p, &freeing), 0, "everything the volume and its snapshots held");
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(r);
    rmpool();
}

/* ---- clones ------------------------------------------------------------------------------ */

#define CL_VOLS 6
#define CL_SNAPS 3

struct cl_vol {
    bool used;
    char name[16];
    struct vv_vol *h;
    uint64_t id;
    int origin;          /* index of the origin volume, -1: none */
    uint64_t origin_sid; /* its snapshot's id */
    int depth;           /* origins above it */
    uint32_t live[SN_BLOCKS];
    int nsnaps;
    char sname[CL_SNAPS][16];
    uint64_t sid[CL_SNAPS];
    uint32_t snap[CL_SNAPS][SN_BLOCKS];
};

static void cl_verify(struct vv_pool *p, struct cl_vol *cv)
{
    for (int i = 0; i < CL_VOLS; i++) {
        struct cl_vol *c = &cv[i];
        if (!c->used)
            continue;
        char what[64];
        snprintf(what, sizeof(what), "volume %s", c->name);
        sn_verify(c->h, c->live, what);
        for (int s = 0; s < c->nsnaps; s++) {
            struct vv_vol *h;
            cr_assert_eq(vv_snap_open(p, c->id, c->sid[s], &h), 0, "open %s@%s", c->name,
                         c->sname[s]);
            snprintf(what, sizeof(what), "snapshot %s@%s", c->name, c->sname[s]);
            sn_verify(h, c->snap[s], what);
            vv_vol_close(h);
        }
    }
}

/* a clone of one of C's snapshots (index), or -1 */
static int cl_clone_of(const struct cl_vol *cv, int i, int s)
{
    for (int j = 0; j < CL_VOLS; j++)
        if (cv[j].used && cv[j].origin == i && (s < 0 || cv[j].origin_sid == cv[i].sid[s]))
            return j;
    return -1;
}

static void cl_reopen(struct vv_pool **p, struct cl_vol *cv)
{
    for (int i = 0; i < CL_VOLS; i++)
        if (cv[i].used)
            vv_vol_close(cv[i].h);
    cr_assert_eq(vv_pool_close(*p), 0);
    fsck_clean();
    *p = openpool();
    for (int i = 0; i < CL_VOLS; i++)
        if (cv[i].used)
            cv[i].h = openvol(*p, cv[i].name);
}

/*
 * Clones against a model: a tree of volumes (clones of snapshots of clones ...) takes
 * writes, partial writes, discards, snapshots, restores, shrink-and-grow and deletes in a
 * random mix; every volume and snapshot reads back as the model says, after reopens too.
 * Clone-pinned snapshots and their volumes refuse deletion.  fsck is clean throughout, and
 * once everything but the first volume is gone the pool holds exactly its data.
 */
Test(clone, model_of_clones_of_snapshots, .timeout = 240)
{
    mkpool(128 << 20, 4096);
    struct vv_pool *p = openpool();
    struct cl_vol *cv = calloc(CL_VOLS, sizeof(*cv));
    cv[0] = (struct cl_vol){.used = true, .name = "root", .origin = -1};
    cv[0].h = mkvol(p, "root", SN_BLOCKS * 4096);
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, "root", &vi, NULL), 0);
    cv[0].id = vi.id;
    unsigned seed = 777;
    uint32_t tag = 0;
    uint8_t *buf = malloc(8 * 4096);
    int made = 0, clones = 0, pinned = 0, depth = 0;
    struct vv_err e = {0};
    for (int round = 0; round < 900; round++) {
        if (round % 300 == 150) {
            cl_verify(p, cv);
            cl_reopen(&p, cv);
            cl_verify(p, cv);
        }
        int i;
        do
            i = rand_r(&seed) % CL_VOLS;
        while (!cv[i].used);
        struct cl_vol *c = &cv[i];
        unsigned op = (unsigned)rand_r(&seed) % 20;
        uint64_t b0 = (uint64_t)rand_r(&seed) % SN_BLOCKS;
        uint64_t n = 1 + (uint64_t)rand_r(&seed) % 8;
        if (b0 + n > SN_BLOCKS)
            n = SN_BLOCKS - b0;
        if (op < 7) {
            tag++;
            for (uint64_t k = 0; k < n; k++) {
                sn_block(buf + k * 4096, b0 + k, tag);
                c->live[b0 + k] = tag;
            }
            cr_assert_eq(vv_vol_write(c->h, buf, n * 4096, b0 * 4096), 0);
        } else if (op == 7) {
            /* a partial write: the rest of the block comes from wherever it is (an origin) */
            uint8_t old[4096];
            sn_block(old, b0, c->live[b0]);
            tag++;
            sn_block(buf, b0, tag);
            memcpy(buf + 100, old + 100, 3000); /* only [0,100) and [3100,4096) are new */
            cr_assert_eq(vv_vol_write(c->h, buf, 100, b0 * 4096), 0);
            cr_assert_eq(vv_vol_write(c->h, buf + 3100, 996, b0 * 4096 + 3100), 0);
            uint8_t got[4096];
            cr_assert_eq(vv_vol_read(c->h, got, 4096, b0 * 4096), 0);
            cr_assert(memcmp(got, buf, 4096) == 0, "partial writes to %s block %llu", c->name,
                      (unsigned long long)b0);
            /* the model has whole-block tags: make the block whole again */
            sn_block(buf, b0, tag);
            cr_assert_eq(vv_vol_write(c->h, buf, 4096, b0 * 4096), 0);
            c->live[b0] = tag;
        } else if (op < 10) {
            cr_assert_eq(vv_vol_discard(c->h, b0 * 4096, n * 4096), 0);
            for (uint64_t k = 0; k < n; k++)
                c->live[b0 + k] = 0;
        } else if (op == 10) {
            cr_assert_eq(vv_vol_flush(c->h), 0);
        } else if (op < 13 && c->nsnaps < CL_SNAPS) {
            struct vv_snapshot_info si;
            int s = c->nsnaps++;
            snprintf(c->sname[s], sizeof(c->sname[s]), "s%d", made++);
            cr_assert_eq(vv_snapshot_create(p, c->name, c->sname[s], &si, &e), 0, "%s", e.msg);
            c->sid[s] = si.id;
            memcpy(c->snap[s], c->live, sizeof(c->live));
        } else if (op == 13 && c->nsnaps > 0) {
            int s = rand_r(&seed) % c->nsnaps;
            int j = cl_clone_of(cv, i, s);
            int rc = vv_snapshot_delete(p, c->name, c->sname[s], &e);
            if (j >= 0) {
                cr_assert_eq(rc, EBUSY, "a snapshot with a clone is deleted");
                cr_assert(strstr(e.msg, cv[j].name), "the refusal names the clone: %s", e.msg);
                pinned++;
                continue;
            }
            cr_assert_eq(rc, 0, "delete %s@%s: %s", c->name, c->sname[s], e.msg);
            for (int k = s; k + 1 < c->nsnaps; k++) {
                memcpy(c->snap[k], c->snap[k + 1], sizeof(c->snap[k]));
                memcpy(c->sname[k], c->sname[k + 1], sizeof(c->sname[k]));
                c->sid[k] = c->sid[k + 1];
            }
            c->nsnaps--;
        } else if (op < 16 && c->nsnaps > 0) {
            int j;
            for (j = 0; j < CL_VOLS && cv[j].used; j++)
                ;
            if (j == CL_VOLS)
                continue;
            int s = rand_r(&seed) % c->nsnaps;
            struct cl_vol *d = &cv[j];
            memset(d, 0, sizeof(*d));
            snprintf(d->name, sizeof(d->name), "c%d", clones++);
            cr_assert_eq(vv_clone_create(p, c->name, c->sname[s], c->name, NULL, &e), EEXIST);
            cr_assert_eq(vv_clone_create(p, c->name, "nope", d->name, NULL, &e), ENOENT);
            cr_assert_eq(vv_clone_create(p, c->name, c->sname[s], d->name, &vi, &e), 0, "%s",
                         e.msg);
            cr_assert(vi.clone && vi.origin_volume_id == c->id &&
                      vi.origin_snapshot_id == c->sid[s]);
            cr_assert_str_eq(vi.origin_snapshot, c->sname[s]);
            cr_assert_eq(vi.used, 0, "a new clone holds nothing of its own");
            d->used = true;
            d->id = vi.id;
            d->origin = i;
            d->origin_sid = c->sid[s];
            d->depth = c->depth + 1;
            depth = d->depth > depth ? d->depth : depth;
            memcpy(d->live, c->snap[s], sizeof(d->live));
            d->h = openvol(p, d->name);
        } else if (op == 16 && c->nsnaps > 0) {
            int s = rand_r(&seed) % c->nsnaps;
            vv_vol_close(c->h);
            cr_assert_eq(vv_snapshot_restore(p, c->name, c->sname[s], &e), 0, "%s", e.msg);
            memcpy(c->live, c->snap[s], sizeof(c->live));
            c->h = openvol(p, c->name);
        } else if (op == 17 && c->nsnaps == 0) {
            /* shrink and grow back: what was cut off reads as zeros, not as the origin */
            uint64_t keep = b0;
            vv_vol_close(c->h);
            cr_assert_eq(vv_volume_resize(p, c->name, keep ? keep * 4096 : 4096, &e), 0, "%s",
                         e.msg);
            cr_assert_eq(vv_volume_resize(p, c->name, SN_BLOCKS * 4096, &e), 0, "%s", e.msg);
            for (uint64_t k = keep ? keep : 1; k < SN_BLOCKS; k++)
                c->live[k] = 0;
            c->h = openvol(p, c->name);
        } else if (op == 18 && i != 0) {
            int j = cl_clone_of(cv, i, -1);
            vv_vol_close(c->h);
            int rc = vv_volume_delete_recursive(p, c->name, &e);
            if (j >= 0) {
                cr_assert_eq(rc, EBUSY, "a volume whose snapshot has a clone is deleted");
                cr_assert(strstr(e.msg, cv[j].name), "the refusal names the clone: %s", e.msg);
                c->h = openvol(p, c->name);
                pinned++;
                continue;
            }
            cr_assert_eq(rc, 0, "delete %s: %s", c->name, e.msg);
            c->used = false;
        } else {
            cl_verify(p, cv);
        }
    }
    cr_assert_gt(clones, 5, "only %d clones were made", clones);
    cr_assert_gt(pinned, 2, "only %d refusals of pinned snapshots were tried", pinned);
    cr_assert_geq(depth, 3, "no clone of a clone of a clone was made (deepest: %d)", depth);
    cl_verify(p, cv);
    cl_reopen(&p, cv);
    cl_verify(p, cv);
    /* take the tree down, leaves first; then only the first volume's data is left */
    for (bool any = true; any;) {
        any = false;
        for (int i = CL_VOLS - 1; i > 0; i--) {
            if (!cv[i].used || cl_clone_of(cv, i, -1) >= 0)
                continue;
            vv_vol_close(cv[i].h);
            cr_assert_eq(vv_volume_delete_recursive(p, cv[i].name, &e), 0, "%s", e.msg);
            cv[i].used = false;
            any = true;
        }
    }
    while (cv[0].nsnaps) {
        cr_assert_eq(vv_snapshot_delete(p, "root", cv[0].sname[0], &e), 0, "%s", e.msg);
        memmove(cv[0].sname, cv[0].sname + 1, sizeof(cv[0].sname[0]) * (CL_SNAPS - 1));
        memmove(cv[0].snap, cv[0].snap + 1, sizeof(cv[0].snap[0]) * (CL_SNAPS - 1));
        cv[0].nsnaps--;
    }
    sn_verify(cv[0].h, cv[0].live, "the first volume at the end");
    cr_assert_eq(vv_vol_flush(cv[0].h), 0);
    uint64_t live_blocks = 0, freeing;
    for (int k = 0; k < SN_BLOCKS; k++)
        live_blocks += cv[0].live[k] != 0;
    for (int k = 0; k < 100 && (pool_used(p, &freeing) != live_blocks * 4096 || freeing); k++)
        usleep(100000);
    cr_assert_eq(pool_used(p, &freeing), live_blocks * 4096, "the pool holds %llu bytes, the "
                 "first volume's data is %llu", (unsigned long long)pool_used(p, &freeing),
                 (unsigned long long)(live_blocks * 4096));
    vv_vol_close(cv[0].h);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(buf);
    free(cv);
    rmpool();
}

/* ---- consistency groups ------------------------------------------------------------------ */

struct gw {
    struct vv_pool *p;
    struct vv_vol *a, *b;
    _Atomic bool stop;
    _Atomic uint64_t last;
};

/* write counter k to block 0 of a, then to block 0 of b, for k = 1, 2, ... */
static void *gw_writer(void *arg)
{
    struct gw *w = arg;
    uint8_t blk[4096] = {0};
    for (uint64_t k = 1; !atomic_load(&w->stop); k++) {
        memcpy(blk, &k, sizeof(k));
        cr_assert_eq(vv_vol_write(w->a, blk, 4096, 0), 0);
        cr_assert_eq(vv_vol_write(w->b, blk, 4096, 0), 0);
        atomic_store(&w->last, k);
    }
    return NULL;
}

static uint64_t snap_counter(struct vv_pool *p, const char *vol, const char *snap)
{
    struct vv_snapshot_info si;
    cr_assert_eq(vv_snapshot_get(p, vol, snap, &si, NULL), 0, "%s@%s", vol, snap);
    struct vv_vol *h;
    cr_assert_eq(vv_snap_open(p, si.volume_id, si.id, &h), 0);
    uint8_t blk[4096];
    cr_assert_eq(vv_vol_read(h, blk, 4096, 0), 0);
    vv_vol_close(h);
    uint64_t k;
    memcpy(&k, blk, sizeof(k));
    return k;
}

/*
 * A group snapshot is one point in time: a writer puts counter k into volume a and then b,
 * and in every group snapshot b's counter is a's or one less (taken one after the other, b
 * could be ahead).  Groups persist; the rules hold (one group per volume, a group snapshot
 * name free on every member or none is taken, restore only from a group snapshot and not
 * while a member is open); a deleted volume leaves its group; fsck is clean.
 */
Test(group, snapshots_are_one_point_in_time, .timeout = 120)
{
    mkpool(128 << 20, 4096);
    struct vv_pool *p = openpool();
    struct gw w = {.p = p};
    w.a = mkvol(p, "a", 1 << 20);
    w.b = mkvol(p, "b", 1 << 20);
    vv_vol_close(mkvol(p, "c", 1 << 20));
    struct vv_err e = {0};
    const char *ab[] = {"a", "b"}, *c1[] = {"c"}, *bad[] = {"a", "a"}, *none[] = {"nope"};
    cr_assert_eq(vv_group_create(p, "g", bad, 2, &e), EINVAL, "a volume named twice");
    cr_assert_eq(vv_group_create(p, "g", none, 1, &e), ENOENT);
    cr_assert_eq(vv_group_create(p, "g/x", ab, 2, &e), EINVAL);
    cr_assert_eq(vv_group_create(p, "g", ab, 2, &e), 0, "%s", e.msg);
    cr_assert_eq(vv_group_create(p, "g", c1, 1, &e), EEXIST);
    cr_assert_eq(vv_group_create(p, "h", ab + 1, 1, &e), EBUSY, "b is in g already");
    cr_assert(strstr(e.msg, "'g'"), "the refusal names the group: %s", e.msg);
    cr_assert_eq(vv_group_create(p, "h", NULL, 0, &e), 0, "an empty group: %s", e.msg);
    cr_assert_eq(vv_group_snapshot(p, "h", "x", &e), EINVAL, "snapshot of an empty group");
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_get(p, "a", &vi, NULL), 0);
    cr_assert_str_eq(vi.group, "g");
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, gw_writer, &w), 0);
    char name[16];
    for (int i = 0; i < 20; i++) {
        usleep(20000);
        snprintf(name, sizeof(name), "n%d", i);
        cr_assert_eq(vv_group_snapshot(p, "g", name, &e), 0, "%s", e.msg);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    cr_assert_gt(atomic_load(&w.last), 100, "the writer wrote %llu rounds",
                 (unsigned long long)atomic_load(&w.last));
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        uint64_t ka = snap_counter(p, "a", name), kb = snap_counter(p, "b", name);
        cr_assert(kb == ka || kb + 1 == ka, "group snapshot %s: a has %llu, b has %llu", name,
                  (unsigned long long)ka, (unsigned long long)kb);
        struct vv_snapshot_info sa, sb;
        cr_assert_eq(vv_snapshot_get(p, "a", name, &sa, NULL), 0);
        cr_assert_eq(vv_snapshot_get(p, "b", name, &sb, NULL), 0);
        cr_assert_eq(sa.gen, sb.gen, "one gen for every member");
    }
    struct vv_group_info gi;
    cr_assert_eq(vv_group_get(p, "g", &gi, NULL), 0);
    cr_assert_eq(gi.nvolumes, 2);
    cr_assert_str_eq(gi.volumes[0], "a");
    cr_assert_eq(gi.nsnapshots, 20);
    vv_group_info_free(&gi);
    /* a name one member has already: nothing is taken */
    uint8_t blk0[4096] = {0};
    cr_assert_eq(vv_snapshot_create(p, "b", "solo", NULL, &e), 0);
    cr_assert_eq(vv_group_snapshot(p, "g", "solo", &e), EEXIST);
    struct vv_snapshot_info si;
    cr_assert_eq(vv_snapshot_get(p, "a", "solo", &si, NULL), ENOENT, "a got a snapshot anyway");
    cr_assert_eq(vv_vol_write(w.a, blk0, 4096, 4096), 0); /* so that the next one is of a later gen */
    cr_assert_eq(vv_snapshot_create(p, "a", "solo", NULL, &e), 0);
    cr_assert_eq(vv_group_restore(p, "g", "solo", &e), EINVAL, "restore from names taken apart");
    /* restore: refused while a member is open, then both read as the snapshot */
    uint64_t k5 = snap_counter(p, "a", "n5");
    cr_assert_eq(vv_group_restore(p, "g", "n5", &e), EBUSY);
    vv_vol_close(w.a);
    cr_assert_eq(vv_group_restore(p, "g", "n5", &e), EBUSY, "b is still open");
    vv_vol_close(w.b);
    cr_assert_eq(vv_group_restore(p, "g", "nope", &e), ENOENT);
    cr_assert_eq(vv_group_restore(p, "g", "n5", &e), 0, "%s", e.msg);
    w.a = openvol(p, "a");
    uint8_t blk[4096];
    uint64_t k;
    cr_assert_eq(vv_vol_read(w.a, blk, 4096, 0), 0);
    memcpy(&k, blk, 8);
    cr_assert_eq(k, k5, "a after the group restore");
    vv_vol_close(w.a);
    /* membership: add, remove, both at once; refusals change nothing */
    cr_assert_eq(vv_group_change(p, "g", c1, 1, ab, 1, &e), 0, "%s", e.msg);
    cr_assert_eq(vv_group_change(p, "g", ab, 1, NULL, 0, &e), 0);
    cr_assert_eq(vv_group_change(p, "g", ab, 1, NULL, 0, &e), EINVAL, "a is a member already");
    cr_assert_eq(vv_group_change(p, "h", NULL, 0, c1, 1, &e), EINVAL, "c is not in h");
    cr_assert_eq(vv_group_change(p, "nope", c1, 1, NULL, 0, &e), ENOENT);
    cr_assert_eq(vv_group_get(p, "g", &gi, NULL), 0);
    cr_assert_eq(gi.nvolumes, 3);
    vv_group_info_free(&gi);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    p = openpool();
    cr_assert_eq(vv_group_get(p, "g", &gi, NULL), 0, "the group after a reopen");
    cr_assert_eq(gi.nvolumes, 3);
    cr_assert_str_eq(gi.volumes[2], "c");
    vv_group_info_free(&gi);
    cr_assert_eq(vv_volume_delete(p, "c", &e), 0, "%s", e.msg);
    cr_assert_eq(vv_group_get(p, "g", &gi, NULL), 0);
    cr_assert_eq(gi.nvolumes, 2, "a deleted volume leaves its group");
    vv_group_info_free(&gi);
    cr_assert_eq(vv_group_delete(p, "g", &e), 0);
    cr_assert_eq(vv_group_get(p, "g", &gi, &e), ENOENT);
    cr_assert_eq(vv_volume_get(p, "a", &vi, NULL), 0);
    cr_assert_str_eq(vi.group, "", "a after its group was deleted");
    cr_assert_eq(vv_group_create(p, "g2", ab, 2, &e), 0, "the volumes are free again: %s", e.msg);
    struct vv_group_info *l;
    size_t n;
    cr_assert_eq(vv_group_list(p, &l, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(l[0].name, "g2");
    for (size_t i = 0; i < n; i++)
        vv_group_info_free(&l[i]);
    free(l);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    rmpool();
}

/* ---- deltas ------------------------------------------------------------------------------- */

#define DL_BLOCKS 512

/* the content of snapshot SNAP of VOL (DL_BLOCKS blocks) into BUF */
static void dl_read(struct vv_pool *p, const char *vol, const char *snap, uint8_t *buf)
{
    struct vv_snapshot_info si;
    cr_assert_eq(vv_snapshot_get(p, vol, snap, &si, NULL), 0, "%s@%s", vol, snap);
    struct vv_vol *h;
    cr_assert_eq(vv_snap_open(p, si.volume_id, si.id, &h), 0);
    cr_assert_eq(vv_vol_read(h, buf, DL_BLOCKS * 4096, 0), 0);
    vv_vol_close(h);
}

/* apply the delta FROM -> TO of VOL to BUF (what a replica does); the blocks it carried */
static uint64_t dl_apply(struct vv_pool *p, const char *vol, const char *from, const char *to,
                         uint8_t *buf)
{
    struct vv_delta *d;
    struct vv_err e = {0};
    cr_assert_eq(vv_delta_open(p, vol, from, to, &d, &e), 0, "%s", e.msg);
    uint64_t block, sent = 0, last = 0;
    uint32_t count;
    bool zero, first = true;
    int rc;
    while ((rc = vv_delta_next(d, &block, &count, &zero)) == 0) {
        cr_assert(first || block >= last, "runs must ascend");
        cr_assert_leq(block + count, DL_BLOCKS);
        if (zero)
            memset(buf + block * 4096, 0, count * 4096);
        else
            cr_assert_eq(vv_vol_read(vv_delta_source(d), buf + block * 4096, count * 4096,
                                     block * 4096), 0);
        last = block + count;
        first = false;
        sent += count;
    }
    cr_assert_eq(rc, ENOENT);
    vv_delta_close(d);
    return sent;
}

static void dl_mutate(struct vv_vol *v, unsigned *seed, uint32_t *tag, bool *touched, int ops)
{
    uint8_t buf[8 * 4096];
    for (int i = 0; i < ops; i++) {
        uint64_t b0 = (uint64_t)rand_r(seed) % DL_BLOCKS, n = 1 + (uint64_t)rand_r(seed) % 8;
        if (b0 + n > DL_BLOCKS)
            n = DL_BLOCKS - b0;
        if (rand_r(seed) % 4) {
            (*tag)++;
            fill(buf, b0 * 4096, n * 4096, *tag);
            cr_assert_eq(vv_vol_write(v, buf, n * 4096, b0 * 4096), 0);
        } else {
            cr_assert_eq(vv_vol_discard(v, b0 * 4096, n * 4096), 0);
        }
        for (uint64_t k = 0; k < n; k++)
            touched[b0 + k] = true;
        if (rand_r(seed) % 8 == 0)
            cr_assert_eq(vv_vol_flush(v), 0);
    }
}

/*
 * Deltas between snapshots, applied to the older snapshot's content, give the newer one's,
 * for a volume and for a clone, from nothing and from a snapshot, also after a snapshot in
 * between was deleted; a delta carries no block that was not touched in between, and an
 * initial one only the blocks with data.
 */
Test(delta, applied_to_the_older_snapshot_gives_the_newer, .timeout = 120)
{
    mkpool(64 << 20, 4096);
    struct vv_pool *p = openpool();
    struct vv_vol *v = mkvol(p, "v", DL_BLOCKS * 4096);
    unsigned seed = 4242;
    uint32_t tag = 0;
    bool touched[DL_BLOCKS] = {0};
    uint8_t *a = malloc(DL_BLOCKS * 4096), *b = malloc(DL_BLOCKS * 4096);
    struct vv_err e = {0};
    dl_mutate(v, &seed, &tag, touched, 60);
    cr_assert_eq(vv_snapshot_create(p, "v", "s0", NULL, &e), 0);
    memset(touched, 0, sizeof(touched));
    for (int round = 1; round <= 6; round++) {
        char prev[8], cur[8];
        snprintf(prev, sizeof(prev), "s%d", round - 1);
        snprintf(cur, sizeof(cur), "s%d", round);
        dl_mutate(v, &seed, &tag, touched, 40);
        cr_assert_eq(vv_snapshot_create(p, "v", cur, NULL, &e), 0);
        dl_read(p, "v", prev, a);
        uint64_t sent = dl_apply(p, "v", prev, cur, a);
        dl_read(p, "v", cur, b);
        cr_assert(memcmp(a, b, DL_BLOCKS * 4096) == 0, "delta %s -> %s", prev, cur);
        uint64_t n = 0;
        for (int i = 0; i < DL_BLOCKS; i++)
            n += touched[i];
        cr_assert_leq(sent, n, "the delta carried %llu blocks, %llu were touched",
                      (unsigned long long)sent, (unsigned long long)n);
        /* from nothing: the data only */
        memset(a, 0, DL_BLOCKS * 4096);
        sent = dl_apply(p, "v", NULL, cur, a);
        cr_assert(memcmp(a, b, DL_BLOCKS * 4096) == 0, "initial delta to %s", cur);
        uint64_t data = 0;
        static const uint8_t zero[4096];
        for (int i = 0; i < DL_BLOCKS; i++)
            data += memcmp(b + i * 4096, zero, 4096) != 0;
        cr_assert_eq(sent, data, "an initial delta carries the data blocks, no more");
        /* writes after the newest snapshot are not in it (they count for the next one) */
        memset(touched, 0, sizeof(touched));
        dl_mutate(v, &seed, &tag, touched, 10);
    }
    /* a snapshot in between deleted: s1 -> s4 still right */
    cr_assert_eq(vv_snapshot_delete(p, "v", "s2", &e), 0);
    dl_read(p, "v", "s1", a);
    dl_apply(p, "v", "s1", "s4", a);
    dl_read(p, "v", "s4", b);
    cr_assert(memcmp(a, b, DL_BLOCKS * 4096) == 0, "delta s1 -> s4 across a deleted s2");
    /* a clone: from nothing it carries the origin's blocks too */
    cr_assert_eq(vv_clone_create(p, "v", "s3", "c", NULL, &e), 0, "%s", e.msg);
    struct vv_vol *c = openvol(p, "c");
    cr_assert_eq(vv_snapshot_create(p, "c", "c0", NULL, &e), 0);
    memset(touched, 0, sizeof(touched));
    dl_mutate(c, &seed, &tag, touched, 30);
    cr_assert_eq(vv_snapshot_create(p, "c", "c1", NULL, &e), 0);
    memset(a, 0, DL_BLOCKS * 4096);
    dl_apply(p, "c", NULL, "c1", a);
    dl_read(p, "c", "c1", b);
    cr_assert(memcmp(a, b, DL_BLOCKS * 4096) == 0, "initial delta of a clone");
    dl_read(p, "c", "c0", a);
    dl_apply(p, "c", "c0", "c1", a);
    cr_assert(memcmp(a, b, DL_BLOCKS * 4096) == 0, "delta c0 -> c1 of a clone");
    /* refusals */
    struct vv_delta *d;
    cr_assert_eq(vv_delta_open(p, "v", "s4", "s1", &d, &e), EINVAL);
    cr_assert_eq(vv_delta_open(p, "v", "nope", "s1", &d, &e), ENOENT);
    cr_assert_eq(vv_delta_open(p, "nope", NULL, "s1", &d, &e), ENOENT);
    /* the delta holds its snapshot open */
    cr_assert_eq(vv_delta_open(p, "v", NULL, "s4", &d, &e), 0);
    cr_assert_eq(vv_snapshot_delete(p, "v", "s4", &e), EBUSY);
    vv_delta_close(d);
    vv_vol_close(c);
    vv_vol_close(v);
    cr_assert_eq(vv_pool_close(p), 0);
    fsck_clean();
    free(a);
    free(b);
    rmpool();
}
