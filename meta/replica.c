/*
 * meta/replica.c — replica volumes and the records of the layers above (see pool.h).
 *
 * Design notes
 *   A replica is an ordinary volume with a flag, its session's id and its point (a snapshot
 *   id) in its record, so it is loaded, committed, snapshotted, checked and freed like any
 *   other; only the user-facing operations refuse it (replica_refuse, called with the volume
 *   claimed, so a release cannot change the answer meanwhile).  The receiver writes into it
 *   with vv_vol_write like anyone; users cannot, because the FUSE layer opens its point for
 *   them (read-only) instead of the volume.
 *
 *   Records are the `repl` database: key id u64 big-endian, value the caller's bytes.  Each
 *   put is its own LMDB txn, committed synchronously: a session's state is on disk when the
 *   call returns, apart from the txgs (LMDB serialises its write txns; no meta lock is
 *   taken, so a record can be put from anywhere, even with a volume claimed).
 */
#include "meta/meta_i.h"

#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int replica_refuse(const struct vv_volume *v, const char *what, struct vv_err *e)
{
    if (!v->replica)
        return 0;
    return vv_err_set(e, EROFS, "cannot %s volume '%s': it is a replica, written by its "
                      "replication session (%016llx) only; delete the session first to make it "
                      "an ordinary volume", what, v->name, (unsigned long long)v->repl_session);
}

/* With V claimed: make it the replica of SESSION (or an ordinary volume: SESSION 0) with
 * point POINT, in one txn. */
static int set_replica(struct vv_pool *p, struct vv_volume *v, uint64_t session, uint64_t point)
{
    pthread_mutex_lock(&p->commit_mu);
    struct vv_volume tmp = *v;
    tmp.replica = session != 0;
    tmp.repl_session = session;
    tmp.point_snap = point;
    MDB_txn *txn = NULL;
    int err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (!err)
        err = vol_write_rec(p, txn, &tmp);
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else if (txn) /* (an open txn would keep LMDB's writer lock) */
        mdb_txn_abort(txn);
    if (!err) {
        pthread_rwlock_wrlock(&p->vol_mu);
        v->replica = tmp.replica;
        v->repl_session = session;
        v->point_snap = point;
        pthread_rwlock_unlock(&p->vol_mu);
    }
    pthread_mutex_unlock(&p->commit_mu);
    return err;
}

int vv_replica_prepare(struct vv_pool *p, const char *name, uint64_t session, uint64_t size,
                       struct vv_volume_info *out, struct vv_err *e)
{
    int err = vol_check_name(name, e);
    if (!err)
        err = vol_check_size(size, e);
    if (!err)
        err = vol_writable(p, e);
    if (!err && !session)
        err = vv_err_set(e, EINVAL, "a replica needs a session");
    if (err)
        return err;
    struct vv_volume *v = NULL;
    err = vol_claim(p, name, &v, NULL);
    if (err == ENOENT) {
        /* a new replica, born with its flag: no moment at which users could write it */
        if (!(v = vol_new()))
            return vv_err_set(e, ENOMEM, "out of memory");
        snprintf(v->name, sizeof(v->name), "%s", name);
        atomic_store(&v->size, size);
        v->replica = true;
        v->repl_session = session;
        if ((err = vol_insert(p, v, out, e)) == EEXIST)
            return vv_err_set(e, EEXIST, "volume '%s' was created meanwhile", name);
        if (!err)
            vv_info(VV_SS_META, "created volume '%s' (%llu bytes), the replica of session "
                    "%016llx", name, (unsigned long long)size, (unsigned long long)session);
        return err;
    }
    if (err)
        return vv_err_set(e, err, "cannot use volume '%s': %s", name, strerror(err));
    uint64_t old = atomic_load(&v->size);
    if (!v->replica)
        err = vv_err_set(e, EEXIST, "volume '%s' exists on this node and is not a replica: "
                         "rename or delete it, or replicate to another name", name);
    else if (v->repl_session != session)
        err = vv_err_set(e, EEXIST, "volume '%s' is the replica of another replication session "
                         "(%016llx)", name, (unsigned long long)v->repl_session);
    else if (size < old)
        err = vv_err_set(e, EINVAL, "replica '%s' is %llu bytes, larger than the source's "
                         "%llu", name, (unsigned long long)old, (unsigned long long)size);
    if (!err && size > old) {
        if ((err = vol_resize_claimed(p, v, old, size)))
            vv_err_set(e, err, "cannot grow replica '%s': %s", name, strerror(err));
        else
            vv_info(VV_SS_META, "grew replica '%s' from %llu to %llu bytes", name,
                    (unsigned long long)old, (unsigned long long)size);
    }
    uint64_t id = v->id;
    vol_unclaim(v);
    if (!err && size > old)
        vol_notify(p, VV_VOL_RESIZED, id, name, NULL);
    if (!err && out)
        err = vv_volume_get(p, name, out, e);
    return err;
}

static int name_id_cmp(const void *a, const void *b)
{
    const struct vv_volume *x = *(struct vv_volume *const *)a, *y = *(struct vv_volume *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* snapshot NAME of the N replicas VOLS of SESSION, in one txn; POINT: their new points */
static int replica_snap(struct vv_pool *p, uint64_t session, const char *const *vols, size_t n,
                        const char *point, bool is_point, struct vv_err *e)
{
    int err = vol_writable(p, e);
    if (err)
        return err;
    struct vv_volume **a = calloc(n ? n : 1, sizeof(*a));
    if (!a)
        return vv_err_set(e, ENOMEM, "out of memory");
    /* claimed in ascending id order, as groups claim theirs (meta_i.h) */
    size_t refs = 0;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (; refs < n; refs++) {
        struct vv_volume *v = vol_find_name(p, vols[refs]);
        if (!v || !v->replica || v->repl_session != session) {
            err = vv_err_set(e, ENOENT, "volume '%s' is not a replica of session %016llx",
                             vols[refs], (unsigned long long)session);
            break;
        }
        vol_ref(v);
        a[refs] = v;
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (!err) {
        qsort(a, n, sizeof(*a), name_id_cmp);
        for (size_t i = 0; i < n; i++)
            pthread_mutex_lock(&a[i]->op_mu); /* vol_unclaim unlocks and puts */
        pthread_rwlock_rdlock(&p->vol_mu);
        for (size_t i = 0; i < n && !err; i++)
            if (a[i]->deleting || !a[i]->replica || a[i]->repl_session != session)
                err = vv_err_set(e, ENOENT, "volume '%s' is no longer a replica of session "
                                 "%016llx", a[i]->name, (unsigned long long)session);
        pthread_rwlock_unlock(&p->vol_mu);
        /* (claimed, a replica is neither renamed nor deleted: the flags hold from here) */
        if (!err)
            err = snap_create_claimed(p, a, n, point, is_point, NULL, e);
        for (size_t i = n; i > 0; i--)
            vol_unclaim(a[i - 1]);
    } else {
        for (size_t i = 0; i < refs; i++)
            vol_put(a[i]);
    }
    free(a);
    for (size_t i = 0; i < n && !err && is_point; i++) {
        struct vv_volume_info vi;
        if (vv_volume_get(p, vols[i], &vi, NULL) == 0)
            vol_notify(p, VV_VOL_RESTORED, vi.id, vols[i], NULL);
    }
    return err;
}

int vv_replica_point(struct vv_pool *p, uint64_t session, const char *const *vols, size_t n,
                     const char *point, struct vv_err *e)
{
    return replica_snap(p, session, vols, n, point, true, e);
}

int vv_replica_snapshot(struct vv_pool *p, uint64_t session, const char *vol, const char *name,
                        struct vv_err *e)
{
    return replica_snap(p, session, &vol, 1, name, false, e);
}

int vv_replica_release(struct vv_pool *p, const char *name, uint64_t session,
                       struct vv_err *e)
{
    struct vv_volume *v = NULL;
    int err = vol_claim_to_change(p, name, &v, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    bool ours = v->replica && v->repl_session == session;
    uint64_t point = v->point_snap;
    char pname[VV_NAME_MAX + 2] = "";
    for (size_t i = 0; point && i < v->nsnaps; i++)
        if (v->snaps[i].id == point)
            snprintf(pname, sizeof(pname), "%s", v->snaps[i].name);
    pthread_rwlock_unlock(&p->vol_mu);
    if (!ours)
        err = vv_err_set(e, ENOENT, "volume '%s' is not a replica of session %016llx", name,
                         (unsigned long long)session);
    /* what was staged after the point is not a point of the source: put it back */
    if (!err && pname[0] && !(err = snap_refuse_opens(p, v, e))) {
        err = snap_restore_busy(p, v, pname, e);
        snap_allow_opens(p, v);
    }
    if (!err && (err = set_replica(p, v, 0, 0)))
        vv_err_set(e, err, "cannot record volume '%s': %s", name, strerror(err));
    uint64_t id = v->id;
    vol_unclaim(v);
    if (!err) {
        vv_info(VV_SS_META, "volume '%s' is no longer a replica", name);
        vol_notify(p, VV_VOL_RESTORED, id, name, NULL);
    }
    return err;
}

/* ---- records ------------------------------------------------------------------------------- */

int vv_record_put(struct vv_pool *p, uint64_t id, const void *rec, size_t len,
                  struct vv_err *e)
{
    if (len > VV_RECORD_MAX)
        return vv_err_set(e, EINVAL, "record too large");
    int err = vol_writable(p, e);
    if (err)
        return err;
    uint8_t kb[8];
    put_be64(kb, id);
    MDB_val k = {8, kb}, d = {len, (void *)rec};
    MDB_txn *txn = NULL;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (!err)
        err = kv_err(mdb_put(txn, p->db_repl, &k, &d, 0));
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else if (txn) /* (an open txn would keep LMDB's writer lock) */
        mdb_txn_abort(txn);
    if (err)
        vv_err_set(e, err, "cannot record in the pool: %s", strerror(err));
    return err;
}

int vv_record_get(struct vv_pool *p, uint64_t id, void *buf, size_t cap, size_t *len)
{
    uint8_t kb[8];
    put_be64(kb, id);
    MDB_val k = {8, kb}, d;
    MDB_txn *txn;
    int err = kv_err(mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn));
    if (err)
        return err;
    err = kv_err(mdb_get(txn, p->db_repl, &k, &d));
    if (!err && d.mv_size > cap)
        err = ENOSPC;
    if (!err) {
        memcpy(buf, d.mv_data, d.mv_size);
        *len = d.mv_size;
    }
    mdb_txn_abort(txn);
    return err;
}

int vv_record_delete(struct vv_pool *p, uint64_t id, struct vv_err *e)
{
    int err = vol_writable(p, e);
    if (err)
        return err;
    uint8_t kb[8];
    put_be64(kb, id);
    MDB_val k = {8, kb};
    MDB_txn *txn = NULL;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (!err)
        err = kv_err(mdb_del(txn, p->db_repl, &k, NULL));
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else if (txn) /* (an open txn would keep LMDB's writer lock) */
        mdb_txn_abort(txn);
    if (err && err != ENOENT)
        vv_err_set(e, err, "cannot record in the pool: %s", strerror(err));
    return err;
}

int vv_record_list(struct vv_pool *p, uint64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    MDB_txn *txn;
    int err = kv_err(mdb_txn_begin(p->env, NULL, MDB_RDONLY, &txn));
    if (err)
        return err;
    MDB_cursor *cur;
    if ((err = kv_err(mdb_cursor_open(txn, p->db_repl, &cur)))) {
        mdb_txn_abort(txn);
        return err;
    }
    MDB_val k, d;
    size_t cap = 0;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && !err;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != 8)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *a = realloc(*ids, cap * sizeof(*a));
            if (!a) {
                err = ENOMEM;
                break;
            }
            *ids = a;
        }
        (*ids)[(*n)++] = get_be64(k.mv_data);
    }
    if (!err && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (err) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return err;
}
