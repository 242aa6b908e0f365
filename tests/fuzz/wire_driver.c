/*
 * tests/fuzz/wire_driver.c — drives the wire fuzz target without libFuzzer.
 *
 *   wire_driver [--iterations N] [--seed S] [--seeds DIR]
 *
 * Builds valid conversations with the encoder (a sender's: hello, deltas of data, zero and
 * snapshot frames, pings, commits of one delta or two; a receiver's: welcome, acks, an error), checks that the decoder
 * takes them whole, whatever the size of the reads, and that it refuses each one cut short
 * of a frame boundary by asking for more (EAGAIN), never by taking a partial frame; then
 * feeds LLVMFuzzerTestOneInput N mutations of them (bit flips, byte changes, cuts, inserted
 * and repeated bytes).  --seeds writes the conversations as a corpus for libFuzzer.
 * Exit 0, or 1 naming what went wrong (ASan/UBSan abort on their own).
 */
#include "replication/wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONV_MAX (4u << 20)

struct conv {
    uint8_t *b;
    size_t n;
    uint32_t seq;
};

static void add(struct conv *c, size_t n)
{
    if (n == 0) {
        fprintf(stderr, "wire_driver: the encoder refused a frame at seq %u\n", c->seq);
        exit(1);
    }
    c->n += n;
    c->seq++;
}

#define PUT(c, fn, ...) add((c), fn((c)->b + (c)->n, CONV_MAX - (c)->n, (c)->seq, __VA_ARGS__))

static void sender_conv(struct conv *c, uint32_t es, unsigned deltas)
{
    static const uint8_t pool[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    uint64_t csum[8];
    uint8_t *blk = calloc(8, es);
    for (unsigned i = 0; i < 8 * es; i++)
        blk[i] = (uint8_t)(i * 7);
    for (unsigned i = 0; i < 8; i++)
        csum[i] = XXH3_64bits(blk + (size_t)i * es, es);
    PUT(c, wire_put_hello, 1, 1, pool, 42, "app-dr");
    for (unsigned d = 0; d < deltas; d++) {
        PUT(c, wire_put_begin, 10 * d, 10 * d + 7, 64ULL * es, es, "data");
        PUT(c, wire_put_data, 0, 3, es, csum, blk);
        PUT(c, wire_put_zero, 3, 2);
        PUT(c, wire_put_data_zstd, 5, 2, es, csum, blk, 40); /* (not real zstd: xfer's check) */
        PUT(c, wire_put_snapshot, 10 * d + 2, 1700000000, "nightly");
        PUT(c, wire_put_data, 10, 8, es, csum, blk);
        PUT(c, wire_put_ping, false, 7);
        PUT(c, wire_put_snapshot, 10 * d + 7, 1700000100, "repl.7");
        PUT(c, wire_put_zero, 60, 4);
        PUT(c, wire_put_end, 13, 6, 2);
        if (d % 2) { /* two volumes to one gen, one commit (a group's sync) */
            PUT(c, wire_put_begin, 10 * d, 10 * d + 7, 64ULL * es, es, "logs");
            PUT(c, wire_put_data, 5, 1, es, csum, blk);
            PUT(c, wire_put_end, 1, 0, 0);
        }
        PUT(c, wire_put_commit, 10 * d + 7, 1700000200, d % 2 ? 2 : 1, d);
    }
    free(blk);
}

static void receiver_conv(struct conv *c)
{
    static const uint8_t pool[16] = {9};
    PUT(c, wire_put_welcome, 1, pool, 42, 17, 0);
    PUT(c, wire_put_ack, 7, 0);
    PUT(c, wire_put_ack, 7, 0);
    PUT(c, wire_put_ping, true, 7);
    PUT(c, wire_put_ack, 17, 64);
    PUT(c, wire_put_error, 28, "disk full on the replica");
}

/* decode all of C as SIDE in reads of STEP bytes: the number of frames, or -1 (QUIET: say
 * nothing about a refusal) */
static long decode_all(const struct conv *c, enum wire_side side, size_t step, bool quiet)
{
    struct wire_rx rx = {.side = side};
    size_t have = 0, start = 0;
    long frames = 0;
    while (have < c->n) {
        have += c->n - have < step ? c->n - have : step;
        for (;;) {
            struct wire_msg m;
            size_t used;
            const char *why;
            int rc = wire_decode(&rx, c->b + start, have - start, &m, &used, &why);
            if (rc == EAGAIN)
                break;
            if (rc) {
                if (!quiet)
                    fprintf(stderr, "wire_driver: a valid frame (#%ld) was refused: %s\n",
                            frames, why);
                return -1;
            }
            start += used;
            frames++;
        }
    }
    return start == c->n ? frames : -1;
}

static void check(const struct conv *c, enum wire_side side, const char *what)
{
    long want = (long)c->seq;
    size_t steps[] = {1, 7, 16, 17, 4096, 65536, CONV_MAX};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (decode_all(c, side, steps[i], false) != want) {
            fprintf(stderr, "wire_driver: %s did not decode whole in reads of %zu\n", what,
                    steps[i]);
            exit(1);
        }
    }
    printf("wire_driver: %s: %ld frames, %zu bytes, decoded whole in every read size\n", what,
           want, c->n);
}

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void write_seed(const char *dir, const char *name, uint8_t side, const struct conv *c)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint8_t hdr[2] = {side, 255};
    fwrite(hdr, 1, 2, f);
    fwrite(c->b, 1, c->n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    unsigned long iterations = 200000, seed = 1;
    const char *seeds = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iterations = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoul(argv[++i], NULL, 10) | 1;
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = argv[++i];
        else {
            fprintf(stderr, "usage: wire_driver [--iterations N] [--seed S] [--seeds DIR]\n");
            return 2;
        }
    }
    struct conv conv[3];
    for (int i = 0; i < 3; i++) {
        conv[i] = (struct conv){.b = malloc(CONV_MAX)};
        if (!conv[i].b)
            return 1;
    }
    sender_conv(&conv[0], 4096, 3);
    sender_conv(&conv[1], 65536, 1);
    receiver_conv(&conv[2]);
    check(&conv[0], WIRE_SIDE_RECEIVER, "a sender's conversation (4K extents)");
    check(&conv[1], WIRE_SIDE_RECEIVER, "a sender's conversation (64K extents)");
    check(&conv[2], WIRE_SIDE_SENDER, "a receiver's conversation");
    /* the other side refuses each at once */
    if (decode_all(&conv[0], WIRE_SIDE_SENDER, CONV_MAX, true) != -1 ||
        decode_all(&conv[2], WIRE_SIDE_RECEIVER, CONV_MAX, true) != -1) {
        fprintf(stderr, "wire_driver: a side took the other side's frames\n");
        return 1;
    }
    if (seeds) {
        write_seed(seeds, "sender-4k", 0, &conv[0]);
        write_seed(seeds, "sender-64k", 0, &conv[1]);
        write_seed(seeds, "receiver", 1, &conv[2]);
    }
    uint8_t *m = malloc(CONV_MAX + 64);
    unsigned long s = seed * 2654435761UL + 1;
    for (unsigned long it = 0; it < iterations; it++) {
        const struct conv *c = &conv[it % 3];
        /* keep mutants small enough to be quick: a prefix of at most 64 KiB */
        size_t n = c->n < 65536 ? c->n : 65536;
        m[0] = it % 3 == 2 ? 1 : 0;
        m[1] = (uint8_t)rnd(&s);
        memcpy(m + 2, c->b, n);
        size_t len = n + 2;
        unsigned k = 1 + rnd(&s) % 8;
        for (unsigned j = 0; j < k; j++) {
            size_t at = 2 + rnd(&s) % (len - 2);
            switch (rnd(&s) % 5) {
            case 0: m[at] ^= (uint8_t)(1u << (rnd(&s) % 8)); break;
            case 1: m[at] = (uint8_t)rnd(&s); break;
            case 2: len = at + 1; break; /* cut */
            case 3: /* insert a byte */
                if (len < CONV_MAX + 60) {
                    memmove(m + at + 1, m + at, len - at);
                    m[at] = (uint8_t)rnd(&s);
                    len++;
                }
                break;
            default: /* a big-endian field set to an edge value */
                if (at + 8 <= len)
                    memset(m + at, rnd(&s) % 2 ? 0xff : 0, 1 + rnd(&s) % 8);
            }
        }
        LLVMFuzzerTestOneInput(m, len);
    }
    printf("wire_driver: %lu mutated conversations decoded or refused (seed %lu)\n",
           iterations, seed);
    free(m);
    for (int i = 0; i < 3; i++)
        free(conv[i].b);
    return 0;
}
