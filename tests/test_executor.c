/*
 * executor: loop.run_in_executor over a thread pool (asyncio's default
 * executor and concurrent.futures' cancel/shutdown rules).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "executor/executor_int.h"
#include "tl_test.h"

/* A job that holds its worker until the gate opens. */
typedef struct gate {
    atomic_int started, open, ran;
} gate_t;

static int gated_job(void *arg, void **result) {
    gate_t *g = arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open))
        usleep(100);
    atomic_fetch_add(&g->ran, 1);
    *result = g;
    return 0;
}

static void wait_started(gate_t *g) {
    while (!atomic_load(&g->started))
        usleep(100);
}

/* Opens a gate after a delay, so the main thread can block meanwhile. */
static void *open_later(void *arg) {
    usleep(20000);
    atomic_store(&((gate_t *)arg)->open, 1);
    return NULL;
}

static int counted_job(void *arg, void **result) {
    atomic_fetch_add((atomic_int *)arg, 1);
    *result = arg;
    return 0;
}

static int failing_job(void *arg, void **result) {
    (void)arg;
    (void)result;
    return TL_EIO;
}

static int nop_job(void *arg, void **result) {
    (void)arg;
    (void)result;
    return 0;
}

/* Records the thread each done callback runs on. */
typedef struct seen {
    pthread_t thread;
    int calls;
} seen_t;

static void record_thread(tl_future_t *f, void *ctx) {
    (void)f;
    seen_t *s = ctx;
    s->thread = pthread_self();
    s->calls++;
}

static int thread_count(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (strncmp(line, "Threads:", 8) == 0)
            n = atoi(line + 8);
    if (fp)
        fclose(fp);
    return n;
}

static void test_result_and_error_arrive_on_loop_thread(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    atomic_int n = 0;
    seen_t seen = {0};
    tl_future_t *ok, *bad;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &n, &ok), 0);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, failing_job, NULL, &bad), 0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(ok, record_thread, &seen), 0);
    void *res = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, ok, &res), 0);
    CU_ASSERT_PTR_EQUAL(res, &n);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, bad, NULL), TL_EIO);
    CU_ASSERT_EQUAL(seen.calls, 1);
    CU_ASSERT(pthread_equal(seen.thread, pthread_self()));
    tl_future_unref(ok);
    tl_future_unref(bad);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

typedef struct many {
    tl_loop_t *loop;
    int done, target;
} many_t;

static void count_done(tl_future_t *f, void *ctx) {
    many_t *m = ctx;
    if (tl_future_result(f, NULL) == 0 && ++m->done == m->target)
        tl_loop_stop(m->loop);
    tl_future_unref(f);
}

static void test_thousand_jobs_over_four_threads_all_complete(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(4, &ex), 0);
    atomic_int ran = 0;
    many_t m = {loop, 0, 1000};
    for (int i = 0; i < m.target; i++) {
        tl_future_t *f;
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &ran, &f), 0);
        CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &m), 0);
    }
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT_EQUAL(m.done, 1000);
    CU_ASSERT_EQUAL(atomic_load(&ran), 1000);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

static void test_cancel_before_start_never_runs_the_job(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    gate_t busy = {0}, queued = {0};
    atomic_store(&queued.open, 1);
    tl_future_t *a, *b;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &busy, &a), 0);
    wait_started(&busy);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &queued, &b), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(b, "no longer needed"), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(b), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(b, NULL), 0);
    atomic_store(&busy.open, 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, a, NULL), 0);
    tl_executor_free(ex); /* joins: had b stayed queued, it would have run */
    CU_ASSERT_EQUAL(atomic_load(&queued.ran), 0);
    CU_ASSERT_EQUAL(atomic_load(&busy.ran), 1);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_a_long_job_does_not_hold_back_the_others(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    gate_t g = {0};
    atomic_int ran = 0;
    tl_future_t *slow, *quick;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &g, &slow), 0);
    wait_started(&g);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &ran, &quick), 0);
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, quick, NULL), 0);
        tl_future_unref(quick);
    }
    CU_ASSERT_EQUAL(tl_future_done(slow), 0);
    atomic_store(&g.open, 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, slow, NULL), 0);
    tl_future_unref(slow);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

static void test_cancel_while_running_returns_0_and_the_result_arrives(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    gate_t g = {0};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &g, &f), 0);
    wait_started(&g);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    atomic_store(&g.open, 1);
    void *res = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &res), 0);
    CU_ASSERT_PTR_EQUAL(res, &g);
    tl_future_unref(f);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

static void test_shutdown_wait_cancel_pending_cancels_queued_jobs(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    gate_t busy = {0}, queued = {0};
    atomic_store(&queued.open, 1);
    tl_future_t *a, *b, *c;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &busy, &a), 0);
    wait_started(&busy);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &queued, &b), 0);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &queued, &c), 0);
    pthread_t opener;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&opener, NULL, open_later, &busy), 0);
    CU_ASSERT_EQUAL(tl_executor_shutdown(ex, 1, 1), 0); /* returns after a ran */
    pthread_join(opener, NULL);
    CU_ASSERT_EQUAL(atomic_load(&busy.ran), 1);
    CU_ASSERT_EQUAL(atomic_load(&queued.ran), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(b), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(c), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, a, NULL), 0);
    CU_ASSERT_EQUAL(tl_executor_shutdown(ex, 1, 1), 0); /* again: harmless */
    tl_future_unref(a);
    tl_future_unref(b);
    tl_future_unref(c);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

static void test_run_after_shutdown_is_closed(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    CU_ASSERT_EQUAL(tl_executor_shutdown(ex, 0, 0), 0);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_in_executor(loop, ex, nop_job, NULL, &f), TL_ECLOSED);
    CU_ASSERT_PTR_NULL(f);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

static void test_shutdown_without_wait_still_runs_queued_jobs(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    atomic_int ran = 0;
    tl_future_t *f[3];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &ran, &f[i]), 0);
    CU_ASSERT_EQUAL(tl_executor_shutdown(ex, 0, 0), 0);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f[i], NULL), 0);
        tl_future_unref(f[i]);
    }
    CU_ASSERT_EQUAL(atomic_load(&ran), 3);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

static void test_default_executor_is_lazy_and_joined_at_close(void) {
    int before = thread_count();
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(thread_count(), before);
    atomic_int ran = 0;
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, NULL, counted_job, &ran, &f), 0);
    int with_pool = thread_count();
    CU_ASSERT(with_pool > before);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, NULL, counted_job, &ran, &f), 0);
    CU_ASSERT_EQUAL(thread_count(), with_pool); /* the same pool */
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
    tl_future_unref(f);

    /* One job still running and, on a one-CPU machine, perhaps one queued
     * at close: close waits for the running one, and both are dropped. */
    gate_t g = {0};
    tl_future_t *running, *other;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, NULL, gated_job, &g, &running), 0);
    wait_started(&g);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, NULL, counted_job, &ran, &other), 0);
    pthread_t opener;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&opener, NULL, open_later, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    pthread_join(opener, NULL);
    CU_ASSERT_EQUAL(atomic_load(&g.ran), 1);
    CU_ASSERT_EQUAL(thread_count(), before);
    CU_ASSERT_EQUAL(tl_future_done(running), 0); /* its outcome was dropped */
    tl_future_unref(running);
    tl_future_unref(other);
    tl_loop_unref(loop);
}

static void test_job_outlives_its_closed_loop_without_leaking(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    gate_t g = {0};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, gated_job, &g, &f), 0);
    wait_started(&g);
    tl_future_unref(f);
    tl_test_loop_free(loop); /* the job's future still holds the loop */
    atomic_store(&g.open, 1);
    tl_executor_free(ex); /* the worker finds the loop closed and drops */
    CU_ASSERT_EQUAL(atomic_load(&g.ran), 1);
}

static void test_one_executor_serves_two_loops(void) {
    tl_loop_t *l1 = tl_test_loop(), *l2 = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    atomic_int ran = 0;
    tl_future_t *f1, *f2;
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(l1, ex, counted_job, &ran, &f1), 0);
    CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(l2, ex, counted_job, &ran, &f2), 0);
    CU_ASSERT_PTR_EQUAL(tl_future_get_loop(f1), l1);
    CU_ASSERT_PTR_EQUAL(tl_future_get_loop(f2), l2);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(l2, f2, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(l1, f1, NULL), 0);
    tl_future_unref(f1);
    tl_future_unref(f2);
    tl_executor_free(ex);
    tl_test_loop_free(l1);
    tl_test_loop_free(l2);
}

typedef struct wrong {
    tl_loop_t *loop;
    int rc;
} wrong_t;

static void *call_from_other_thread(void *arg) {
    wrong_t *w = arg;
    tl_future_t *f;
    w->rc = tl_loop_run_in_executor(w->loop, NULL, nop_job, NULL, &f);
    return NULL;
}

static void test_bad_calls_fail_cleanly(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_executor_new(1, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_executor_shutdown(NULL, 1, 1), TL_EINVAL);
    tl_executor_free(NULL);
    CU_ASSERT_EQUAL(tl_loop_run_in_executor(NULL, NULL, nop_job, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_run_in_executor(loop, NULL, NULL, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_run_in_executor(loop, NULL, nop_job, NULL, NULL), TL_EINVAL);
    wrong_t w = {loop, 0};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, call_from_other_thread, &w), 0);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(w.rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_run_in_executor(loop, NULL, nop_job, NULL, &f), TL_ECLOSED);
    tl_loop_unref(loop);
}

static void test_executor_new_out_of_memory_is_clean(void) {
    for (long n = 1;; n++) {
        tl_executor_t *ex = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_executor_new(2, &ex);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            CU_ASSERT(n > 1);
            tl_executor_free(ex);
            break;
        }
        CU_ASSERT_EQUAL_FATAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(ex);
    }
}

static void test_run_in_executor_out_of_memory_is_clean(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1;; n++) {
        tl_future_t *f = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_loop_run_in_executor(loop, NULL, nop_job, NULL, &f);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            CU_ASSERT(n > 1);
            CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), 0);
            tl_future_unref(f);
            break;
        }
        CU_ASSERT_EQUAL_FATAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(f);
    }
    tl_test_loop_free(loop);
}


/* ---- batching, the lock-free paths, job kinds -------------------------- */

static void wait_count(atomic_int *n, int target) {
    while (atomic_load(n) < target)
        usleep(200);
}

/* Outcomes that pile up while the loop is not running all sit in the
 * loop's port; one drain completes them, DRAIN_BATCH at a time. */
static void test_outcomes_piled_up_while_the_loop_slept_all_arrive(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    atomic_int ran = 0;
    many_t m = {loop, 0, 5000};
    for (int i = 0; i < m.target; i++) {
        tl_future_t *f;
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &ran, &f), 0);
        CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &m), 0);
    }
    wait_count(&ran, m.target); /* every outcome is waiting in the port */
    CU_ASSERT_EQUAL(m.done, 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT_EQUAL(m.done, m.target);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

/* Outcomes that keep arriving while drains run, DRAIN_BATCH at a time
 * with continuations in between: every one arrives, once. */
static void test_outcomes_arriving_while_a_drain_continues_all_arrive(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    atomic_int ran = 0;
    many_t m = {loop, 0, 30000};
    for (int round = 0; round < 3; round++) {
        m.done = 0;
        atomic_store(&ran, 0);
        for (int i = 0; i < m.target; i++) {
            tl_future_t *f;
            CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &ran, &f), 0);
            CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &m), 0);
        }
        CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0); /* while workers deliver */
        CU_ASSERT_EQUAL(m.done, m.target);
        CU_ASSERT_EQUAL(atomic_load(&ran), m.target);
    }
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

/* Closing the loop with finished outcomes not yet delivered frees them
 * (the test's allocator checks that nothing leaks). */
static void test_close_with_undelivered_outcomes_frees_them(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    atomic_int ran = 0;
    tl_future_t *f[100];
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_in_executor(loop, ex, counted_job, &ran, &f[i]), 0);
    wait_count(&ran, 100);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    for (int i = 0; i < 100; i++) {
        CU_ASSERT_EQUAL(tl_future_done(f[i]), 0);
        tl_future_unref(f[i]);
    }
    tl_executor_free(ex);
    tl_loop_unref(loop);
}

typedef struct shut_arg {
    tl_executor_t *ex;
    atomic_int go;
} shut_arg_t;

static void *shutdown_later(void *arg) {
    shut_arg_t *s = arg;
    while (!atomic_load(&s->go))
        usleep(100);
    usleep(2000);
    tl_executor_shutdown(s->ex, 1, 1);
    return NULL;
}

static void count_any(tl_future_t *f, void *ctx) {
    many_t *m = ctx;
    (void)f;
    if (++m->done == m->target)
        tl_loop_stop(m->loop);
}

/* Submissions racing a shutdown from another thread: each one either
 * fails with TL_ECLOSED or gives a future that ends (run, or cancelled
 * through the port), and nothing leaks. */
static void test_submissions_racing_a_shutdown_all_end(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(2, &ex), 0);
    shut_arg_t s = {ex, 0};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, shutdown_later, &s), 0);
    enum { N = 20000 };
    tl_future_t **fs = calloc(N, sizeof(*fs));
    atomic_int ran = 0;
    int accepted = 0, closed = 0;
    atomic_store(&s.go, 1);
    for (int i = 0; i < N; i++) {
        int rc = tl_loop_run_in_executor(loop, ex, counted_job, &ran, &fs[accepted]);
        if (rc == 0)
            accepted++;
        else if (rc == TL_ECLOSED)
            closed++;
        else
            CU_FAIL("unexpected error");
    }
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(accepted + closed, N);
    many_t m = {loop, 0, accepted};
    int pending = 0;
    for (int i = 0; i < accepted; i++)
        if (!tl_future_done(fs[i])) {
            pending++;
            CU_ASSERT_EQUAL(tl_future_add_done_callback(fs[i], count_any, &m), 0);
        }
    m.target = pending;
    if (pending)
        CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    int cancelled = 0;
    for (int i = 0; i < accepted; i++) {
        CU_ASSERT_EQUAL(tl_future_done(fs[i]), 1);
        cancelled += tl_future_cancelled(fs[i]);
        tl_future_unref(fs[i]);
    }
    CU_ASSERT_EQUAL(atomic_load(&ran) + cancelled, accepted);
    free(fs);
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

/* Job kinds (the resolver's): the argument is freed once whatever
 * happens, and a result the future never got is freed too. */
static atomic_int arg_frees;

static void free_arg(void *arg) {
    atomic_fetch_add(&arg_frees, 1);
    tl__free(arg);
}

static int make_result(void *arg, void **result) {
    gate_t *g = *(gate_t **)arg;
    if (g) {
        atomic_store(&g->started, 1);
        while (!atomic_load(&g->open))
            usleep(100);
    }
    *result = tl__strdup("answer");
    return *result ? 0 : TL_ENOMEM;
}

static const tl__job_kind_t owning = TL__JOB_KIND(tl__free, free_arg);

static int run_owning(tl_loop_t *loop, tl_executor_t *ex, gate_t *g, tl_future_t **f) {
    gate_t **arg = tl__malloc(sizeof(*arg));
    if (arg == NULL)
        return TL_ENOMEM;
    *arg = g;
    int rc = tl__loop_run_job(loop, ex, &owning, make_result, arg, f);
    if (rc)
        tl__free(arg); /* a failed submission leaves arg with the caller */
    return rc;
}

static void test_job_kind_frees_arg_and_result_on_every_path(void) {
    atomic_store(&arg_frees, 0);
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    /* Completed: the future owns the result. */
    tl_future_t *f;
    void *res = NULL;
    CU_ASSERT_EQUAL_FATAL(run_owning(loop, ex, NULL, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &res), 0);
    CU_ASSERT_STRING_EQUAL(res, "answer");
    CU_ASSERT_EQUAL(atomic_load(&arg_frees), 1);
    tl_future_unref(f);
    /* Cancelled while queued: fn never runs, arg is freed at once. */
    gate_t g = {0};
    tl_future_t *busy, *queued;
    CU_ASSERT_EQUAL_FATAL(run_owning(loop, ex, &g, &busy), 0);
    wait_started(&g);
    CU_ASSERT_EQUAL_FATAL(run_owning(loop, ex, NULL, &queued), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(queued, NULL), 1);
    CU_ASSERT_EQUAL(atomic_load(&arg_frees), 2);
    tl_future_unref(queued);
    /* The loop closes while the job runs: its result is dropped and freed
     * on the worker, with its arg. */
    tl_future_unref(busy);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    atomic_store(&g.open, 1);
    tl_executor_free(ex);
    CU_ASSERT_EQUAL(atomic_load(&arg_frees), 3);
    /* A failed submission takes nothing. */
    tl_future_t *none = NULL;
    CU_ASSERT_EQUAL(run_owning(loop, NULL, NULL, &none), TL_ECLOSED);
    CU_ASSERT_EQUAL(atomic_load(&arg_frees), 3);
    tl_loop_unref(loop);
}

/* The default executor is shut down at close with jobs still queued: they
 * are cancelled and their arguments freed. */
static void test_close_with_queued_owning_jobs_frees_their_args(void) {
    atomic_store(&arg_frees, 0);
    tl_loop_t *loop = tl_test_loop();
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    gate_t g = {0};
    tl_future_t *busy, *q[5];
    CU_ASSERT_EQUAL_FATAL(run_owning(loop, ex, &g, &busy), 0);
    wait_started(&g);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL_FATAL(run_owning(loop, ex, NULL, &q[i]), 0);
    pthread_t opener;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&opener, NULL, open_later, &g), 0);
    CU_ASSERT_EQUAL(tl_executor_shutdown(ex, 1, 1), 0);
    pthread_join(opener, NULL);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(tl_future_cancelled(q[i]), 1);
        tl_future_unref(q[i]);
    }
    CU_ASSERT_EQUAL(atomic_load(&arg_frees), 5);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0); /* busy's outcome is dropped */
    CU_ASSERT_EQUAL(atomic_load(&arg_frees), 6);
    tl_future_unref(busy);
    tl_executor_free(ex);
    tl_loop_unref(loop);
}

/* Allocations failing while the outcome travels back (the loop's queue of
 * calls from other threads, its ready queue): the outcome still arrives. */
static void test_outcome_arrives_when_allocations_fail_on_the_way_back(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc = {0};
    tl_test_capture_exceptions(loop, &exc);
    tl_executor_t *ex;
    CU_ASSERT_EQUAL_FATAL(tl_executor_new(1, &ex), 0);
    atomic_int ran = 0;
    for (long n = 1; n < 40; n++) {
        tl_future_t *f = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_loop_run_in_executor(loop, ex, counted_job, &ran, &f);
        if (rc == 0)
            rc = tl_loop_run_until_complete(loop, f, NULL);
        tl_test_fail_alloc_at(0);
        CU_ASSERT(rc == 0 || rc == TL_ENOMEM);
        tl_future_unref(f);
    }
    tl_executor_free(ex);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(executor,
              TL_TEST(test_result_and_error_arrive_on_loop_thread),
              TL_TEST(test_thousand_jobs_over_four_threads_all_complete),
              TL_TEST(test_cancel_before_start_never_runs_the_job),
              TL_TEST(test_a_long_job_does_not_hold_back_the_others),
              TL_TEST(test_cancel_while_running_returns_0_and_the_result_arrives),
              TL_TEST(test_shutdown_wait_cancel_pending_cancels_queued_jobs),
              TL_TEST(test_run_after_shutdown_is_closed),
              TL_TEST(test_shutdown_without_wait_still_runs_queued_jobs),
              TL_TEST(test_default_executor_is_lazy_and_joined_at_close),
              TL_TEST(test_job_outlives_its_closed_loop_without_leaking),
              TL_TEST(test_one_executor_serves_two_loops),
              TL_TEST(test_bad_calls_fail_cleanly),
              TL_TEST(test_executor_new_out_of_memory_is_clean),
              TL_TEST(test_run_in_executor_out_of_memory_is_clean),
              TL_TEST(test_outcomes_piled_up_while_the_loop_slept_all_arrive),
              TL_TEST(test_outcomes_arriving_while_a_drain_continues_all_arrive),
              TL_TEST(test_close_with_undelivered_outcomes_frees_them),
              TL_TEST(test_submissions_racing_a_shutdown_all_end),
              TL_TEST(test_job_kind_frees_arg_and_result_on_every_path),
              TL_TEST(test_close_with_queued_owning_jobs_frees_their_args),
              TL_TEST(test_outcome_arrives_when_allocations_fail_on_the_way_back));
