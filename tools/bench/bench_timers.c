/*
 * A million one-shot timers, measured as micro/uv_timers.c measures libuv:
 * schedule N timers (default 1M) with timeouts uniform in [0, max_ms] ms
 * (the same xorshift64 seed) or, with pattern "step", growing by 1 ms every
 * 1000 timers; run the loop until every one has fired; then close.
 *
 * The last timer is due about max_ms after the start, so the run phase is
 * mostly sleeping: the figure to compare is CPU time (user + sys, getrusage)
 * per timer over start + dispatch, uv_timers' cpu_ns_per_timer. It is
 * "ns_per_timer" here too ("clock":"cpu"); user_ns_per_timer leaves out the
 * kernel (page faults of the growing arrays, the epoll waits).
 *
 * uv_timer_start counts from the loop's cached time, so every timer shares
 * one base; tl_loop_call_at from one tl_loop_time() reading does the same
 * (call_later would read the clock once per timer). Each timer keeps its
 * handle, as a uv_timer_t is one. Firing order is checked: a timer due
 * earlier than the one fired before it counts as "misordered".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tulip.h>

#include "bench.h"

typedef struct btimer {
    uint64_t due; /* loop time (ns) the timer was scheduled for */
    tl_handle_t handle;
} btimer_t;

static struct {
    tl_loop_t *loop;
    uint64_t fired, misordered, last_due, n;
} run;

static void on_timer(void *ctx) {
    const btimer_t *t = ctx;
    if (t->due < run.last_due)
        run.misordered++;
    run.last_due = t->due;
    if (++run.fired == run.n)
        tl_loop_stop(run.loop);
}

static int timers_once(long n, long max_ms, int step) {
    btimer_t *timers = malloc((size_t)n * sizeof *timers);
    if (timers == NULL || tl_loop_new(NULL, &run.loop) != 0) {
        fprintf(stderr, "timers: out of memory\n");
        free(timers);
        return 1;
    }
    run.fired = run.misordered = run.last_due = 0;
    run.n = (uint64_t)n;
    uint64_t x = 88172645463325252ull; /* xorshift64, uv_timers' seed */
    uint64_t timeout_ms = 0;
    int rc = 0;

    bench_clock_t c0 = bench_clock_now();
    uint64_t base = (uint64_t)tl_loop_time(run.loop);
    for (long i = 0; i < n && rc == 0; i++) {
        if (step) {
            if (i % 1000 == 0)
                timeout_ms++;
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            timeout_ms = x % (uint64_t)(max_ms + 1);
        }
        timers[i].due = base + timeout_ms * 1000000u;
        rc = tl_loop_call_at(run.loop, (int64_t)timers[i].due, on_timer,
                             &timers[i], &timers[i].handle);
    }
    bench_clock_t c1 = bench_clock_now();
    if (rc == 0)
        rc = tl_loop_run_forever(run.loop);
    bench_clock_t c2 = bench_clock_now();
    tl_loop_close(run.loop); /* fired timers hold nothing: this frees arrays */
    tl_loop_unref(run.loop);
    bench_clock_t c3 = bench_clock_now();
    free(timers);

    double dn = (double)n;
    printf("{\"bench\":\"timers\",\"pattern\":\"%s\",\"timers\":%ld,\"max_ms\":%ld,"
           "\"ns_per_timer\":%.1f,\"clock\":\"cpu\",\"fired\":%llu,\"misordered\":%llu,"
           "\"total_s\":%.3f,\"start_s\":%.3f,\"run_s\":%.3f,\"close_s\":%.3f,"
           "\"start_ns_per_timer\":%.1f,\"dispatch_cpu_ns_per_timer\":%.1f,"
           "\"cpu_ns_per_timer\":%.1f,\"user_ns_per_timer\":%.1f,"
           "\"wall_ns_per_timer\":%.1f,\"cpu_s\":%.3f}\n",
           step ? "step" : "random", n, step ? (n + 999) / 1000 : max_ms,
           bench_cpu_s(&c0, &c2) * 1e9 / dn, (unsigned long long)run.fired,
           (unsigned long long)run.misordered, bench_wall_s(&c0, &c3),
           bench_wall_s(&c0, &c1), bench_wall_s(&c1, &c2), bench_wall_s(&c2, &c3),
           bench_wall_s(&c0, &c1) * 1e9 / dn, bench_cpu_s(&c1, &c2) * 1e9 / dn,
           bench_cpu_s(&c0, &c2) * 1e9 / dn, bench_user_s(&c0, &c2) * 1e9 / dn,
           bench_wall_s(&c0, &c2) * 1e9 / dn, bench_cpu_s(&c0, &c3));
    fflush(stdout);
    if (rc != 0)
        fprintf(stderr, "timers: %s\n", tl_strerror(rc));
    return rc != 0 || run.fired != run.n || run.misordered != 0;
}

int bench_timers(const bench_opts_t *o) {
    long n = o->n ? o->n : 1000000;
    long max_ms = o->max_ms >= 0 ? o->max_ms : 1000;
    int failed = 0;
    if (o->pattern == NULL || strcmp(o->pattern, "random") == 0)
        failed |= timers_once(n, max_ms, 0);
    if (o->pattern == NULL || strcmp(o->pattern, "step") == 0)
        failed |= timers_once(n, max_ms, 1);
    return failed;
}
