/*
 * replication/chan.h — the channel between two peers: TLS 1.3 authenticated by a pre-shared
 * key, carrying the frames of wire.h.
 *
 * Both peers hold the same 32-byte key (`vvfs key generate`: 64 hex digits and a newline, in
 * a file of mode 0600).  A connection is a TLS 1.3 handshake in psk_dhe_ke mode: the key
 * authenticates both sides (neither has a certificate) and an ephemeral X25519 exchange
 * gives each connection keys of its own (forward secrecy: a key stolen later does not open
 * recorded traffic).  A peer with another key, or none, fails the handshake; nothing it sent
 * reaches the caller.  Records are AES-128-GCM (or ChaCha20-Poly1305), so every byte the
 * caller gets was sent by the peer, in order, unchanged.  Why TLS and not a handshake of our
 * own over libsodium: see docs/ARCHITECTURE.md, "Replication channel".
 *
 * Blocking I/O on a socket, with a timeout per call (SO_RCVTIMEO/SO_SNDTIMEO): a peer that
 * stops answering makes calls fail with ETIMEDOUT instead of hanging.  Errors are positive
 * errnos: ECONNREFUSED, ETIMEDOUT, EACCES (the peer does not have our key: the handshake's
 * authentication failed), EPROTO (anything else the peer got wrong), EPIPE (the peer closed).
 * One thread uses a channel at a time.  The process must ignore SIGPIPE (the daemon does, in
 * vv_repl_start): a write to a peer that has closed is then EPIPE, not the end of the process.
 */
#ifndef VV_REPLICATION_CHAN_H
#define VV_REPLICATION_CHAN_H

#include "meta/pool.h" /* struct vv_err */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CHAN_KEY_BYTES 32

/* Read the key file PATH: EPERM (E says "mode 0644: chmod 600 PATH") if group or others may
 * read or write it, EINVAL if it is not 64 hex digits (and a newline), or an open errno. */
int chan_key_load(const char *path, uint8_t key[CHAN_KEY_BYTES], struct vv_err *e);
/* A new random key as 64 hex digits (HEX: 65 bytes, NUL-terminated).  0 or EIO. */
int chan_key_generate(char hex[2 * CHAN_KEY_BYTES + 1]);

struct chan;

/* Connect to HOST:PORT and run the handshake as the client.  TIMEOUT_MS bounds the connect,
 * the handshake and then each later call. */
int chan_connect(const char *host, const char *port, const uint8_t key[CHAN_KEY_BYTES],
                 unsigned timeout_ms, struct chan **out, struct vv_err *e);
/* Run the handshake as the server on FD (an accepted socket, which the channel then owns:
 * closed on failure too). */
int chan_accept(int fd, const uint8_t key[CHAN_KEY_BYTES], unsigned timeout_ms,
                struct chan **out, struct vv_err *e);
/* Send all of BUF.  0 or an errno. */
int chan_send(struct chan *c, const void *buf, size_t len);
/* Receive up to CAP bytes: > 0 bytes, 0 when the peer closed cleanly, or -errno. */
ssize_t chan_recv(struct chan *c, void *buf, size_t cap);
/* Cut the connection from another thread: the owner's calls in progress and to come fail
 * (EPIPE or the like) at once; the owner still closes it.  NULL is fine. */
void chan_shutdown(struct chan *c);
/* Say goodbye (a TLS close_notify) and close the socket.  NULL is fine. */
void chan_close(struct chan *c);
/* "peer 10.0.0.2:7700" and the like, for messages */
const char *chan_peer(const struct chan *c);

#endif
