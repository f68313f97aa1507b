/*
 * Lock hand-off between two tasks: task A holds a tl_lock_t, task B waits
 * in tl_lock_acquire; A releases (the lock passes to B, FIFO hand-over) and
 * at once acquires again, so it waits until B releases, and so on. Every
 * acquire waits for the other task's release: "per_s" counts hand-offs (a
 * release that passes the lock to the waiting task, and that task running
 * on) per second of wall time, N of them (default 1M). Each hand-off is a
 * future made and awaited, a done callback through the ready queue and two
 * coroutine switches. Median of 3 runs, each on a fresh loop.
 *
 * Checked: after each release the lock is still locked (it went to the
 * waiter, never back to unlocked), counted as "missed" otherwise.
 */
#include <stdio.h>

#include <tulip.h>

#include "bench.h"

#define REPS 3

typedef struct lockrun {
    tl_lock_t *lock;
    long n, handoffs, missed;
    int failed;
} lockrun_t;

/* Holds the lock on entry to the loop; passes it on until n hand-offs. */
static int pass_on(lockrun_t *r) {
    for (;;) {
        int last = r->handoffs >= r->n;
        if (tl_lock_release(r->lock) != 0)
            return r->failed = 1, TL_ESTATE;
        if (last)
            return 0; /* the other task wakes holding it, sees the end */
        r->handoffs++;
        if (!tl_lock_locked(r->lock))
            r->missed++; /* nobody was waiting: no hand-off */
        if (tl_lock_acquire(r->lock) != 0)
            return r->failed = 1, TL_ESTATE;
    }
}

static int first(void *arg, void **result) {
    lockrun_t *r = arg;
    *result = NULL;
    if (tl_lock_acquire(r->lock) != 0 || tl_yield() != 0) /* B starts, waits */
        return r->failed = 1, TL_ESTATE;
    return pass_on(r);
}

static int second(void *arg, void **result) {
    lockrun_t *r = arg;
    *result = NULL;
    if (tl_lock_acquire(r->lock) != 0)
        return r->failed = 1, TL_ESTATE;
    return pass_on(r);
}

static double lock_once(long n, double *user_s) {
    tl_loop_t *loop;
    if (tl_loop_new(NULL, &loop) != 0)
        return -1;
    lockrun_t r = {NULL, n, 0, 0, 0};
    tl_task_t *a = NULL, *b = NULL;
    int rc = tl_lock_new(loop, &r.lock);
    bench_clock_t t0 = bench_clock_now();
    if (rc == 0 && (rc = tl_task_spawn(loop, first, &r, NULL, &a)) == 0 &&
        (rc = tl_task_spawn(loop, second, &r, NULL, &b)) == 0 &&
        (rc = tl_loop_run_until_complete(loop, tl_task_future(a), NULL)) == 0)
        rc = tl_loop_run_until_complete(loop, tl_task_future(b), NULL);
    bench_clock_t t1 = bench_clock_now();
    int locked = r.lock ? tl_lock_locked(r.lock) : 0;
    if (a)
        tl_task_unref(a);
    if (b)
        tl_task_unref(b);
    if (r.lock)
        tl_lock_free(r.lock);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    if (rc != 0 || r.failed || r.missed || r.handoffs != n || locked) {
        fprintf(stderr, "lock_handoff: rc %d, %ld of %ld hand-offs, %ld missed, failed %d, "
                        "locked at the end %d\n", rc, r.handoffs, n, r.missed, r.failed, locked);
        return -1;
    }
    *user_s += bench_user_s(&t0, &t1);
    return (double)n / bench_wall_s(&t0, &t1);
}

int bench_lock_handoff(const bench_opts_t *o) {
    long n = o->n ? o->n : 1000000;
    double r[REPS], user_s = 0;
    for (int i = 0; i < REPS; i++)
        if ((r[i] = lock_once(n, &user_s)) < 0)
            return 1;
    double per_s = bench_median(r, REPS);
    printf("{\"bench\":\"lock_handoff\",\"handoffs\":%ld,\"per_s\":%.0f,"
           "\"runs_per_s\":[%.0f,%.0f,%.0f],\"ns_per_handoff\":%.1f,"
           "\"user_ns_per_handoff\":%.1f,\"clock\":\"wall, median of 3\"}\n",
           n, per_s, r[0], r[1], r[2], 1e9 / per_s, user_s * 1e9 / (REPS * (double)n));
    fflush(stdout);
    return 0;
}
