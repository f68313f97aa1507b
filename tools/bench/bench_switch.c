/*
 * One coroutine switch, measured on the internal coroutine layer
 * (src/task/coro.h) as micro/ctxswitch.c measures its hand-written switch:
 * a ping-pong between the thread's stack and one coroutine whose body
 * suspends in a loop; the thread resumes it N/2 times (default N = 20M
 * switches) and "ns" is the wall time / N, a resume+suspend pair counting
 * as two switches. tulip's pair includes what the layer does around the
 * bare register switch (state checks, the current-coroutine variable, the
 * MXCSR and x87 control word). ucontext runs a tenth of the switches, as
 * ctxswitch does for swapcontext. Median of 3 runs.
 *
 * It also measures ctxswitch's coroutine life cycle (its figure (c)) on the
 * same layer: take a stack from the pool, start the coroutine, run an empty
 * body to its end, give the stack back, in batches of 1000 live coroutines
 * until 1M have finished, from a pool warmed with one batch beforehand.
 *
 * "impl" is the implementation the build has (tl__coro_impl: make CORO=asm
 * or CORO=ucontext); measure both by building twice.
 */
#include <stdio.h>
#include <stdlib.h>

#include <tulip.h>

#include "../../src/task/coro.h"
#include "bench.h"

#define REPS 3
#define BATCH 1000

typedef struct pingpong {
    tl__coro_t *self;
    volatile unsigned long count;
} pingpong_t;

static void pingpong_body(void *arg) {
    pingpong_t *p = arg;
    for (;;) {
        p->count++;
        tl__coro_suspend(p->self);
    }
}

/* ns per switch (wall) over `iters` resume+suspend pairs, or -1; adds the
 * run's user CPU seconds to *user_s. */
static double switch_once(tl__stack_pool_t *pool, long iters, double *user_s) {
    pingpong_t p = {NULL, 0};
    if (tl__coro_new(pool, 0, pingpong_body, &p, &p.self) != 0)
        return -1;
    tl__coro_resume(p.self); /* first entry, untimed */
    bench_clock_t t0 = bench_clock_now();
    for (long i = 0; i < iters; i++)
        tl__coro_resume(p.self);
    bench_clock_t t1 = bench_clock_now();
    tl__coro_free(p.self); /* a suspended coroutine: its frames are dropped */
    if (p.count != (unsigned long)iters + 1) {
        fprintf(stderr, "switch: the coroutine ran %lu times of %ld\n", p.count, iters + 1);
        return -1;
    }
    *user_s += bench_user_s(&t0, &t1);
    return bench_wall_s(&t0, &t1) * 1e9 / (2.0 * (double)iters);
}

static volatile unsigned long cycles_ran;

static void empty_body(void *arg) {
    (void)arg;
    cycles_ran++;
}

/* ns per coroutine life cycle (wall) for `total` coroutines, `BATCH` alive
 * at a time, or -1. */
static double cycle_once(tl__stack_pool_t *pool, long total, double *user_s) {
    tl__coro_t *cs[BATCH];
    cycles_ran = 0;
    bench_clock_t t0 = bench_clock_now();
    for (long done = 0; done < total;) {
        long b = total - done < BATCH ? total - done : BATCH;
        for (long i = 0; i < b; i++)
            if (tl__coro_new(pool, 0, empty_body, NULL, &cs[i]) != 0)
                return -1;
        for (long i = 0; i < b; i++) {
            if (tl__coro_resume(cs[i]) != 1)
                return -1;
            tl__coro_free(cs[i]);
        }
        done += b;
    }
    bench_clock_t t1 = bench_clock_now();
    if (cycles_ran != (unsigned long)total) {
        fprintf(stderr, "switch: %lu of %ld coroutines ran\n", cycles_ran, total);
        return -1;
    }
    *user_s += bench_user_s(&t0, &t1);
    return bench_wall_s(&t0, &t1) * 1e9 / (double)total;
}

int bench_switch(const bench_opts_t *o) {
    const char *impl = tl__coro_impl();
    int slow = impl[0] == 'u'; /* ucontext: a system call per switch */
    long switches = o->n ? o->n : 20000000;
    long iters = switches / 2 / (slow ? 10 : 1);
    long coros = o->n ? o->n : 1000000;
    if (iters < 1)
        iters = 1;
    tl__stack_pool_t *pool;
    if (tl__stack_pool_new(&pool) != 0)
        return 1;
    double sw[REPS], cy[REPS], sw_user = 0, cy_user = 0;
    cycle_once(pool, BATCH, &cy_user); /* warm the pool with one batch */
    cy_user = 0;
    for (int i = 0; i < REPS; i++) {
        sw[i] = switch_once(pool, iters, &sw_user);
        cy[i] = cycle_once(pool, coros, &cy_user);
        if (sw[i] < 0 || cy[i] < 0) {
            tl__stack_pool_free(pool);
            return 1;
        }
    }
    tl__stack_pool_free(pool);
    printf("{\"bench\":\"switch\",\"impl\":\"%s\",\"ns\":%.2f,"
           "\"runs_ns\":[%.2f,%.2f,%.2f],\"user_ns\":%.2f,\"switches\":%ld,"
           "\"definition\":\"ctxswitch.c's: resume+suspend ping-pong between the "
           "thread and one coroutine, wall time / (2 x pairs), median of 3\","
           "\"coro_create_run_finish_ns\":%.1f,\"coro_user_ns\":%.1f,"
           "\"coros\":%ld,\"batch\":%d,\"stack_kib\":%zu}\n",
           impl, bench_median(sw, REPS), sw[0], sw[1], sw[2],
           sw_user * 1e9 / (REPS * 2.0 * (double)iters), iters * 2,
           bench_median(cy, REPS), cy_user * 1e9 / (REPS * (double)coros), coros, BATCH,
           TL__CORO_STACK_DEFAULT / 1024);
    fflush(stdout);
    return 0;
}
