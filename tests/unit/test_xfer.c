/*
 * tests/unit/test_xfer.c — deltas between two pools over a real TLS channel on loopback: an
 * initial copy and two incremental ones make the replica's points read exactly as the
 * source's snapshots; an incremental one carries only what changed; a delta resumed from a
 * block sends only the rest; the replica's newest point is untouched by a delta cut short.
 */
#include "replication/xfer.h"

#include <criterion/criterion.h>
#include "net_pool.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#define MiB (1u << 20)
#define VSIZE (16 * MiB)
static const uint8_t KEY[CHAN_KEY_BYTES] = {7, 7, 7};

static void pattern(struct vv_vol *v, uint64_t off, size_t len, uint8_t tag)
{
    uint8_t *b = malloc(len);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(tag + (off + i) / 4096 * 31);
    cr_assert_eq(vv_vol_write(v, b, len, off), 0);
    free(b);
}

/* the whole content of snapshot SNAP of VOL in P */
static uint8_t *content(struct vv_pool *p, const char *vol, const char *snap)
{
    struct vv_snapshot_info si;
    cr_assert_eq(vv_snapshot_get(p, vol, snap, &si, NULL), 0, "%s@%s", vol, snap);
    struct vv_vol *h;
    cr_assert_eq(vv_snap_open(p, si.volume_id, si.id, &h), 0);
    uint8_t *b = malloc(VSIZE);
    cr_assert_eq(vv_vol_read(h, b, VSIZE, 0), 0);
    vv_vol_close(h);
    return b;
}

struct rx_side {
    int lfd;
    struct vv_pool *p;
    const char *points[4];
    int n, err;
    char msg[256];
    struct xfer_stats st[4];
};

static void *receiver(void *arg)
{
    struct rx_side *r = arg;
    int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    struct chan *c;
    struct vv_err e = {0};
    if ((r->err = chan_accept(fd, KEY, 10000, &c, &e))) {
        snprintf(r->msg, sizeof(r->msg), "%s", e.msg);
        return NULL;
    }
    struct xfer_in in;
    cr_assert_eq(xfer_in_init(&in, c, WIRE_SIDE_RECEIVER), 0);
    in.rx.greeted = true; /* (no hello here) */
    for (int i = 0; i < r->n && !r->err; i++)
        r->err = xfer_recv(&in, r->p, "data", r->points[i], &r->st[i], &e);
    xfer_in_fini(&in);
    snprintf(r->msg, sizeof(r->msg), "%s", e.msg);
    chan_close(c);
    return NULL;
}

/* close the source A (or NULL) and the replica B, check B's pool with fsck, remove both */
static void finish(struct vv_pool *a, const char *da, struct vv_pool *b, const char *db)
{
    struct vv_err e = {0};
    struct vv_fsck_report rep;
    if (a)
        cr_assert_eq(vv_pool_close(a), 0);
    cr_assert_eq(vv_pool_close(b), 0);
    cr_assert_eq(vv_pool_fsck(db, true, &rep, &e), 0, "%s", e.msg);
    cr_assert_eq(rep.errors, 0, "fsck of the replica's pool");
    if (da)
        test_rm(da);
    test_rm(db);
}

TestSuite(xfer, .init = test_no_sigpipe);

Test(xfer, initial_and_incremental_deltas_make_exact_points, .timeout = 120)
{
    char da[64], db[64], port[16];
    struct vv_pool *a = test_pool(da, "xfer"), *b = test_pool(db, "xfer");
    struct vv_err e = {0};
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_create(a, "data", VSIZE, &vi, &e), 0);
    struct vv_vol *v;
    cr_assert_eq(vv_vol_open(a, vi.id, &v), 0);
    pattern(v, 0, 4 * MiB, 1);           /* 4 MiB of a thin 16 MiB volume */
    pattern(v, 10 * MiB, 4096, 2);
    cr_assert_eq(vv_snapshot_create(a, "data", "s1", NULL, &e), 0);
    pattern(v, MiB, 64 * 1024, 3);       /* 64 KiB changed, 32 KiB discarded */
    cr_assert_eq(vv_vol_discard(v, 2 * MiB, 32 * 1024), 0);
    cr_assert_eq(vv_snapshot_create(a, "data", "s2", NULL, &e), 0);
    pattern(v, 12 * MiB, 8192, 4);
    cr_assert_eq(vv_snapshot_create(a, "data", "s3", NULL, &e), 0);
    cr_assert_eq(vv_volume_create(b, "data", VSIZE, NULL, &e), 0);

    struct rx_side r = {.lfd = listen_local(port), .p = b, .points = {"p1", "p2", "p3"}, .n = 3};
    pthread_t t;
    pthread_create(&t, NULL, receiver, &r);
    struct chan *c;
    cr_assert_eq(chan_connect("127.0.0.1", port, KEY, 10000, &c, &e), 0, "%s", e.msg);
    uint32_t seq = 0;
    struct xfer_stats st[3] = {0};
    cr_assert_eq(xfer_send(c, &seq, a, "data", NULL, "s1", NULL, &st[0], &e), 0, "%s", e.msg);
    cr_assert_eq(xfer_send(c, &seq, a, "data", "s1", "s2", NULL, &st[1], &e), 0, "%s", e.msg);
    /* resumed from block 3072 (12 MiB): only the rest travels */
    cr_assert_eq(xfer_send(c, &seq, a, "data", "s2", "s3", &(struct xfer_opts){.resume = 3072}, &st[2], &e), 0, "%s", e.msg);
    pthread_join(t, NULL);
    chan_close(c);
    cr_assert_eq(r.err, 0, "the receiver: %s", r.msg);
    cr_assert_eq(st[0].data_blocks, 1024 + 1, "an initial copy sends the written blocks only");
    cr_assert_eq(st[1].data_blocks, 16, "an incremental one the changed blocks");
    cr_assert_eq(st[1].zero_blocks, 8, "and the discards as zeros");
    cr_assert_eq(st[2].data_blocks, 2);
    cr_assert_eq(r.st[1].data_blocks, 16);
    const char *src[] = {"s1", "s2", "s3"}, *dst[] = {"p1", "p2", "p3"};
    for (int i = 0; i < 3; i++) {
        uint8_t *x = content(a, "data", src[i]), *y = content(b, "data", dst[i]);
        cr_assert(memcmp(x, y, VSIZE) == 0, "replica point %s differs from %s", dst[i], src[i]);
        free(x);
        free(y);
    }
    vv_vol_close(v);
    close(r.lfd);
    finish(a, da, b, db);
}

/* A block of the source damaged on its disk: the read that verifies it fails, the sender
 * stops with an error that names the volume (its other reader and the frames in flight
 * stop with it), and the replica makes no point. */
Test(xfer, a_damaged_source_block_fails_the_send_and_makes_no_point, .timeout = 60)
{
    char da[64], db[64], port[16];
    struct vv_pool *a = test_pool(da, "xfer"), *b = test_pool(db, "xfer");
    struct vv_err e = {0};
    struct vv_volume_info vi;
    cr_assert_eq(vv_volume_create(a, "data", VSIZE, &vi, &e), 0);
    cr_assert_eq(vv_volume_create(b, "data", VSIZE, NULL, &e), 0);
    struct vv_vol *v;
    cr_assert_eq(vv_vol_open(a, vi.id, &v), 0);
    pattern(v, 0, 8 * MiB, 1);
    char mark[4096];
    for (size_t i = 0; i < sizeof(mark); i++)
        mark[i] = "damaged block, "[i % 15];
    cr_assert_eq(vv_vol_write(v, mark, sizeof(mark), 6 * MiB + 5 * 4096), 0);
    cr_assert_eq(vv_snapshot_create(a, "data", "s1", NULL, &e), 0, "%s", e.msg);
    /* find the marked block in the data files and change one byte of it */
    bool damaged = false;
    char *blk = malloc(4096);
    for (unsigned f = 0; !damaged; f++) {
        char path[96];
        snprintf(path, sizeof(path), "%s/data.%u", da, f);
        int fd = open(path, O_RDWR);
        if (fd < 0)
            break;
        for (off_t o = 0; pread(fd, blk, 4096, o) == 4096; o += 4096)
            if (memcmp(blk, mark, 4096) == 0) {
                blk[99] ^= 1;
                cr_assert_eq(pwrite(fd, blk, 4096, o), 4096);
                cr_assert_eq(fdatasync(fd), 0);
                damaged = true;
                break;
            }
        close(fd);
    }
    free(blk);
    cr_assert(damaged, "the marked block is in a data file");
    struct rx_side r = {.lfd = listen_local(port), .p = b, .points = {"p1"}, .n = 1};
    pthread_t t;
    pthread_create(&t, NULL, receiver, &r);
    struct chan *c;
    cr_assert_eq(chan_connect("127.0.0.1", port, KEY, 10000, &c, &e), 0, "%s", e.msg);
    uint32_t seq = 0;
    struct xfer_stats st = {0};
    cr_assert_eq(xfer_send(c, &seq, a, "data", NULL, "s1", NULL, &st, &e), EIO, "%s", e.msg);
    cr_assert(strstr(e.msg, "cannot read volume 'data' at block"), "%s", e.msg);
    chan_close(c);
    pthread_join(t, NULL);
    cr_assert_neq(r.err, 0, "the receiver took a delta without its END");
    struct vv_snapshot_info si;
    cr_assert_eq(vv_snapshot_get(b, "data", "p1", &si, NULL), ENOENT, "no point was made");
    vv_vol_close(v);
    close(r.lfd);
    finish(a, da, b, db);
}

/* A DATA frame whose block does not match its checksum, among good frames that the writers
 * are still writing: the receiver refuses the delta (EBADMSG, naming the block), makes no
 * point, and returns only once no write of it is left (the replica closes cleanly). */
Test(xfer, a_block_with_a_wrong_checksum_is_refused_with_writes_in_flight, .timeout = 60)
{
    char db[64], port[16];
    struct vv_pool *b = test_pool(db, "xfer");
    struct vv_err e = {0};
    cr_assert_eq(vv_volume_create(b, "data", VSIZE, NULL, &e), 0);
    struct rx_side r = {.lfd = listen_local(port), .p = b, .points = {"p1"}, .n = 1};
    pthread_t t;
    pthread_create(&t, NULL, receiver, &r);
    struct chan *c;
    cr_assert_eq(chan_connect("127.0.0.1", port, KEY, 10000, &c, &e), 0, "%s", e.msg);
    uint8_t *f = malloc(WIRE_HDR + WIRE_PAYLOAD_MAX), *data = malloc(MiB);
    uint64_t cs[256];
    uint32_t seq = 0;
    size_t n = wire_put_begin(f, WIRE_HDR + WIRE_PAYLOAD_MAX, seq++, 0, 5, VSIZE, 4096, "data");
    cr_assert_eq(xfer_out(c, f, n, &e), 0);
    for (unsigned k = 0; k < 16; k++) { /* 16 MiB, the tenth MiB's block 7 damaged */
        for (size_t i = 0; i < MiB; i++)
            data[i] = (uint8_t)(k * 7 + i / 4096);
        for (unsigned i = 0; i < 256; i++)
            cs[i] = XXH3_64bits(data + i * 4096, 4096);
        if (k == 9)
            data[7 * 4096 + 100] ^= 1;
        n = wire_put_data(f, WIRE_HDR + WIRE_PAYLOAD_MAX, seq++, k * 256, 256, 4096, cs, data);
        if (xfer_out(c, f, n, &e))
            break; /* (the receiver may have closed by now) */
    }
    n = wire_put_end(f, WIRE_HDR + WIRE_PAYLOAD_MAX, seq++, 16 * 256, 0, 0);
    (void)xfer_out(c, f, n, &e);
    pthread_join(t, NULL);
    chan_close(c);
    cr_assert_eq(r.err, EBADMSG, "the receiver: %d %s", r.err, r.msg);
    cr_assert(strstr(r.msg, "block 2311 with a wrong checksum"), "%s", r.msg);
    struct vv_snapshot_info si;
    cr_assert_eq(vv_snapshot_get(b, "data", "p1", &si, NULL), ENOENT, "no point was made");
    free(f);
    free(data);
    close(r.lfd);
    finish(NULL, NULL, b, db);
}
