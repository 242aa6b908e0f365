/*
 * tests/tools/crashwriter.c — random tagged writes with an acknowledgement log, and their
 * verification after a crash (the idea of OpenZFS's ztest).
 *
 *   crashwriter write FILE LOG [--seed N] [--count N] [--seconds S] [--region BYTES]
 *                               [--min-len BYTES] [--max-len BYTES] [--fsync-every N]
 *   crashwriter verify FILE LOG [--max-errors N]
 *
 * Design notes
 *   write: blocks of 4 KiB..256 KiB (a quarter of them of a byte-granular length at a
 *   byte-granular offset) at random offsets in [0, region).  Every block carries a generation
 *   number: byte o of generation g holds byte (o % 8) of the little-endian u64
 *
 *       cw_word(o, g) = (0xc5 << 56 | g << 32 | ((o >> 3) ^ h(g))) ^ CW_KEY   (o rounded to 8)
 *
 *   (h a 32-bit hash, so every byte of a word depends on the generation), so a block found in
 *   the wrong place or a stale block names its offset and generation.
 *   Generation 0 means "never written" (zeros).  The log (a plain file, never on vvfs) gets,
 *   each line fdatasync'd before the next step:
 *
 *       I gen off len    before the pwrite: this write may have reached the file
 *       A gen off len    after an fsync(FILE) that started after the pwrite returned: durable
 *
 *   fsync comes after every 1..N writes (N = --fsync-every, random each time).  A later run
 *   appends to the same log and continues the generation numbers, so the history spans crashes.
 *
 *   verify: for every byte, let A be the newest acknowledged write covering it (none: zeros).
 *   The byte must hold A's data, or the data of a write issued after A that covers it (it may
 *   or may not have landed, or landed in part).  Anything else — stale data of an older write,
 *   zeros where an acknowledged write was, data of another offset, garbage — is a failure
 *   reported with its offset and the expected and found generations.  Bytes no write ever
 *   covered must be zero, so FILE must have started all zeros (a new volume).
 *
 *   The check is a sweep over the elementary intervals between write boundaries; in each, the
 *   set of acceptable generations is the same for every byte.
 *
 * Exit status: 0 ok (write: stopped by --count/--seconds), 1 failure (write: an I/O error,
 * which is expected once the daemon is killed), 2 usage.
 */
#include "util/size.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CW_MAGIC UINT64_C(0xc5)
#define CW_KEY UINT64_C(0x5a3c96e1d2b4f087) /* bits 56..63 of the key are 0: magic survives */
#define CW_GEN_MAX ((UINT64_C(1) << 24) - 1)
#define CW_FILE_MAX (UINT64_C(1) << 35) /* o >> 3 must fit 32 bits: 32 GiB */
#define CHUNK (1u << 20)

static const char *prog = "crashwriter";

__attribute__((noreturn)) static void usage(void)
{
    fprintf(stderr,
            "usage: crashwriter write FILE LOG [--seed N] [--count N] [--seconds S]\n"
            "                         [--region BYTES] [--min-len BYTES] [--max-len BYTES]\n"
            "                         [--fsync-every N]\n"
            "       crashwriter verify FILE LOG [--max-errors N]\n");
    exit(2);
}

__attribute__((noreturn, format(printf, 1, 2))) static void die(const char *fmt, ...);
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint32_t cw_hash(uint64_t gen)
{
    uint32_t x = (uint32_t)gen * 0x9e3779b1u;
    x ^= x >> 15;
    x *= 0x85ebca77u;
    x ^= x >> 13;
    return x;
}

static uint64_t cw_word(uint64_t off, uint64_t gen)
{
    return ((CW_MAGIC << 56) | (gen << 32) | (((off >> 3) ^ cw_hash(gen)) & 0xffffffffu)) ^ CW_KEY;
}

static uint8_t cw_byte(uint64_t off, uint64_t gen)
{
    return gen ? (uint8_t)(cw_word(off, gen) >> (8 * (off & 7))) : 0;
}

static void cw_fill(uint8_t *buf, uint64_t off, size_t len, uint64_t gen)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = cw_byte(off + i, gen);
}

/* a number with an optional K/M/G/T suffix (binary), as the vvfs CLI takes them */
static bool parse_u64(const char *s, uint64_t *out)
{
    return vv_parse_size(s, out) == 0;
}

/* xorshift64* */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}
/* uniform-ish in [lo, hi] */
static uint64_t rnd_range(uint64_t lo, uint64_t hi)
{
    return lo + rnd() % (hi - lo + 1);
}

static uint64_t file_size(int fd, const char *path)
{
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0)
        die("lseek %s: %s", path, strerror(errno));
    return (uint64_t)end;
}

/* ---- the log ----------------------------------------------------------------------------- */

struct rec {
    uint64_t gen, off, len;
    bool acked;
};

struct log {
    struct rec *r; /* r[i].gen == first_gen + i */
    size_t n, cap;
    uint64_t first_gen, acks;
};

static struct rec *log_find(struct log *lg, uint64_t gen)
{
    if (lg->n == 0 || gen < lg->first_gen || gen - lg->first_gen >= lg->n)
        return NULL;
    return &lg->r[gen - lg->first_gen];
}

/* Read LOG.  A torn last line (no newline: the writer died mid-append) is ignored. */
static void log_read(const char *path, struct log *lg, bool must_exist)
{
    memset(lg, 0, sizeof *lg);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && !must_exist)
            return;
        die("open %s: %s", path, strerror(errno));
    }
    char line[256];
    unsigned long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strlen(line);
        if (l == 0 || line[l - 1] != '\n') {
            if (feof(f))
                break;
            die("%s:%lu: line too long", path, lineno);
        }
        char kind;
        uint64_t gen, off, len;
        if (sscanf(line, "%c %" SCNu64 " %" SCNu64 " %" SCNu64, &kind, &gen, &off, &len) != 4)
            die("%s:%lu: unparsable line: %s", path, lineno, line);
        if (kind == 'I') {
            if (lg->n == 0)
                lg->first_gen = gen;
            else if (gen != lg->first_gen + lg->n)
                die("%s:%lu: generation %" PRIu64 " out of sequence (expected %" PRIu64 ")", path,
                    lineno, gen, lg->first_gen + lg->n);
            if (gen == 0 || gen > CW_GEN_MAX || len == 0)
                die("%s:%lu: bad record", path, lineno);
            if (lg->n == lg->cap) {
                lg->cap = lg->cap ? 2 * lg->cap : 1024;
                lg->r = realloc(lg->r, lg->cap * sizeof *lg->r);
                if (!lg->r)
                    die("out of memory");
            }
            lg->r[lg->n++] = (struct rec){.gen = gen, .off = off, .len = len, .acked = false};
        } else if (kind == 'A') {
            struct rec *r = log_find(lg, gen);
            if (!r || r->off != off || r->len != len)
                die("%s:%lu: acknowledgement of a write never issued: %s", path, lineno, line);
            if (!r->acked)
                lg->acks++;
            r->acked = true;
        } else {
            die("%s:%lu: unknown record kind '%c'", path, lineno, kind);
        }
    }
    if (ferror(f))
        die("read %s: %s", path, strerror(errno));
    fclose(f);
}

static void log_append(int fd, const char *path, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0)
            die("write %s: %s", path, strerror(errno));
        buf += w;
        len -= (size_t)w;
    }
    if (fdatasync(fd) != 0)
        die("fdatasync %s: %s", path, strerror(errno));
}

/* ---- write ------------------------------------------------------------------------------- */

struct write_opts {
    uint64_t seed, count, seconds, region, min_len, max_len, fsync_every;
};

static int cmd_write(const char *path, const char *logpath, const struct write_opts *o)
{
    struct log lg;
    log_read(logpath, &lg, false);
    uint64_t gen = lg.n ? lg.first_gen + lg.n : 1;
    free(lg.r);

    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    int lfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0)
        die("open %s: %s", logpath, strerror(errno));

    uint64_t size = file_size(fd, path), region = o->region ? o->region : size;
    if (region > size)
        region = size;
    if (region > CW_FILE_MAX)
        region = CW_FILE_MAX;
    if (region < o->max_len)
        die("%s: region of %" PRIu64 " bytes is smaller than --max-len", path, region);

    uint64_t seed = o->seed ? o->seed : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    rng_state = seed | 1;
    /* static: die() exits from below with it live; a global root keeps LeakSanitizer quiet */
    static uint8_t *buf;
    buf = malloc(o->max_len);
    struct rec *pending = calloc(o->fsync_every, sizeof *pending);
    if (!buf || !pending)
        die("out of memory");
    size_t npending = 0;
    uint64_t next_sync = rnd_range(1, o->fsync_every), writes = 0, syncs = 0;
    time_t deadline = o->seconds ? time(NULL) + (time_t)o->seconds : 0;
    char line[128];

    fprintf(stderr, "%s: writing %s from generation %" PRIu64 " (seed %" PRIu64 ")\n", prog, path,
            gen, seed);
    while ((!o->count || writes < o->count) && (!deadline || time(NULL) < deadline)) {
        if (gen > CW_GEN_MAX)
            die("generation counter exhausted");
        uint64_t len, off;
        if (rnd() % 4 == 0) { /* byte-granular */
            len = rnd_range(o->min_len, o->max_len);
            off = rnd_range(0, region - len);
        } else {
            len = rnd_range(o->min_len / 4096 ? o->min_len / 4096 : 1, o->max_len / 4096) * 4096;
            off = rnd_range(0, (region - len) / 4096) * 4096;
        }
        int n =
            snprintf(line, sizeof line, "I %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", gen, off, len);
        log_append(lfd, logpath, line, (size_t)n);
        cw_fill(buf, off, len, gen);
        for (uint64_t done = 0; done < len;) {
            ssize_t w = pwrite(fd, buf + done, len - done, (off_t)(off + done));
            if (w <= 0)
                die("pwrite %s gen %" PRIu64 " at %" PRIu64 "+%" PRIu64 ": %s (after %" PRIu64
                    " writes, %" PRIu64 " fsyncs)",
                    path, gen, off + done, len - done, w < 0 ? strerror(errno) : "wrote 0 bytes",
                    writes, syncs);
            done += (uint64_t)w;
        }
        pending[npending++] = (struct rec){.gen = gen, .off = off, .len = len};
        writes++;
        gen++;
        if (npending == next_sync) {
            if (fsync(fd) != 0)
                die("fsync %s: %s (after %" PRIu64 " writes, %" PRIu64 " fsyncs)", path,
                    strerror(errno), writes, syncs);
            syncs++;
            char acks[128 * 64];
            size_t al = 0;
            for (size_t i = 0; i < npending; i++)
                al += (size_t)snprintf(acks + al, sizeof acks - al,
                                       "A %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", pending[i].gen,
                                       pending[i].off, pending[i].len);
            log_append(lfd, logpath, acks, al);
            npending = 0;
            next_sync = rnd_range(1, o->fsync_every);
        }
    }
    fprintf(stderr, "%s: done: %" PRIu64 " writes, %" PRIu64 " fsyncs\n", prog, writes, syncs);
    free(buf);
    free(pending);
    close(lfd);
    return close(fd) == 0 ? 0 : 1;
}

/* ---- verify ------------------------------------------------------------------------------ */

struct event {
    uint64_t pos;
    size_t rec; /* index into log */
    bool start;
};

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return (int)x->start - (int)y->start; /* ends first */
}

struct verify_state {
    const char *path;
    int fd;
    struct log *lg;
    uint64_t errors, max_errors, bytes, bytes_later; /* bytes_later: held an unacked write */
    uint8_t *buf;
};

/* Describe, for a failure message, the content of the word holding byte OFF. */
static void describe(struct verify_state *vs, uint64_t off, char *out, size_t outlen)
{
    uint8_t b[8] = {0};
    uint64_t aligned = off & ~UINT64_C(7);
    if (pread(vs->fd, b, 8, (off_t)aligned) != 8) {
        snprintf(out, outlen, "(unreadable)");
        return;
    }
    unsigned k = (unsigned)(off & 7);
    uint64_t w = 0;
    for (unsigned i = 0; i < 8; i++)
        w |= (uint64_t)b[i] << (8 * i);
    uint64_t low = k ? (UINT64_C(1) << (8 * k)) - 1 : 0;
    if ((w & ~low) == 0) {
        snprintf(out, outlen, "zeros");
        return;
    }
    uint64_t d = w ^ CW_KEY;
    if ((d >> 56) == CW_MAGIC) {
        uint64_t g = (d >> 32) & CW_GEN_MAX, o = (((d ^ cw_hash(g)) & 0xffffffffu) << 3);
        o = (o & ~low) | (aligned & low);
        struct rec *r = log_find(vs->lg, g);
        snprintf(out, outlen,
                 "data of generation %" PRIu64 " for offset %" PRIu64 "%s%s [word 0x%016" PRIx64
                 "]",
                 g, o, !r ? " (a generation the log does not know)" : "",
                 r ? (r->acked ? " (acked)" : " (unacked)") : "", w);
        return;
    }
    snprintf(out, outlen, "unrecognized data [word 0x%016" PRIx64 "]", w);
}

/* Check [S, E) against the acceptable generations CAND[0..NC) (CAND[0] is the primary). */
static void check_interval(struct verify_state *vs, uint64_t s, uint64_t e, const uint64_t *cand,
                           size_t nc, const struct rec *acked)
{
    for (uint64_t pos = s; pos < e;) {
        size_t n = e - pos < CHUNK ? (size_t)(e - pos) : CHUNK;
        ssize_t r = pread(vs->fd, vs->buf, n, (off_t)pos);
        if (r < 0)
            die("pread %s at %" PRIu64 ": %s", vs->path, pos, strerror(errno));
        if ((size_t)r != n)
            die("%s: short read at %" PRIu64, vs->path, pos);
        bool reported = false;
        for (size_t i = 0; i < n; i++) {
            uint64_t o = pos + i;
            uint8_t b = vs->buf[i];
            if (b == cw_byte(o, cand[0]))
                continue;
            size_t c = 1;
            while (c < nc && b != cw_byte(o, cand[c]))
                c++;
            if (c < nc) {
                vs->bytes_later++;
                continue;
            }
            vs->errors++;
            if (reported || vs->errors > vs->max_errors)
                continue;
            reported = true; /* one line per interval chunk */
            char found[200], later[160] = "";
            size_t ll = 0;
            for (size_t j = 1; j < nc && ll + 24 < sizeof later; j++)
                ll += (size_t)snprintf(later + ll, sizeof later - ll, "%s%" PRIu64,
                                       j == 1 ? " or a later unacked write: gen " : ",", cand[j]);
            describe(vs, o, found, sizeof found);
            if (acked)
                fprintf(stderr,
                        "%s: %s: offset %" PRIu64 " (0x%" PRIx64 "): expected generation %" PRIu64
                        " (acked write %" PRIu64 "+%" PRIu64 ")%s; found %s\n",
                        prog, vs->path, o, o, cand[0], acked->off, acked->len, later, found);
            else
                fprintf(stderr,
                        "%s: %s: offset %" PRIu64 " (0x%" PRIx64
                        "): expected zeros (no acked write here)%s; found %s\n",
                        prog, vs->path, o, o, later, found);
        }
        vs->bytes += n;
        pos += n;
    }
}

static int cmd_verify(const char *path, const char *logpath, uint64_t max_errors)
{
    struct log lg;
    log_read(logpath, &lg, true);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("open %s: %s", path, strerror(errno));
    uint64_t size = file_size(fd, path);

    struct event *ev = malloc((2 * lg.n + 1) * sizeof *ev);
    size_t *active = malloc((lg.n + 1) * sizeof *active);
    size_t *where = malloc((lg.n + 1) * sizeof *where); /* rec -> index in active */
    uint64_t *cand = malloc((lg.n + 1) * sizeof *cand);
    struct verify_state vs = {
        .path = path, .fd = fd, .lg = &lg, .max_errors = max_errors, .buf = malloc(CHUNK)};
    if (!ev || !active || !where || !cand || !vs.buf)
        die("out of memory");
    size_t nev = 0, nactive = 0;
    for (size_t i = 0; i < lg.n; i++) {
        if (lg.r[i].off + lg.r[i].len > size)
            die("%s: record gen %" PRIu64 " (%" PRIu64 "+%" PRIu64 ") lies past the end (%" PRIu64
                ")",
                logpath, lg.r[i].gen, lg.r[i].off, lg.r[i].len, size);
        ev[nev++] = (struct event){.pos = lg.r[i].off, .rec = i, .start = true};
        ev[nev++] = (struct event){.pos = lg.r[i].off + lg.r[i].len, .rec = i, .start = false};
    }
    qsort(ev, nev, sizeof *ev, cmp_event);

    uint64_t pos = 0, intervals = 0;
    size_t e = 0;
    while (pos < size) {
        /* apply every event at POS */
        for (; e < nev && ev[e].pos == pos; e++) {
            size_t r = ev[e].rec;
            if (ev[e].start) {
                where[r] = nactive;
                active[nactive++] = r;
            } else {
                size_t k = where[r];
                active[k] = active[--nactive];
                where[active[k]] = k;
            }
        }
        uint64_t next = e < nev ? ev[e].pos : size;
        if (next > size)
            next = size;
        /* candidates: the newest acked write (or zeros), then every newer write */
        const struct rec *acked = NULL;
        for (size_t k = 0; k < nactive; k++) {
            const struct rec *r = &lg.r[active[k]];
            if (r->acked && (!acked || r->gen > acked->gen))
                acked = r;
        }
        size_t nc = 0;
        cand[nc++] = acked ? acked->gen : 0;
        for (size_t k = 0; k < nactive; k++) {
            const struct rec *r = &lg.r[active[k]];
            if (r->gen > cand[0])
                cand[nc++] = r->gen;
        }
        if (next > pos) {
            check_interval(&vs, pos, next, cand, nc, acked);
            intervals++;
        }
        pos = next;
    }
    uint64_t acked_n = lg.acks;
    printf("%s: %s: %zu writes in the log (%" PRIu64 " acknowledged), %" PRIu64 " bytes in %" PRIu64
           " intervals checked, %" PRIu64 " bytes held unacknowledged writes, %" PRIu64
           " bad bytes\n",
           prog, path, lg.n, acked_n, vs.bytes, intervals, vs.bytes_later, vs.errors);
    free(ev);
    free(active);
    free(where);
    free(cand);
    free(vs.buf);
    free(lg.r);
    close(fd);
    if (vs.errors) {
        fprintf(stderr,
                "%s: %s: FAILED: %" PRIu64 " bytes hold neither the last acknowledged "
                "write nor a later one\n",
                prog, path, vs.errors);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        usage();
    const char *cmd = argv[1], *path = argv[2], *logpath = argv[3];
    struct write_opts o = {.seed = 0, .min_len = 4096, .max_len = 256 * 1024, .fsync_every = 8};
    uint64_t max_errors = 20;
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i];
        uint64_t *dst = NULL;
        if (strcmp(a, "--seed") == 0)
            dst = &o.seed;
        else if (strcmp(a, "--count") == 0)
            dst = &o.count;
        else if (strcmp(a, "--seconds") == 0)
            dst = &o.seconds;
        else if (strcmp(a, "--region") == 0)
            dst = &o.region;
        else if (strcmp(a, "--min-len") == 0)
            dst = &o.min_len;
        else if (strcmp(a, "--max-len") == 0)
            dst = &o.max_len;
        else if (strcmp(a, "--fsync-every") == 0)
            dst = &o.fsync_every;
        else if (strcmp(a, "--max-errors") == 0)
            dst = &max_errors;
        else
            usage();
        if (i + 1 >= argc || !parse_u64(argv[++i], dst)) {
            fprintf(stderr, "%s: bad value for %s\n", prog, a);
            return 2;
        }
    }
    if (strcmp(cmd, "write") == 0) {
        if (o.min_len == 0 || o.min_len > o.max_len || o.fsync_every == 0 || o.fsync_every > 64) {
            fprintf(stderr, "%s: need 0 < --min-len <= --max-len, --fsync-every 1..64\n", prog);
            return 2;
        }
        return cmd_write(path, logpath, &o);
    }
    if (strcmp(cmd, "verify") == 0)
        return cmd_verify(path, logpath, max_errors);
    usage();
}
