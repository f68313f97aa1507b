/* task: spawn, await, sleep, yield, cancellation (asyncio 3.11+ rules). */
#define _GNU_SOURCE
#include <string.h>

#include "tl_test.h"
#include "tulip/task.h"
#include "task/task_int.h"

static tl_loop_t *loop_;

static int returns_arg(void *arg, void **result) {
    *result = arg;
    return 0;
}

static int fails(void *arg, void **result) {
    (void)result;
    return (int)(intptr_t)arg;
}

static void test_spawn_runs_later_and_completes_with_the_result(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    int x = 7;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, returns_arg, &x, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_future_done(tl_task_future(t)), 0); /* not run inside spawn */
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), &v), 0);
    CU_ASSERT_PTR_EQUAL(v, &x);
    CU_ASSERT_PTR_EQUAL(tl_task_from_future(tl_task_future(t)), t);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_task_error_becomes_the_future_error(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, fails, (void *)(intptr_t)TL_ECONNRESET, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECONNRESET);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_spawn_rejects_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t = NULL;
    CU_ASSERT_EQUAL(tl_task_spawn(NULL, returns_arg, NULL, NULL, &t), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_task_spawn(loop, NULL, NULL, NULL, &t), TL_EINVAL);
    tl_task_options_t o = {sizeof o, NULL, 4096, NULL};
    CU_ASSERT_EQUAL(tl_task_spawn(loop, returns_arg, NULL, &o, &t), TL_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(tl_task_spawn(loop_, returns_arg, NULL, NULL, &t), TL_EINVAL);
}

static void test_future_setters_refuse_a_task(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, returns_arg, NULL, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(tl_task_future(t), NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_error(tl_task_future(t), TL_EIO, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* ---- await ------------------------------------------------------------ */

static void set_later(void *f) { tl_future_set_result(f, (void *)(intptr_t)42, NULL); }

static int awaits_future(void *arg, void **result) {
    tl_future_t *f = arg;
    return tl_await(f, result);
}

static void test_await_suspends_until_the_future_is_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits_future, f, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(tl_task_future(t)), 0); /* waiting */
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000000, set_later, f, NULL), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 42);
    tl_future_unref(f);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_await_outside_a_task_is_an_error(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    CU_ASSERT_EQUAL(tl_await(f, NULL), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_sleep(1000), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_yield(), TL_ENOTASK);
    CU_ASSERT_PTR_NULL(tl_task_current());
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static int awaits_done_and_null(void *arg, void **result) {
    tl_future_t *f = arg;
    int rc = tl_await(NULL, NULL);
    if (rc != TL_EINVAL)
        return TL_EUNKNOWN;
    /* Awaiting itself would never end. */
    rc = tl_await(tl_task_future(tl_task_current()), NULL);
    if (rc != TL_EINVAL)
        return TL_EUNKNOWN;
    return tl_await(f, result); /* done already: no suspension */
}

static void test_await_of_a_done_future_returns_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EPIPE, "gone"), 0);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits_done_and_null, f, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* one step finishes it */
    CU_ASSERT_EQUAL(tl_future_error(tl_task_future(t)), TL_EPIPE);
    tl_future_unref(f);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* ---- sleep and yield -------------------------------------------------- */

typedef struct order {
    char log[64];
    int n;
} order_t;

static int yields_twice(void *arg, void **result) {
    order_t *o = arg;
    (void)result;
    const char *me = tl_task_get_name(tl_task_current());
    for (int i = 0; i < 2; i++) {
        o->log[o->n++] = me[0];
        if (tl_yield() != 0)
            return TL_EUNKNOWN;
    }
    o->log[o->n++] = me[0];
    return 0;
}

static void test_yield_interleaves_tasks_in_fifo_order(void) {
    tl_loop_t *loop = tl_test_loop();
    order_t o = {{0}, 0};
    tl_task_options_t a = {sizeof a, "a", 0, NULL}, b = {sizeof b, "b", 0, NULL};
    tl_task_t *ta, *tb;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, yields_twice, &o, &a, &ta), 0);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, yields_twice, &o, &b, &tb), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(tb), NULL), 0);
    CU_ASSERT_STRING_EQUAL(o.log, "ababab");
    tl_task_unref(ta);
    tl_task_unref(tb);
    tl_test_loop_free(loop);
}

static int sleeps(void *arg, void **result) {
    (void)result;
    int64_t ns = *(int64_t *)arg;
    uint64_t t0 = tl_now_ns();
    int rc = tl_sleep(ns);
    if (rc)
        return rc;
    return tl_now_ns() - t0 >= (uint64_t)ns ? 0 : TL_EUNKNOWN;
}

static void test_sleep_waits_at_least_its_delay(void) {
    tl_loop_t *loop = tl_test_loop();
    int64_t ns = 3000000;
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, sleeps, &ns, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

/* ---- cancellation ----------------------------------------------------- */

static int sleeps_forever(void *arg, void **result) {
    (void)arg;
    (void)result;
    return tl_sleep(INT64_MAX / 4);
}

static void test_cancel_interrupts_the_await_and_cancels_the_task(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, sleeps_forever, NULL, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(t, "stop it"), 1);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(tl_task_future(t)), 1);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(tl_task_future(t)), "stop it");
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 0); /* done: no-op */
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_cancel_before_the_first_step_never_runs_the_body(void) {
    tl_loop_t *loop = tl_test_loop();
    int x = 0;
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, returns_arg, &x, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(tl_task_future(t), NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECANCELLED);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static int swallows_cancel(void *arg, void **result) {
    (void)arg;
    int rc = tl_sleep(INT64_MAX / 4);
    if (rc != TL_ECANCELLED)
        return TL_EUNKNOWN;
    if (tl_task_uncancel(tl_task_current()) != 0)
        return TL_EUNKNOWN;
    rc = tl_sleep(1000); /* not cancelled again after uncancel */
    *result = (void *)(intptr_t)5;
    return rc;
}

static void test_a_task_that_swallows_cancellation_ends_with_its_result(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, swallows_cancel, NULL, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 5);
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static int cancels_itself_then_awaits(void *arg, void **result) {
    tl_future_t *f = arg;
    (void)result;
    tl_task_cancel(tl_task_current(), "self");
    int rc = tl_await(f, NULL); /* the first suspending await gets it */
    return rc == TL_ECANCELLED && tl_future_cancelled(f) == 1 ? TL_ECANCELLED : TL_EUNKNOWN;
}

static void test_a_cancel_while_running_hits_the_next_await(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, cancels_itself_then_awaits, f, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECANCELLED);
    tl_future_unref(f);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_cancel_after_the_awaited_future_completed_still_cancels(void) {
    /* The wakeup is pending when cancel comes: asyncio's _must_cancel. */
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits_future, f, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECANCELLED);
    tl_future_unref(f);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static int keeps_a_late_cancel(void *arg, void **result) {
    (void)result;
    if (tl_await(arg, NULL) != TL_ECANCELLED)
        return TL_EUNKNOWN;
    /* Say the awaited operation could not be undone: report success now and
     * leave the request for the next suspension. */
    tl__task_keep_cancel(tl_task_current());
    if (tl_task_cancelling(tl_task_current()) != 1)
        return TL_EUNKNOWN;
    return tl_yield(); /* TL_ECANCELLED: the request was kept */
}

static void test_a_kept_cancel_reaches_the_next_suspension_with_its_message(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, keeps_a_late_cancel, f, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(t, "late"), 1); /* after f completed */
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECANCELLED);
    const char *msg = tl_future_error_message(tl_task_future(t));
    CU_ASSERT_PTR_NOT_NULL(msg);
    if (msg)
        CU_ASSERT_STRING_EQUAL(msg, "late");
    tl_future_unref(f);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static int awaits_task(void *arg, void **result) {
    return tl_await(tl_task_future(arg), result);
}

static void test_cancelling_a_task_cancels_the_task_it_awaits(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *inner, *outer;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, sleeps_forever, NULL, NULL, &inner), 0);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits_task, inner, NULL, &outer), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(outer, NULL), 1);
    CU_ASSERT_EQUAL(tl_task_cancelling(inner), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(outer), NULL), TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(tl_task_future(inner)), 1);
    tl_task_unref(inner);
    tl_task_unref(outer);
    tl_test_loop_free(loop);
}

/* ---- names, current, all ---------------------------------------------- */

static int checks_current(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_task_t *me = tl_task_current();
    tl_task_t *all[8];
    int n = tl_task_all(tl_loop_get_running(), all, 8);
    for (int i = 0; i < n && i < 8; i++)
        if (all[i] == me)
            return 0;
    return TL_EUNKNOWN;
}

static void test_names_current_and_all_tasks(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t, *u;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, sleeps_forever, NULL, NULL, &t), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(tl_task_get_name(t), "Task-"));
    CU_ASSERT_EQUAL(tl_task_set_name(t, "worker"), 0);
    CU_ASSERT_STRING_EQUAL(tl_task_get_name(t), "worker");
    CU_ASSERT_EQUAL(tl_task_set_name(t, NULL), TL_EINVAL);
    tl_task_options_t o = {sizeof o, "named", 0, NULL};
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, checks_current, NULL, &o, &u), 0);
    CU_ASSERT_STRING_EQUAL(tl_task_get_name(u), "named");
    tl_task_t *all[4];
    CU_ASSERT_EQUAL(tl_task_all(loop, all, 4), 2);
    CU_ASSERT_EQUAL(tl_task_all(loop, NULL, 0), 2);
    tl_task_t *v;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, checks_current, NULL, NULL, &v), 0);
    tl_task_cancel(t, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_task_all(loop, all, 4), 0);
    CU_ASSERT_EQUAL(tl_future_error(tl_task_future(u)), 0);
    CU_ASSERT_EQUAL(tl_future_error(tl_task_future(v)), 0);
    tl_task_unref(t);
    tl_task_unref(u);
    tl_task_unref(v);
    tl_test_loop_free(loop);
}

/* ---- lifetime --------------------------------------------------------- */

static void test_dropping_the_only_reference_does_not_stop_the_task(void) {
    tl_loop_t *loop = tl_test_loop();
    int64_t ns = 1000000;
    CU_ASSERT_EQUAL(tl_task_spawn(loop, sleeps, &ns, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_task_all(loop, NULL, 0), 1);
    for (int i = 0; i < 1000 && tl_task_all(loop, NULL, 0) > 0; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2000000), 0);
    CU_ASSERT_EQUAL(tl_task_all(loop, NULL, 0), 0);
    tl_test_loop_free(loop);
}

static void test_closing_the_loop_winds_down_suspended_tasks(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, sleeps_forever, NULL, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_task_spawn(loop, sleeps_forever, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_task_spawn(loop, returns_arg, NULL, NULL, NULL), 0); /* never started */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop); /* the harness checks nothing leaks */
    /* Resumed a last time, its sleep failed and it returned: cancelled. */
    CU_ASSERT_EQUAL(tl_future_cancelled(tl_task_future(t)), 1);
    tl_task_unref(t);
}

static void test_unretrieved_task_error_is_reported(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_task_spawn(loop, fails, (void *)(intptr_t)TL_EIO, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_EIO);
    tl_test_loop_free(loop);
}

static void test_spawn_survives_each_allocation_failing(void) {
    for (long n = 1; n < 50; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_task_t *t = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_task_spawn(loop, returns_arg, NULL, NULL, &t);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
            tl_task_unref(t);
            tl_test_loop_free(loop);
            return;
        }
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(t);
        tl_test_loop_free(loop);
    }
    CU_FAIL("spawn never succeeded");
}

static void test_a_task_without_memory_for_its_stack_fails_with_enomem(void) {
    /* The stack is taken at the first step; failing that fails the task. */
    int saw_enomem = 0;
    for (long n = 1; n < 20; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_task_t *t;
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, returns_arg, NULL, NULL, &t), 0);
        tl_test_fail_alloc_at(n);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        tl_test_fail_alloc_at(0);
        int done = tl_future_done(tl_task_future(t));
        int rc = tl_future_error(tl_task_future(t));
        if (done && rc == TL_ENOMEM) {
            saw_enomem = 1;
        } else if (!done) { /* the failure hit something that retries */
            CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
        } else {
            CU_ASSERT_EQUAL(rc, 0);
        }
        tl_task_unref(t);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(saw_enomem);
}

/* ---- tl_run ----------------------------------------------------------- */

static int main_with_children(void *arg, void **result) {
    (void)arg;
    /* A child left running when main returns is cancelled by tl_run. */
    if (tl_task_spawn(tl_loop_get_running(), sleeps_forever, NULL, NULL, NULL))
        return TL_EUNKNOWN;
    *result = (void *)(intptr_t)99;
    return tl_sleep(1000);
}

static void test_run_returns_main_result_and_cancels_the_rest(void) {
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_run(main_with_children, NULL, NULL, &v), 0);
    CU_ASSERT_EQUAL((intptr_t)v, 99);
    CU_ASSERT_EQUAL(tl_run(fails, (void *)(intptr_t)TL_EACCES, NULL, NULL), TL_EACCES);
    CU_ASSERT_EQUAL(tl_run(NULL, NULL, NULL, NULL), TL_EINVAL);
}

TL_TEST_SUITE(task,
              TL_TEST(test_spawn_runs_later_and_completes_with_the_result),
              TL_TEST(test_task_error_becomes_the_future_error),
              TL_TEST(test_spawn_rejects_bad_arguments),
              TL_TEST(test_future_setters_refuse_a_task),
              TL_TEST(test_await_suspends_until_the_future_is_done),
              TL_TEST(test_await_outside_a_task_is_an_error),
              TL_TEST(test_await_of_a_done_future_returns_at_once),
              TL_TEST(test_yield_interleaves_tasks_in_fifo_order),
              TL_TEST(test_sleep_waits_at_least_its_delay),
              TL_TEST(test_cancel_interrupts_the_await_and_cancels_the_task),
              TL_TEST(test_cancel_before_the_first_step_never_runs_the_body),
              TL_TEST(test_a_task_that_swallows_cancellation_ends_with_its_result),
              TL_TEST(test_a_cancel_while_running_hits_the_next_await),
              TL_TEST(test_cancel_after_the_awaited_future_completed_still_cancels),
              TL_TEST(test_cancelling_a_task_cancels_the_task_it_awaits),
              TL_TEST(test_a_kept_cancel_reaches_the_next_suspension_with_its_message),
              TL_TEST(test_names_current_and_all_tasks),
              TL_TEST(test_dropping_the_only_reference_does_not_stop_the_task),
              TL_TEST(test_closing_the_loop_winds_down_suspended_tasks),
              TL_TEST(test_unretrieved_task_error_is_reported),
              TL_TEST(test_spawn_survives_each_allocation_failing),
              TL_TEST(test_a_task_without_memory_for_its_stack_fails_with_enomem),
              TL_TEST(test_run_returns_main_result_and_cancels_the_rest))
