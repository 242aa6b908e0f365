/*
 * tests/unit/test_wire.c — the replication wire protocol: every frame round-trips through
 * the encoder and the decoder, and the decoder refuses what a broken or hostile peer sends
 * (each refusal with its reason): bad headers, lengths, names, ranges and order.
 */
#include "replication/wire.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static const uint8_t POOL[16] = {0xaa, 1, 2, 3};
static uint8_t buf[1 << 21];

/* decode the one frame at buf (N bytes) with RX: the return code, *M, *WHY */
static int dec(struct wire_rx *rx, size_t n, struct wire_msg *m, const char **why)
{
    size_t used = 0;
    int rc = wire_decode(rx, buf, n, m, &used, why);
    if (rc == 0)
        cr_assert_eq(used, n, "the frame is %zu bytes, the decoder took %zu", n, used);
    return rc;
}

/* a receiver that took a hello (seq 0) */
static struct wire_rx greeted_receiver(void)
{
    struct wire_rx rx = {.side = WIRE_SIDE_RECEIVER};
    struct wire_msg m;
    const char *why;
    size_t n = wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 9, "s");
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    return rx;
}

/* ... and a begin (seq 1) of a 16-block volume of 4 KiB extents, gens 5..9 */
static struct wire_rx in_delta(void)
{
    struct wire_rx rx = greeted_receiver();
    struct wire_msg m;
    const char *why;
    size_t n = wire_put_begin(buf, sizeof(buf), 1, 5, 9, 16 * 4096, 4096, "vol");
    cr_assert_eq(dec(&rx, n, &m, &why), 0, "%s", why ? why : "");
    return rx;
}

static void refused(struct wire_rx *rx, size_t n, const char *reason)
{
    struct wire_msg m;
    const char *why = NULL;
    cr_assert_eq(dec(rx, n, &m, &why), EBADMSG, "accepted what should be refused (%s)", reason);
    cr_assert(why && strstr(why, reason), "refused with '%s', expected '%s'", why ? why : "?",
              reason);
}

Test(wire, frames_round_trip)
{
    struct wire_rx rx = {.side = WIRE_SIDE_RECEIVER};
    struct wire_msg m;
    const char *why;
    size_t n = wire_put_hello(buf, sizeof(buf), 0, 1, 3, POOL, 77, "app-dr");
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_eq(m.type, WIRE_HELLO);
    cr_assert_eq(m.u.hello.vmax, 3);
    cr_assert_eq(m.u.hello.session, 77);
    cr_assert_str_eq(m.u.hello.name, "app-dr");
    cr_assert(memcmp(m.u.hello.pool, POOL, 16) == 0);
    n = wire_put_begin(buf, sizeof(buf), 1, 5, 9, 1 << 20, 4096, "data");
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_eq(m.u.begin.to, 9);
    cr_assert_str_eq(m.u.begin.volume, "data");
    uint8_t blocks[2 * 4096];
    memset(blocks, 0x5a, sizeof(blocks));
    uint64_t cs[2] = {0x0102030405060708ULL, 42};
    n = wire_put_data(buf, sizeof(buf), 2, 10, 2, 4096, cs, blocks);
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_eq(m.u.data.block, 10);
    cr_assert_eq(m.u.data.count, 2);
    cr_assert_eq(m.u.data.csums[0], 1);
    cr_assert_eq(m.u.data.csums[7], 8);
    cr_assert(memcmp(m.u.data.data, blocks, sizeof(blocks)) == 0);
    n = wire_put_zero(buf, sizeof(buf), 3, 12, 100);
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_eq(m.u.zero.count, 100);
    n = wire_put_snapshot(buf, sizeof(buf), 4, 7, 1700000000, "nightly");
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_str_eq(m.u.snapshot.name, "nightly");
    n = wire_put_ping(buf, sizeof(buf), 5, false, 99);
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_eq(m.u.ping.nonce, 99);
    n = wire_put_end(buf, sizeof(buf), 6, 2, 100, 1);
    cr_assert_eq(dec(&rx, n, &m, &why), 0, "%s", why ? why : "");
    cr_assert(!rx.in_delta);
    n = wire_put_error(buf, sizeof(buf), 7, 5, "bye\n");
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    cr_assert_str_eq(m.u.error.msg, "bye?", "non-printable bytes are replaced");
    n = wire_put_ping(buf, sizeof(buf), 8, false, 1);
    refused(&rx, n, "after an error");

    struct wire_rx tx = {.side = WIRE_SIDE_SENDER};
    n = wire_put_welcome(buf, sizeof(buf), 0, 1, POOL, 77, 12, 3);
    cr_assert_eq(dec(&tx, n, &m, &why), 0);
    cr_assert_eq(m.u.welcome.gen, 12);
    cr_assert_eq(m.u.welcome.resume, 3);
    n = wire_put_ack(buf, sizeof(buf), 1, 12, 64);
    cr_assert_eq(dec(&tx, n, &m, &why), 0);
    cr_assert_eq(m.u.ack.block, 64);
    cr_assert_str_eq(wire_type_to_string(WIRE_ACK), "ack");
    cr_assert_str_eq(wire_type_to_string(200), "unknown");
}

Test(wire, partial_frames_wait_and_bad_headers_are_refused_at_once)
{
    struct wire_rx rx = {.side = WIRE_SIDE_RECEIVER};
    struct wire_msg m;
    const char *why;
    size_t used = 0;
    size_t n = wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 1, "s");
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(wire_decode(&rx, buf, k, &m, &used, &why), EAGAIN, "a prefix of %zu", k);
    cr_assert_eq(rx.next_seq, 0, "nothing was taken");
    /* a header that cannot be right is refused before its payload comes */
    uint8_t save = buf[0];
    buf[0] ^= 1;
    cr_assert_eq(wire_decode(&rx, buf, WIRE_HDR, &m, &used, &why), EBADMSG);
    cr_assert(strstr(why, "magic"));
    buf[0] = save;
    buf[4] = 2;
    cr_assert_eq(wire_decode(&rx, buf, WIRE_HDR, &m, &used, &why), EBADMSG);
    cr_assert(strstr(why, "version"));
    buf[4] = 1;
    buf[6] = 0x80;
    cr_assert_eq(wire_decode(&rx, buf, WIRE_HDR, &m, &used, &why), EBADMSG);
    cr_assert(strstr(why, "flags"));
    buf[6] = 0;
    buf[12] = 0x7f; /* a 2 GiB hello */
    cr_assert_eq(wire_decode(&rx, buf, WIRE_HDR, &m, &used, &why), EBADMSG);
    cr_assert(strstr(why, "longer than its type allows"));
    n = wire_put_hello(buf, sizeof(buf), 1, 1, 1, POOL, 1, "s");
    refused(&rx, n, "out of sequence");
    n = wire_put_begin(buf, sizeof(buf), 0, 1, 2, 4096, 4096, "v");
    refused(&rx, n, "first frame is not a hello");
    buf[5] = 0;
    cr_assert_eq(wire_decode(&rx, buf, WIRE_HDR, &m, &used, &why), EBADMSG);
    cr_assert(strstr(why, "unknown frame type"));
}

Test(wire, payloads_are_checked)
{
    struct wire_rx rx = {.side = WIRE_SIDE_RECEIVER};
    size_t n = wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 1, "ok");
    buf[n - 1] = '/'; /* the name "o/" */
    refused(&rx, n, "bad session name");
    rx = (struct wire_rx){.side = WIRE_SIDE_RECEIVER};
    n = wire_put_hello(buf, sizeof(buf), 0, 2, 1, POOL, 1, "ok");
    refused(&rx, n, "version range");
    rx = (struct wire_rx){.side = WIRE_SIDE_RECEIVER};
    n = wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 1, "ok");
    buf[WIRE_HDR + 5] = 1; /* reserved */
    refused(&rx, n, "reserved");
    rx = (struct wire_rx){.side = WIRE_SIDE_RECEIVER};
    n = wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 1, "ok");
    buf[15] = (uint8_t)(buf[15] + 1); /* one byte longer than the payload has */
    buf[n] = 0;
    refused(&rx, n + 1, "longer than its type has");
    rx = (struct wire_rx){.side = WIRE_SIDE_RECEIVER};
    n = wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 1, "ok");
    buf[15] = (uint8_t)(buf[15] - 2); /* the name runs past the end */
    refused(&rx, n - 2, "bad session name");

    rx = greeted_receiver();
    n = wire_put_begin(buf, sizeof(buf), 1, 9, 8, 4096, 4096, "v");
    refused(&rx, n, "goes backwards");
    rx = greeted_receiver();
    n = wire_put_begin(buf, sizeof(buf), 1, 1, 9, 4096, 3000, "v");
    refused(&rx, n, "extent size");
    rx = greeted_receiver();
    n = wire_put_begin(buf, sizeof(buf), 1, 1, 9, 4097, 4096, "v");
    refused(&rx, n, "volume size");
    rx = greeted_receiver();
    n = wire_put_data(buf, sizeof(buf), 1, 0, 1, 4096, (uint64_t[]){0}, buf + 100000);
    refused(&rx, n, "outside a delta");
}

Test(wire, delta_frames_ascend_inside_the_volume)
{
    static uint8_t data[4096 * 4];
    uint64_t cs[4] = {0};
    struct wire_rx rx = in_delta();
    struct wire_msg m;
    const char *why;
    size_t n = wire_put_data(buf, sizeof(buf), 2, 4, 4, 4096, cs, data);
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    n = wire_put_zero(buf, sizeof(buf), 3, 3, 1);
    refused(&rx, n, "does not ascend");

    rx = in_delta();
    n = wire_put_zero(buf, sizeof(buf), 2, 15, 2);
    refused(&rx, n, "past the volume's end");
    rx = in_delta();
    n = wire_put_zero(buf, sizeof(buf), 2, 1, UINT64_MAX);
    refused(&rx, n, "past the volume's end");
    rx = in_delta();
    n = wire_put_zero(buf, sizeof(buf), 2, 1, 0);
    refused(&rx, n, "empty block range");
    rx = in_delta();
    n = wire_put_data(buf, sizeof(buf), 2, 0, 2, 4096, cs, data);
    buf[WIRE_HDR + 11] = 3; /* says 3 blocks, carries 2 */
    refused(&rx, n, "does not match the block count");
    rx = in_delta();
    n = wire_put_data(buf, sizeof(buf), 2, 0, 2, 4096, cs, data);
    cr_assert_eq(dec(&rx, n - 1, &m, &why), EAGAIN, "one byte short: wait for it");
    rx = in_delta();
    n = wire_put_snapshot(buf, sizeof(buf), 2, 10, 0, "s");
    refused(&rx, n, "gen outside the delta");
    rx = in_delta();
    n = wire_put_snapshot(buf, sizeof(buf), 2, 8, 0, "s");
    cr_assert_eq(dec(&rx, n, &m, &why), 0);
    n = wire_put_snapshot(buf, sizeof(buf), 3, 7, 0, "t");
    refused(&rx, n, "not ascending");
    rx = in_delta();
    n = wire_put_end(buf, sizeof(buf), 2, 1, 0, 0);
    refused(&rx, n, "counts do not match");
    rx = in_delta();
    n = wire_put_begin(buf, sizeof(buf), 2, 9, 10, 4096, 4096, "v");
    refused(&rx, n, "begin inside a delta");
    rx = in_delta();
    n = wire_put_ack(buf, sizeof(buf), 2, 1, 1);
    refused(&rx, n, "ack from the sender");
    /* the sender's decoder refuses what only a sender sends */
    struct wire_rx tx = {.side = WIRE_SIDE_SENDER};
    n = wire_put_welcome(buf, sizeof(buf), 0, 1, POOL, 1, 0, 0);
    cr_assert_eq(dec(&tx, n, &m, &why), 0);
    n = wire_put_begin(buf, sizeof(buf), 1, 1, 2, 4096, 4096, "v");
    refused(&tx, n, "begin from the receiver");
}

Test(wire, the_encoder_refuses_what_the_decoder_would)
{
    uint64_t cs[1] = {0};
    cr_assert_eq(wire_put_hello(buf, sizeof(buf), 0, 1, 1, POOL, 1, "a/b"), 0);
    cr_assert_eq(wire_put_begin(buf, sizeof(buf), 0, 1, 2, 4096, 4096, ""), 0);
    cr_assert_eq(wire_put_data(buf, sizeof(buf), 0, 0, 0, 4096, cs, buf), 0);
    cr_assert_eq(wire_put_data(buf, sizeof(buf), 0, 0, WIRE_DATA_MAX + 1, 4096, cs, buf), 0);
    cr_assert_eq(wire_put_zero(buf, 20, 0, 0, 1), 0, "no room");
    cr_assert_gt(wire_put_zero(buf, 32, 0, 0, 1), 0);
}

Test(wire, compressed_data_frames_are_bounded)
{
    /* (the decoder takes the compressed bytes as they are: decompressing is xfer.c's, which
     * refuses a frame that does not unpack to exactly its blocks) */
    struct wire_rx rx = in_delta();
    struct wire_msg m;
    const char *why = NULL;
    uint64_t cs[2] = {1, 2};
    static const uint8_t z[100] = {0x28, 0xb5, 0x2f, 0xfd};
    size_t n = wire_put_data_zstd(buf, sizeof(buf), 2, 3, 2, 4096, cs, z, sizeof(z));
    cr_assert_gt(n, 0);
    cr_assert_eq(dec(&rx, n, &m, &why), 0, "%s", why ? why : "");
    cr_assert_eq(m.flags, WIRE_F_ZSTD);
    cr_assert_eq(m.u.data.count, 2);
    cr_assert_eq(m.u.data.len, sizeof(z));
    cr_assert(memcmp(m.u.data.data, z, sizeof(z)) == 0);
    /* no shorter than a byte, never as long as the blocks themselves */
    cr_assert_eq(wire_put_data_zstd(buf, sizeof(buf), 3, 5, 1, 4096, cs, z, 0), 0);
    cr_assert_eq(wire_put_data_zstd(buf, sizeof(buf), 3, 5, 1, 4096, cs, buf + 8192, 4096), 0);
    rx = in_delta();
    n = wire_put_data(buf, sizeof(buf), 2, 0, 1, 4096, cs, buf + 100000);
    buf[7] = WIRE_F_ZSTD; /* "compressed", but as long as the blocks */
    refused(&rx, n, "compressed length out of range");
    rx = in_delta();
    n = wire_put_zero(buf, sizeof(buf), 2, 0, 1);
    buf[7] = WIRE_F_ZSTD;
    refused(&rx, n, "compression flag on a frame other than data");
    rx = in_delta();
    n = wire_put_zero(buf, sizeof(buf), 2, 0, 1);
    buf[7] = 2;
    refused(&rx, n, "unknown frame flags");
}

Test(wire, a_compressed_frame_unpacks_to_no_more_than_a_frame_holds)
{
    /* 256 blocks of 1 MiB, "compressed" into 100 bytes: 256 MiB to unpack, refused */
    struct wire_rx rx = greeted_receiver();
    struct wire_msg m;
    const char *why = NULL;
    size_t n = wire_put_begin(buf, sizeof(buf), 1, 5, 9, 1ULL << 30, 1u << 20, "vol");
    cr_assert_eq(dec(&rx, n, &m, &why), 0, "%s", why ? why : "");
    static uint64_t cs[256];
    static const uint8_t z[100];
    n = wire_put_data_zstd(buf, sizeof(buf), 2, 0, 256, 1u << 20, cs, z, sizeof(z));
    refused(&rx, n, "more blocks than a frame holds");
}
