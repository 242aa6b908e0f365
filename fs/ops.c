/*
 * fs/ops.c — the FUSE low-level operations: volumes as files.
 *
 * Design notes
 *   Inodes are fixed, not reference-counted: 1 = root, 2 = volumes/, 3 = snapshots/,
 *   VOL_INO_BASE + volume id for a volume, SNAPDIR_INO | volume id for snapshots/<volume>/, and
 *   SNAP_INO | snapshot id for a snapshot (ids are never reused, and survive a rename, so an
 *   inode number always names the same volume or snapshot).  forget() has nothing to do.
 *
 *   Each open() takes a meta handle (vv_vol_open), which is what keeps a volume from being
 *   deleted or shrunk while a loop device or a VM has it open.  The handles are also kept on
 *   a list so that the daemon can close any the kernel did not release before shutdown.
 *
 *   Data requests are served synchronously by the worker thread that received them; the
 *   multithreaded session loop gives the concurrency (see docs/ARCHITECTURE.md for the
 *   thread count).  Errors from meta/ are positive errnos; they are passed to the kernel
 *   here and only here.
 */
#include "fs/fs_i.h"
#include "util/log.h"
#include "util/name.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INO_ROOT 1
#define INO_VOLUMES 2
#define INO_SNAPSHOTS 3
#define VOL_INO_BASE 16
#define INO_KIND_MASK (3ULL << 62)
#define SNAPDIR_INO (1ULL << 62)
#define SNAP_INO (2ULL << 62)
#define INO_ID(ino) ((uint64_t)(ino) & ~INO_KIND_MASK)

static struct vv_fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static bool is_vol_ino(fuse_ino_t ino)
{
    return ino >= VOL_INO_BASE && (ino & INO_KIND_MASK) == 0;
}

static bool is_snapdir_ino(fuse_ino_t ino)
{
    return (ino & INO_KIND_MASK) == SNAPDIR_INO;
}

static bool is_snap_ino(fuse_ino_t ino)
{
    return (ino & INO_KIND_MASK) == SNAP_INO;
}

static bool is_dir_ino(fuse_ino_t ino)
{
    return ino == INO_ROOT || ino == INO_VOLUMES || ino == INO_SNAPSHOTS || is_snapdir_ino(ino);
}

/* a regular file of SIZE bytes with permissions PERM, all three times TIME_NS */
static void file_attr(fuse_ino_t ino, mode_t perm, uint64_t size, uint64_t time_ns,
                      struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = S_IFREG | perm;
    st->st_nlink = 1;
    st->st_size = (off_t)size;
    st->st_blksize = 4096;
    st->st_mtim.tv_sec = (time_t)(time_ns / 1000000000ULL);
    st->st_mtim.tv_nsec = (long)(time_ns % 1000000000ULL);
    st->st_ctim = st->st_atim = st->st_mtim;
}

/* a snapshot file: read-only, the volume's size then, mtime its creation time */
static int snap_attr(struct vv_fs *fs, fuse_ino_t ino, struct stat *st)
{
    struct vv_snapshot_info si;
    if (vv_snapshot_get_by_id(fs->pool, INO_ID(ino), &si))
        return ENOENT;
    file_attr(ino, 0400, si.size, si.created * 1000000000ULL, st);
    /* what it holds alone (what deleting it frees): du of snapshots/ adds up */
    st->st_blocks = (blkcnt_t)(si.exclusive / 512);
    return 0;
}

static void dir_attr(fuse_ino_t ino, struct stat *st, const struct vv_fs *fs)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_atime = st->st_mtime = st->st_ctime = fs->start_time;
}

static int vol_attr(struct vv_fs *fs, fuse_ino_t ino, struct stat *st)
{
    struct vv_volume_info vi;
    if (vv_volume_get_by_id(fs->pool, ino - VOL_INO_BASE, &vi))
        return ENOENT;
    if (vi.replica) {
        /* users read a replica's newest point (read-only): its size, and when it came */
        struct vv_snapshot_info si;
        bool point = vi.point_snapshot_id &&
                     vv_snapshot_get_by_id(fs->pool, vi.point_snapshot_id, &si) == 0;
        file_attr(ino, 0400, point ? si.size : 0, point ? si.created * 1000000000ULL :
                  vi.created * 1000000000ULL, st);
        st->st_blocks = (blkcnt_t)((vi.used - vi.snapshots_used) / 512);
        return 0;
    }
    /* mtime and ctime: the last write (creation time stays in `vvfs volume show`) */
    file_attr(ino, 0600, vi.size, vi.modified_ns, st);
    /* what the volume itself reads; what only its snapshots hold shows on their files */
    st->st_blocks = (blkcnt_t)((vi.used - vi.snapshots_used) / 512);
    return 0;
}

static int get_attr(struct vv_fs *fs, fuse_ino_t ino, struct stat *st)
{
    switch (ino) {
    case INO_ROOT:
    case INO_VOLUMES:
    case INO_SNAPSHOTS:
        dir_attr(ino, st, fs);
        return 0;
    default:
        if (is_snapdir_ino(ino)) {
            struct vv_volume_info vi;
            if (vv_volume_get_by_id(fs->pool, INO_ID(ino), &vi))
                return ENOENT;
            dir_attr(ino, st, fs);
            return 0;
        }
        if (is_snap_ino(ino))
            return snap_attr(fs, ino, st);
        return is_vol_ino(ino) ? vol_attr(fs, ino, st) : ENOENT;
    }
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    int err = get_attr(fs_of(req), ino, &e.attr);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    e.ino = ino;
    /* sizes change only through the API, which can happen at any time: cache briefly */
    e.attr_timeout = 1.0;
    e.entry_timeout = 1.0;
    fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct vv_fs *fs = fs_of(req);
    if (parent == INO_ROOT) {
        if (strcmp(name, "volumes") == 0)
            return reply_entry(req, INO_VOLUMES);
        if (strcmp(name, "snapshots") == 0)
            return reply_entry(req, INO_SNAPSHOTS);
    } else if (parent == INO_VOLUMES || parent == INO_SNAPSHOTS) {
        struct vv_volume_info vi;
        if (vv_volume_get(fs->pool, name, &vi, NULL) == 0)
            return reply_entry(req, parent == INO_VOLUMES ? VOL_INO_BASE + vi.id
                                                          : (SNAPDIR_INO | vi.id));
    } else if (is_snapdir_ino(parent)) {
        struct vv_volume_info vi;
        struct vv_snapshot_info si;
        /* names that begin with '.' are vvfs's own snapshots (replication's): not shown */
        if (name[0] != '.' && vv_volume_get_by_id(fs->pool, INO_ID(parent), &vi) == 0 &&
            vv_snapshot_get(fs->pool, vi.name, name, &si, NULL) == 0)
            return reply_entry(req, SNAP_INO | si.id);
    } else {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    fuse_reply_err(req, ENOENT);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st;
    int err = get_attr(fs_of(req), ino, &st);
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_attr(req, &st, 1.0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    struct vv_fs *fs = fs_of(req);
    struct stat st;
    int err = get_attr(fs, ino, &st);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    /* Only no-op changes are accepted: a volume's size changes through `vvfs volume resize`
     * (truncate would silently destroy or expose data), and ownership/mode are fixed. */
    if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size)
        err = is_snap_ino(ino) || !(st.st_mode & 0200) ? EROFS : EPERM;
    if ((to_set & FUSE_SET_ATTR_MODE) && (attr->st_mode & 07777) != (st.st_mode & 07777))
        err = EPERM;
    if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != st.st_uid)
        err = EPERM;
    if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != st.st_gid)
        err = EPERM;
    /* times: accepted and ignored (volume times are their creation time) */
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_attr(req, &st, 1.0);
}

/* ---- directories -------------------------------------------------------------------------- */

/*
 * Directories keep no per-open state: each readdir lists afresh and resumes after the entry
 * whose cookie (d_off) the kernel passes back.  Cookies are stable under concurrent volume
 * changes: ".", ".." and the root's two entries are 1..4, a volume's is 2 + its id (ids are
 * never reused), and volumes are listed by id.  (A listing kept from opendir to releasedir
 * was freed under a readdir still replying when the reader was killed: seen by ASan in the
 * crash test.)
 */
struct dirent_src {
    const char *name;
    fuse_ino_t ino;
    mode_t mode;
    uint64_t cookie;
};

static int info_id_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct vv_volume_info *)a)->id, y = ((const struct vv_volume_info *)b)->id;
    return x < y ? -1 : x > y;
}

static int snap_id_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct vv_snapshot_info *)a)->id;
    uint64_t y = ((const struct vv_snapshot_info *)b)->id;
    return x < y ? -1 : x > y;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    if (!is_dir_ino(ino)) {
        fuse_reply_err(req, is_vol_ino(ino) || is_snap_ino(ino) ? ENOTDIR : ENOENT);
        return;
    }
    fi->fh = 0;
    fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    struct vv_fs *fs = fs_of(req);
    struct vv_volume_info *vols = NULL;
    struct vv_snapshot_info *snaps = NULL;
    size_t nvols = 0, nsnaps = 0;
    int err = 0;
    if (ino == INO_VOLUMES || ino == INO_SNAPSHOTS) {
        if (!(err = vv_volume_list(fs->pool, &vols, &nvols)))
            qsort(vols, nvols, sizeof(*vols), info_id_cmp);
    } else if (is_snapdir_ino(ino)) {
        struct vv_volume_info vi;
        err = vv_volume_get_by_id(fs->pool, INO_ID(ino), &vi);
        if (!err && !(err = vv_snapshot_list_brief(fs->pool, vi.name, &snaps, &nsnaps, NULL)))
            qsort(snaps, nsnaps, sizeof(*snaps), snap_id_cmp);
    }
    char *buf = err ? NULL : malloc(size ? size : 1);
    if (!buf) {
        free(vols);
        free(snaps);
        fuse_reply_err(req, err ? err : ENOMEM);
        return;
    }
    struct dirent_src fixed[] = {
        {".", ino, S_IFDIR, 1},
        {"..", INO_ROOT, S_IFDIR, 2},
        {"volumes", INO_VOLUMES, S_IFDIR, 3},
        {"snapshots", INO_SNAPSHOTS, S_IFDIR, 4},
    };
    if (is_snapdir_ino(ino))
        fixed[1].ino = INO_SNAPSHOTS;
    size_t nfixed = ino == INO_ROOT ? 4 : 2;
    size_t used = 0;
    for (size_t i = 0; i < nfixed + nvols + nsnaps; i++) {
        struct dirent_src e;
        if (i < nfixed) {
            e = fixed[i];
        } else if (vols) {
            const struct vv_volume_info *vi = &vols[i - nfixed];
            e = ino == INO_VOLUMES
                    ? (struct dirent_src){vi->name, VOL_INO_BASE + vi->id, S_IFREG, 2 + vi->id}
                    : (struct dirent_src){vi->name, SNAPDIR_INO | vi->id, S_IFDIR, 2 + vi->id};
        } else {
            const struct vv_snapshot_info *si = &snaps[i - nfixed];
            if (si->name[0] == '.')
                continue; /* vvfs's own (see op_lookup) */
            e = (struct dirent_src){si->name, SNAP_INO | si->id, S_IFREG, 2 + si->id};
        }
        if (e.cookie <= (uint64_t)off)
            continue;
        struct stat st = {.st_ino = e.ino, .st_mode = e.mode};
        size_t need = fuse_add_direntry(req, buf + used, size - used, e.name, &st,
                                        (off_t)e.cookie);
        if (need > size - used)
            break; /* did not fit: the kernel asks again from the last cookie it got */
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
    free(vols);
    free(snaps);
}

/* ---- files -------------------------------------------------------------------------------- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vv_fs *fs = fs_of(req);
    bool snap = is_snap_ino(ino);
    if (!is_vol_ino(ino) && !snap) {
        fuse_reply_err(req, is_dir_ino(ino) ? EISDIR : ENOENT);
        return;
    }
    if (snap && ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))) {
        fuse_reply_err(req, EROFS); /* snapshots are read-only */
        return;
    }
    if (fi->flags & O_TRUNC) {
        fuse_reply_err(req, EPERM); /* truncating a volume to 0 would destroy it */
        return;
    }
    struct fs_handle *h = calloc(1, sizeof(*h));
    if (!h) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int err;
    struct vv_volume_info vi;
    if (snap) {
        struct vv_snapshot_info si;
        err = vv_snapshot_get_by_id(fs->pool, INO_ID(ino), &si);
        if (!err)
            err = vv_snap_open(fs->pool, si.volume_id, si.id, &h->vol);
    } else if ((err = vv_volume_get_by_id(fs->pool, ino - VOL_INO_BASE, &vi)) == 0 &&
               vi.replica) {
        /* a replica: its replication session writes it; users read its newest point, as it
         * was when they opened it (a handle opened earlier keeps reading the point it got) */
        if ((fi->flags & O_ACCMODE) != O_RDONLY)
            err = EROFS;
        else if (!vi.point_snapshot_id)
            err = EAGAIN; /* no point yet: the first sync has not completed */
        else
            err = vv_snap_open(fs->pool, vi.id, vi.point_snapshot_id, &h->vol);
        snap = true;
    } else if (!err) {
        err = vv_vol_open(fs->pool, ino - VOL_INO_BASE, &h->vol);
    }
    if (err) {
        free(h);
        fuse_reply_err(req, err);
        return;
    }
    fs_handles_add(fs, h);
    fi->fh = (uint64_t)(uintptr_t)h;
    /* all writes come through us: the page cache never goes stale; but a replica's file
     * shows another point after each sync, so its cache goes at each open */
    fi->keep_cache = !(snap && !is_snap_ino(ino));
    if (fuse_reply_open(req, fi) == -ENOENT) {
        /* the open was interrupted: the kernel will not send release */
        fs_handles_remove(fs, h);
        vv_vol_close(h->vol);
        free(h);
    }
}

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
    return (struct fs_handle *)(uintptr_t)fi->fh;
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vv_fs *fs = fs_of(req);
    struct fs_handle *h = handle_of(fi);
    fs_handles_remove(fs, h);
    vv_vol_close(h->vol);
    free(h);
    fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    uint64_t vsize = vv_vol_size(h->vol);
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if ((uint64_t)off >= vsize || size == 0) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > vsize - (uint64_t)off)
        size = (size_t)(vsize - (uint64_t)off);
    void *buf; /* page-aligned: the data files' direct I/O reads straight into it */
    if (posix_memalign(&buf, 4096, size)) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int err = vv_vol_read(h->vol, buf, size, (uint64_t)off);
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_buf(req, buf, size);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    uint64_t vsize = vv_vol_size(h->vol);
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    /* like a block device: nothing past the end; a write across it is cut short */
    if ((uint64_t)off >= vsize) {
        fuse_reply_err(req, size ? ENOSPC : 0);
        return;
    }
    if (size > vsize - (uint64_t)off)
        size = (size_t)(vsize - (uint64_t)off);
    int err = vv_vol_write(h->vol, buf, size, (uint64_t)off);
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    atomic_store(&h->wrote, true);
    fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    /* close() of a descriptor that wrote: commit, so that the data is durable when the last
     * user of a volume goes away (e.g. losetup -d, a VM shutting down) */
    struct fs_handle *h = handle_of(fi);
    int err = 0;
    if (atomic_exchange(&h->wrote, false))
        err = vv_vol_flush(h->vol);
    fuse_reply_err(req, err);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    atomic_store(&h->wrote, false);
    fuse_reply_err(req, vv_vol_flush(h->vol));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    uint64_t vsize = vv_vol_size(h->vol);
    if (off < 0 || len <= 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    uint64_t end = (uint64_t)off + (uint64_t)len;
    int err = 0;
    if (mode & FALLOC_FL_PUNCH_HOLE) {
        /* PUNCH_HOLE must come with KEEP_SIZE (the kernel checks that too) */
        if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
            err = EOPNOTSUPP;
    } else if (mode & FALLOC_FL_ZERO_RANGE) {
        if (mode & ~(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
            err = EOPNOTSUPP;
        else if (end > vsize && !(mode & FALLOC_FL_KEEP_SIZE))
            err = EPERM; /* would grow the volume */
    } else if (mode & ~FALLOC_FL_KEEP_SIZE) {
        err = EOPNOTSUPP; /* collapse/insert range and the like */
    } else {
        /* plain allocation: thin volumes reserve nothing; inside the volume it is a no-op */
        err = end > vsize && !(mode & FALLOC_FL_KEEP_SIZE) ? EPERM : 0;
        fuse_reply_err(req, err);
        return;
    }
    if (!err && (uint64_t)off < vsize) {
        if (end > vsize)
            end = vsize;
        err = vv_vol_discard(h->vol, (uint64_t)off, end - (uint64_t)off);
        if (!err)
            atomic_store(&h->wrote, true);
    }
    fuse_reply_err(req, err);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    struct fs_handle *h = handle_of(fi);
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL); /* the kernel handles the others itself */
        return;
    }
    if (off < 0) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    uint64_t out;
    int err = vv_vol_seek(h->vol, (uint64_t)off, whence, &out);
    if (err)
        fuse_reply_err(req, err);
    else
        fuse_reply_lseek(req, (off_t)out);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct vv_fs *fs = fs_of(req);
    struct vv_pool_status ps;
    vv_pool_get_status(fs->pool, &ps);
    struct statvfs sv;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_blocks = ps.capacity / 4096;
    sv.f_bfree = ps.free / 4096;
    sv.f_bavail = ps.available / 4096; /* the reserve is for overwrites only */
    sv.f_files = ps.volumes + 3;
    sv.f_ffree = 0;
    sv.f_favail = 0;
    sv.f_namemax = VV_NAME_MAX;
    fuse_reply_statfs(req, &sv);
}

/* Namespace changes go through the control plane: refuse them here with EPERM. */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    fuse_reply_err(req, EPERM);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fuse_reply_err(req, EPERM);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EPERM);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    fuse_reply_err(req, EPERM);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fuse_reply_err(req, EPERM);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct vv_fs *fs = userdata;
    /* large requests: 1 MiB (256 pages) is the most a 3.14 daemon can negotiate */
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    if (conn->capable & FUSE_CAP_ASYNC_DIO)
        conn->want |= FUSE_CAP_ASYNC_DIO;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    /* Async direct I/O requests count as background requests, of which the kernel lets 12
     * be in flight by default: fio at QD16 (or a loop device) then waits on the kernel with
     * workers idle.  Twice the workers keeps every worker fed. */
    conn->max_background = 2 * fs->threads;
    conn->congestion_threshold = 3 * conn->max_background / 2 / 2;
    vv_info(VV_SS_FS, "FUSE protocol %u.%u, max_write %u, %u worker threads", conn->proto_major,
            conn->proto_minor, conn->max_write, fs->threads);
}

void fs_volume_changed(void *ctx, enum vv_volume_event ev, uint64_t id, const char *name,
                       const char *oldname)
{
    struct vv_fs *fs = ctx;
    if (!fs->se)
        return;
    /* Called from a control-plane thread, never from a FUSE worker, so the kernel can still
     * have its requests answered while it processes these.  ENOENT: nothing was cached. */
    int rc = 0;
    switch (ev) {
    case VV_VOL_CREATED:
        break; /* lookups that failed are not cached (we reply ENOENT, not a negative entry) */
    case VV_VOL_DELETED:
        rc = fuse_lowlevel_notify_inval_entry(fs->se, INO_VOLUMES, name, strlen(name));
        break;
    case VV_VOL_RENAMED:
        rc = fuse_lowlevel_notify_inval_entry(fs->se, INO_VOLUMES, oldname, strlen(oldname));
        break;
    case VV_VOL_RESIZED:
    case VV_VOL_RESTORED:
        rc = fuse_lowlevel_notify_inval_inode(fs->se, VOL_INO_BASE + id, 0, 0);
        break;
    }
    if (rc && rc != -ENOENT)
        vv_warn(VV_SS_FS, "cannot invalidate the kernel's cache for volume '%s': %s", name,
                strerror(-rc));
}

const struct fuse_lowlevel_ops vv_fs_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .open = op_open,
    .release = op_release,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .fsync = op_fsync,
    .fallocate = op_fallocate,
    .lseek = op_lseek,
    .statfs = op_statfs,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .rename = op_rename,
    .create = op_create,
};
