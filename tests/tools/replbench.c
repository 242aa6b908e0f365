/*
 * tests/tools/replbench.c — initial-sync throughput of a delta over the replication channel
 * (TLS on loopback, the receiver writing into a second pool and committing) against raw TCP
 * on the same path in the same run (the same number of bytes from memory over a plain
 * socket).  Used by contrib/bench/repl-throughput.sh.
 *
 *   replbench DIR SIZE     (DIR: an empty directory for the two pools; SIZE in MiB)
 */
#include "replication/xfer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MiB (1ULL << 20)
static const uint8_t KEY[CHAN_KEY_BYTES] = {0x42};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct vv_err *e)
{
    fprintf(stderr, "replbench: %s: %s\n", what, e ? e->msg : strerror(errno));
    exit(1);
}

static int listen_local(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 2))
        die("listen", NULL);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

struct sink {
    int lfd;
    uint64_t got;
};

static void *raw_sink(void *arg)
{
    struct sink *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    static uint8_t buf[1 << 20];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        s->got += (uint64_t)n;
    close(fd);
    return NULL;
}

struct rcv {
    int lfd;
    struct vv_pool *p;
    int err;
    struct vv_err e;
};

/* a receiver that only decrypts and drops (REPLBENCH_SINK=1: the sender's side alone) */
static void *tls_sink(void *arg)
{
    struct rcv *r = arg;
    int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    struct chan *c;
    if ((r->err = chan_accept(fd, KEY, 60000, &c, &r->e)))
        return NULL;
    static uint8_t buf[1 << 20];
    while (chan_recv(c, buf, sizeof(buf)) > 0)
        ;
    chan_close(c);
    return NULL;
}

static void *tls_receiver(void *arg)
{
    struct rcv *r = arg;
    int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
    struct chan *c;
    if ((r->err = chan_accept(fd, KEY, 60000, &c, &r->e)))
        return NULL;
    struct xfer_in in;
    struct xfer_stats st = {0};
    r->err = xfer_in_init(&in, c, WIRE_SIDE_RECEIVER);
    in.rx.greeted = true; /* (no hello here) */
    if (!r->err)
        r->err = xfer_recv(&in, r->p, "v", "p1", &st, &r->e);
    xfer_in_fini(&in);
    chan_close(c);
    return NULL;
}

static struct vv_pool *pool(const char *dir, uint64_t cap)
{
    struct vv_pool_params pp = {.capacity = cap};
    struct vv_err e = {0};
    struct vv_pool *p;
    if (vv_pool_create(dir, &pp, &e) || vv_pool_open(dir, 0, &p, &e))
        die(dir, &e);
    return p;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: replbench DIR SIZE-MiB\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* (chan.h: a write to a closed peer is EPIPE) */
    uint64_t size = strtoull(argv[2], NULL, 10) * MiB;
    char da[4096], db[4096];
    snprintf(da, sizeof(da), "%s/a", argv[1]);
    snprintf(db, sizeof(db), "%s/b", argv[1]);
    struct vv_pool *a = pool(da, size + 256 * MiB), *b = pool(db, size + 256 * MiB);
    struct vv_err e = {0};
    struct vv_volume_info vi;
    struct vv_vol *v;
    if (vv_volume_create(a, "v", size, &vi, &e) || vv_vol_open(a, vi.id, &v) ||
        vv_volume_create(b, "v", size, NULL, &e))
        die("volume", &e);
    uint8_t *buf = aligned_alloc(4096, MiB);
    for (uint64_t off = 0; off < size; off += MiB) {
        for (size_t i = 0; i < MiB; i += 8) {
            uint64_t x = (off + i) * 0x9e3779b97f4a7c15ULL;
            memcpy(buf + i, &x, 8);
        }
        if (vv_vol_write(v, buf, MiB, off))
            die("write", NULL);
    }
    vv_vol_close(v);
    if (vv_snapshot_create(a, "v", "s1", NULL, &e))
        die("snapshot", &e);

    if (getenv("REPLBENCH_READ")) { /* how fast the snapshot reads, alone */
        struct vv_snapshot_info si;
        struct vv_vol *h;
        if (vv_snapshot_get(a, "v", "s1", &si, &e) || vv_snap_open(a, si.volume_id, si.id, &h))
            die("snapshot open", &e);
        system("echo 3 > /proc/sys/vm/drop_caches");
        double r0 = now();
        for (uint64_t off = 0; off < size; off += MiB)
            if (vv_vol_read(h, buf, MiB, off))
                die("read", NULL);
        printf("replbench: the snapshot reads at %.0f MB/s (1 MiB reads, cold cache)\n",
               (double)size / (now() - r0) / 1e6);
        vv_vol_close(h);
    }
    /* raw TCP: the same number of bytes from memory over a plain loopback socket */
    uint16_t port;
    struct sink s = {.lfd = listen_local(&port)};
    pthread_t t;
    pthread_create(&t, NULL, raw_sink, &s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
        die("connect", NULL);
    double t0 = now();
    for (uint64_t sent = 0; sent < size; sent += MiB)
        if (write(fd, buf, MiB) != (ssize_t)MiB)
            die("raw write", NULL);
    close(fd);
    pthread_join(t, NULL);
    double raw = (double)size / (now() - t0) / 1e6;
    close(s.lfd);

    /* the delta over TLS into pool b */
    struct rcv r = {.lfd = listen_local(&port), .p = b};
    bool sink = getenv("REPLBENCH_SINK") != NULL;
    pthread_create(&t, NULL, sink ? tls_sink : tls_receiver, &r);
    char ports[16];
    snprintf(ports, sizeof(ports), "%u", port);
    struct chan *c;
    if (chan_connect("127.0.0.1", ports, KEY, 60000, &c, &e))
        die("chan_connect", &e);
    uint32_t seq = 0;
    struct xfer_stats st = {0};
    t0 = now();
    if (xfer_send(c, &seq, a, "v", NULL, "s1", NULL, &st, &e))
        die("xfer_send", &e);
    double send_secs = now() - t0;
    if (sink)
        chan_close(c);
    pthread_join(t, NULL);
    double secs = now() - t0;
    if (!sink)
        chan_close(c);
    printf("replbench: the sender was done after %.2f s%s\n", send_secs,
           sink ? " (the receiver only decrypted)" : "");
    if (r.err)
        die("xfer_recv", &r.e);
    double repl = (double)size / secs / 1e6;
    printf("replbench: %llu MiB: raw TCP %.0f MB/s, initial sync (TLS, checksums, the replica "
           "written and committed) %.0f MB/s = %.2f of raw TCP; %llu bytes on the wire for "
           "%llu data bytes (%.3f%% framing)\n",
           (unsigned long long)(size / MiB), raw, repl, repl / raw,
           (unsigned long long)st.bytes, (unsigned long long)(st.data_blocks * 4096),
           100.0 * ((double)st.bytes / (double)(st.data_blocks * 4096) - 1));
    free(buf);
    vv_pool_close(a);
    vv_pool_close(b);
    return 0;
}
