/*
 * tests/tools/vvio.c — pattern I/O for the integration tests.
 *
 *   vvio write FILE OFF LEN [--seed S] [--direct] [--fsync] [--hold]
 *        --hold: after writing, print "held" and wait, descriptor open, until killed (close
 *        would flush, which on vvfs commits: this leaves the data uncommitted)
 *   vvio verify FILE OFF LEN [--seed S] [--direct]
 *   vvio zero FILE OFF LEN [--direct]         verify that the range reads as zeros
 *   vvio punch FILE OFF LEN                   fallocate(PUNCH_HOLE|KEEP_SIZE)
 *   vvio zerorange FILE OFF LEN [--no-keep-size]   fallocate(ZERO_RANGE[|KEEP_SIZE])
 *   vvio seek FILE OFF data|hole              print lseek(SEEK_DATA/SEEK_HOLE) or "ENXIO"
 *
 * OFF and LEN take K/M/G/T suffixes (binary); any byte alignment works without --direct.
 *
 * Design notes
 *   The pattern is defined per byte so that unaligned ranges compose: the byte at absolute
 *   offset o is byte (o % 8) of the little-endian u64
 *
 *       word(o) = (o & ~7) ^ mix(S)
 *       mix(S)  = ((S + 1) ^ 0xa5c) << 52  |  splitmix64(S) & (2^52 - 1),   seed S in 0..4094
 *
 *   Offsets stay below 2^52, so the top 12 bits of a word name its seed and XOR-ing the rest
 *   with mix(seed) gives back the offset it was written for: a misplaced block names itself
 *   ("found data of seed 3 for offset 0x10000"), a stale one names its seed.  The splitmix
 *   bits make the bytes look random (few zero bytes), so a lost write rarely reads as a match.
 *
 * Exit status: 0 ok, 1 I/O error or verification failure (one line on stderr naming the first
 * bad offset), 2 usage.
 */
#include "util/size.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE 0x10
#endif

#define CHUNK (1u << 20)
#define OFF_BITS 52
#define OFF_MASK ((UINT64_C(1) << OFF_BITS) - 1)
#define SEED_MAX 4094u

static const char *prog = "vvio";

__attribute__((noreturn)) static void usage(void)
{
    fprintf(stderr, "usage: vvio write FILE OFF LEN [--seed S] [--direct] [--fsync] [--hold]\n"
                    "       vvio verify FILE OFF LEN [--seed S] [--direct]\n"
                    "       vvio zero FILE OFF LEN [--direct]\n"
                    "       vvio punch FILE OFF LEN\n"
                    "       vvio zerorange FILE OFF LEN [--no-keep-size]\n"
                    "       vvio seek FILE OFF data|hole\n");
    exit(2);
}

/* a number with an optional K/M/G/T suffix (binary), as the vvfs CLI takes them */
static bool parse_u64(const char *s, uint64_t *out)
{
    return vv_parse_size(s, out) == 0;
}

#define TAG_XOR 0xa5cu

static uint64_t seed_mix(unsigned seed)
{
    uint64_t z = seed + UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    return ((uint64_t)((seed + 1) ^ TAG_XOR) << OFF_BITS) | (z & OFF_MASK);
}

static uint64_t pattern_word(uint64_t aligned_off, unsigned seed)
{
    return (aligned_off & OFF_MASK) ^ seed_mix(seed);
}

static uint8_t pattern_byte(uint64_t off, unsigned seed)
{
    return (uint8_t)(pattern_word(off & ~UINT64_C(7), seed) >> (8 * (off & 7)));
}

/* Fill BUF with the pattern for [OFF, OFF+LEN). */
static void fill_pattern(uint8_t *buf, uint64_t off, size_t len, unsigned seed)
{
    size_t i = 0;
    for (; i < len && ((off + i) & 7); i++)
        buf[i] = pattern_byte(off + i, seed);
    for (; i + 8 <= len; i += 8) {
        uint64_t w = pattern_word(off + i, seed);
        for (unsigned b = 0; b < 8; b++)
            buf[i + b] = (uint8_t)(w >> (8 * b));
    }
    for (; i < len; i++)
        buf[i] = pattern_byte(off + i, seed);
}

/*
 * Describe, for a failure message, what the 8-byte word holding byte BAD of FD is.  A word may
 * mix two writes when one began inside it, so only its bytes from BAD's position on are decoded;
 * the lower ones are assumed to be those of the expected offset.
 */
static void describe_word(int fd, uint64_t bad, char *out, size_t outlen)
{
    uint64_t aligned = bad & ~UINT64_C(7);
    unsigned k = (unsigned)(bad & 7);
    uint8_t b[8] = {0};
    ssize_t r = pread(fd, b, 8, (off_t)aligned);
    uint64_t w = 0;
    for (unsigned i = 0; i < 8; i++)
        w |= (uint64_t)b[i] << (8 * i);
    if (r != 8) {
        snprintf(out, outlen, "a short read of the word at 0x%" PRIx64, aligned);
        return;
    }
    uint64_t low = k ? (UINT64_C(1) << (8 * k)) - 1 : 0;
    if ((w & ~low) == 0) {
        snprintf(out, outlen, "zeros");
        return;
    }
    unsigned tag = (unsigned)(w >> OFF_BITS) ^ TAG_XOR;
    if (tag >= 1 && tag <= SEED_MAX + 1) {
        uint64_t woff = ((w ^ seed_mix(tag - 1)) & OFF_MASK & ~low) | (aligned & low);
        if ((woff & 7) == 0) {
            snprintf(out, outlen,
                     "data of seed %u for offset %" PRIu64 " (0x%" PRIx64 ") [word 0x%016" PRIx64
                     "]",
                     tag - 1, woff, woff, w);
            return;
        }
    }
    snprintf(out, outlen, "unrecognized data [word 0x%016" PRIx64 "]", w);
}

static int open_file(const char *path, int flags, bool direct)
{
    if (direct)
        flags |= O_DIRECT;
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: open %s: %s\n", prog, path, strerror(errno));
        exit(1);
    }
    return fd;
}

static uint8_t *alloc_buf(size_t len)
{
    void *p;
    if (posix_memalign(&p, 4096, len) != 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    return p;
}

static void check_direct_alignment(bool direct, uint64_t off, uint64_t len)
{
    if (direct && ((off | len) & 511)) {
        fprintf(stderr, "%s: --direct needs OFF and LEN to be multiples of 512\n", prog);
        exit(2);
    }
}

static int do_write(const char *path, uint64_t off, uint64_t len, unsigned seed, bool direct,
                    bool do_fsync, bool hold)
{
    check_direct_alignment(direct, off, len);
    int fd = open_file(path, O_WRONLY, direct);
    uint8_t *buf = alloc_buf(CHUNK);
    uint64_t done = 0;
    int rc = 0;
    while (done < len && rc == 0) {
        size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
        fill_pattern(buf, off + done, n, seed);
        ssize_t w = pwrite(fd, buf, n, (off_t)(off + done));
        if (w < 0) {
            fprintf(stderr, "%s: pwrite %s at offset %" PRIu64 " length %zu: %s\n", prog, path,
                    off + done, n, strerror(errno));
            rc = 1;
        } else if (w == 0) {
            fprintf(stderr, "%s: pwrite %s at offset %" PRIu64 ": wrote 0 bytes\n", prog, path,
                    off + done);
            rc = 1;
        } else {
            done += (uint64_t)w;
        }
    }
    free(buf);
    if (rc == 0 && do_fsync && fsync(fd) != 0) {
        fprintf(stderr, "%s: fsync %s: %s\n", prog, path, strerror(errno));
        rc = 1;
    }
    if (rc == 0 && hold) {
        printf("held\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    if (close(fd) != 0 && rc == 0) {
        fprintf(stderr, "%s: close %s: %s\n", prog, path, strerror(errno));
        rc = 1;
    }
    return rc;
}

/* verify (zeros=false) or zero (zeros=true). */
static int do_verify(const char *path, uint64_t off, uint64_t len, unsigned seed, bool direct,
                     bool zeros)
{
    check_direct_alignment(direct, off, len);
    int fd = open_file(path, O_RDONLY, direct);
    uint8_t *buf = alloc_buf(CHUNK), *want = alloc_buf(CHUNK);
    uint64_t done = 0;
    int rc = 1;
    if (zeros)
        memset(want, 0, CHUNK);
    while (done < len) {
        size_t n = len - done < CHUNK ? (size_t)(len - done) : CHUNK;
        ssize_t r = pread(fd, buf, n, (off_t)(off + done));
        if (r < 0) {
            fprintf(stderr, "%s: pread %s at offset %" PRIu64 " length %zu: %s\n", prog, path,
                    off + done, n, strerror(errno));
            goto out;
        }
        if (r == 0) {
            fprintf(stderr, "%s: %s: end of file at offset %" PRIu64 ", before %" PRIu64 "\n", prog,
                    path, off + done, off + len);
            goto out;
        }
        n = (size_t)r;
        if (!zeros)
            fill_pattern(want, off + done, n, seed);
        if (memcmp(buf, want, n) != 0) {
            size_t i = 0;
            while (buf[i] == want[i])
                i++;
            uint64_t bad = off + done + i;
            char what[200];
            int dfd = open_file(path, O_RDONLY, false);
            describe_word(dfd, bad, what, sizeof what);
            close(dfd);
            if (zeros)
                fprintf(stderr,
                        "%s: %s: expected zeros at offset %" PRIu64 " (0x%" PRIx64
                        "), found byte 0x%02x: %s\n",
                        prog, path, bad, bad, buf[i], what);
            else
                fprintf(stderr,
                        "%s: %s: expected pattern seed %u at offset %" PRIu64 " (0x%" PRIx64
                        "), found byte 0x%02x (want 0x%02x): %s\n",
                        prog, path, seed, bad, bad, buf[i], want[i], what);
            goto out;
        }
        done += n;
    }
    rc = 0;
out:
    close(fd);
    free(buf);
    free(want);
    return rc;
}

static int do_fallocate(const char *path, int mode, uint64_t off, uint64_t len)
{
    int fd = open_file(path, O_WRONLY, false);
    if (fallocate(fd, mode, (off_t)off, (off_t)len) != 0) {
        fprintf(stderr, "%s: fallocate(%s, mode 0x%x, %" PRIu64 ", %" PRIu64 "): %s\n", prog, path,
                mode, off, len, strerror(errno));
        return 1;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "%s: close %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    return 0;
}

static int do_seek(const char *path, uint64_t off, const char *what)
{
    int whence;
    if (strcmp(what, "data") == 0)
        whence = SEEK_DATA;
    else if (strcmp(what, "hole") == 0)
        whence = SEEK_HOLE;
    else
        usage();
    int fd = open_file(path, O_RDONLY, false);
    off_t r = lseek(fd, (off_t)off, whence);
    if (r < 0) {
        if (errno == ENXIO) {
            printf("ENXIO\n");
            return 0;
        }
        fprintf(stderr, "%s: lseek(%s, %" PRIu64 ", SEEK_%s): %s\n", prog, path, off,
                whence == SEEK_DATA ? "DATA" : "HOLE", strerror(errno));
        return 1;
    }
    printf("%lld\n", (long long)r);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        usage();
    const char *cmd = argv[1], *path = argv[2];
    uint64_t off, len = 0;
    if (!parse_u64(argv[3], &off) || off > OFF_MASK) {
        fprintf(stderr, "%s: bad offset '%s'\n", prog, argv[3]);
        return 2;
    }
    if (strcmp(cmd, "seek") == 0) {
        if (argc != 5)
            usage();
        return do_seek(path, off, argv[4]);
    }
    if (!parse_u64(argv[4], &len) || len > OFF_MASK - off) {
        fprintf(stderr, "%s: bad length '%s'\n", prog, argv[4]);
        return 2;
    }
    unsigned seed = 0;
    bool direct = false, do_fsync = false, keep_size = true, hold = false;
    for (int i = 5; i < argc; i++) {
        uint64_t v;
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            if (!parse_u64(argv[++i], &v) || v > SEED_MAX) {
                fprintf(stderr, "%s: seed must be 0..%u\n", prog, SEED_MAX);
                return 2;
            }
            seed = (unsigned)v;
        } else if (strcmp(argv[i], "--direct") == 0) {
            direct = true;
        } else if (strcmp(argv[i], "--fsync") == 0) {
            do_fsync = true;
        } else if (strcmp(argv[i], "--hold") == 0) {
            hold = true;
        } else if (strcmp(argv[i], "--no-keep-size") == 0) {
            keep_size = false;
        } else {
            usage();
        }
    }
    if (strcmp(cmd, "write") == 0)
        return do_write(path, off, len, seed, direct, do_fsync, hold);
    if (strcmp(cmd, "verify") == 0)
        return do_verify(path, off, len, seed, direct, false);
    if (strcmp(cmd, "zero") == 0)
        return do_verify(path, off, len, seed, direct, true);
    if (strcmp(cmd, "punch") == 0)
        return do_fallocate(path, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
    if (strcmp(cmd, "zerorange") == 0)
        return do_fallocate(path, FALLOC_FL_ZERO_RANGE | (keep_size ? FALLOC_FL_KEEP_SIZE : 0), off,
                            len);
    usage();
}
