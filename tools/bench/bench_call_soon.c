/*
 * call_soon chain, as micro/asyncio_callsoon.py measures it: one callback
 * schedules the next with call_soon, N times (default 1M); the wall time of
 * run_forever from the first call_soon until the last callback stops the loop
 * gives callbacks per second. Median of 3 runs, each on a fresh loop.
 *
 * asyncio's call_soon always makes a cancellable Handle; tulip only does when
 * the caller asks for one. "per_s" is the plain chain (handle NULL),
 * "handle_per_s" the same chain asking for a handle on every call, which is
 * the closer match to what asyncio and uvloop do.
 */
#include <stdio.h>

#include <tulip.h>

#include "bench.h"

#define REPS 3

typedef struct chain {
    tl_loop_t *loop;
    long count, n;
    tl_handle_t handle, *want_handle; /* NULL: plain call_soon */
    int failed;
} chain_t;

static void step(void *ctx) {
    chain_t *c = ctx;
    if (++c->count < c->n) {
        if (tl_loop_call_soon(c->loop, step, c, c->want_handle) == 0)
            return;
        c->failed = 1;
    }
    tl_loop_stop(c->loop);
}

/* One run on a fresh loop: callbacks per second (wall), or -1. The user CPU
 * time it took is added to *user_s. */
static double chain_rate(long n, int with_handle, double *user_s) {
    tl_loop_t *loop;
    if (tl_loop_new(NULL, &loop) != 0)
        return -1;
    chain_t c = {loop, 0, n, 0, NULL, 0};
    if (with_handle)
        c.want_handle = &c.handle;
    bench_clock_t t0 = bench_clock_now();
    int rc = tl_loop_call_soon(loop, step, &c, c.want_handle);
    if (rc == 0)
        rc = tl_loop_run_forever(loop);
    bench_clock_t t1 = bench_clock_now();
    tl_loop_close(loop);
    tl_loop_unref(loop);
    if (rc != 0 || c.failed || c.count != n) {
        fprintf(stderr, "call_soon: chain broke after %ld of %ld (rc %d)\n",
                c.count, n, rc);
        return -1;
    }
    *user_s += bench_user_s(&t0, &t1);
    return (double)n / bench_wall_s(&t0, &t1);
}

int bench_call_soon(const bench_opts_t *o) {
    long n = o->n ? o->n : 1000000;
    double plain[REPS], handle[REPS], user_s = 0, hdl_user_s = 0;
    for (int i = 0; i < REPS; i++) {
        plain[i] = chain_rate(n, 0, &user_s);
        handle[i] = chain_rate(n, 1, &hdl_user_s);
        if (plain[i] < 0 || handle[i] < 0)
            return 1;
    }
    printf("{\"bench\":\"call_soon\",\"callbacks\":%ld,\"per_s\":%.0f,"
           "\"runs_per_s\":[%.0f,%.0f,%.0f],\"ns_per_callback\":%.2f,"
           "\"user_ns_per_callback\":%.2f,\"handle_per_s\":%.0f,"
           "\"handle_user_ns_per_callback\":%.2f,\"clock\":\"wall, median of 3\"}\n",
           n, bench_median(plain, REPS), plain[0], plain[1], plain[2],
           1e9 / bench_median(plain, REPS), user_s * 1e9 / (REPS * (double)n),
           bench_median(handle, REPS), hdl_user_s * 1e9 / (REPS * (double)n));
    fflush(stdout);
    return 0;
}
