/*
 * Part 3: threads. A loop belongs to one thread; the only way in from
 * another thread is tl_loop_call_soon_threadsafe, which queues the callback
 * and wakes the loop if it sleeps. That is how a worker hands results back
 * (asyncio's call_soon_threadsafe; the executor of a later issue is built
 * on it).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#define NCHUNKS 4
#define TOP 1000000u /* the worker sums 1..TOP */
#define WORKER_NAP_MS 50
#define GUARD_MS 2000

typedef struct job job_t;

typedef struct chunk {
    int index;
    uint64_t from, to, sum;
    job_t *job;
} chunk_t;

struct job {
    tl_loop_t *loop;
    pthread_t loop_thread;
    uint64_t t0;
    chunk_t chunks[NCHUNKS];
    int received;   /* loop thread only */
    uint64_t total; /* loop thread only */
};

/* Runs on the loop thread, as an ordinary callback. */
static void on_chunk(void *ctx) {
    chunk_t *c = ctx;
    job_t *job = c->job;
    printf("   at %5.1f ms the loop received chunk %d (%" PRIu64 "..%" PRIu64
           ", sum %" PRIu64 ")\n",
           demo_ms_since(job->t0), c->index + 1, c->from, c->to, c->sum);
    if (!pthread_equal(pthread_self(), job->loop_thread))
        demo_fail("chunk %d arrived on a thread other than the loop's", c->index + 1);
    if (c->index != job->received)
        demo_fail("chunk %d arrived out of order", c->index + 1);
    job->received++;
    job->total += c->sum;
    if (job->received == NCHUNKS)
        tl_loop_stop(job->loop);
}

/* The worker prints nothing: its lines would race with the loop's. */
static void *worker(void *arg) {
    job_t *job = arg;
    struct timespec nap = {0, WORKER_NAP_MS * MS};
    nanosleep(&nap, NULL); /* let the loop fall asleep first */
    for (int i = 0; i < NCHUNKS; i++) {
        chunk_t *c = &job->chunks[i];
        for (uint64_t k = c->from; k <= c->to; k++)
            c->sum += k;
        int rc = tl_loop_call_soon_threadsafe(job->loop, on_chunk, c);
        if (rc)
            demo_fail("tl_loop_call_soon_threadsafe returned %s (%s)",
                      tl_err_name(rc), tl_strerror(rc));
    }
    tl_loop_unref(job->loop); /* the reference main took for this thread */
    return NULL;
}

int demo_threads(tl_loop_t *loop) {
    job_t job = {.loop = loop, .loop_thread = pthread_self()};
    for (int i = 0; i < NCHUNKS; i++)
        job.chunks[i] = (chunk_t){i, (uint64_t)i * (TOP / NCHUNKS) + 1,
                                  (uint64_t)(i + 1) * (TOP / NCHUNKS), 0, &job};
    printf("   A worker thread naps %d ms, sums 1..%u in %d chunks and hands each\n"
           "   partial sum to the loop. The loop has nothing else to do before a\n"
           "   %d ms guard timer, so meanwhile it sleeps in the %s backend.\n",
           WORKER_NAP_MS, TOP, NCHUNKS, GUARD_MS, tl_loop_backend_name(loop));

    /* The worker holds a loop reference so the loop outlives its calls. */
    TRY(tl_loop_ref(loop));
    job.t0 = tl_now_ns();
    pthread_t tid;
    int err = pthread_create(&tid, NULL, worker, &job);
    if (err) {
        tl_loop_unref(loop);
        CHECK(0, "pthread_create: %s", strerror(err));
    }
    int rc = demo_run(loop, GUARD_MS);
    double woke_ms = demo_ms_since(job.t0);
    err = pthread_join(tid, NULL);
    CHECK(err == 0, "pthread_join: %s", strerror(err));
    if (rc)
        return -1;

    uint64_t expected = (uint64_t)TOP * (TOP + 1) / 2;
    CHECK(job.received == NCHUNKS, "received %d chunks, not %d", job.received, NCHUNKS);
    CHECK(job.total == expected, "the chunks add up to %" PRIu64 ", not %" PRIu64,
          job.total, expected);
    CHECK(woke_ms < GUARD_MS / 2, "the loop only woke after %.1f ms", woke_ms);
    printf("   The worker's calls woke the loop long before the guard timer; the\n"
           "   chunks arrived in the order sent, each on the loop thread, and add\n"
           "   up to %" PRIu64 " = %u * %u / 2.\n", job.total, TOP, TOP + 1);
    return 0;
}
