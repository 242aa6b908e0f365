/*
 * tests/unit/net_pool.h — what the replication unit tests share: a fresh pool in a
 * temporary directory, its removal, a listening socket on a free loopback port, and
 * SIGPIPE ignored.
 * (Included by test_chan.c, test_xfer.c and test_repl.c, after criterion.h.)
 */
#ifndef VV_TESTS_NET_POOL_H
#define VV_TESTS_NET_POOL_H

#include "meta/pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* a new pool of 256 MiB in a new directory DIR (/tmp/vvfs-TAG-XXXXXX), open */
static inline struct vv_pool *test_pool(char dir[64], const char *tag)
{
    snprintf(dir, 64, "/tmp/vvfs-%s-XXXXXX", tag);
    cr_assert(mkdtemp(dir));
    struct vv_pool_params pp = {.capacity = 256u << 20};
    struct vv_err e = {0};
    cr_assert_eq(vv_pool_create(dir, &pp, &e), 0, "%s", e.msg);
    struct vv_pool *p;
    cr_assert_eq(vv_pool_open(dir, 0, &p, &e), 0, "%s", e.msg);
    return p;
}

static inline void test_rm(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* a listening socket on 127.0.0.1, *PORT its port */
static inline int listen_local(char port[16])
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    snprintf(port, 16, "%u", ntohs(a.sin_port));
    return fd;
}

/* a suite's .init: as the daemon does (chan.h), so a write to a peer that has closed is
 * EPIPE, not a signal */
static inline void test_no_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}

#endif
