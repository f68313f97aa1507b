/*
 * Helpers shared by the combinator suites (test_task_gather.c, _wait,
 * _shield, _as_completed, _timeout, _taskgroup).
 */
#ifndef TL_COMBINATOR_TEST_H
#define TL_COMBINATOR_TEST_H

/* Include this first: nanosleep needs POSIX. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <time.h>

#include "tl_test.h"
#include "tulip/task.h"

#define MS (1000000LL)
#define FOREVER (INT64_MAX / 4)

/* A task body driven by a job: sleep `ns` (or, with a gate, await it and
 * take its error), then end with `rc` (result: the job). When that is
 * cancelled it sleeps `cleanup_ns` more (if set) and ends with
 * `rc_on_cancel` (TL_ECANCELLED when 0). Tests sequence events with gates
 * and FOREVER sleeps rather than with the order of timers, so that a slow
 * or loaded machine cannot reorder them. */
typedef struct job {
    int64_t ns;
    int rc;
    int64_t cleanup_ns;
    int rc_on_cancel;
    int started, finished, was_cancelled;
    tl_future_t *gate;
} job_t;

static inline int tt_job(void *arg, void **result) {
    job_t *j = arg;
    j->started = 1;
    int rc = j->gate ? tl_await(j->gate, NULL) : tl_sleep(j->ns);
    if (rc == TL_ECANCELLED) {
        j->was_cancelled = 1;
        if (j->cleanup_ns)
            tl_sleep(j->cleanup_ns); /* not cancelled again: delivered */
        j->finished = 1;
        return j->rc_on_cancel ? j->rc_on_cancel : TL_ECANCELLED;
    }
    j->finished = 1;
    *result = j;
    return rc ? rc : j->rc;
}

static inline tl_task_t *tt_spawn(tl_loop_t *loop, job_t *j) {
    tl_task_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, tt_job, j, NULL, &t), 0);
    return t;
}

static inline tl_future_t *tt_future(tl_loop_t *loop) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    return f;
}

/* Loop callbacks completing a future. */
static inline void tt_set_result(void *f) { tl_future_set_result(f, (void *)(intptr_t)7, NULL); }
static inline void tt_set_error(void *f) { tl_future_set_error(f, TL_EPIPE, "boom"); }
static inline void tt_cancel(void *f) { tl_future_cancel(f, "stop"); }

/* Block the loop's thread (so timers become due together). */
static inline void tt_block(int64_t ns) {
    struct timespec ts = {0, (long)ns};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Run until f is done; return its outcome (its error is read). */
static inline int tt_run(tl_loop_t *loop, tl_future_t *f) {
    return tl_loop_run_until_complete(loop, f, NULL);
}

#endif
