/*
 * meta/pool.c — pool lifecycle (create, open, close), the pool lock, and volume operations.
 *
 * Design notes
 *   A pool is a directory:
 *       meta.mdb, meta.mdb-lock   LMDB environment (MDB_NOSUBDIR) with all metadata
 *       data.0 .. data.N-1        sparse files of extent slots (N = config data_files, 8 by
 *                                 default), in chunks of 16 slots: see slot_file/slot_pos
 *       lock                      flock()ed by the one process that has the pool open; holds
 *                                 its pid as text, for the error message of a second opener
 *   Volume operations run their own LMDB write txn under commit_mu, so they serialize with
 *   txg commits.  Operations that remove data (delete, shrink) first commit the open txg so
 *   that no dirty mapping of the volume is left behind, and refuse open volumes (EBUSY).
 *   The in-memory volume table mirrors the volumes DB; it changes only after the LMDB txn
 *   that changes the DB has committed.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>


/* Open the pool's databases in TXN; FLAGS MDB_CREATE creates those that are missing (a
 * read-write open: a later format's new databases come into being this way). */
static int pool_open_dbs(struct vv_pool *p, MDB_txn *txn, unsigned flags)
{
    static const char *const names[] = {"config", "volumes", "volnames", "spacemap",
                                        "snapshots", "groups", "repl"};
    MDB_dbi *dbis[] = {&p->db_config, &p->db_volumes, &p->db_volnames, &p->db_spacemap,
                       &p->db_snapshots, &p->db_groups, &p->db_repl};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int rc = mdb_dbi_open(txn, names[i], flags, dbis[i]);
        if (rc)
            return kv_err(rc);
    }
    return xmap_open(txn, flags, p->nslots, &p->xmap);
}

/* The pool's id (16 random bytes, config pool_id_0/1), made now if the pool has none (pools
 * made before format 5): replication tells pools apart by it.  TXN: a write txn, or a read
 * txn of a pool that has it. */
static int pool_id_load(struct vv_pool *p, MDB_txn *txn, bool rdonly)
{
    uint64_t a = 0, b = 0;
    int err = kv_get_u64(txn, p->db_config, "pool_id_0", &a);
    if (!err)
        err = kv_get_u64(txn, p->db_config, "pool_id_1", &b);
    if (err == ENOENT && !rdonly) {
        if (getrandom(&a, sizeof(a), 0) != sizeof(a) || getrandom(&b, sizeof(b), 0) != sizeof(b))
            return EIO;
        err = kv_put_u64(txn, p->db_config, "pool_id_0", a);
        if (!err)
            err = kv_put_u64(txn, p->db_config, "pool_id_1", b);
    } else if (err == ENOENT) {
        err = 0; /* (a read-only open of an old pool is refused before it needs one) */
    }
    put_be64(p->id, a);
    put_be64(p->id + 8, b);
    return err;
}

/* Take the pool lock (flock on DIR/lock), recording our pid in it. */
static int take_lock(struct vv_pool *p, struct vv_err *e)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/lock", p->dir);
    p->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (p->lock_fd < 0)
        return vv_err_set(e, errno, "cannot open %s: %s", path, strerror(errno));
    if (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "";
        ssize_t n = pread(p->lock_fd, pid, sizeof(pid) - 1, 0);
        if (n > 0)
            pid[strcspn(pid, "\n")] = '\0';
        close(p->lock_fd);
        p->lock_fd = -1;
        if (err == EWOULDBLOCK)
            return vv_err_set(e, EBUSY, "pool %s is in use by process %s (another vvfs daemon "
                              "or fsck); unmount it first", p->dir, *pid ? pid : "?");
        return vv_err_set(e, err, "cannot lock %s: %s", path, strerror(err));
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(p->lock_fd, 0) != 0 || pwrite(p->lock_fd, pid, (size_t)n, 0) != n)
        vv_warn(VV_SS_META, "cannot record pid in %s: %m", path);
    return 0;
}

static struct vv_pool *pool_alloc(const char *dir)
{
    struct vv_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (!realpath(dir, p->dir))
        snprintf(p->dir, sizeof(p->dir), "%s", dir);
    p->lock_fd = -1;
    for (int i = 0; i < DATA_FILES_MAX; i++)
        p->data_fd[i] = p->dio_fd[i] = -1;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&p->vol_mu, &ra);
    pthread_rwlock_init(&p->reuse_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_rwlock_init(&p->map_lock, NULL); /* reader-preferring: read txns may nest */
    pthread_mutex_init(&p->alloc_mu, NULL);
    pthread_mutex_init(&p->txg_mu, NULL);
    pthread_mutex_init(&p->commit_mu, NULL);
    pthread_mutex_init(&p->group_mu, NULL);
    pthread_mutex_init(&p->rtxn_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->txg_quiesced, &ca);
    pthread_cond_init(&p->txg_committed, &ca);
    pthread_cond_init(&p->commit_wanted, &ca);
    pthread_cond_init(&p->reclaim_wanted, &ca);
    pthread_cond_init(&p->reap_cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < NSTRIPES; i++) {
        pthread_mutex_init(&p->stripes[i].mu, NULL);
        pthread_cond_init(&p->stripes[i].filled, NULL);
    }
    return p;
}

static void pool_free(struct vv_pool *p)
{
    if (!p)
        return;
    reap_stop(p);            /* (a failed open may have started them) */
    alloc_reclaimer_stop(p);
    rtxn_drain(p);
    if (p->env)
        mdb_env_close(p->env);
    for (int i = 0; i < DATA_FILES_MAX; i++) {
        if (p->data_fd[i] >= 0)
            close(p->data_fd[i]);
        if (p->dio_fd[i] >= 0)
            close(p->dio_fd[i]);
    }
    if (p->lock_fd >= 0)
        close(p->lock_fd); /* releases the flock */
    for (size_t i = 0; i < p->nvols; i++)
        vol_put(p->vols[i]);
    free(p->vols);
    for (size_t i = 0; i < p->ndying; i++)
        vol_put(p->dying[i]);
    free(p->snap_pend);
    free(p->groups);
    free(p->dying);
    alloc_fini(p);
    for (int i = 0; i < NSTRIPES; i++) {
        for (int t = 0; t < 2; t++)
            dirty_table_free(&p->stripes[i].tab[t]);
        pthread_mutex_destroy(&p->stripes[i].mu);
        pthread_cond_destroy(&p->stripes[i].filled);
    }
    pthread_rwlock_destroy(&p->vol_mu);
    pthread_rwlock_destroy(&p->reuse_lock);
    pthread_rwlock_destroy(&p->map_lock);
    pthread_mutex_destroy(&p->alloc_mu);
    pthread_mutex_destroy(&p->txg_mu);
    pthread_mutex_destroy(&p->commit_mu);
    pthread_mutex_destroy(&p->group_mu);
    pthread_mutex_destroy(&p->rtxn_mu);
    pthread_cond_destroy(&p->txg_quiesced);
    pthread_cond_destroy(&p->txg_committed);
    pthread_cond_destroy(&p->commit_wanted);
    pthread_cond_destroy(&p->reclaim_wanted);
    pthread_cond_destroy(&p->reap_cv);
    free(p);
}

/* Open (and with O_CREAT, create and size to SIZE) the pool's data files. */
static int data_files_open(struct vv_pool *p, int flags, uint64_t size, struct vv_err *e)
{
    char path[PATH_MAX + 16];
    for (unsigned i = 0; i < p->ndata; i++) {
        snprintf(path, sizeof(path), "%s/data.%u", p->dir, i);
        p->data_fd[i] = open(path, flags | O_CLOEXEC, 0600);
        if (p->data_fd[i] < 0)
            return vv_err_set(e, errno, "cannot %s %s: %s", flags & O_CREAT ? "create" : "open",
                              path, strerror(errno));
        if ((flags & O_CREAT) && ftruncate(p->data_fd[i], (off_t)size) != 0)
            return vv_err_set(e, errno, "cannot size %s: %s", path, strerror(errno));
    }
    return 0;
}

/*
 * Open the data files a second time with O_DIRECT, for whole-extent runs.  Without it (the
 * filesystem refuses O_DIRECT, or needs more alignment than a slot has) every run goes through
 * the buffered descriptors, which is correct, only slower for sequential writes.
 */
static void data_files_open_direct(struct vv_pool *p, int flags)
{
    char path[PATH_MAX + 16];
    uint32_t mem_align = 4096, off_align = 4096; /* when statx cannot tell */
    struct statx sx;
    if (statx(p->data_fd[0], "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN)) {
        mem_align = sx.stx_dio_mem_align;
        off_align = sx.stx_dio_offset_align;
    }
    if (mem_align == 0 || off_align == 0 || off_align > p->extent_size ||
        (mem_align & (mem_align - 1)) || mem_align > 65536) {
        vv_info(VV_SS_META, "data files: no direct I/O (alignment %u/%u); buffered I/O only",
                mem_align, off_align);
        return;
    }
    for (unsigned i = 0; i < p->ndata; i++) {
        snprintf(path, sizeof(path), "%s/data.%u", p->dir, i);
        p->dio_fd[i] = open(path, flags | O_DIRECT | O_CLOEXEC);
        if (p->dio_fd[i] < 0) {
            vv_info(VV_SS_META, "data files: no direct I/O (%s: %s); buffered I/O only", path,
                    strerror(errno));
            for (unsigned j = 0; j < i; j++) {
                close(p->dio_fd[j]);
                p->dio_fd[j] = -1;
            }
            return;
        }
    }
    p->dio_mem_align = mem_align;
}

int vv_pool_create(const char *dir, const struct vv_pool_params *params, struct vv_err *e)
{
    uint32_t es = params->extent_size ? params->extent_size : VV_EXTENT_DEFAULT;
    if (es < VV_EXTENT_MIN || es > VV_EXTENT_MAX || (es & (es - 1)))
        return vv_err_set(e, EINVAL, "extent size %u is not a power of two between 4K and 1M",
                          es);
    if (params->capacity < es || params->capacity % es)
        return vv_err_set(e, EINVAL, "capacity must be a positive multiple of the extent size "
                          "(%u bytes)", es);
    if (params->capacity / es > (1ULL << 40))
        return vv_err_set(e, EINVAL, "capacity is too large for extent size %u", es);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return vv_err_set(e, errno, "cannot create directory %s: %s", dir, strerror(errno));
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/meta.mdb", dir);
    if (access(path, F_OK) == 0)
        return vv_err_set(e, EEXIST, "%s already holds a pool", dir);

    struct vv_pool *p = pool_alloc(dir);
    if (!p)
        return vv_err_set(e, ENOMEM, "out of memory");
    int err = take_lock(p, e);
    if (err)
        goto fail;
    p->ndata = DATA_FILES_DEFAULT;
    p->extent_shift = (unsigned)__builtin_ctz(es);
    p->chunk_slots = DATA_CHUNK_BYTES >> p->extent_shift;
    if (p->chunk_slots < DATA_CHUNK_SLOTS_V1)
        p->chunk_slots = DATA_CHUNK_SLOTS_V1;
    p->chunk_shift = (unsigned)__builtin_ctz(p->chunk_slots);
    uint64_t per_file = slots_per_file(p, params->capacity / es) * es;
    err = data_files_open(p, O_RDWR | O_CREAT | O_EXCL, per_file, e);
    if (err)
        goto fail_data;
    err = env_open(p, params->map_size ? params->map_size
                                       : env_map_size(p, params->capacity / es), false);
    if (err) {
        vv_err_set(e, err, "cannot create metadata in %s: %s", p->dir, strerror(err));
        goto fail_data;
    }
    MDB_txn *txn;
    p->nslots = params->capacity / es;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (err) {
        vv_err_set(e, err, "cannot write pool metadata: %s", strerror(err));
        goto fail_meta;
    }
    err = pool_open_dbs(p, txn, MDB_CREATE);
    if (!err)
        err = pool_id_load(p, txn, false);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "format_version", VV_POOL_FORMAT_VERSION);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "extent_size", es);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "capacity", params->capacity);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "data_files", p->ndata);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "chunk_slots", p->chunk_slots);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "chunk_blocks", XMAP_CHUNK_BLOCKS);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "gen", 0);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "next_volume_id", 1);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "created", (uint64_t)time(NULL));
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (err) {
        vv_err_set(e, err, "cannot write pool metadata: %s", strerror(err));
        goto fail_meta;
    }
    for (unsigned i = 0; i < p->ndata; i++) {
        if (fsync(p->data_fd[i]) != 0) {
            err = vv_err_set(e, errno, "fsync of a data file in %s: %s", p->dir,
                             strerror(errno));
            goto fail_meta;
        }
    }
    /* the new files' names must be durable too: a crash right after create keeps the pool */
    int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        err = vv_err_set(e, errno, "fsync of the pool directory %s: %s", p->dir,
                         strerror(errno));
        if (dfd >= 0)
            close(dfd);
        goto fail_meta;
    }
    close(dfd);
    vv_info(VV_SS_META, "created pool %s: capacity %llu bytes, extent size %u", p->dir,
            (unsigned long long)params->capacity, es);
    pool_free(p);
    return 0;

fail_meta:
    snprintf(path, sizeof(path), "%s/meta.mdb", p->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/meta.mdb-lock", p->dir);
    unlink(path);
fail_data:
    for (unsigned i = 0; i < p->ndata; i++) {
        if (p->data_fd[i] < 0)
            continue; /* not ours (O_EXCL failed) or never created */
        snprintf(path, sizeof(path), "%s/data.%u", p->dir, i);
        unlink(path);
    }
fail:
    pool_free(p);
    return err;
}

int vv_pool_open(const char *dir, unsigned flags, struct vv_pool **out, struct vv_err *e)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/meta.mdb", dir);
    if (access(path, F_OK) != 0)
        return vv_err_set(e, ENOENT, "%s holds no vvfs pool (no %s); create one with "
                          "'vvfs init %s'", dir, path, dir);
    struct vv_pool *p = pool_alloc(dir);
    if (!p)
        return vv_err_set(e, ENOMEM, "out of memory");
    p->flags = flags;
    bool rdonly = flags & VV_POOL_RDONLY;
    int err = take_lock(p, e);
    if (err)
        goto fail;
    err = env_open(p, 0, rdonly);
    if (err) {
        vv_err_set(e, err, "cannot open pool metadata %s: %s", path, mdb_strerror(err));
        goto fail;
    }
    MDB_txn *txn;
    err = kv_err(mdb_txn_begin(p->env, NULL, rdonly ? MDB_RDONLY : 0, &txn));
    if (err) {
        vv_err_set(e, err, "cannot read pool metadata: %s", strerror(err));
        goto fail;
    }
    uint64_t version = 0, es = 0, gen = 0;
    err = kv_err(mdb_dbi_open(txn, "config", 0, &p->db_config));
    if (!err)
        err = kv_get_u64(txn, p->db_config, "format_version", &version);
    if (err) {
        vv_err_set(e, EIO, "%s is not a readable vvfs pool (metadata incomplete: %s)", p->dir,
                   strerror(err));
        mdb_txn_abort(txn);
        goto fail;
    }
    if (version > VV_POOL_FORMAT_VERSION) {
        err = vv_err_set(e, EPROTONOSUPPORT, "pool %s has format version %llu, newer than this "
                         "vvfs supports (%d); use a newer vvfs", p->dir,
                         (unsigned long long)version, VV_POOL_FORMAT_VERSION);
        mdb_txn_abort(txn);
        goto fail;
    }
    if (version < VV_POOL_FORMAT_VERSION && rdonly) {
        err = vv_err_set(e, EPROTONOSUPPORT, "pool %s has format version %llu; this vvfs "
                         "upgrades it to format %d in place: run 'vvfs upgrade %s' (or mount "
                         "it) first", p->dir, (unsigned long long)version,
                         VV_POOL_FORMAT_VERSION, p->dir);
        mdb_txn_abort(txn);
        goto fail;
    }
    err = kv_get_u64(txn, p->db_config, "extent_size", &es);
    if (!err)
        err = kv_get_u64(txn, p->db_config, "capacity", &p->capacity);
    if (!err)
        err = kv_get_u64(txn, p->db_config, "gen", &gen);
    if (!err)
        err = kv_get_u64(txn, p->db_config, "next_volume_id", &p->next_vol_id);
    uint64_t ndata = 0;
    if (!err)
        err = kv_get_u64(txn, p->db_config, "data_files", &ndata);
    if (!err && (ndata == 0 || ndata > DATA_FILES_MAX))
        err = EIO;
    p->ndata = (unsigned)ndata;
    uint64_t chunk = DATA_CHUNK_SLOTS_V1; /* pools made before the key existed */
    if (!err && (err = kv_get_u64(txn, p->db_config, "chunk_slots", &chunk)) == ENOENT)
        err = 0;
    if (!err && (chunk == 0 || chunk > (1u << 20) || (chunk & (chunk - 1))))
        err = EIO;
    p->chunk_slots = (uint32_t)chunk;
    p->chunk_shift = (unsigned)__builtin_ctzll(chunk);
    if (!err && (es < VV_EXTENT_MIN || es > VV_EXTENT_MAX || (es & (es - 1))))
        err = EIO;
    if (err) {
        vv_err_set(e, EIO, "pool %s has corrupt configuration", p->dir);
        mdb_txn_abort(txn);
        goto fail;
    }
    p->extent_size = (uint32_t)es;
    p->extent_shift = (unsigned)__builtin_ctzll(es);
    p->nslots = p->capacity / es;
    err = pool_open_dbs(p, txn, rdonly ? 0 : MDB_CREATE);
    if (!err)
        err = pool_id_load(p, txn, rdonly);
    if (!err && version < VV_POOL_FORMAT_VERSION) {
        /* the DB handles opened in this txn stay open once it commits */
        err = kv_err(mdb_txn_commit(txn));
        if (!err && version < 2)
            err = upgrade_from_v1(p, e);
        /* 2 -> 3: the snapshot and dead-list databases, just created (empty) */
        if (!err)
            err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        /* 3 -> 4: the groups database (just created) and the volumes' dead_blocks;
         * 4 -> 5: the repl database (just created) */
        if (!err && version == 3)
            err = upgrade_dead_counts(p, txn);
        if (!err) {
            err = kv_put_u64(txn, p->db_config, "format_version", VV_POOL_FORMAT_VERSION);
            if (!err)
                err = kv_err(mdb_txn_commit(txn));
            else
                mdb_txn_abort(txn);
        }
        if (!err)
            vv_info(VV_SS_META, "pool %s upgraded from format %llu to %d", p->dir,
                    (unsigned long long)version, VV_POOL_FORMAT_VERSION);
        if (!err)
            err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        if (err) {
            if (!e || !e->code)
                vv_err_set(e, err, "cannot upgrade pool %s: %s", p->dir, strerror(err));
            goto fail;
        }
        p->upgraded_from = (uint32_t)version;
    }
    if (err) {
        vv_err_set(e, err, "cannot open the databases of pool %s: %s", p->dir, strerror(err));
        mdb_txn_abort(txn);
        goto fail;
    }
    p->committed_txg = gen;
    p->quiesced_txg = gen;
    p->open_txg = gen + 1;
    p->want_txg = gen;
    err = vol_load(p, txn);
    if (!err)
        err = snap_load(p, txn);
    if (!err)
        err = group_load(p, txn);
    if (!err)
        err = alloc_init(p, txn);
    /* commit, not abort: the DB handles opened in this txn must stay open */
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (!err && !rdonly)
        err = env_fit(p, env_map_size(p, p->nslots));
    if (!err && !rdonly)
        (void)env_keep_room(p); /* a full host: the pool opens, new data is refused */
    if (err) {
        vv_err_set(e, err, "cannot load pool %s: %s", p->dir, strerror(err));
        goto fail;
    }
    err = data_files_open(p, rdonly ? O_RDONLY : O_RDWR, 0, e);
    if (!err)
        data_files_open_direct(p, rdonly ? O_RDONLY : O_RDWR);
    if (err)
        goto fail;
    p->dirty_bound = 256ULL << 20;
    p->txg_interval_ms = 1000;
    const char *s = getenv("VVFS_TXG_INTERVAL_MS");
    if (s && atoi(s) > 0)
        p->txg_interval_ms = (unsigned)atoi(s);
    s = getenv("VVFS_DIRTY_BOUND_MB");
    if (s && atoi(s) > 0)
        p->dirty_bound = (uint64_t)atoi(s) << 20;
    if (!rdonly) {
        /* A crash may have left data in slots that an uncommitted txg had taken, and the last
         * run's reclaim queue is gone: punch every free run now (cheap on holes), so that
         * free space is returned and known to be zeros. */
        alloc_punch_free(p);
        err = alloc_reclaimer_start(p);
        if (!err && (err = snap_resume(p)))
            vv_err_set(e, err, "cannot finish deleting a snapshot: %s", strerror(err));
        if (!err)
            err = txg_start(p);
        if (!err)
            err = reap_start(p);
        if (err) {
            if (!e || !e->code)
                vv_err_set(e, err, "cannot start the committer: %s", strerror(err));
            goto fail;
        }
    }
    vv_info(VV_SS_META, "opened pool %s%s: gen %llu, %zu volumes, %llu/%llu slots used",
            p->dir, rdonly ? " (read-only)" : "", (unsigned long long)gen, p->nvols,
            (unsigned long long)p->nused, (unsigned long long)p->nslots);
    *out = p;
    return 0;
fail:
    pool_free(p);
    return err;
}

int vv_pool_close(struct vv_pool *p)
{
    if (!p)
        return 0;
    int err = 0;
    reap_stop(p); /* a step in progress finishes; what is left resumes at the next open */
    if (p->committer_running)
        err = txg_stop(p);
    alloc_reclaimer_stop(p); /* after the final commit: it punches what that freed */
    rtxn_drain(p);
    vv_info(VV_SS_META, "closed pool %s at gen %llu%s", p->dir,
            (unsigned long long)p->committed_txg, err ? " (final commit failed)" : "");
    pool_free(p);
    return err;
}

int vv_pool_sync(struct vv_pool *p)
{
    return txg_sync(p);
}

const char *vv_pool_dir(const struct vv_pool *p)
{
    return p->dir;
}

void vv_pool_get_status(struct vv_pool *p, struct vv_pool_status *st)
{
    memset(st, 0, sizeof(*st));
    st->format_version = VV_POOL_FORMAT_VERSION;
    memcpy(st->id, p->id, sizeof(st->id));
    st->upgraded_from = p->upgraded_from;
    st->extent_size = p->extent_size;
    st->capacity = p->capacity;
    pthread_mutex_lock(&p->alloc_mu);
    st->used = p->nused * p->extent_size;
    st->reserve = p->reserve * p->extent_size;
    pthread_mutex_unlock(&p->alloc_mu);
    st->free = st->capacity - st->used;
    st->available = st->free > st->reserve ? st->free - st->reserve : 0;
    /* what can really be written: the filesystem under the pool may hold less (thin) */
    struct statvfs sv;
    if (atomic_load(&p->host_full))
        st->available = 0;
    else if (statvfs(p->dir, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < st->available)
        st->available = (uint64_t)sv.f_bavail * sv.f_frsize;
    st->host_full = atomic_load(&p->host_full);
    st->freeing = atomic_load(&p->freeing) * p->extent_size;
    pthread_rwlock_rdlock(&p->vol_mu);
    st->volumes = p->nvols;
    for (size_t i = 0; i < p->nvols; i++) {
        const struct vv_volume *v = p->vols[i];
        st->provisioned += atomic_load(&v->size);
        st->snapshots += v->dead_blocks * p->extent_size;
        for (size_t j = 0; j < v->nsnaps; j++)
            st->snapshot_count += v->snaps[j].name[0] != '.'; /* users' (vvfs's own: '.') */
        st->clones += v->clone;
    }
    st->groups = p->ngroups;
    pthread_rwlock_unlock(&p->vol_mu);
    pthread_mutex_lock(&p->txg_mu);
    st->committed_gen = p->committed_txg;
    st->dirty_bytes = p->dirty_bytes[p->open_txg & 1];
    st->commits = p->commits;
    st->read_only_errno = p->poisoned;
    st->read_only_since = p->poisoned_at;
    pthread_mutex_unlock(&p->txg_mu);
    st->checksum_errors = atomic_load(&p->checksum_errors);
    st->direct_io = p->dio_fd[0] >= 0;
    st->bounced_writes = atomic_load(&p->bounced_writes);
    st->batched_ios = atomic_load(&p->batched_ios);
}

/* ---- volumes ----------------------------------------------------------------------------- */

void vv_pool_set_observer(struct vv_pool *p, vv_volume_observer fn, void *ctx)
{
    p->observer = fn;
    p->observer_ctx = ctx;
}

void vol_notify(struct vv_pool *p, enum vv_volume_event ev, uint64_t id, const char *name,
                   const char *oldname)
{
    if (p->observer)
        p->observer(p->observer_ctx, ev, id, name, oldname);
}

static void volume_info(struct vv_pool *p, const struct vv_volume *v, struct vv_volume_info *o)
{
    memset(o, 0, sizeof(*o));
    o->id = v->id;
    snprintf(o->name, sizeof(o->name), "%s", v->name);
    o->size = atomic_load(&v->size);
    o->used = v->used_extents * p->extent_size;
    o->snapshots_used = v->dead_blocks * p->extent_size;
    o->created = v->created;
    o->modified_ns = atomic_load(&v->mtime_ns);
    if (!o->modified_ns)
        o->modified_ns = v->created * 1000000000ULL;
    o->create_gen = v->create_gen;
    o->open_count = v->open_count;
    const struct vgroup *g = v->group_id ? group_find_id(p, v->group_id) : NULL;
    snprintf(o->group, sizeof(o->group), "%s", g ? g->name : "");
    o->replica = v->replica;
    o->replica_session = v->repl_session;
    o->point_snapshot_id = v->point_snap;
    o->clone = v->clone;
    if (v->clone) {
        /* (vol_mu held: the origin and its snapshot exist as long as the clone does) */
        const struct vv_volume *ov = vol_find_id(p, v->origin_vol);
        o->origin_volume_id = v->origin_vol;
        o->origin_snapshot_id = v->origin_snap;
        snprintf(o->origin_volume, sizeof(o->origin_volume), "%s", ov ? ov->name : "?");
        snprintf(o->origin_snapshot, sizeof(o->origin_snapshot), "?");
        for (size_t i = 0; ov && i < ov->nsnaps; i++)
            if (ov->snaps[i].id == v->origin_snap)
                snprintf(o->origin_snapshot, sizeof(o->origin_snapshot), "%s",
                         ov->snaps[i].name);
    }
}

int vol_check_name(const char *name, struct vv_err *e)
{
    const char *why = vv_name_check(name);
    if (why)
        return vv_err_set(e, EINVAL, "invalid volume name: %s", why);
    return 0;
}

int vol_check_size(uint64_t size, struct vv_err *e)
{
    if (size == 0 || size % 4096)
        return vv_err_set(e, EINVAL, "volume size must be a positive multiple of 4096 bytes");
    if (size > VV_VOLUME_MAX_SIZE)
        return vv_err_set(e, EFBIG, "volume size is larger than the maximum (1P)");
    return 0;
}

int vol_writable(struct vv_pool *p, struct vv_err *e)
{
    if (p->flags & VV_POOL_RDONLY)
        return vv_err_set(e, EROFS, "pool is open read-only");
    return 0;
}

int vol_insert(struct vv_pool *p, struct vv_volume *v, struct vv_volume_info *out,
               struct vv_err *e)
{
    const char *name = v->name;
    int err = 0;
    pthread_mutex_lock(&p->commit_mu);
    pthread_rwlock_rdlock(&p->vol_mu);
    bool exists = vol_find_name(p, name) != NULL;
    pthread_rwlock_unlock(&p->vol_mu);
    if (exists) {
        err = vv_err_set(e, EEXIST, "volume '%s' already exists", name);
        goto out;
    }
    v->id = p->next_vol_id;
    v->created = (uint64_t)time(NULL);
    pthread_mutex_lock(&p->txg_mu);
    v->create_gen = p->committed_txg;
    pthread_mutex_unlock(&p->txg_mu);

    MDB_txn *txn;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (err)
        goto lmdb_fail;
    err = vol_write_rec(p, txn, v);
    uint8_t idb[8];
    put_be64(idb, v->id);
    MDB_val k = {strlen(name), (void *)name}, d = {8, idb};
    if (!err)
        err = kv_err(mdb_put(txn, p->db_volnames, &k, &d, MDB_NOOVERWRITE));
    if (!err)
        err = kv_put_u64(txn, p->db_config, "next_volume_id", v->id + 1);
    if (err) {
        mdb_txn_abort(txn);
        goto lmdb_fail;
    }
    err = kv_err(mdb_txn_commit(txn));
    if (err)
        goto lmdb_fail;
    p->next_vol_id = v->id + 1;
    pthread_rwlock_wrlock(&p->vol_mu);
    err = vol_append(p, v);
    if (!err && out)
        volume_info(p, v, out);
    pthread_rwlock_unlock(&p->vol_mu);
    if (err) {
        /* committed on disk but not in memory: refuse to go on in an inconsistent state */
        vv_err(VV_SS_META, "out of memory adding volume '%s' after it was committed", name);
        abort();
    }
    uint64_t id = v->id;
    char copy[VV_NAME_MAX + 1];
    snprintf(copy, sizeof(copy), "%s", name);
    pthread_mutex_unlock(&p->commit_mu);
    vol_notify(p, VV_VOL_CREATED, id, copy, NULL);
    return 0;
lmdb_fail:
    vv_err(VV_SS_META, "create volume '%s': metadata update failed: %s", name, strerror(err));
    vv_err_set(e, err, "cannot record volume '%s': %s", name, strerror(err));
out:
    pthread_mutex_unlock(&p->commit_mu);
    vol_put(v);
    return err;
}

int vv_volume_create(struct vv_pool *p, const char *name, uint64_t size,
                     struct vv_volume_info *out, struct vv_err *e)
{
    int err = vol_check_name(name, e);
    if (!err)
        err = vol_check_size(size, e);
    if (!err)
        err = vol_writable(p, e);
    if (err)
        return err;
    struct vv_volume *v = vol_new();
    if (!v)
        return vv_err_set(e, ENOMEM, "out of memory");
    snprintf(v->name, sizeof(v->name), "%s", name);
    atomic_store(&v->size, size);
    struct vv_volume_info info;
    if ((err = vol_insert(p, v, &info, e)))
        return err;
    vv_info(VV_SS_META, "created volume '%s' (id %llu, %llu bytes)", name,
            (unsigned long long)info.id, (unsigned long long)size);
    if (out)
        *out = info;
    return 0;
}

/* With V claimed: refuse new opens (busy) unless it is open now (EBUSY, E set). */
static int refuse_opens(struct vv_pool *p, struct vv_volume *v, const char *what,
                        struct vv_err *e)
{
    int err = 0;
    pthread_rwlock_wrlock(&p->vol_mu);
    if (v->open_count)
        err = vv_err_set(e, EBUSY, "cannot %s volume '%s': it is open (%u handle%s, e.g. a "
                         "loop device or a process)", what, v->name, v->open_count,
                         v->open_count == 1 ? "" : "s");
    else
        v->busy = true;
    pthread_rwlock_unlock(&p->vol_mu);
    return err;
}

static void allow_opens(struct vv_pool *p, struct vv_volume *v)
{
    pthread_rwlock_wrlock(&p->vol_mu);
    v->busy = false;
    pthread_rwlock_unlock(&p->vol_mu);
}

/* With V claimed and busy: one small txn takes the name away and marks the record
 * "deleting" (the reaper frees the blocks), then V leaves the table for p->dying. */
static int delete_claimed(struct vv_pool *p, struct vv_volume *v, bool recursive,
                          struct vv_err *e)
{
    /* commit whatever the volume still has dirty, so that the reaper finds all of it */
    int err = txg_sync(p);
    if (err)
        return vv_err_set(e, err, "cannot commit pending writes: %s", strerror(err));
    pthread_mutex_lock(&p->commit_mu);
    err = vol_dying_add(p, v); /* (room first: after the commit nothing may fail) */
    if (!err) {
        p->ndying--;
        MDB_txn *txn;
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        if (!err) {
            struct vv_volume tmp = *v;
            tmp.deleting = true;
            tmp.drop_from = 0;
            MDB_val nk = {strlen(v->name), v->name};
            err = kv_err(mdb_del(txn, p->db_volnames, &nk, NULL));
            if (!err && recursive)
                err = snap_drop_all(p, txn, v); /* their blocks go with the volume's */
            uint8_t kb[8];
            put_be64(kb, v->id);
            MDB_val k = {8, kb};
            /* no data block means no version either (xmap.h): nothing for the reaper;
             * but a clone may have versions of zeros only (what it discarded of its origin) */
            if (!err && v->used_extents == 0 && !v->clone)
                err = kv_err(mdb_del(txn, p->db_volumes, &k, NULL));
            else if (!err)
                err = vol_write_rec(p, txn, &tmp);
            if (!err)
                err = kv_err(mdb_txn_commit(txn));
            else
                mdb_txn_abort(txn);
        }
    }
    if (err) {
        pthread_mutex_unlock(&p->commit_mu);
        vv_err(VV_SS_META, "delete volume '%s' failed: %s", v->name, strerror(err));
        return vv_err_set(e, err, "cannot delete volume '%s': %s", v->name, strerror(err));
    }
    pthread_rwlock_wrlock(&p->vol_mu);
    for (size_t i = 0; i < p->nvols; i++) {
        if (p->vols[i] == v) {
            p->vols[i] = p->vols[--p->nvols];
            break;
        }
    }
    v->deleting = true;
    v->drop_from = 0;
    v->nsnaps = 0;
    pthread_rwlock_unlock(&p->vol_mu);
    uint64_t used = v->used_extents;
    if (used || v->clone) {
        p->dying[p->ndying++] = v; /* the table's reference moves to the dying list */
        atomic_fetch_add(&p->freeing, used);
        reap_kick(p);
    } else {
        vol_put(v); /* the table's; the claim still holds V */
    }
    pthread_mutex_unlock(&p->commit_mu);
    vv_info(VV_SS_META, "deleted volume '%s' (id %llu); its %llu blocks are freed in the "
            "background", v->name, (unsigned long long)v->id, (unsigned long long)used);
    return 0;
}

int vol_claim_to_change(struct vv_pool *p, const char *name, struct vv_volume **v,
                        struct vv_err *e)
{
    int err = vol_check_name(name, e);
    if (!err)
        err = vol_writable(p, e);
    return err ? err : vol_claim(p, name, v, e);
}

static int volume_delete(struct vv_pool *p, const char *name, bool recursive,
                         struct vv_err *e)
{
    struct vv_volume *v = NULL;
    int err = vol_claim_to_change(p, name, &v, e);
    if (err)
        return err;
    uint64_t id = v->id;
    size_t nsnaps = vol_nsnaps(p, v);
    err = replica_refuse(v, "delete", e);
    /* replication's snapshots go with its session (which would fail without them) */
    if (!err && vol_nsys_snaps(p, v))
        err = vv_err_set(e, EBUSY, "cannot delete volume '%s': it is replicated (delete its "
                         "replication session first)", name);
    if (!err && nsnaps && !recursive)
        err = vv_err_set(e, EBUSY, "cannot delete volume '%s': it has %zu snapshot%s (delete "
                         "them first, or delete it with them: --recursive)", name, nsnaps,
                         nsnaps == 1 ? "" : "s");
    if (!err)
        err = refuse_opens(p, v, "delete", e);
    if (!err && snap_open_count(p, v)) {
        allow_opens(p, v);
        err = vv_err_set(e, EBUSY, "cannot delete volume '%s': a snapshot of it is open",
                         name);
    }
    if (!err) {
        /* (a clone is created with the origin claimed: none can appear meanwhile) */
        const char *sn = NULL;
        pthread_rwlock_rdlock(&p->vol_mu);
        struct vv_volume *c = snap_clone_of_any(p, v, &sn);
        if (c)
            err = vv_err_set(e, EBUSY, "cannot delete volume '%s': volume '%s' is a clone of "
                             "its snapshot '%s' (delete the clone first)", name, c->name, sn);
        pthread_rwlock_unlock(&p->vol_mu);
        if (err)
            allow_opens(p, v);
    }
    if (!err) {
        err = delete_claimed(p, v, recursive, e);
        if (err)
            allow_opens(p, v);
    }
    vol_unclaim(v);
    if (!err)
        vol_notify(p, VV_VOL_DELETED, id, name, NULL);
    return err;
}

int vv_volume_delete(struct vv_pool *p, const char *name, struct vv_err *e)
{
    return volume_delete(p, name, false, e);
}

int vv_volume_delete_recursive(struct vv_pool *p, const char *name, struct vv_err *e)
{
    return volume_delete(p, name, true, e);
}

int vol_resize_claimed(struct vv_pool *p, struct vv_volume *v, uint64_t old, uint64_t size)
{
    int err = 0;
    struct slot_list freed = {0};
    if (size < old) {
        /* zero the tail of the last extent that stays, then drop whole extents past it */
        struct vv_vol h = {.pool = p, .vol = v, .as_of = XMAP_LIVE};
        uint64_t es = p->extent_size;
        uint64_t keep_end = (size + es - 1) / es * es;
        err = keep_end > size ? vv_vol_discard(&h, size, keep_end - size) : 0;
        if (!err)
            err = txg_sync(p);
        if (err)
            return err;
    }
    /* A shrink records the new size and where the drop starts in one small txn, then frees
     * the tail in bounded steps (reap.c; resumed at open after a crash).  A grow first
     * finishes a drop still pending, so that no freed block can reappear past the old end. */
    pthread_mutex_lock(&p->commit_mu);
    bool done = false;
    while (!err && !done && v->drop_from != DROP_NONE) {
        err = reap_step(p, v, &freed, &done);
        pthread_mutex_unlock(&p->commit_mu);
        alloc_punch_release(p, &freed);
        slot_list_free(&freed);
        pthread_mutex_lock(&p->commit_mu);
    }
    MDB_txn *txn;
    if (!err)
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (!err) {
        struct vv_volume tmp = *v;
        vol_touch(&tmp);
        atomic_store(&tmp.size, size);
        if (size < old)
            tmp.drop_from = (size + p->extent_size - 1) >> p->extent_shift;
        /* a clone that shrinks never gets the origin's blocks past its new end back */
        if (size < old && tmp.clone && tmp.origin_blocks > tmp.drop_from)
            tmp.origin_blocks = tmp.drop_from;
        err = vol_write_rec(p, txn, &tmp);
        if (!err)
            err = kv_err(mdb_txn_commit(txn));
        else
            mdb_txn_abort(txn);
        /* published only once committed */
        if (!err) {
            pthread_rwlock_wrlock(&p->vol_mu);
            atomic_store(&v->mtime_ns, atomic_load(&tmp.mtime_ns));
            atomic_store(&v->size, size);
            v->drop_from = tmp.drop_from;
            v->origin_blocks = tmp.origin_blocks;
            for (unsigned i = 0; i < v->norigins; i++)
                if (v->origins[i].limit > tmp.origin_blocks)
                    __atomic_store_n(&v->origins[i].limit, tmp.origin_blocks, __ATOMIC_RELAXED);
            pthread_rwlock_unlock(&p->vol_mu);
        }
    }
    done = false;
    while (!err && !done && size < old) {
        err = reap_step(p, v, &freed, &done);
        pthread_mutex_unlock(&p->commit_mu);
        alloc_punch_release(p, &freed);
        slot_list_free(&freed);
        pthread_mutex_lock(&p->commit_mu);
    }
    pthread_mutex_unlock(&p->commit_mu);
    return err;
}

int vv_volume_resize(struct vv_pool *p, const char *name, uint64_t size, struct vv_err *e)
{
    int err = vol_check_name(name, e);
    if (!err)
        err = vol_check_size(size, e);
    if (!err)
        err = vol_writable(p, e);
    struct vv_volume *v = NULL;
    if (!err)
        err = vol_claim(p, name, &v, e);
    if (err)
        return err;
    uint64_t id = v->id, old = atomic_load(&v->size);
    size_t nsnaps = vol_nsnaps(p, v);
    err = replica_refuse(v, "resize", e);
    if (!err && size < old && nsnaps)
        err = vv_err_set(e, EBUSY, "cannot shrink volume '%s': it has %zu snapshot%s, which "
                         "keep its old size", name, nsnaps, nsnaps == 1 ? "" : "s");
    if (size < old && !err)
        err = refuse_opens(p, v, "shrink", e);
    if (!err && size != old) {
        err = vol_resize_claimed(p, v, old, size);
        if (size < old)
            allow_opens(p, v);
        if (err) {
            vv_err(VV_SS_META, "resize volume '%s' failed: %s", name, strerror(err));
            vv_err_set(e, err, "cannot resize volume '%s': %s", name, strerror(err));
        }
    }
    vol_unclaim(v);
    if (err || size == old)
        return err;
    vv_info(VV_SS_META, "resized volume '%s' from %llu to %llu bytes", name,
            (unsigned long long)old, (unsigned long long)size);
    vol_notify(p, VV_VOL_RESIZED, id, name, NULL);
    return 0;
}

/* With V claimed: NEWNAME replaces its name, if no volume has it (commit_mu: so that no
 * create or other rename takes it meanwhile). */
static int rename_claimed(struct vv_pool *p, struct vv_volume *v, const char *newname,
                          struct vv_err *e)
{
    pthread_mutex_lock(&p->commit_mu);
    pthread_rwlock_rdlock(&p->vol_mu);
    bool taken = vol_find_name(p, newname) != NULL;
    pthread_rwlock_unlock(&p->vol_mu);
    int err = 0;
    if (taken) {
        err = vv_err_set(e, EEXIST, "volume '%s' already exists", newname);
        goto out;
    }
    MDB_txn *txn;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (err)
        goto fail;
    struct vv_volume copy = *v;
    snprintf(copy.name, sizeof(copy.name), "%s", newname);
    uint8_t idb[8];
    put_be64(idb, v->id);
    MDB_val ok = {strlen(v->name), v->name}, nk = {strlen(newname), (void *)newname};
    MDB_val d = {8, idb};
    err = kv_err(mdb_del(txn, p->db_volnames, &ok, NULL));
    if (!err)
        err = kv_err(mdb_put(txn, p->db_volnames, &nk, &d, MDB_NOOVERWRITE));
    if (!err)
        err = vol_write_rec(p, txn, &copy);
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (err)
        goto fail;
    pthread_rwlock_wrlock(&p->vol_mu);
    snprintf(v->name, sizeof(v->name), "%s", newname);
    pthread_rwlock_unlock(&p->vol_mu);
    goto out;
fail:
    vv_err(VV_SS_META, "rename volume '%s' failed: %s", v->name, strerror(err));
    vv_err_set(e, err, "cannot rename volume '%s': %s", v->name, strerror(err));
out:
    pthread_mutex_unlock(&p->commit_mu);
    return err;
}

int vv_volume_rename(struct vv_pool *p, const char *name, const char *newname, struct vv_err *e)
{
    int err = vol_check_name(name, e);
    if (!err)
        err = vol_check_name(newname, e);
    if (!err)
        err = vol_writable(p, e);
    struct vv_volume *v = NULL;
    if (!err)
        err = vol_claim(p, name, &v, e);
    if (err)
        return err;
    uint64_t id = v->id;
    bool same = strcmp(name, newname) == 0;
    err = replica_refuse(v, "rename", e);
    if (!err && !same)
        err = rename_claimed(p, v, newname, e);
    vol_unclaim(v);
    if (err || same)
        return err;
    vv_info(VV_SS_META, "renamed volume '%s' to '%s'", name, newname);
    vol_notify(p, VV_VOL_RENAMED, id, newname, name);
    return 0;
}

int vv_volume_get(struct vv_pool *p, const char *name, struct vv_volume_info *out,
                  struct vv_err *e)
{
    int err = vol_check_name(name, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_volume *v = vol_find_name(p, name);
    if (v)
        volume_info(p, v, out);
    pthread_rwlock_unlock(&p->vol_mu);
    return v ? 0 : vv_err_set(e, ENOENT, "volume '%s' does not exist", name);
}

int vv_volume_get_by_id(struct vv_pool *p, uint64_t id, struct vv_volume_info *out)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_volume *v = vol_find_id(p, id);
    if (v)
        volume_info(p, v, out);
    pthread_rwlock_unlock(&p->vol_mu);
    return v ? 0 : ENOENT;
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const struct vv_volume_info *)a)->name,
                  ((const struct vv_volume_info *)b)->name);
}

int vv_volume_list(struct vv_pool *p, struct vv_volume_info **out, size_t *n)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_volume_info *arr = calloc(p->nvols ? p->nvols : 1, sizeof(*arr));
    if (!arr) {
        pthread_rwlock_unlock(&p->vol_mu);
        return ENOMEM;
    }
    for (size_t i = 0; i < p->nvols; i++)
        volume_info(p, p->vols[i], &arr[i]);
    *n = p->nvols;
    pthread_rwlock_unlock(&p->vol_mu);
    qsort(arr, *n, sizeof(*arr), info_cmp);
    *out = arr;
    return 0;
}
