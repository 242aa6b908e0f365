/*
 * tests/unit/test_chan.c — the replication channel over real loopback TCP: peers with the
 * same key talk; a peer with another key, a peer that speaks no TLS and a peer that says
 * nothing are refused (with the right errno, in bounded time); a byte changed on the wire is
 * never delivered; key files must be 0600 and hold a key.
 */
#include "replication/chan.h"

#include <criterion/criterion.h>
#include "net_pool.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(chan, .init = test_no_sigpipe);

static const uint8_t KEY_A[CHAN_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t KEY_B[CHAN_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 9};

struct server {
    int lfd;
    const uint8_t *key;
    unsigned timeout_ms;
    int err;
    char msg[256];
    size_t got;     /* bytes received */
    uint64_t sum;   /* of them */
    bool echo;      /* send the sum back */
};

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    struct chan *c = NULL;
    struct vv_err e = {0};
    s->err = chan_accept(fd, s->key, s->timeout_ms, &c, &e);
    snprintf(s->msg, sizeof(s->msg), "%s", e.msg);
    if (s->err)
        return NULL;
    uint8_t buf[65536];
    ssize_t n;
    while ((n = chan_recv(c, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            s->sum = s->sum * 31 + buf[i];
        s->got += (size_t)n;
        if (s->echo && s->got == 1 << 20)
            chan_send(c, &s->sum, sizeof(s->sum));
    }
    if (n < 0)
        s->err = (int)-n;
    chan_close(c);
    return NULL;
}

Test(chan, peers_with_the_key_talk)
{
    char port[16];
    struct server s = {.lfd = listen_local(port), .key = KEY_A, .timeout_ms = 5000, .echo = true};
    pthread_t t;
    pthread_create(&t, NULL, serve, &s);
    struct chan *c;
    struct vv_err e = {0};
    cr_assert_eq(chan_connect("127.0.0.1", port, KEY_A, 5000, &c, &e), 0, "%s", e.msg);
    cr_assert(strstr(chan_peer(c), "127.0.0.1"), "%s", chan_peer(c));
    uint8_t *buf = malloc(1 << 20);
    uint64_t sum = 0;
    for (size_t i = 0; i < 1 << 20; i++) {
        buf[i] = (uint8_t)(i * 13 + i / 4096);
        sum = sum * 31 + buf[i];
    }
    cr_assert_eq(chan_send(c, buf, 1 << 20), 0);
    uint64_t back = 0;
    cr_assert_eq(chan_recv(c, &back, sizeof(back)), (ssize_t)sizeof(back));
    cr_assert_eq(back, sum, "the server got other bytes than were sent");
    chan_close(c);
    pthread_join(t, NULL);
    cr_assert_eq(s.err, 0, "%s", s.msg);
    cr_assert_eq(s.got, 1 << 20);
    free(buf);
    close(s.lfd);
}

Test(chan, a_peer_with_another_key_is_refused)
{
    char port[16];
    struct server s = {.lfd = listen_local(port), .key = KEY_A, .timeout_ms = 5000};
    pthread_t t;
    pthread_create(&t, NULL, serve, &s);
    struct chan *c = NULL;
    struct vv_err e = {0};
    int rc = chan_connect("127.0.0.1", port, KEY_B, 5000, &c, &e);
    pthread_join(t, NULL);
    cr_assert_eq(rc, EACCES, "the client: %d %s", rc, e.msg);
    cr_assert(strstr(e.msg, "refused"), "%s", e.msg);
    cr_assert_eq(s.err, EACCES, "the server: %d %s", s.err, s.msg);
    cr_assert_eq(s.got, 0);
    close(s.lfd);
}

Test(chan, a_peer_without_tls_or_silent_is_refused_in_time)
{
    char port[16];
    struct server s = {.lfd = listen_local(port), .key = KEY_A, .timeout_ms = 5000};
    pthread_t t;
    pthread_create(&t, NULL, serve, &s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char junk[] = "GET / HTTP/1.0\r\n\r\n";
    cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    pthread_join(t, NULL);
    cr_assert_eq(s.err, EPROTO, "%d %s", s.err, s.msg);
    close(fd);
    /* silent: the handshake gives up after the timeout */
    s = (struct server){.lfd = s.lfd, .key = KEY_A, .timeout_ms = 300};
    pthread_create(&t, NULL, serve, &s);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    pthread_join(t, NULL);
    cr_assert_eq(s.err, ETIMEDOUT, "%d %s", s.err, s.msg);
    close(fd);
    close(s.lfd);
}

/* a proxy that forwards both ways and flips one byte of the client's stream at FLIP */
struct proxy {
    int lfd;
    char port[16];
    size_t flip;
};

static void *relay(void *arg)
{
    struct proxy *x = arg;
    int in = accept4(x->lfd, NULL, NULL, SOCK_CLOEXEC);
    int out = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(x->port)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(out, (struct sockaddr *)&a, sizeof(a)) != 0)
        return NULL;
    size_t seen = 0;
    uint8_t buf[4096];
    for (;;) {
        fd_set r;
        FD_ZERO(&r);
        FD_SET(in, &r);
        FD_SET(out, &r);
        struct timeval tv = {5, 0};
        if (select((in > out ? in : out) + 1, &r, NULL, NULL, &tv) <= 0)
            break;
        if (FD_ISSET(in, &r)) {
            ssize_t n = read(in, buf, sizeof(buf));
            if (n <= 0)
                break;
            if (seen <= x->flip && x->flip < seen + (size_t)n)
                buf[x->flip - seen] ^= 0x40;
            seen += (size_t)n;
            if (write(out, buf, (size_t)n) != n)
                break;
        }
        if (FD_ISSET(out, &r)) {
            ssize_t n = read(out, buf, sizeof(buf));
            if (n <= 0 || write(in, buf, (size_t)n) != n)
                break;
        }
    }
    close(in);
    close(out);
    return NULL;
}

Test(chan, a_byte_changed_on_the_wire_is_never_delivered)
{
    char sport[16];
    struct server s = {.lfd = listen_local(sport), .key = KEY_A, .timeout_ms = 5000};
    struct proxy x = {.flip = 20000};
    x.lfd = listen_local(x.port);
    char pport[16];
    snprintf(pport, sizeof(pport), "%s", x.port);
    snprintf(x.port, sizeof(x.port), "%s", sport); /* (the proxy connects on to the server) */
    pthread_t t, p;
    pthread_create(&t, NULL, serve, &s);
    pthread_create(&p, NULL, relay, &x);
    struct chan *c;
    struct vv_err e = {0};
    cr_assert_eq(chan_connect("127.0.0.1", pport, KEY_A, 5000, &c, &e), 0, "%s", e.msg);
    uint8_t buf[65536];
    memset(buf, 0x11, sizeof(buf));
    chan_send(c, buf, sizeof(buf)); /* (may fail once the server gives up) */
    chan_close(c);
    pthread_join(t, NULL);
    pthread_join(p, NULL);
    cr_assert_neq(s.err, 0, "the server took a changed stream");
    cr_assert_lt(s.got, sizeof(buf), "the server got %zu bytes, all of them", s.got);
    cr_assert_eq(s.got % 16384, 0, "the server got part of a record (%zu bytes)", s.got);
    close(s.lfd);
    close(x.lfd);
}

Test(chan, key_files)
{
    char dir[] = "/tmp/vvfs-key-XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/peer.key", dir);
    char hex[2 * CHAN_KEY_BYTES + 1];
    cr_assert_eq(chan_key_generate(hex), 0);
    cr_assert_eq(strlen(hex), 64);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", hex);
    fclose(f);
    chmod(path, 0600);
    uint8_t k[CHAN_KEY_BYTES], k2[CHAN_KEY_BYTES];
    struct vv_err e = {0};
    cr_assert_eq(chan_key_load(path, k, &e), 0, "%s", e.msg);
    char again[2 * CHAN_KEY_BYTES + 1];
    for (int i = 0; i < CHAN_KEY_BYTES; i++)
        snprintf(again + 2 * i, 3, "%02x", k[i]);
    cr_assert_str_eq(again, hex);
    cr_assert_eq(chan_key_generate(hex), 0);
    cr_assert_str_neq(again, hex, "two keys alike");
    chmod(path, 0644);
    cr_assert_eq(chan_key_load(path, k2, &e), EPERM);
    cr_assert(strstr(e.msg, "chmod 600"), "%s", e.msg);
    f = fopen(path, "w");
    fprintf(f, "not a key\n");
    fclose(f);
    chmod(path, 0600);
    cr_assert_eq(chan_key_load(path, k2, &e), EINVAL);
    cr_assert(strstr(e.msg, "vvfs key generate"), "%s", e.msg);
    unlink(path);
    cr_assert_eq(chan_key_load(path, k2, &e), ENOENT);
    rmdir(dir);
}
