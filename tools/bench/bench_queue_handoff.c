/*
 * Queue hand-off between a producer and a consumer task through a tl_queue_t
 * of maxsize 1 (FIFO): the producer puts the items 1..N (default 1M) with
 * tl_queue_put, the consumer takes them with tl_queue_get. "per_s" is items
 * per second of wall time from the spawn of both tasks until the consumer
 * has the last one. With room for one item, puts wait for the consumer and
 * gets for the producer; "put_waits" and "get_waits" count the operations
 * that found the queue full or empty. Items must arrive in order. Median of
 * 3 runs, each on a fresh loop.
 */
#include <stdint.h>
#include <stdio.h>

#include <tulip.h>

#include "bench.h"

#define REPS 3

typedef struct qrun {
    tl_queue_t *q;
    long n, got, put_waits, get_waits, misordered;
    int failed;
} qrun_t;

static int producer(void *arg, void **result) {
    qrun_t *r = arg;
    *result = NULL;
    for (long i = 1; i <= r->n; i++) {
        r->put_waits += tl_queue_full(r->q) == 1;
        if (tl_queue_put(r->q, (void *)(uintptr_t)i) != 0)
            return r->failed = 1, TL_ESTATE;
    }
    return 0;
}

static int consumer(void *arg, void **result) {
    qrun_t *r = arg;
    *result = NULL;
    for (long i = 1; i <= r->n; i++) {
        void *item;
        r->get_waits += tl_queue_empty(r->q) == 1;
        if (tl_queue_get(r->q, &item) != 0)
            return r->failed = 1, TL_ESTATE;
        r->misordered += (uintptr_t)item != (uintptr_t)i;
        r->got++;
    }
    return 0;
}

static double queue_once(long n, qrun_t *out, double *user_s) {
    tl_loop_t *loop;
    if (tl_loop_new(NULL, &loop) != 0)
        return -1;
    qrun_t r = {NULL, n, 0, 0, 0, 0, 0};
    tl_queue_options_t qo = {sizeof qo, TL_QUEUE_FIFO, 1, NULL, NULL, NULL};
    tl_task_t *p = NULL, *c = NULL;
    int rc = tl_queue_new(loop, &qo, &r.q);
    bench_clock_t t0 = bench_clock_now();
    if (rc == 0 && (rc = tl_task_spawn(loop, producer, &r, NULL, &p)) == 0 &&
        (rc = tl_task_spawn(loop, consumer, &r, NULL, &c)) == 0 &&
        (rc = tl_loop_run_until_complete(loop, tl_task_future(c), NULL)) == 0)
        rc = tl_loop_run_until_complete(loop, tl_task_future(p), NULL);
    bench_clock_t t1 = bench_clock_now();
    if (p)
        tl_task_unref(p);
    if (c)
        tl_task_unref(c);
    if (r.q)
        tl_queue_free(r.q);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    if (rc != 0 || r.failed || r.got != n || r.misordered) {
        fprintf(stderr, "queue_handoff: rc %d, %ld of %ld items, %ld misordered, failed %d\n",
                rc, r.got, n, r.misordered, r.failed);
        return -1;
    }
    *out = r;
    *user_s += bench_user_s(&t0, &t1);
    return (double)n / bench_wall_s(&t0, &t1);
}

int bench_queue_handoff(const bench_opts_t *o) {
    long n = o->n ? o->n : 1000000;
    double r[REPS], user_s = 0;
    qrun_t last;
    for (int i = 0; i < REPS; i++)
        if ((r[i] = queue_once(n, &last, &user_s)) < 0)
            return 1;
    double per_s = bench_median(r, REPS);
    printf("{\"bench\":\"queue_handoff\",\"items\":%ld,\"maxsize\":1,\"per_s\":%.0f,"
           "\"runs_per_s\":[%.0f,%.0f,%.0f],\"ns_per_item\":%.1f,"
           "\"user_ns_per_item\":%.1f,\"put_waits\":%ld,\"get_waits\":%ld,"
           "\"clock\":\"wall, median of 3\"}\n",
           n, per_s, r[0], r[1], r[2], 1e9 / per_s, user_s * 1e9 / (REPS * (double)n),
           last.put_waits, last.get_waits);
    fflush(stdout);
    return 0;
}
