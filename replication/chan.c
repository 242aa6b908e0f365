/*
 * replication/chan.c — TLS 1.3 with an external pre-shared key (see chan.h).
 *
 * Design notes
 *   OpenSSL's external-PSK callbacks: the client offers the identity "vvfs-repl-1" with a
 *   session whose master key is the PSK (psk_use_session_cb); the server finds the same
 *   session for that identity (psk_find_session_cb) and refuses any other identity.  The
 *   session is bound to TLS_AES_128_GCM_SHA256's hash (SHA-256); the ciphersuites offered are
 *   the SHA-256 ones.  Neither side loads a certificate, so a handshake that does not
 *   authenticate with the PSK has nothing to fall back to and fails.
 *   The SSL_CTXs are made once per process (OpenSSL's contexts are thread-safe to share);
 *   the key is per connection (ex_data on the SSL), so two sessions may use two keys.
 */
#include "replication/chan.h"

#include "util/hex.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PSK_IDENTITY "vvfs-repl-1"

/* OpenSSL's read buffer and the write buffer under it: 16 records of 16 KiB */
#define CHAN_IO_BUF (256u << 10)

struct chan {
    SSL *ssl;
    int fd;
    uint8_t key[CHAN_KEY_BYTES];
    char peer[96];
};

/* ---- keys --------------------------------------------------------------------------------- */

int chan_key_load(const char *path, uint8_t key[CHAN_KEY_BYTES], struct vv_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return vv_err_set(e, errno, "cannot open key file %s: %s", path, strerror(errno));
    struct stat st;
    char buf[2 * CHAN_KEY_BYTES + 3];
    ssize_t n = -1;
    int err = 0;
    if (fstat(fd, &st) != 0)
        err = vv_err_set(e, errno, "cannot stat key file %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        err = vv_err_set(e, EINVAL, "key file %s is not a regular file", path);
    else if (st.st_mode & 077)
        err = vv_err_set(e, EPERM, "key file %s is mode %04o: others may read it; make it "
                         "0600 (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
    else if ((n = read(fd, buf, sizeof(buf))) < 0)
        err = vv_err_set(e, errno, "cannot read key file %s: %s", path, strerror(errno));
    close(fd);
    if (err)
        return err;
    size_t len = (size_t)n;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len != 2 * CHAN_KEY_BYTES)
        return vv_err_set(e, EINVAL, "key file %s does not hold a key (64 hex digits, as "
                          "'vvfs key generate' writes)", path);
    for (size_t i = 0; i < CHAN_KEY_BYTES; i++) {
        int hi = vv_hexval(buf[2 * i]), lo = vv_hexval(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return vv_err_set(e, EINVAL, "key file %s does not hold a key (64 hex digits, as "
                              "'vvfs key generate' writes)", path);
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int chan_key_generate(char hex[2 * CHAN_KEY_BYTES + 1])
{
    uint8_t k[CHAN_KEY_BYTES];
    if (RAND_bytes(k, sizeof(k)) != 1)
        return EIO;
    vv_hex_encode(k, sizeof(k), hex);
    OPENSSL_cleanse(k, sizeof(k));
    return 0;
}

/* ---- TLS ---------------------------------------------------------------------------------- */

static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static SSL_CTX *client_ctx, *server_ctx;
static int chan_index = -1; /* SSL ex_data: the struct chan */

static const unsigned char aes128gcmsha256_id[] = {0x13, 0x01};

static SSL_SESSION *psk_session(SSL *ssl, const SSL_CIPHER **cipher_out)
{
    struct chan *c = SSL_get_ex_data(ssl, chan_index);
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcmsha256_id);
    SSL_SESSION *s = cipher && c ? SSL_SESSION_new() : NULL;
    if (s && (!SSL_SESSION_set1_master_key(s, c->key, sizeof(c->key)) ||
              !SSL_SESSION_set_cipher(s, cipher) ||
              !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    *cipher_out = cipher;
    return s;
}

static int psk_use_session_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id,
                              size_t *idlen, SSL_SESSION **sess)
{
    const SSL_CIPHER *cipher;
    SSL_SESSION *s = psk_session(ssl, &cipher);
    if (!s)
        return 0;
    if (md && SSL_CIPHER_get_handshake_digest(cipher) != md) {
        SSL_SESSION_free(s); /* a hash our session is not for: offer nothing */
        *sess = NULL;
        *id = NULL;
        *idlen = 0;
        return 1;
    }
    *sess = s;
    *id = (const unsigned char *)PSK_IDENTITY;
    *idlen = strlen(PSK_IDENTITY);
    return 1;
}

static int psk_find_session_cb(SSL *ssl, const unsigned char *id, size_t idlen,
                               SSL_SESSION **sess)
{
    *sess = NULL;
    if (idlen != strlen(PSK_IDENTITY) || memcmp(id, PSK_IDENTITY, idlen) != 0)
        return 1; /* not ours: the handshake fails (there is no certificate to fall back to) */
    const SSL_CIPHER *cipher;
    *sess = psk_session(ssl, &cipher);
    return *sess ? 1 : 0;
}

static SSL_CTX *make_ctx(bool server)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET); /* one handshake per connection, no resumption */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    /* read as many records as the buffer holds per read(2), not a header then a body: on
     * loopback each read(2) also runs the peer's transmit (its ACK), see "Replication
     * channel" in ARCHITECTURE.md */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, CHAN_IO_BUF);
    if (server)
        SSL_CTX_set_psk_find_session_callback(ctx, psk_find_session_cb);
    else
        SSL_CTX_set_psk_use_session_callback(ctx, psk_use_session_cb);
    return ctx;
}

static void ctx_init(void)
{
    chan_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    client_ctx = make_ctx(false);
    server_ctx = make_ctx(true);
}

/* OpenSSL's reason for the last failure, and the errno it stands for */
static int tls_error(struct chan *c, const char *what, int ret, struct vv_err *e)
{
    int kind = SSL_get_error(c->ssl, ret);
    unsigned long code = ERR_peek_last_error();
    char why[200] = "";
    if (code)
        ERR_error_string_n(code, why, sizeof(why));
    int err = EPROTO;
    if (kind == SSL_ERROR_WANT_READ || kind == SSL_ERROR_WANT_WRITE)
        err = ETIMEDOUT; /* (a blocking socket's SO_RCVTIMEO/SO_SNDTIMEO ran out) */
    else if (kind == SSL_ERROR_SYSCALL)
        err = errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno ? errno : EPIPE;
    else if (kind == SSL_ERROR_ZERO_RETURN)
        err = EPIPE;
    else if (code && (ERR_GET_REASON(code) == SSL_R_BAD_PSK_IDENTITY ||
                      ERR_GET_REASON(code) == SSL_R_BAD_PSK ||
                      ERR_GET_REASON(code) == SSL_R_NO_SHARED_CIPHER ||
                      ERR_GET_REASON(code) == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC ||
                      ERR_GET_REASON(code) == SSL_R_TLSV1_ALERT_DECRYPT_ERROR ||
                      ERR_GET_REASON(code) == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ||
                      ERR_GET_REASON(code) == SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER ||
                      ERR_GET_REASON(code) == SSL_R_BINDER_DOES_NOT_VERIFY ||
                      ERR_GET_REASON(code) == SSL_R_TLSV1_ALERT_INTERNAL_ERROR))
        err = EACCES; /* (the PSK did not match: either side sees one of these) */
    ERR_clear_error();
    vv_err_set(e, err, "%s %s: %s", what, c->peer,
               err == EACCES ? "the peer does not have this node's key (or speaks something "
                               "else): refused"
               : err == ETIMEDOUT ? "no answer in time"
               : why[0] ? why : strerror(err));
    return err;
}

static void set_timeouts(int fd, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void name_peer(struct chan *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[64] = "?", port[16] = "?";
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(c->peer, sizeof(c->peer), "peer %s%s%s:%s", strchr(host, ':') ? "[" : "", host,
             strchr(host, ':') ? "]" : "", port);
}

/* set up C (fd, key set) as SERVER or client and run the handshake */
static int handshake(struct chan *c, bool server, struct vv_err *e)
{
    pthread_once(&ctx_once, ctx_init);
    SSL_CTX *ctx = server ? server_ctx : client_ctx;
    if (!ctx || chan_index < 0)
        return vv_err_set(e, EIO, "cannot set up TLS (OpenSSL)");
    name_peer(c);
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_ex_data(c->ssl, chan_index, c))
        return vv_err_set(e, ENOMEM, "cannot set up TLS for %s", c->peer);
    /* records are written into a buffer that goes out in one write(2) when it is full and
     * at the end of each chan_send (OpenSSL flushes it itself in the handshake), not one
     * write(2) per 16 KiB record */
    BIO *rb = BIO_new_socket(c->fd, BIO_NOCLOSE), *sb = BIO_new_socket(c->fd, BIO_NOCLOSE);
    BIO *wb = BIO_new(BIO_f_buffer());
    if (!rb || !sb || !wb || BIO_set_write_buffer_size(wb, CHAN_IO_BUF) != 1) {
        BIO_free(rb);
        BIO_free(sb);
        BIO_free(wb);
        return vv_err_set(e, ENOMEM, "cannot set up TLS for %s", c->peer);
    }
    SSL_set_bio(c->ssl, rb, BIO_push(wb, sb));
    ERR_clear_error();
    int ret = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
    if (ret != 1)
        return tls_error(c, "handshake with", ret, e);
    if (!SSL_session_reused(c->ssl)) {
        /* (cannot happen without a certificate; never carry data unauthenticated) */
        return vv_err_set(e, EACCES, "handshake with %s did not use the shared key: refused",
                          c->peer);
    }
    return 0;
}

static struct chan *chan_new(int fd, const uint8_t key[CHAN_KEY_BYTES])
{
    struct chan *c = calloc(1, sizeof(*c));
    if (c) {
        c->fd = fd;
        memcpy(c->key, key, CHAN_KEY_BYTES);
    }
    return c;
}

static void chan_free(struct chan *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

int chan_accept(int fd, const uint8_t key[CHAN_KEY_BYTES], unsigned timeout_ms,
                struct chan **out, struct vv_err *e)
{
    struct chan *c = chan_new(fd, key);
    if (!c) {
        close(fd);
        return vv_err_set(e, ENOMEM, "out of memory");
    }
    set_timeouts(fd, timeout_ms);
    int err = handshake(c, true, e);
    if (err) {
        chan_free(c);
        return err;
    }
    *out = c;
    return 0;
}

/* connect to one address within TIMEOUT_MS: the socket, or -1 with errno */
static int connect_one(const struct addrinfo *ai, unsigned timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            int keep = errno;
            close(fd);
            errno = keep;
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, (int)timeout_ms), soerr = 0;
        socklen_t len = sizeof(soerr);
        if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr) {
            close(fd);
            errno = r == 0 ? ETIMEDOUT : soerr ? soerr : errno;
            return -1;
        }
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int chan_connect(const char *host, const char *port, const uint8_t key[CHAN_KEY_BYTES],
                 unsigned timeout_ms, struct chan **out, struct vv_err *e)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc)
        return vv_err_set(e, rc == EAI_SYSTEM ? errno : ENOENT, "cannot resolve %s:%s: %s",
                          host, port, gai_strerror(rc));
    int fd = -1, err = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        if ((fd = connect_one(ai, timeout_ms)) < 0)
            err = errno;
    freeaddrinfo(res);
    if (fd < 0)
        return vv_err_set(e, err, "cannot connect to %s:%s: %s", host, port, strerror(err));
    struct chan *c = chan_new(fd, key);
    if (!c) {
        close(fd);
        return vv_err_set(e, ENOMEM, "out of memory");
    }
    set_timeouts(fd, timeout_ms);
    err = handshake(c, false, e);
    if (err) {
        chan_free(c);
        return err;
    }
    *out = c;
    return 0;
}

int chan_send(struct chan *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        size_t done = 0;
        ERR_clear_error();
        int ret = SSL_write_ex(c->ssl, p, len, &done);
        if (ret != 1) {
            struct vv_err e = {0};
            return tls_error(c, "send to", ret, &e);
        }
        p += done;
        len -= done;
    }
    ERR_clear_error();
    if (BIO_flush(SSL_get_wbio(c->ssl)) != 1) {
        return errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno ? errno : EPIPE;
    }
    return 0;
}

ssize_t chan_recv(struct chan *c, void *buf, size_t cap)
{
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(c->ssl, buf, cap, &got);
    if (ret == 1)
        return (ssize_t)got;
    if (SSL_get_error(c->ssl, ret) == SSL_ERROR_ZERO_RETURN)
        return 0;
    struct vv_err e = {0};
    int err = tls_error(c, "receive from", ret, &e);
    vv_warn(VV_SS_REPL, "%s", e.msg);
    return -err;
}

void chan_close(struct chan *c)
{
    if (!c)
        return;
    if (c->ssl) {
        SSL_shutdown(c->ssl); /* our close_notify; not waiting for theirs */
        (void)BIO_flush(SSL_get_wbio(c->ssl));
    }
    chan_free(c);
}

void chan_shutdown(struct chan *c)
{
    if (c)
        shutdown(c->fd, SHUT_RDWR); /* the fd stays open (and ours) until chan_close */
}

const char *chan_peer(const struct chan *c)
{
    return c->peer;
}
