/* task_wait: tl_wait (asyncio.wait) and tl_wait_for (asyncio.wait_for, 3.12). */
#include "combinator_test.h"

#include <string.h>

/* ---- wait ------------------------------------------------------------------ */

static void test_all_completed_waits_for_every_child(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *w;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, kids, 2, TL_ALL_COMPLETED, -1, &w), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_error, a, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2 * MS, tt_set_result, b, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, w), 0); /* never an error */
    CU_ASSERT_EQUAL(tl_future_done(a) + tl_future_done(b), 2);
    CU_ASSERT_EQUAL(tl_future_error(a), TL_EPIPE);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_first_completed_returns_after_one(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *w;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, kids, 2, TL_FIRST_COMPLETED, -1, &w), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_cancel, b, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, w), 0);
    CU_ASSERT_EQUAL(tl_future_done(a), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(b), 1);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_first_exception_returns_at_an_error_not_a_cancellation(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *c = tt_future(loop), *w;
    tl_future_t *kids[] = {a, b, c};
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, kids, 3, TL_FIRST_EXCEPTION, -1, &w), 0);
    tl_future_cancel(a, NULL);
    tl_future_set_result(b, NULL, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 0); /* no error yet */
    tl_future_set_error(c, TL_EIO, NULL);
    CU_ASSERT_EQUAL(tt_run(loop, w), 0);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_future_unref(b);
    CU_ASSERT_EQUAL(tl_future_error(c), TL_EIO);
    tl_future_unref(c);
    tl_test_loop_free(loop);
}

static void test_first_exception_without_errors_waits_for_all(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *w;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, kids, 2, TL_FIRST_EXCEPTION, -1, &w), 0);
    tl_future_set_result(a, NULL, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, b, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, w), 0);
    CU_ASSERT_EQUAL(tl_future_done(b), 1);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_timeout_ends_the_wait_and_never_cancels_children(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *a = tt_future(loop), *w;
    tl_future_t *kids[] = {a, tl_task_future(t)};
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, kids, 2, TL_ALL_COMPLETED, 2 * MS, &w), 0);
    CU_ASSERT_EQUAL(tt_run(loop, w), 0);
    CU_ASSERT(tl_now_ns() - t0 >= 2 * MS);
    CU_ASSERT_EQUAL(tl_future_done(a), 0);
    CU_ASSERT_EQUAL(j.was_cancelled, 0);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 0);
    tl_task_cancel(t, NULL);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), TL_ECANCELLED);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_children_done_before_are_seen_in_the_next_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *w;
    tl_future_set_result(a, NULL, NULL);
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, kids, 2, TL_FIRST_COMPLETED, 0, &w), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 1);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

typedef struct awaiter {
    tl_future_t *f;
    int rc;
    void *value;
} awaiter_t;

static int awaits(void *arg, void **result) {
    awaiter_t *w = arg;
    (void)result;
    w->rc = tl_await(w->f, &w->value);
    return 0;
}

static tl_task_t *spawn_awaiter(tl_loop_t *loop, awaiter_t *aw) {
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits, aw, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* waiting */
    return t;
}

static void test_cancelling_a_wait_only_stops_the_wait(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *kid = tl_task_future(t), *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, &kid, 1, TL_ALL_COMPLETED, -1, &w), 0);
    awaiter_t aw = {w, 1, NULL};
    tl_task_t *waiter = spawn_awaiter(loop, &aw);
    CU_ASSERT_EQUAL(tl_task_cancel(waiter, NULL), 1);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(waiter)), 0);
    CU_ASSERT_EQUAL(aw.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(w), 1);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 0); /* untouched */
    CU_ASSERT_EQUAL(tl_future_done(kid), 0);
    tl_task_cancel(t, NULL);
    CU_ASSERT_EQUAL(tt_run(loop, kid), TL_ECANCELLED);
    tl_future_unref(w);
    tl_task_unref(t);
    tl_task_unref(waiter);
    tl_test_loop_free(loop);
}

static void test_wait_rejects_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *w = NULL;
    CU_ASSERT_EQUAL(tl_wait(loop, &a, 0, TL_ALL_COMPLETED, -1, &w), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_wait(loop, &a, 1, (tl_wait_when_t)7, -1, &w), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_wait(loop, &a, 1, TL_ALL_COMPLETED, -1, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_wait(loop, NULL, 1, TL_ALL_COMPLETED, -1, &w), TL_EINVAL);
    CU_ASSERT_PTR_NULL(w);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_wait_survives_each_allocation_failing(void) {
    for (long n = 1; n < 50; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_future_t *done = tt_future(loop), *p = tt_future(loop), *w = NULL;
        tl_future_set_result(done, NULL, NULL);
        tl_future_t *kids[] = {p, done};
        tl_test_fail_alloc_at(n);
        int rc = tl_wait(loop, kids, 2, TL_ALL_COMPLETED, 5 * MS, &w);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            tl_future_set_result(p, NULL, NULL);
            CU_ASSERT_EQUAL(tt_run(loop, w), 0);
            tl_future_unref(w);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(w);
            tl_future_set_result(p, NULL, NULL);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        }
        tl_future_unref(done);
        tl_future_unref(p);
        tl_test_loop_free(loop);
        if (rc == 0)
            return;
    }
    CU_FAIL("wait never succeeded");
}

/* ---- wait_for -------------------------------------------------------------- */

static void test_wait_for_passes_the_outcome_through(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *wa, *wb;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(a, 50 * MS, &wa), 0);
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(b, -1, &wb), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, a, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_error, b, NULL), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, wa, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 7);
    CU_ASSERT_EQUAL(tt_run(loop, wb), TL_EPIPE);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(wb), "boom");
    tl_future_unref(wa);
    tl_future_unref(wb);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_wait_for_a_done_future_is_done_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *w;
    tl_future_set_result(a, (void *)(intptr_t)3, NULL);
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(a, 0, &w), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 1);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(w, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 3);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

/* At the deadline the inner task is cancelled; it takes 3 ms to clean up,
 * and the wait_for ends only then, with TL_ETIMEDOUT. */
static void test_wait_for_times_out_after_the_inner_finished_cancelling(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 3 * MS, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(tl_task_future(t), 1 * MS, &w), 0);
    CU_ASSERT_EQUAL(tt_run(loop, w), TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(j.was_cancelled, 1);
    CU_ASSERT_EQUAL(j.finished, 1); /* its cleanup ran first */
    CU_ASSERT_EQUAL(tl_future_cancelled(tl_task_future(t)), 1);
    tl_future_unref(w);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* The inner future completes in the same loop iteration as the deadline,
 * just before it: its result wins over the timeout. */
static void test_wait_for_result_wins_when_it_comes_with_the_timeout(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *w;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, a, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(a, 1 * MS, &w), 0);
    tt_block(3 * MS); /* both timers are due in the next iteration */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 1); /* settled by the deadline itself */
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(w, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 7);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static int swallows_cancel(void *arg, void **result) {
    (void)arg;
    int rc = tl_sleep(FOREVER);
    *result = (void *)(intptr_t)11;
    return rc == TL_ECANCELLED ? 0 : TL_EUNKNOWN;
}

static void test_wait_for_an_inner_that_swallows_cancellation_gives_its_result(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, swallows_cancel, NULL, NULL, &t), 0);
    tl_future_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(tl_task_future(t), 1 * MS, &w), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, w, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 11);
    tl_future_unref(w);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_wait_for_zero_cancels_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(a, 0, &w), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(a), 1);
    CU_ASSERT_EQUAL(tt_run(loop, w), TL_ETIMEDOUT);
    tl_future_unref(w);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_cancelling_the_wait_for_cancels_the_inner(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 2 * MS, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(tl_task_future(t), 50 * MS, &w), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(w, "outer"), 1);
    CU_ASSERT_EQUAL(tl_future_done(w), 0); /* until the inner is done */
    CU_ASSERT_EQUAL(tt_run(loop, w), TL_ECANCELLED);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(w), "outer");
    CU_ASSERT_EQUAL(j.finished, 1);
    tl_future_unref(w);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* The deadline passed and the inner is still cleaning up when the wait_for
 * itself is cancelled: the cancellation wins. */
static void test_a_cancel_after_the_timeout_wins(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 5 * MS, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(tl_task_future(t), 1 * MS, &w), 0);
    for (int i = 0; i < 100 && !j.was_cancelled; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0);
    CU_ASSERT_EQUAL_FATAL(j.was_cancelled, 1);
    CU_ASSERT_EQUAL(tl_future_done(w), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(w, NULL), 1);
    CU_ASSERT_EQUAL(tt_run(loop, w), TL_ECANCELLED);
    tl_future_unref(w);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_cancelling_a_task_awaiting_wait_for_cancels_the_inner(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(tl_task_future(t), FOREVER, &w), 0);
    awaiter_t aw = {w, 1, NULL};
    tl_task_t *waiter = spawn_awaiter(loop, &aw);
    CU_ASSERT_EQUAL(tl_task_cancel(waiter, NULL), 1);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(waiter)), 0);
    CU_ASSERT_EQUAL(aw.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(tl_task_future(t)), 1);
    tl_future_unref(w);
    tl_task_unref(t);
    tl_task_unref(waiter);
    tl_test_loop_free(loop);
}

static void test_wait_for_an_inner_cancelled_by_someone_else_is_cancelled(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *w;
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(a, FOREVER, &w), 0);
    tl_future_cancel(a, "theirs");
    CU_ASSERT_EQUAL(tt_run(loop, w), TL_ECANCELLED); /* not a timeout */
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(w), "theirs");
    tl_future_unref(w);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_wait_for_rejects_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *w = NULL;
    CU_ASSERT_EQUAL(tl_wait_for(NULL, 1, &w), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_wait_for(a, 1, NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(w);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_wait_for_survives_each_allocation_failing(void) {
    for (int64_t timeout = -1; timeout <= 1; timeout++) {
        int succeeded = 0;
        for (long n = 1; n < 50 && !succeeded; n++) {
            tl_loop_t *loop = tl_test_loop();
            tl_future_t *p = tt_future(loop), *w = NULL;
            tl_test_fail_alloc_at(n);
            int rc = tl_wait_for(p, timeout * MS, &w);
            tl_test_fail_alloc_at(0);
            if (rc == 0) {
                succeeded = 1;
                tl_future_set_result(p, NULL, NULL); /* ESTATE if cancelled */
                rc = tt_run(loop, w);
                CU_ASSERT(rc == 0 || rc == TL_ETIMEDOUT);
                tl_future_unref(w);
            } else {
                CU_ASSERT_EQUAL(rc, TL_ENOMEM);
                CU_ASSERT_PTR_NULL(w);
                CU_ASSERT_EQUAL(tl_future_done(p), 0);
            }
            tl_future_unref(p);
            tl_test_loop_free(loop);
        }
        CU_ASSERT(succeeded);
    }
}

static void test_pending_waits_outliving_their_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *kid = tl_task_future(t), *w, *wf;
    CU_ASSERT_EQUAL_FATAL(tl_wait(loop, &kid, 1, TL_ALL_COMPLETED, FOREVER, &w), 0);
    CU_ASSERT_EQUAL_FATAL(tl_wait_for(kid, FOREVER, &wf), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop); /* winds the task down; nobody hears */
    CU_ASSERT_EQUAL(tl_future_done(w), 0);
    CU_ASSERT_EQUAL(tl_future_done(wf), 0);
    tl_future_unref(w);
    tl_future_unref(wf);
    tl_task_unref(t);
}

TL_TEST_SUITE(task_wait,
              TL_TEST(test_all_completed_waits_for_every_child),
              TL_TEST(test_first_completed_returns_after_one),
              TL_TEST(test_first_exception_returns_at_an_error_not_a_cancellation),
              TL_TEST(test_first_exception_without_errors_waits_for_all),
              TL_TEST(test_timeout_ends_the_wait_and_never_cancels_children),
              TL_TEST(test_children_done_before_are_seen_in_the_next_iteration),
              TL_TEST(test_cancelling_a_wait_only_stops_the_wait),
              TL_TEST(test_wait_rejects_bad_arguments),
              TL_TEST(test_wait_survives_each_allocation_failing),
              TL_TEST(test_wait_for_passes_the_outcome_through),
              TL_TEST(test_wait_for_a_done_future_is_done_at_once),
              TL_TEST(test_wait_for_times_out_after_the_inner_finished_cancelling),
              TL_TEST(test_wait_for_result_wins_when_it_comes_with_the_timeout),
              TL_TEST(test_wait_for_an_inner_that_swallows_cancellation_gives_its_result),
              TL_TEST(test_wait_for_zero_cancels_at_once),
              TL_TEST(test_cancelling_the_wait_for_cancels_the_inner),
              TL_TEST(test_a_cancel_after_the_timeout_wins),
              TL_TEST(test_cancelling_a_task_awaiting_wait_for_cancels_the_inner),
              TL_TEST(test_wait_for_an_inner_cancelled_by_someone_else_is_cancelled),
              TL_TEST(test_wait_for_rejects_bad_arguments),
              TL_TEST(test_wait_for_survives_each_allocation_failing),
              TL_TEST(test_pending_waits_outliving_their_loop))
