/* task_gather: tl_gather (asyncio.gather). */
#include "combinator_test.h"

#include <string.h>

static void test_gather_completes_when_every_child_is_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *g;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, a, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 3 * MS, tt_set_result, b, NULL), 0);
    void *v = (void *)1;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, g, &v), 0);
    CU_ASSERT_PTR_NULL(v);
    CU_ASSERT_EQUAL(tl_future_done(b), 1); /* not before the last one */
    CU_ASSERT_EQUAL(tl_future_set_result(g, NULL, NULL), TL_EINVAL); /* only gather completes it */
    tl_future_unref(g);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_gather_of_nothing_is_done_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *g;
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, NULL, 0, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_future_done(g), 1);
    CU_ASSERT_EQUAL(tl_future_result(g, NULL), 0);
    tl_future_unref(g);
    tl_test_loop_free(loop);
}

static void test_children_done_before_count_in_the_next_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *g;
    tl_future_set_result(a, NULL, NULL);
    tl_future_t *kids[] = {a, a}; /* the same future twice */
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_future_done(g), 0); /* as asyncio: callbacks run later */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(g), 1);
    CU_ASSERT_EQUAL(tl_future_error(g), 0);
    tl_future_unref(g);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_first_error_completes_the_gather_and_the_rest_keep_running(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *gate = tt_future(loop), *g;
    job_t slow = {0, 0, 0, 0, 0, 0, 0, gate};
    tl_task_t *t = tt_spawn(loop, &slow);
    tl_future_t *kids[] = {tl_task_future(t), a};
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_error, a, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, g), TL_EPIPE);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(g), "boom");
    CU_ASSERT_EQUAL(slow.started, 1);
    CU_ASSERT_EQUAL(slow.finished, 0); /* left running, not cancelled */
    CU_ASSERT_EQUAL(tl_task_cancelling(t), 0);
    tl_future_set_result(gate, NULL, NULL);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(slow.was_cancelled, 0);
    tl_future_unref(g);
    tl_future_unref(a);
    tl_future_unref(gate);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_a_cancelled_child_cancels_the_gather(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *g;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(b, "child gone"), 1);
    CU_ASSERT_EQUAL(tt_run(loop, g), TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(g), 1);
    CU_ASSERT_STRING_EQUAL(tl_future_error_message(g), "child gone");
    CU_ASSERT_EQUAL(tl_future_done(a), 0);
    tl_future_unref(g);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_return_errors_waits_for_all_and_leaves_outcomes_to_children(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *c = tt_future(loop), *g;
    tl_future_t *kids[] = {a, b, c};
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 3, 1, &g), 0);
    tl_future_set_error(a, TL_EIO, NULL);
    tl_future_cancel(b, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(g), 0); /* c is still pending */
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, c, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, g), 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(b), 1);
    tl_future_unref(g);
    tl_future_unref(a); /* its error counts as read: no report */
    tl_future_unref(b);
    tl_future_unref(c);
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
}

static void test_cancelling_the_gather_cancels_the_children_not_done(void) {
    for (int return_errors = 0; return_errors < 2; return_errors++) {
        tl_loop_t *loop = tl_test_loop();
        job_t j1 = {FOREVER, 0, 0, 0, 0, 0, 0, NULL}, j2 = {FOREVER, 0, 2 * MS, 0, 0, 0, 0, NULL};
        tl_task_t *t1 = tt_spawn(loop, &j1), *t2 = tt_spawn(loop, &j2);
        tl_future_t *kids[] = {tl_task_future(t1), tl_task_future(t2)}, *g;
        CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, return_errors, &g), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* both asleep */
        CU_ASSERT_EQUAL(tl_future_cancel(g, "enough"), 1);
        CU_ASSERT_EQUAL(tl_future_done(g), 0); /* it ends through its children */
        CU_ASSERT_EQUAL(tl_task_cancelling(t1), 1);
        CU_ASSERT_EQUAL(tt_run(loop, g), TL_ECANCELLED);
        CU_ASSERT_STRING_EQUAL(tl_future_error_message(g), "enough");
        CU_ASSERT_EQUAL(tl_future_cancel(g, NULL), 0); /* done */
        CU_ASSERT_EQUAL(tt_run(loop, kids[1]), TL_ECANCELLED);
        CU_ASSERT_EQUAL(j1.was_cancelled + j2.was_cancelled, 2);
        tl_future_unref(g);
        tl_task_unref(t1);
        tl_task_unref(t2);
        tl_test_loop_free(loop);
    }
}

/* The race the issue names: one child has finished (and was seen, or its
 * callback is still on its way), the other runs; the gather still ends
 * cancelled, in both modes. */
static void test_cancel_a_gather_whose_child_already_finished(void) {
    for (int mode = 0; mode < 4; mode++) {
        int return_errors = mode & 1, seen = mode >> 1;
        tl_loop_t *loop = tl_test_loop();
        tl_future_t *a = tt_future(loop), *b = tt_future(loop), *g;
        tl_future_t *kids[] = {a, b};
        CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, return_errors, &g), 0);
        tl_future_set_result(a, NULL, NULL);
        if (seen)
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(tl_future_cancel(g, NULL), 1);
        CU_ASSERT_EQUAL(tl_future_cancelled(b), 1);
        CU_ASSERT_EQUAL(tt_run(loop, g), TL_ECANCELLED);
        CU_ASSERT_EQUAL(tl_future_cancelled(g), 1);
        CU_ASSERT_EQUAL(tl_future_error(a), 0);
        tl_future_unref(g);
        tl_future_unref(a);
        tl_future_unref(b);
        tl_test_loop_free(loop);
    }
}

static void test_cancel_changes_nothing_when_every_child_is_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *g;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    tl_future_set_result(a, NULL, NULL);
    tl_future_set_result(b, NULL, NULL); /* the gather has not seen them yet */
    CU_ASSERT_EQUAL(tl_future_cancel(g, NULL), 0);
    CU_ASSERT_EQUAL(tt_run(loop, g), 0);
    tl_future_unref(g);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

typedef struct awaiter {
    tl_future_t *f;
    int rc;
    int self_cancel;
} awaiter_t;

static int awaits(void *arg, void **result) {
    awaiter_t *w = arg;
    (void)result;
    if (w->self_cancel)
        tl_task_cancel(tl_task_current(), NULL);
    w->rc = tl_await(w->f, NULL);
    return 0;
}

static void test_cancelling_a_task_awaiting_a_gather_cancels_the_children(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j1 = {FOREVER, 0, 0, 0, 0, 0, 0, NULL}, j2 = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t1 = tt_spawn(loop, &j1), *t2 = tt_spawn(loop, &j2), *w;
    tl_future_t *kids[] = {tl_task_future(t1), tl_task_future(t2)}, *g;
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    awaiter_t aw = {g, 1, 0};
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits, &aw, NULL, &w), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_task_cancel(w, NULL), 1);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(w)), 0);
    CU_ASSERT_EQUAL(aw.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_cancelled(kids[0]), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(kids[1]), 1);
    tl_future_unref(g);
    tl_task_unref(t1);
    tl_task_unref(t2);
    tl_task_unref(w);
    tl_test_loop_free(loop);
}

/* A task cancelled while running awaits a gather that refuses the cancel
 * (every child done): the request stays, and the await still returns
 * TL_ECANCELLED once the gather is done (asyncio's _must_cancel). */
static void test_a_pending_cancel_survives_a_gather_that_refuses_it(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *g;
    tl_future_set_result(a, NULL, NULL);
    awaiter_t aw = {NULL, 1, 1};
    tl_task_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, awaits, &aw, NULL, &w), 0);
    /* made after the task's first step was scheduled: still pending then */
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, &a, 1, 0, &g), 0);
    aw.f = g;
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(w)), 0);
    CU_ASSERT_EQUAL(aw.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_future_error(g), 0); /* the gather itself succeeded */
    tl_future_unref(g);
    tl_future_unref(a);
    tl_task_unref(w);
    tl_test_loop_free(loop);
}

static void test_errors_after_the_gather_failed_are_not_reported_unread(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *gate = tt_future(loop);
    job_t j1 = {1 * MS, TL_EIO, 0, 0, 0, 0, 0, NULL}, j2 = {0, 0, 0, 0, 0, 0, 0, gate};
    tl_task_t *t1 = tt_spawn(loop, &j1), *t2 = tt_spawn(loop, &j2);
    tl_future_t *kids[] = {tl_task_future(t1), tl_task_future(t2)}, *g;
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    tl_task_unref(t1);
    tl_task_unref(t2);
    CU_ASSERT_EQUAL(tt_run(loop, g), TL_EIO);
    CU_ASSERT_EQUAL(j2.finished, 0);
    tl_future_unref(g); /* dropped while t2 still runs */
    tl_future_set_error(gate, TL_EPIPE, NULL); /* t2 fails with it */
    for (int i = 0; i < 10 && !j2.finished; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(j2.finished, 1);
    tl_future_error(gate);
    tl_future_unref(gate);
    CU_ASSERT_EQUAL(exc.count, 0); /* t2's TL_EPIPE was read for it */
    tl_test_loop_free(loop);
}

static void test_a_dropped_pending_gather_lets_its_children_go(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop), *g;
    tl_future_t *kids[] = {a, b};
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
    tl_future_unref(g); /* detached */
    tl_future_set_result(a, NULL, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

/* The state outlives the gather while a child's callback is on its way,
 * whether the loop then runs it or closes first. */
static void test_a_gather_freed_with_a_callback_scheduled(void) {
    for (int close_first = 0; close_first < 2; close_first++) {
        tl_loop_t *loop = tl_test_loop();
        tl_future_t *a = tt_future(loop), *b = tt_future(loop), *g;
        tl_future_t *kids[] = {a, b};
        CU_ASSERT_EQUAL_FATAL(tl_gather(loop, kids, 2, 0, &g), 0);
        tl_future_set_result(a, NULL, NULL); /* its callback is scheduled */
        tl_future_unref(g);
        if (!close_first) {
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        }
        tl_future_unref(a);
        tl_future_unref(b);
        tl_test_loop_free(loop);
    }
}

static void test_a_gather_outliving_its_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    job_t j = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};
    tl_task_t *t = tt_spawn(loop, &j);
    tl_future_t *f = tl_task_future(t), *g;
    CU_ASSERT_EQUAL_FATAL(tl_gather(loop, &f, 1, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop); /* winds the task down; nobody hears */
    CU_ASSERT_EQUAL(tl_future_done(g), 0);
    tl_future_unref(g);
    tl_task_unref(t);
}

static void test_gather_rejects_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop(), *other = tl_test_loop();
    tl_future_t *a = tt_future(loop), *x = tt_future(other), *g = NULL;
    tl_future_t *mixed[] = {a, x}, *holes[] = {a, NULL};
    CU_ASSERT_EQUAL(tl_gather(loop, &a, 1, 0, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_gather(loop, NULL, 1, 0, &g), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_gather(loop, mixed, 2, 0, &g), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_gather(loop, holes, 2, 0, &g), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_gather(NULL, &a, 1, 0, &g), TL_EINVAL);
    CU_ASSERT_PTR_NULL(g);
    tl_future_unref(x);
    tl_test_loop_free(other);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_gather_on_a_closed_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *g = NULL;
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_gather(loop, NULL, 0, 0, &g), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_gather_survives_each_allocation_failing(void) {
    for (long n = 1; n < 50; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_future_t *done = tt_future(loop), *p1 = tt_future(loop), *p2 = tt_future(loop);
        tl_future_t *p3 = tt_future(loop);
        tl_future_set_result(done, NULL, NULL);
        /* p1 already carries two callbacks: the gather's needs a bigger array */
        tl_future_t *g0a, *g0b;
        CU_ASSERT_EQUAL_FATAL(tl_gather(loop, &p1, 1, 0, &g0a), 0);
        CU_ASSERT_EQUAL_FATAL(tl_gather(loop, &p1, 1, 0, &g0b), 0);
        tl_future_t *kids[] = {p2, done, p3, p1}, *g = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_gather(loop, kids, 4, 0, &g);
        tl_test_fail_alloc_at(0);
        int ok = rc == 0;
        if (ok) {
            tl_future_set_result(p1, NULL, NULL);
            tl_future_set_result(p2, NULL, NULL);
            tl_future_set_result(p3, NULL, NULL);
            CU_ASSERT_EQUAL(tt_run(loop, g), 0);
            tl_future_unref(g);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(g);
            /* nothing of the failed gather is left to run (ASan would see) */
            tl_future_set_result(p1, NULL, NULL);
            tl_future_set_result(p2, NULL, NULL);
            tl_future_set_result(p3, NULL, NULL);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        }
        tl_future_unref(g0a);
        tl_future_unref(g0b);
        tl_future_unref(done);
        tl_future_unref(p1);
        tl_future_unref(p2);
        tl_future_unref(p3);
        tl_test_loop_free(loop);
        if (ok)
            return;
    }
    CU_FAIL("gather never succeeded");
}

/* ---- tl_run, which gathers the tasks left over ---------------------------- */

static tl_test_exc_t run_exc;
static job_t run_sleeper = {FOREVER, 0, 0, 0, 0, 0, 0, NULL};

static int fails_when_cancelled(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = tl_sleep(FOREVER);
    return rc == TL_ECANCELLED ? TL_EIO : TL_EUNKNOWN;
}

static int main_leaving_a_failing_child(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_loop_t *loop = tl_loop_get_running();
    tl_test_capture_exceptions(loop, &run_exc);
    if (tl_task_spawn(loop, fails_when_cancelled, NULL, NULL, NULL) ||
        tl_task_spawn(loop, tt_job, &run_sleeper, NULL, NULL))
        return TL_EUNKNOWN;
    return tl_yield();
}

static void test_run_reports_leftover_tasks_that_fail_when_cancelled(void) {
    CU_ASSERT_EQUAL(tl_run(main_leaving_a_failing_child, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(run_exc.count, 1);
    CU_ASSERT_EQUAL(run_exc.last_error, TL_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(run_exc.last_message, "shutdown"));
}

TL_TEST_SUITE(task_gather,
              TL_TEST(test_gather_completes_when_every_child_is_done),
              TL_TEST(test_gather_of_nothing_is_done_at_once),
              TL_TEST(test_children_done_before_count_in_the_next_iteration),
              TL_TEST(test_first_error_completes_the_gather_and_the_rest_keep_running),
              TL_TEST(test_a_cancelled_child_cancels_the_gather),
              TL_TEST(test_return_errors_waits_for_all_and_leaves_outcomes_to_children),
              TL_TEST(test_cancelling_the_gather_cancels_the_children_not_done),
              TL_TEST(test_cancel_a_gather_whose_child_already_finished),
              TL_TEST(test_cancel_changes_nothing_when_every_child_is_done),
              TL_TEST(test_cancelling_a_task_awaiting_a_gather_cancels_the_children),
              TL_TEST(test_a_pending_cancel_survives_a_gather_that_refuses_it),
              TL_TEST(test_errors_after_the_gather_failed_are_not_reported_unread),
              TL_TEST(test_a_dropped_pending_gather_lets_its_children_go),
              TL_TEST(test_a_gather_freed_with_a_callback_scheduled),
              TL_TEST(test_a_gather_outliving_its_loop),
              TL_TEST(test_gather_rejects_bad_arguments),
              TL_TEST(test_gather_on_a_closed_loop),
              TL_TEST(test_gather_survives_each_allocation_failing),
              TL_TEST(test_run_reports_leftover_tasks_that_fail_when_cancelled))
