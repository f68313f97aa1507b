/*
 * The executor's throughput for no-op jobs, measured as
 * micro/uv_threadpool.c measures libuv's uv_queue_work: a pool of 4 threads
 * (libuv's default), one job run first so thread start-up is not timed, then
 * N jobs (default 1,000,000) queued at once with tl_loop_run_in_executor,
 * each job's future with a done callback that counts (libuv's after_work),
 * and the loop run until every completion came back.
 *
 * "per_s" is jobs per second over that whole span (wall time), uv_threadpool's
 * items_per_s; "queue_s" is the part spent queueing; cpu_s is the whole
 * process, user + sys.
 *
 * With TL_BENCH_INFLIGHT=W in the environment it runs as
 * `uv_threadpool --inflight W` does instead (micro.sh runs W=64): at most W
 * jobs queued, each completion queueing the next, so it measures the round
 * trip through the pool rather than the bulk drain. (An environment
 * variable because tulip-bench's options are shared by every benchmark.)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <tulip.h>

#include "bench.h"

typedef struct count {
    tl_loop_t *loop;
    tl_executor_t *ex;
    long done, target, failed;
    long queued, refill; /* inflight mode: jobs queued so far, and whether
                          * each completion queues the next */
} count_t;

static atomic_ulong worked;

static int nop_job(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_fetch_add_explicit(&worked, 1, memory_order_relaxed);
    return 0;
}

static void after(tl_future_t *f, void *ctx);

static int queue_one(count_t *c) {
    tl_future_t *f;
    int rc = tl_loop_run_in_executor(c->loop, c->ex, nop_job, NULL, &f);
    if (rc == 0)
        rc = tl_future_add_done_callback(f, after, c);
    c->queued++;
    return rc;
}

static void after(tl_future_t *f, void *ctx) {
    count_t *c = ctx;
    if (tl_future_error(f) != 0)
        c->failed++;
    tl_future_unref(f);
    if (c->refill && c->queued < c->target && queue_one(c) != 0)
        c->failed++;
    if (++c->done == c->target)
        tl_loop_stop(c->loop);
}

/* n jobs, at most `inflight` queued at a time (inflight >= n: all at once).
 * Prints one line. */
static int run(tl_loop_t *loop, tl_executor_t *ex, long n, long inflight, int pool) {
    atomic_store(&worked, 0);
    count_t c = {loop, ex, 0, n, 0, 0, inflight < n};
    long first = inflight < n ? inflight : n;
    int rc = 0;
    bench_clock_t t0 = bench_clock_now();
    while (c.queued < first && rc == 0)
        rc = queue_one(&c);
    bench_clock_t t1 = bench_clock_now();
    if (rc == 0)
        rc = tl_loop_run_forever(loop);
    bench_clock_t t2 = bench_clock_now();

    double secs = bench_wall_s(&t0, &t2);
    printf("{\"bench\":\"executor\",\"items\":%ld,\"inflight\":%ld,\"pool_threads\":%d,"
           "\"completed\":%ld,\"worked\":%lu,\"failed\":%ld,\"seconds\":%.3f,"
           "\"queue_s\":%.3f,\"per_s\":%.0f,\"ns_per_item\":%.1f,\"cpu_s\":%.3f,"
           "\"clock\":\"wall\"}\n",
           n, first, pool, c.done, (unsigned long)atomic_load(&worked), c.failed, secs,
           bench_wall_s(&t0, &t1), (double)n / secs, secs * 1e9 / (double)n,
           bench_cpu_s(&t0, &t2));
    fflush(stdout);
    return rc != 0 || c.done != n || c.failed != 0;
}

int bench_executor(const bench_opts_t *o) {
    long n = o->n ? o->n : 1000000;
    enum { POOL = 4 };
    tl_loop_t *loop;
    tl_executor_t *ex;
    if (tl_loop_new(NULL, &loop) != 0)
        return 1;
    if (tl_executor_new(POOL, &ex) != 0) {
        tl_loop_close(loop);
        tl_loop_unref(loop);
        return 1;
    }
    tl_future_t *f;
    int rc = tl_loop_run_in_executor(loop, ex, nop_job, NULL, &f); /* warm-up */
    if (rc == 0) {
        rc = tl_loop_run_until_complete(loop, f, NULL);
        tl_future_unref(f);
    }
    const char *w = getenv("TL_BENCH_INFLIGHT");
    long inflight = w ? strtol(w, NULL, 10) : 0;
    int bad = rc != 0;
    if (!bad)
        bad = run(loop, ex, n, inflight > 0 ? inflight : n, POOL);
    tl_executor_free(ex);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    return bad;
}
