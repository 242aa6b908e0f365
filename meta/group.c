/*
 * meta/group.c — consistency groups: named sets of volumes snapshotted together.
 *
 * Design notes
 *   A group is a row id -> (created, name) in `groups`; membership is the group id in each
 *   member's volume record, so a volume is in at most one group by construction and a
 *   volume delete takes it out of its group with no extra step.  Listing the members scans
 *   the volume table (groups and volumes are few; no operation here touches the map).
 *
 *   Every group operation holds group_mu for its whole run, so membership cannot change
 *   under it.  Operations that act on the members (snapshot, restore) then claim them all,
 *   in ascending id order: single-volume operations claim one volume only, so nobody waits
 *   for a claim while holding a higher one, and there is no cycle.  A member deleted before
 *   its claim is found deleting and left out.
 *
 *   A group snapshot is snap_create_claimed over the members: one txn and one gen for every
 *   member, after one commit of the open txg, so the set of snapshots is one point in time.
 *   A group restore restores each member from its snapshot of that name, after checking that
 *   every member has it and that they are all of one gen (a group snapshot, not names that
 *   happen to match) and making every member busy, so no open slips in between members.
 */
#include "meta/meta_i.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GROUP_MEMBERS_MAX 256 /* members named in one request */

/* ---- table and records --------------------------------------------------------------------- */

const struct vgroup *group_find_id(const struct vv_pool *p, uint64_t id)
{
    for (size_t i = 0; i < p->ngroups; i++)
        if (p->groups[i].id == id)
            return &p->groups[i];
    return NULL;
}

static struct vgroup *group_find(struct vv_pool *p, const char *name)
{
    for (size_t i = 0; i < p->ngroups; i++)
        if (strcmp(p->groups[i].name, name) == 0)
            return &p->groups[i];
    return NULL;
}

static int group_put_rec(struct vv_pool *p, MDB_txn *txn, const struct vgroup *g)
{
    struct group_rec r;
    memset(&r, 0, sizeof(r));
    r.version = GROUP_REC_VERSION;
    r.created = g->created;
    snprintf(r.name, sizeof(r.name), "%s", g->name);
    uint8_t kb[8];
    put_be64(kb, g->id);
    MDB_val k = {8, kb}, d = {sizeof(r), &r};
    return kv_err(mdb_put(txn, p->db_groups, &k, &d, 0));
}

int group_load(struct vv_pool *p, MDB_txn *txn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, p->db_groups, &cur);
    if (rc)
        return kv_err(rc);
    MDB_val k, d;
    int err = 0;
    uint64_t next = 1;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && !err;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        struct group_rec r;
        memset(&r, 0, sizeof(r));
        if (k.mv_size != 8 || d.mv_size < offsetof(struct group_rec, name) + 1) {
            vv_err(VV_SS_META, "corrupt group record (key %zu bytes, value %zu bytes)",
                   k.mv_size, d.mv_size);
            err = EIO;
            break;
        }
        memcpy(&r, d.mv_data, d.mv_size < sizeof(r) ? d.mv_size : sizeof(r));
        struct vgroup *a = realloc(p->groups, (p->ngroups + 1) * sizeof(*a));
        if (!a) {
            err = ENOMEM;
            break;
        }
        p->groups = a;
        struct vgroup *g = &p->groups[p->ngroups++];
        g->id = get_be64(k.mv_data);
        g->created = r.created;
        snprintf(g->name, sizeof(g->name), "%.*s", VV_NAME_MAX, r.name);
        if (g->id >= next)
            next = g->id + 1;
    }
    if (!err && rc && rc != MDB_NOTFOUND)
        err = kv_err(rc);
    mdb_cursor_close(cur);
    for (size_t i = 0; i < p->nvols && !err; i++) {
        struct vv_volume *v = p->vols[i];
        if (v->group_id && !group_find_id(p, v->group_id)) {
            vv_err(VV_SS_META, "volume '%s' is in group %llu, which does not exist", v->name,
                   (unsigned long long)v->group_id);
            if (!(p->flags & VV_POOL_RDONLY))
                err = EIO; /* (fsck says so and goes on) */
        }
    }
    if (!err) {
        uint64_t stored = 0;
        int e2 = kv_get_u64(txn, p->db_config, "next_group_id", &stored);
        if (e2 && e2 != ENOENT)
            err = e2;
        p->next_group_id = stored > next ? stored : next;
    }
    return err;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static int check_group_name(const char *name, struct vv_err *e)
{
    const char *why = vv_name_check(name);
    return why ? vv_err_set(e, EINVAL, "invalid group name: %s", why) : 0;
}

static int begin(struct vv_pool *p, const char *name, struct vv_err *e)
{
    int err = check_group_name(name, e);
    if (!err && (p->flags & VV_POOL_RDONLY))
        err = vv_err_set(e, EROFS, "pool is open read-only");
    if (!err)
        pthread_mutex_lock(&p->group_mu);
    return err;
}

/* The volumes named in NAMES (group_mu held), looked up and checked for WANT_GID: 0 (must be
 * in no group), or a group id (must be in it).  Refs in OUT (put them). */
static int lookup_vols(struct vv_pool *p, const char *gname, const char *const *names, size_t n,
                       uint64_t want_gid, bool adding, struct vv_volume **out, struct vv_err *e)
{
    int err = 0;
    size_t got = 0;
    pthread_rwlock_rdlock(&p->vol_mu);
    for (size_t i = 0; i < n && !err; i++) {
        const char *why = vv_name_check(names[i]);
        struct vv_volume *v = why ? NULL : vol_find_name(p, names[i]);
        for (size_t j = 0; j < i && !err; j++)
            if (strcmp(names[j], names[i]) == 0)
                err = vv_err_set(e, EINVAL, "volume '%s' is named twice", names[i]);
        if (err)
            break;
        if (why) {
            err = vv_err_set(e, EINVAL, "invalid volume name: %s", why);
        } else if (!v) {
            err = vv_err_set(e, ENOENT, "volume '%s' does not exist", names[i]);
        } else if (adding && v->replica) {
            err = replica_refuse(v, "add to a group", e);
        } else if (adding && v->group_id == want_gid && want_gid) {
            err = vv_err_set(e, EINVAL, "volume '%s' is in group '%s' already", names[i], gname);
        } else if (adding && v->group_id) {
            const struct vgroup *g = group_find_id(p, v->group_id);
            err = vv_err_set(e, EBUSY, "volume '%s' is in group '%s' (a volume is in one group "
                             "at most: remove it there first)", names[i], g ? g->name : "?");
        } else if (!adding && v->group_id != want_gid) {
            err = vv_err_set(e, EINVAL, "volume '%s' is not in group '%s'", names[i], gname);
        } else {
            vol_ref(v);
            out[got++] = v;
        }
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (err)
        while (got)
            vol_put(out[--got]);
    return err;
}

/* In one txn (commit_mu held): set the group of each of the N volumes V to GID.  ENOENT
 * (E set) if one was deleted since it was looked up. */
static int set_groups(struct vv_pool *p, MDB_txn *txn, struct vv_volume *const *v, size_t n,
                      uint64_t gid, struct vv_err *e)
{
    int err = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i]->deleting) /* (written with commit_mu held) */
            return vv_err_set(e, ENOENT, "volume '%s' was deleted meanwhile", v[i]->name);
    for (size_t i = 0; i < n && !err; i++) {
        struct vv_volume tmp = *v[i];
        tmp.group_id = gid;
        err = vol_write_rec(p, txn, &tmp);
    }
    return err;
}

static void publish_groups(struct vv_pool *p, struct vv_volume *const *v, size_t n, uint64_t gid)
{
    for (size_t i = 0; i < n; i++)
        v[i]->group_id = gid;
}

static void put_all(struct vv_volume **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vol_put(v[i]);
}

static int id_cmp(const void *a, const void *b)
{
    const struct vv_volume *x = *(struct vv_volume *const *)a, *y = *(struct vv_volume *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Claim every live member of group GID (group_mu held), in ascending id order.  *OUT is
 * allocated (free it after vol_unclaim of each). */
static int claim_members(struct vv_pool *p, uint64_t gid, struct vv_volume ***out, size_t *n)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    size_t k = 0;
    struct vv_volume **a = calloc(p->nvols ? p->nvols : 1, sizeof(*a));
    for (size_t i = 0; a && i < p->nvols; i++) {
        if (p->vols[i]->group_id == gid) {
            vol_ref(p->vols[i]);
            a[k++] = p->vols[i];
        }
    }
    pthread_rwlock_unlock(&p->vol_mu);
    if (!a)
        return ENOMEM;
    qsort(a, k, sizeof(*a), id_cmp);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        pthread_mutex_lock(&a[i]->op_mu);
        pthread_rwlock_rdlock(&p->vol_mu);
        bool gone = a[i]->deleting;
        pthread_rwlock_unlock(&p->vol_mu);
        if (gone)
            vol_unclaim(a[i]); /* deleted meanwhile: it left the group */
        else
            a[m++] = a[i];
    }
    *out = a;
    *n = m;
    return 0;
}

static void unclaim_all(struct vv_volume **a, size_t n)
{
    for (size_t i = n; i > 0; i--)
        vol_unclaim(a[i - 1]);
    free(a);
}

/* ---- operations ------------------------------------------------------------------------------ */

int vv_group_create(struct vv_pool *p, const char *name, const char *const *vols, size_t n,
                    struct vv_err *e)
{
    if (n > GROUP_MEMBERS_MAX)
        return vv_err_set(e, EINVAL, "at most %d volumes at a time", GROUP_MEMBERS_MAX);
    int err = begin(p, name, e);
    if (err)
        return err;
    struct vv_volume *v[GROUP_MEMBERS_MAX];
    pthread_rwlock_rdlock(&p->vol_mu);
    bool taken = group_find(p, name) != NULL;
    pthread_rwlock_unlock(&p->vol_mu);
    if (taken)
        err = vv_err_set(e, EEXIST, "group '%s' already exists", name);
    if (!err)
        err = lookup_vols(p, name, vols, n, 0, true, v, e);
    if (err) {
        pthread_mutex_unlock(&p->group_mu);
        return err;
    }
    pthread_mutex_lock(&p->commit_mu);
    struct vgroup g = {.id = p->next_group_id, .created = (uint64_t)time(NULL)};
    snprintf(g.name, sizeof(g.name), "%s", name);
    struct vgroup *a = NULL;
    pthread_rwlock_wrlock(&p->vol_mu);
    a = realloc(p->groups, (p->ngroups + 1) * sizeof(*a)); /* room first */
    if (a)
        p->groups = a;
    pthread_rwlock_unlock(&p->vol_mu);
    MDB_txn *txn = NULL;
    err = a ? kv_err(mdb_txn_begin(p->env, NULL, 0, &txn)) : ENOMEM;
    if (!err)
        err = group_put_rec(p, txn, &g);
    if (!err)
        err = kv_put_u64(txn, p->db_config, "next_group_id", g.id + 1);
    if (!err)
        err = set_groups(p, txn, v, n, g.id, e);
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else if (txn)
        mdb_txn_abort(txn);
    if (!err) {
        p->next_group_id = g.id + 1;
        pthread_rwlock_wrlock(&p->vol_mu);
        p->groups[p->ngroups++] = g;
        publish_groups(p, v, n, g.id);
        pthread_rwlock_unlock(&p->vol_mu);
    }
    pthread_mutex_unlock(&p->commit_mu);
    pthread_mutex_unlock(&p->group_mu);
    put_all(v, n);
    if (err && !(e && e->code))
        vv_err_set(e, err, "cannot create group '%s': %s", name, strerror(err));
    if (!err)
        vv_info(VV_SS_META, "created group '%s' with %zu volume%s", name, n, n == 1 ? "" : "s");
    return err;
}

int vv_group_change(struct vv_pool *p, const char *name, const char *const *add, size_t nadd,
                    const char *const *remove, size_t nremove, struct vv_err *e)
{
    if (nadd > GROUP_MEMBERS_MAX || nremove > GROUP_MEMBERS_MAX)
        return vv_err_set(e, EINVAL, "at most %d volumes at a time", GROUP_MEMBERS_MAX);
    for (size_t i = 0; i < nadd; i++)
        for (size_t j = 0; j < nremove; j++)
            if (strcmp(add[i], remove[j]) == 0)
                return vv_err_set(e, EINVAL, "volume '%s' is both added and removed", add[i]);
    int err = begin(p, name, e);
    if (err)
        return err;
    struct vv_volume *va[GROUP_MEMBERS_MAX], *vr[GROUP_MEMBERS_MAX];
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vgroup *g = group_find(p, name);
    uint64_t gid = g ? g->id : 0;
    pthread_rwlock_unlock(&p->vol_mu);
    if (!g)
        err = vv_err_set(e, ENOENT, "group '%s' does not exist", name);
    if (!err)
        err = lookup_vols(p, name, add, nadd, gid, true, va, e);
    if (!err && (err = lookup_vols(p, name, remove, nremove, gid, false, vr, e)))
        put_all(va, nadd);
    if (err) {
        pthread_mutex_unlock(&p->group_mu);
        return err;
    }
    pthread_mutex_lock(&p->commit_mu);
    MDB_txn *txn = NULL;
    err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
    if (!err)
        err = set_groups(p, txn, va, nadd, gid, e);
    if (!err)
        err = set_groups(p, txn, vr, nremove, 0, e);
    if (!err)
        err = kv_err(mdb_txn_commit(txn));
    else if (txn)
        mdb_txn_abort(txn);
    if (!err) {
        pthread_rwlock_wrlock(&p->vol_mu);
        publish_groups(p, va, nadd, gid);
        publish_groups(p, vr, nremove, 0);
        pthread_rwlock_unlock(&p->vol_mu);
    }
    pthread_mutex_unlock(&p->commit_mu);
    pthread_mutex_unlock(&p->group_mu);
    put_all(va, nadd);
    put_all(vr, nremove);
    if (err && !(e && e->code))
        vv_err_set(e, err, "cannot change group '%s': %s", name, strerror(err));
    else if (!err)
        vv_info(VV_SS_META, "group '%s': %zu volume%s added, %zu removed", name, nadd,
                nadd == 1 ? "" : "s", nremove);
    return err;
}

int vv_group_delete(struct vv_pool *p, const char *name, struct vv_err *e)
{
    int err = begin(p, name, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vgroup *g = group_find(p, name);
    uint64_t gid = g ? g->id : 0;
    size_t k = 0;
    struct vv_volume **m = calloc(p->nvols ? p->nvols : 1, sizeof(*m));
    for (size_t i = 0; g && m && i < p->nvols; i++)
        if (p->vols[i]->group_id == gid) {
            vol_ref(p->vols[i]);
            m[k++] = p->vols[i];
        }
    pthread_rwlock_unlock(&p->vol_mu);
    if (!g)
        err = vv_err_set(e, ENOENT, "group '%s' does not exist", name);
    else if (!m)
        err = vv_err_set(e, ENOMEM, "out of memory");
    if (!err) {
        pthread_mutex_lock(&p->commit_mu);
        MDB_txn *txn = NULL;
        uint8_t kb[8];
        put_be64(kb, gid);
        MDB_val key = {8, kb};
        err = kv_err(mdb_txn_begin(p->env, NULL, 0, &txn));
        if (!err)
            err = kv_err(mdb_del(txn, p->db_groups, &key, NULL));
        if (!err)
            err = set_groups(p, txn, m, k, 0, e);
        if (!err)
            err = kv_err(mdb_txn_commit(txn));
        else if (txn)
            mdb_txn_abort(txn);
        if (!err) {
            pthread_rwlock_wrlock(&p->vol_mu);
            publish_groups(p, m, k, 0);
            g = group_find(p, name);
            *g = p->groups[--p->ngroups];
            pthread_rwlock_unlock(&p->vol_mu);
        }
        pthread_mutex_unlock(&p->commit_mu);
        if (err && !(e && e->code))
            vv_err_set(e, err, "cannot delete group '%s': %s", name, strerror(err));
        else if (!err)
            vv_info(VV_SS_META, "deleted group '%s' (its %zu volume%s stay)", name, k,
                    k == 1 ? "" : "s");
    }
    pthread_mutex_unlock(&p->group_mu);
    if (m)
        put_all(m, k);
    free(m);
    return err;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* G's members and group snapshots into O (vol_mu held) */
static int group_info(struct vv_pool *p, const struct vgroup *g, struct vv_group_info *o)
{
    memset(o, 0, sizeof(*o));
    o->id = g->id;
    o->created = g->created;
    snprintf(o->name, sizeof(o->name), "%s", g->name);
    const struct vv_volume *first = NULL;
    for (size_t i = 0; i < p->nvols; i++)
        if (p->vols[i]->group_id == g->id) {
            o->nvolumes++;
            if (!first || p->vols[i]->nsnaps < first->nsnaps)
                first = p->vols[i];
        }
    o->volumes = calloc(o->nvolumes ? o->nvolumes : 1, sizeof(*o->volumes));
    o->snapshots = calloc(first && first->nsnaps ? first->nsnaps : 1, sizeof(*o->snapshots));
    if (!o->volumes || !o->snapshots) {
        vv_group_info_free(o);
        return ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < p->nvols; i++)
        if (p->vols[i]->group_id == g->id)
            snprintf(o->volumes[k++], sizeof(o->volumes[0]), "%s", p->vols[i]->name);
    qsort(o->volumes, o->nvolumes, sizeof(o->volumes[0]), name_cmp);
    /* a group snapshot: the member with the fewest snapshots has it, and so do all the
     * others, of the same gen */
    for (size_t s = 0; first && s < first->nsnaps; s++) {
        const struct vsnap *fs = &first->snaps[s];
        bool all = fs->name[0] != '.'; /* (vvfs's own are not users' group snapshots) */
        for (size_t i = 0; i < p->nvols && all; i++) {
            const struct vv_volume *v = p->vols[i];
            if (v->group_id != g->id || v == first)
                continue;
            bool has = false;
            for (size_t j = 0; j < v->nsnaps && !has; j++)
                has = v->snaps[j].gen == fs->gen && strcmp(v->snaps[j].name, fs->name) == 0;
            all = has;
        }
        if (all)
            snprintf(o->snapshots[o->nsnapshots++], sizeof(o->snapshots[0]), "%s", fs->name);
    }
    return 0;
}

void vv_group_info_free(struct vv_group_info *g)
{
    free(g->volumes);
    free(g->snapshots);
    g->volumes = NULL;
    g->snapshots = NULL;
}

int vv_group_get(struct vv_pool *p, const char *name, struct vv_group_info *out,
                 struct vv_err *e)
{
    int err = check_group_name(name, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    const struct vgroup *g = group_find(p, name);
    err = g ? group_info(p, g, out) : ENOENT;
    pthread_rwlock_unlock(&p->vol_mu);
    if (err == ENOENT)
        return vv_err_set(e, ENOENT, "group '%s' does not exist", name);
    return err ? vv_err_set(e, err, "out of memory") : 0;
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const struct vv_group_info *)a)->name, ((const struct vv_group_info *)b)->name);
}

int vv_group_list(struct vv_pool *p, struct vv_group_info **out, size_t *n)
{
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vv_group_info *a = calloc(p->ngroups ? p->ngroups : 1, sizeof(*a));
    int err = a ? 0 : ENOMEM;
    size_t k = 0;
    for (; !err && k < p->ngroups; k++)
        err = group_info(p, &p->groups[k], &a[k]);
    pthread_rwlock_unlock(&p->vol_mu);
    if (err) {
        for (size_t i = 0; a && i < k; i++)
            vv_group_info_free(&a[i]);
        free(a);
        return err;
    }
    qsort(a, k, sizeof(*a), info_cmp);
    *out = a;
    *n = k;
    return 0;
}

/* group_mu taken and the members of NAME claimed: *M, *N; *GNAME checked */
static int members_begin(struct vv_pool *p, const char *name, const char *snap,
                         struct vv_volume ***m, size_t *n, struct vv_err *e)
{
    int err = snap_check_name(snap, e);
    if (err)
        return err;
    err = begin(p, name, e);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->vol_mu);
    struct vgroup *g = group_find(p, name);
    uint64_t gid = g ? g->id : 0;
    pthread_rwlock_unlock(&p->vol_mu);
    if (!g)
        err = vv_err_set(e, ENOENT, "group '%s' does not exist", name);
    else if ((err = claim_members(p, gid, m, n)))
        vv_err_set(e, err, "out of memory");
    else if (*n == 0) {
        unclaim_all(*m, 0);
        err = vv_err_set(e, EINVAL, "group '%s' has no volumes", name);
    }
    if (err)
        pthread_mutex_unlock(&p->group_mu);
    return err;
}

int vv_group_snapshot(struct vv_pool *p, const char *name, const char *snap, struct vv_err *e)
{
    struct vv_volume **m;
    size_t n;
    int err = members_begin(p, name, snap, &m, &n, e);
    if (err)
        return err;
    err = snap_create_claimed(p, m, n, snap, false, NULL, e);
    unclaim_all(m, n);
    pthread_mutex_unlock(&p->group_mu);
    if (!err)
        vv_info(VV_SS_META, "snapshot '%s' of group '%s': %zu volume%s at one gen", snap, name,
                n, n == 1 ? "" : "s");
    return err;
}

int vv_group_restore(struct vv_pool *p, const char *name, const char *snap, struct vv_err *e)
{
    struct vv_volume **m;
    size_t n;
    int err = members_begin(p, name, snap, &m, &n, e);
    if (err)
        return err;
    /* a group snapshot: every member has one of that name, all of one gen */
    pthread_rwlock_rdlock(&p->vol_mu);
    uint64_t gen = 0;
    for (size_t i = 0; i < n && !err; i++) {
        const struct vsnap *s = NULL;
        for (size_t j = 0; j < m[i]->nsnaps && !s; j++)
            if (strcmp(m[i]->snaps[j].name, snap) == 0)
                s = &m[i]->snaps[j];
        if (!s)
            err = vv_err_set(e, ENOENT, "volume '%s' of group '%s' has no snapshot '%s'",
                             m[i]->name, name, snap);
        else if (i && s->gen != gen)
            err = vv_err_set(e, EINVAL, "snapshot '%s' is not a group snapshot of '%s': its "
                             "volumes' snapshots of that name were taken apart", snap, name);
        else
            gen = s->gen;
    }
    pthread_rwlock_unlock(&p->vol_mu);
    size_t busy = 0;
    while (!err && busy < n && !(err = snap_refuse_opens(p, m[busy], e)))
        busy++;
    for (size_t i = 0; !err && i < n; i++)
        err = snap_restore_busy(p, m[i], snap, e);
    for (size_t i = 0; i < busy; i++)
        snap_allow_opens(p, m[i]);
    unclaim_all(m, n);
    pthread_mutex_unlock(&p->group_mu);
    if (!err)
        vv_info(VV_SS_META, "restored group '%s' from its snapshot '%s' (%zu volume%s)", name,
                snap, n, n == 1 ? "" : "s");
    return err;
}
