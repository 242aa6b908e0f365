/*
 * tests/fuzz/fuzz_wire.c — fuzz target for the replication wire decoder (replication/wire.h).
 *
 * Input: byte 0 picks the side that decodes (even: the receiver, which reads what a sender
 * sends; odd: the sender), byte 1 how the rest is cut into reads (1 + byte1 bytes at a time,
 * as a socket may deliver them); the rest is what the peer sent.  The decoder must take each
 * complete frame or refuse the stream, never read out of bounds, never consume a partial
 * frame, and stay refused once it refused.  Built with -fsanitize=fuzzer by tests/fuzz/run.sh
 * when clang is there, and always driven by tests/fuzz/wire_driver.c.
 */
#include "replication/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct wire_rx rx = {.side = data[0] & 1 ? WIRE_SIDE_SENDER : WIRE_SIDE_RECEIVER};
    size_t step = 1 + data[1];
    data += 2;
    size -= 2;
    /* what has arrived so far, in a buffer of its own so that ASan sees every overread */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    size_t have = 0, start = 0;
    while (have < size) {
        size_t n = size - have < step ? size - have : step;
        memcpy(buf + have, data + have, n);
        have += n;
        for (;;) {
            struct wire_msg m;
            size_t used = 0;
            const char *why = NULL;
            int rc = wire_decode(&rx, buf + start, have - start, &m, &used, &why);
            if (rc == EAGAIN)
                break;
            if (rc) {
                if (!why || rc != EBADMSG)
                    abort(); /* every refusal says why */
                free(buf);
                return 0;
            }
            if (used < WIRE_HDR || used > have - start)
                abort();
            if (m.type == WIRE_DATA) {
                /* touch what the frame points at: it must lie inside the frame */
                volatile uint8_t x = 0;
                for (uint32_t i = 0; i < 8 * m.u.data.count; i++)
                    x ^= m.u.data.csums[i];
                if (m.u.data.len != (m.flags & WIRE_F_ZSTD
                                         ? m.u.data.len
                                         : (size_t)m.u.data.count * rx.extent_size))
                    abort();
                for (size_t i = 0; i < m.u.data.len; i += 512)
                    x ^= m.u.data.data[i];
                x ^= m.u.data.data[m.u.data.len - 1];
                (void)x;
            }
            start += used;
        }
    }
    free(buf);
    return 0;
}
