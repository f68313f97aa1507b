/*
 * Task spawn + run + finish, as micro/asyncio_callsoon.py measures
 * asyncio's and uvloop's tasks figure: a main task spawns N no-op tasks
 * (default 1M) in batches of 1000 and waits for each batch to finish before
 * spawning the next (asyncio_callsoon.py: create_task x 1000, then await
 * asyncio.gather of them). The wall time of run_until_complete of the main
 * task, on a loop made beforehand, gives tasks per second. Median of 3 runs,
 * each on a fresh loop (so the first batch also pays for mapping the stack
 * pool's chunks and first touching its stacks: a page fault and a guard
 * call per stack, some 20 us each in a VM, which makes that batch slow and
 * noisy). "steady_per_s" leaves the first batch out: the rate once the
 * pool holds a batch's stacks, as ctxswitch measures its coroutines.
 *
 * The batch is awaited through one future that the children's done
 * callbacks count down, which is the core of gather's work (a done callback
 * on every child, one outer future) without its bookkeeping; written before
 * tl_gather was in the tree (tools/bench/RESULTS.md, "Tasks", compares the
 * two).
 */
#include <stdio.h>
#include <stdlib.h>

#include <tulip.h>

#include "bench.h"

#define REPS 3
#define BATCH 1000

typedef struct spawner {
    tl_loop_t *loop;
    long n, ran, finished, failed;
    tl_future_t *batch_done; /* the current batch's "gather" */
    long left;               /* children of the batch not finished */
    bench_clock_t first_batch_done;
} spawner_t;

static int noop(void *arg, void **result) {
    spawner_t *s = arg;
    s->ran++;
    *result = NULL;
    return 0;
}

static void child_done(tl_future_t *f, void *arg) {
    spawner_t *s = arg;
    if (tl_future_error(f) == 0)
        s->finished++;
    else
        s->failed++;
    if (--s->left == 0 && tl_future_set_result(s->batch_done, NULL, NULL) != 0)
        s->failed++;
}

static int spawn_all(void *arg, void **result) {
    spawner_t *s = arg;
    *result = NULL;
    for (long done = 0; done < s->n;) {
        long b = s->n - done < BATCH ? s->n - done : BATCH;
        int rc = tl_future_new(s->loop, &s->batch_done);
        if (rc)
            return rc;
        s->left = b;
        for (long i = 0; i < b; i++) {
            tl_task_t *t;
            if ((rc = tl_task_spawn(s->loop, noop, s, NULL, &t)) ||
                (rc = tl_future_add_done_callback(tl_task_future(t), child_done, s)))
                return rc; /* the benchmark fails: its loop is thrown away */
            tl_task_unref(t); /* the loop keeps it alive until it finishes */
        }
        rc = tl_await(s->batch_done, NULL);
        tl_future_unref(s->batch_done);
        if (rc)
            return rc;
        if (done == 0)
            s->first_batch_done = bench_clock_now();
        done += b;
    }
    return 0;
}

/* Tasks per second (wall) for one run on a fresh loop, or -1; the rate
 * after the first batch goes to *steady. */
static double tasks_once(long n, double *user_s, double *steady) {
    tl_loop_t *loop;
    if (tl_loop_new(NULL, &loop) != 0)
        return -1;
    spawner_t s = {loop, n, 0, 0, 0, NULL, 0, {0, 0, 0}};
    tl_task_t *main_task = NULL;
    bench_clock_t t0 = bench_clock_now();
    int rc = tl_task_spawn(loop, spawn_all, &s, NULL, &main_task);
    if (rc == 0)
        rc = tl_loop_run_until_complete(loop, tl_task_future(main_task), NULL);
    bench_clock_t t1 = bench_clock_now();
    if (main_task)
        tl_task_unref(main_task);
    tl_loop_close(loop);
    tl_loop_unref(loop);
    if (rc != 0 || s.ran != n || s.finished != n || s.failed) {
        fprintf(stderr, "tasks: rc %d, %ld of %ld ran, %ld finished, %ld failed\n", rc,
                s.ran, n, s.finished, s.failed);
        return -1;
    }
    *user_s += bench_user_s(&t0, &t1);
    *steady = n > BATCH ? (double)(n - BATCH) / bench_wall_s(&s.first_batch_done, &t1) : 0;
    return (double)n / bench_wall_s(&t0, &t1);
}

int bench_tasks(const bench_opts_t *o) {
    long n = o->n ? o->n : 1000000;
    double r[REPS], steady[REPS], user_s = 0;
    for (int i = 0; i < REPS; i++)
        if ((r[i] = tasks_once(n, &user_s, &steady[i])) < 0)
            return 1;
    double per_s = bench_median(r, REPS);
    printf("{\"bench\":\"tasks\",\"tasks\":%ld,\"per_s\":%.0f,"
           "\"runs_per_s\":[%.0f,%.0f,%.0f],\"ns_per_task\":%.1f,"
           "\"user_ns_per_task\":%.1f,\"steady_per_s\":%.0f,\"batch\":%d,"
           "\"batched\":\"a main task spawns %d no-op tasks and awaits one future "
           "their done callbacks complete (gather), then the next %d, as "
           "asyncio_callsoon.py\",\"stack_kib\":64,\"clock\":\"wall, median of 3\"}\n",
           n, per_s, r[0], r[1], r[2], 1e9 / per_s, user_s * 1e9 / (REPS * (double)n),
           bench_median(steady, REPS), BATCH, BATCH, BATCH);
    fflush(stdout);
    return 0;
}
