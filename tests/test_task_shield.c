/* task_shield: tl_shield (asyncio.shield). */
#include "combinator_test.h"

#include <string.h>

static void test_shield_mirrors_the_result(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *s;
    CU_ASSERT_EQUAL_FATAL(tl_shield(a, &s), 0);
    CU_ASSERT_PTR_NOT_EQUAL(s, a);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, a, NULL), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, s, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 7);
    tl_future_unref(a); /* the shield keeps it (and its value) alive */
    CU_ASSERT_EQUAL(tl_future_result(s, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 7);
    tl_future_unref(s);
    tl_test_loop_free(loop);
}

static void test_shield_mirrors_errors_and_cancellation(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *sa, *sb;
    CU_ASSERT_EQUAL_FATAL(tl_shield(a, &sa), 0);
    CU_ASSERT_EQUAL_FATAL(tl_shield(b, &sb), 0);
    tl_future_set_error(a, TL_EPIPE, "boom");
    tl_future_cancel(b, "inner gone");
    CU_ASSERT_EQUAL(tt_run(loop, sa), TL_EPIPE);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(sa), "boom");
    CU_ASSERT_EQUAL(tt_run(loop, sb), TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(sb), 1);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(sb), "inner gone");
    tl_future_unref(sa);
    tl_future_unref(sb);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

typedef struct awaiter {
    tl_future_t *f;
    int rc;
} awaiter_t;

static int awaits(void *arg, void **result) {
    awaiter_t *w = arg;
    (void)result;
    w->rc = tl_await(w->f, NULL);
    return 0;
}

static void test_cancelling_the_shield_leaves_the_inner_running(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *gate = tt_future(loop);
    job_t j = {0, 0, 0, 0, 0, 0, 0, gate};
    tl_task_t *t = tt_spawn(loop, &j), *waiter;
    tl_future_t *s;
    CU_ASSERT_EQUAL_FATAL(tl_shield(tl_task_future(t), &s), 0);
    awaiter_t aw = {s, 1};
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits, &aw, NULL, &waiter), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(waiter, NULL), 1);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(waiter)), 0);
    CU_ASSERT_EQUAL(aw.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(s), 1);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 0); /* never heard of it */
    CU_ASSERT_EQUAL(j.finished, 0);
    tl_future_set_result(gate, NULL, NULL);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(j.was_cancelled, 0);
    tl_future_unref(gate);
    tl_future_unref(s);
    tl_task_unref(t);
    tl_task_unref(waiter);
    tl_test_loop_free(loop);
}

static void test_cancelling_the_shield_directly(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *s;
    CU_ASSERT_EQUAL_FATAL(tl_shield(a, &s), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(s, "outer only"), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(s), 1);
    CU_ASSERT_EQUAL(tl_future_done(a), 0);
    tl_future_set_result(a, NULL, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(s), 1); /* stays cancelled */
    tl_future_unref(s);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

/* The inner failed just before the outer was cancelled: its error is read
 * on the way (asyncio's inner.exception()), so nothing is reported. */
static void test_an_inner_error_racing_the_cancel_is_not_reported(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *a = tt_future(loop), *s;
    CU_ASSERT_EQUAL_FATAL(tl_shield(a, &s), 0);
    tl_future_set_error(a, TL_EIO, NULL);
    CU_ASSERT_EQUAL(tl_future_cancel(s, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_future_unref(a);
    tl_future_unref(s);
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
}

static void test_shield_of_a_done_future_is_the_future_itself(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *s;
    tl_future_set_result(a, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(tl_shield(a, &s), 0);
    CU_ASSERT_PTR_EQUAL(s, a);
    tl_future_unref(s); /* a new reference */
    CU_ASSERT_EQUAL(tl_future_done(a), 1);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_shield_rejects_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *s = NULL;
    CU_ASSERT_EQUAL(tl_shield(NULL, &s), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_shield(a, NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_shield_survives_each_allocation_failing(void) {
    for (long n = 1; n < 50; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_future_t *a = tt_future(loop), *s = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_shield(a, &s);
        tl_test_fail_alloc_at(0);
        tl_future_set_result(a, NULL, NULL);
        if (rc == 0) {
            CU_ASSERT_EQUAL(tt_run(loop, s), 0);
            tl_future_unref(s);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(s);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        }
        tl_future_unref(a);
        tl_test_loop_free(loop);
        if (rc == 0)
            return;
    }
    CU_FAIL("shield never succeeded");
}

static void test_a_pending_shield_outliving_its_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *s;
    CU_ASSERT_EQUAL_FATAL(tl_shield(tl_task_future(t), &s), 0);
    tl_task_unref(t); /* the shield keeps it */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(tl_future_done(s), 0);
    tl_future_unref(s);
}

TL_TEST_SUITE(task_shield,
              TL_TEST(test_shield_mirrors_the_result),
              TL_TEST(test_shield_mirrors_errors_and_cancellation),
              TL_TEST(test_cancelling_the_shield_leaves_the_inner_running),
              TL_TEST(test_cancelling_the_shield_directly),
              TL_TEST(test_an_inner_error_racing_the_cancel_is_not_reported),
              TL_TEST(test_shield_of_a_done_future_is_the_future_itself),
              TL_TEST(test_shield_rejects_bad_arguments),
              TL_TEST(test_shield_survives_each_allocation_failing),
              TL_TEST(test_a_pending_shield_outliving_its_loop))
