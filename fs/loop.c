/*
 * fs/loop.c — the FUSE request loop: a fixed pool of worker threads.
 *
 * Design notes
 *   libfuse's own multithreaded loop reads each request into a malloc'd buffer, so a WRITE's
 *   payload (after the 40-byte request header and the 40-byte write header) starts 80 bytes
 *   into it: never aligned as direct I/O needs, and every sequential write would be copied
 *   once more into a bounce buffer before it goes to a data file with O_DIRECT.  Here each
 *   worker owns a buffer placed so that the payload starts on a page boundary, and feeds
 *   requests to libfuse with fuse_session_receive_buf()/fuse_session_process_buf().
 *   Workers are all started up front (the daemon's request concurrency is fixed anyway:
 *   fio at QD16 and the loop driver need 16 requests in flight, and 2 cores gain nothing
 *   from more).
 *   Shutdown: an unmount makes every blocked read() fail with ENODEV, and the workers leave.
 *   A signal (libfuse's handlers call fuse_session_exit) does not wake a read(), so the main
 *   thread, which sees the flag within 100 ms, sends each worker SIGUSR1 (a no-op handler
 *   without SA_RESTART) until it has left: its read() fails with EINTR and it sees the flag.
 *   A worker in the middle of a request finishes it first.  (Not pthread_cancel: unwinding a
 *   cancelled worker skips its epilogue, which AddressSanitizer reports as a stack error when
 *   the thread exits.)  Workers block every other signal: those go to the main thread.
 */
#include "fs/fs_i.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <linux/fuse.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* what libfuse 3.14 may read in one go: FUSE_MAX_MAX_PAGES (256) pages plus a header page */
#define LOOP_BUF_BYTES ((256u + 1u) * 4096u)
#define WRITE_HDR (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

struct worker {
    pthread_t th;
    bool started;
    struct fs_loop *loop;
    void *mem; /* posix_memalign'd; the request buffer starts WRITE_HDR before a page end */
};

struct fs_loop {
    struct fuse_session *se;
    sem_t finished; /* posted by each worker as it leaves */
    int error;      /* first receive error (negative errno), under mu */
    pthread_mutex_t mu;
};

static void *worker_main(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "vv-fuse");
    struct worker *w = arg;
    struct fs_loop *l = w->loop;
    struct fuse_buf fbuf;
    memset(&fbuf, 0, sizeof(fbuf));
    fbuf.mem = (uint8_t *)w->mem + 4096 - WRITE_HDR;
    fbuf.size = LOOP_BUF_BYTES;
    while (!fuse_session_exited(l->se)) {
        int res = fuse_session_receive_buf(l->se, &fbuf);
        if (res == -EINTR)
            continue;
        if (res <= 0) {
            if (res < 0) {
                pthread_mutex_lock(&l->mu);
                if (!l->error)
                    l->error = res;
                pthread_mutex_unlock(&l->mu);
                vv_err(VV_SS_FS, "reading /dev/fuse failed: %s", strerror(-res));
            }
            fuse_session_exit(l->se);
            break;
        }
        fuse_session_process_buf(l->se, &fbuf);
        /* libfuse sets fbuf.mem only when it is NULL; keep ours */
    }
    sem_post(&l->finished);
    return NULL;
}

static void wake_handler(int sig)
{
    (void)sig; /* only there to interrupt a worker's read() */
}

/* wait up to 100 ms for a worker to leave: true if one did */
static bool wait_finished(struct fs_loop *l)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return sem_timedwait(&l->finished, &ts) == 0;
}

int fs_loop_run(struct fuse_session *se, unsigned nthreads)
{
    struct fs_loop l = {.se = se};
    struct worker *w = calloc(nthreads, sizeof(*w));
    if (!w)
        return -ENOMEM;
    sem_init(&l.finished, 0, 0);
    pthread_mutex_init(&l.mu, NULL);
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = wake_handler; /* no SA_RESTART: a blocked read() fails with EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old_sa);
    /* workers take no signal but SIGUSR1: the others go to the main thread, which libfuse's
     * handlers serve */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < nthreads && !err; i++) {
        w[i].loop = &l;
        if (posix_memalign(&w[i].mem, 4096, LOOP_BUF_BYTES + 4096)) {
            err = -ENOMEM;
            break;
        }
        int rc = pthread_create(&w[i].th, NULL, worker_main, &w[i]);
        if (rc) {
            err = -rc;
            break;
        }
        w[i].started = true;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        vv_err(VV_SS_FS, "cannot start FUSE worker threads: %s", strerror(-err));
        fuse_session_exit(se);
    }
    /* until the session ends: an unmount ends it through the workers, a signal through the
     * flag alone */
    unsigned gone = 0;
    while (!fuse_session_exited(se) && gone < started)
        gone += wait_finished(&l);
    /* then wake those still waiting for a request, again until they have all left (one may
     * not have been inside read() yet when its signal came) */
    while (gone < started) {
        for (unsigned i = 0; i < nthreads; i++)
            if (w[i].started)
                pthread_kill(w[i].th, SIGUSR1); /* (harmless to one that has left) */
        while (gone < started && wait_finished(&l))
            gone++;
    }
    for (unsigned i = 0; i < nthreads; i++) {
        if (w[i].started)
            pthread_join(w[i].th, NULL);
        free(w[i].mem);
    }
    free(w);
    sigaction(SIGUSR1, &old_sa, NULL);
    sem_destroy(&l.finished);
    pthread_mutex_destroy(&l.mu);
    if (!err)
        err = l.error;
    return err;
}
