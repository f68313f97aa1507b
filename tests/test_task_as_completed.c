/* task_as_completed: tl_as_completed_* (asyncio.as_completed, 3.13). */
#include "combinator_test.h"

#include <string.h>

typedef struct drain {
    tl_as_completed_t *it;
    tl_future_t *got[8];
    int rcs[8];
    int n;
} drain_t;

/* Call next until TL_ESTATE, recording what each call gave. */
static int drains(void *arg, void **result) {
    drain_t *d = arg;
    (void)result;
    for (d->n = 0; d->n < 8; d->n++) {
        tl_future_t *f = NULL;
        int rc = tl_as_completed_next(d->it, &f);
        d->rcs[d->n] = rc;
        d->got[d->n] = f;
        if (rc == TL_ESTATE)
            break;
    }
    return 0;
}

static void run_drain(tl_loop_t *loop, drain_t *d) {
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, drains, d, NULL, &t), 0);
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    tl_task_unref(t);
}

static void test_children_come_out_in_completion_order(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f[3] = {tt_future(loop), tt_future(loop), tt_future(loop)};
    drain_t d = {0};
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, f, 3, -1, &d.it), 0);
    int64_t base = tl_loop_time(loop); /* one base: the order cannot drift */
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, base + 3 * MS, tt_set_result, f[0], NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, base + 5 * MS, tt_cancel, f[1], NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, base + 1 * MS, tt_set_error, f[2], NULL), 0);
    run_drain(loop, &d);
    CU_ASSERT_EQUAL(d.n, 3);
    CU_ASSERT(d.rcs[0] == 0 && d.rcs[1] == 0 && d.rcs[2] == 0 && d.rcs[3] == TL_ESTATE);
    CU_ASSERT_PTR_EQUAL(d.got[0], f[2]); /* the futures themselves */
    CU_ASSERT_PTR_EQUAL(d.got[1], f[0]);
    CU_ASSERT_PTR_EQUAL(d.got[2], f[1]);
    CU_ASSERT_EQUAL(tl_future_error(f[2]), TL_EPIPE); /* left to the caller */
    tl_as_completed_free(d.it);
    for (int i = 0; i < 3; i++)
        tl_future_unref(f[i]);
    tl_test_loop_free(loop);
}

static void test_children_done_before_come_first_and_repeats_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop);
    tl_future_set_result(b, NULL, NULL);
    tl_future_t *f[] = {a, b, a, b};
    drain_t d = {0};
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, f, 4, -1, &d.it), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, tt_set_result, a, NULL), 0);
    run_drain(loop, &d);
    CU_ASSERT_EQUAL(d.n, 2); /* two distinct futures */
    CU_ASSERT_PTR_EQUAL(d.got[0], b);
    CU_ASSERT_PTR_EQUAL(d.got[1], a);
    tl_as_completed_free(d.it);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_timeout_gives_etimedout_for_each_remaining_next(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f[3] = {tt_future(loop), tt_future(loop), tt_future(loop)};
    drain_t d = {0};
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, f, 3, 3 * MS, &d.it), 0);
    /* seen before the timer can fire, however slow the machine */
    tl_future_set_result(f[1], NULL, NULL);
    run_drain(loop, &d);
    CU_ASSERT_EQUAL(d.n, 3);
    CU_ASSERT_EQUAL(d.rcs[0], 0);
    CU_ASSERT_PTR_EQUAL(d.got[0], f[1]);
    CU_ASSERT_EQUAL(d.rcs[1], TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(d.rcs[2], TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(d.rcs[3], TL_ESTATE);
    CU_ASSERT_EQUAL(tl_future_done(f[0]), 0); /* never cancelled */
    tl_as_completed_free(d.it);
    for (int i = 0; i < 3; i++)
        tl_future_unref(f[i]);
    tl_test_loop_free(loop);
}

static void test_next_futures_from_callbacks_resolve_in_order(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *f[2] = {tt_future(loop), tt_future(loop)};
    tl_as_completed_t *it;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, f, 2, -1, &it), 0);
    tl_future_t *n1, *n2, *n3 = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_next_future(it, &n1), 0);
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_next_future(it, &n2), 0);
    CU_ASSERT_EQUAL(tl_as_completed_next_future(it, &n3), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_future_set_result(n1, NULL, NULL), TL_EINVAL);
    tl_future_set_result(f[1], NULL, NULL);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, n1, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, f[1]);
    CU_ASSERT_EQUAL(tl_future_done(n2), 0);
    tl_future_set_result(f[0], NULL, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, n2, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, f[0]);
    tl_future_unref(n1);
    tl_future_unref(n2);
    tl_as_completed_free(it);
    tl_future_unref(f[0]);
    tl_future_unref(f[1]);
    tl_test_loop_free(loop);
}

static void test_a_cancelled_next_future_gives_its_turn_away(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop);
    tl_as_completed_t *it;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, &a, 1, -1, &it), 0);
    tl_future_t *n1, *n2;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_next_future(it, &n1), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(n1, NULL), 1);
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_next_future(it, &n2), 0); /* room again */
    tl_future_set_result(a, NULL, NULL);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, n2, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, a);
    tl_future_unref(n1);
    tl_future_unref(n2);
    tl_as_completed_free(it);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

typedef struct one_next {
    tl_as_completed_t *it;
    tl_future_t *got;
    int rc;
} one_next_t;

static int takes_one(void *arg, void **result) {
    one_next_t *o = arg;
    (void)result;
    o->rc = tl_as_completed_next(o->it, &o->got);
    return 0;
}

/* A child is handed to a waiting task, which is cancelled before it runs:
 * the child goes back, and the next caller gets it. */
static void test_a_task_cancelled_as_it_is_handed_a_child_gives_it_back(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop), *b = tt_future(loop);
    tl_future_t *f[] = {a, b};
    tl_as_completed_t *it;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, f, 2, -1, &it), 0);
    one_next_t o1 = {it, NULL, 1}, o2 = {it, NULL, 1};
    tl_task_t *t1, *t2;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, takes_one, &o1, NULL, &t1), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* t1 waits */
    tl_future_set_result(a, NULL, NULL);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* a handed to t1's waiter */
    CU_ASSERT_EQUAL(tl_task_cancel(t1, NULL), 1);  /* before t1 resumes */
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t1)), 0);
    CU_ASSERT_EQUAL(o1.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, takes_one, &o2, NULL, &t2), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_future_done(tl_task_future(t2)), 1); /* a was there */
    tl_task_cancel(t2, NULL); /* if not, stop it rather than hang */
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t2)), 0);
    CU_ASSERT_EQUAL(o2.rc, 0);
    CU_ASSERT_PTR_EQUAL(o2.got, a);
    tl_task_unref(t1);
    tl_task_unref(t2);
    tl_as_completed_free(it);
    tl_future_unref(a);
    tl_future_unref(b);
    tl_test_loop_free(loop);
}

static void test_free_while_a_task_waits_ends_its_next(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop);
    tl_as_completed_t *it;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, &a, 1, 50 * MS, &it), 0);
    one_next_t o = {it, NULL, 1};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, takes_one, &o, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_as_completed_free(it); /* the memory goes when the next returns */
    CU_ASSERT_EQUAL(tt_run(loop, tl_task_future(t)), 0);
    CU_ASSERT_EQUAL(o.rc, TL_ECANCELLED);
    tl_task_unref(t);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_nothing_to_iterate_and_misuse(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_as_completed_t *it = NULL;
    tl_future_t *a = tt_future(loop), *w = NULL, *got = NULL;
    CU_ASSERT_EQUAL(tl_as_completed_new(loop, &a, 1, -1, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_as_completed_new(loop, NULL, 1, -1, &it), TL_EINVAL);
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, NULL, 0, 1 * MS, &it), 0);
    CU_ASSERT_EQUAL(tl_as_completed_next_future(it, &w), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_as_completed_next(it, &got), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_as_completed_next_future(NULL, &w), TL_EINVAL);
    tl_as_completed_free(it);
    tl_as_completed_free(NULL);
    tl_future_unref(a);
    tl_test_loop_free(loop);
}

static void test_as_completed_survives_each_allocation_failing(void) {
    for (long n = 1; n < 50; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_future_t *a = tt_future(loop), *b = tt_future(loop);
        tl_future_set_result(b, NULL, NULL);
        tl_future_t *f[] = {a, b};
        tl_as_completed_t *it = NULL;
        tl_test_fail_alloc_at(n);
        int rc = tl_as_completed_new(loop, f, 2, 5 * MS, &it);
        tl_test_fail_alloc_at(0);
        tl_future_set_result(a, NULL, NULL);
        if (rc == 0) {
            drain_t d = {it, {0}, {0}, 0};
            run_drain(loop, &d);
            CU_ASSERT_EQUAL(d.n, 2);
            CU_ASSERT_PTR_EQUAL(d.got[0], b);
            tl_as_completed_free(it);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_PTR_NULL(it);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        }
        tl_future_unref(a);
        tl_future_unref(b);
        tl_test_loop_free(loop);
        if (rc == 0)
            return;
    }
    CU_FAIL("as_completed never succeeded");
}

static void test_a_task_waiting_in_next_when_the_loop_closes(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_future_t *a = tt_future(loop);
    tl_as_completed_t *it;
    CU_ASSERT_EQUAL_FATAL(tl_as_completed_new(loop, &a, 1, FOREVER, &it), 0);
    one_next_t o = {it, NULL, 1};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, takes_one, &o, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(o.rc, TL_ECANCELLED);
    tl_as_completed_free(it);
    tl_task_unref(t);
    tl_future_unref(a);
}

TL_TEST_SUITE(task_as_completed,
              TL_TEST(test_children_come_out_in_completion_order),
              TL_TEST(test_children_done_before_come_first_and_repeats_once),
              TL_TEST(test_timeout_gives_etimedout_for_each_remaining_next),
              TL_TEST(test_next_futures_from_callbacks_resolve_in_order),
              TL_TEST(test_a_cancelled_next_future_gives_its_turn_away),
              TL_TEST(test_a_task_cancelled_as_it_is_handed_a_child_gives_it_back),
              TL_TEST(test_free_while_a_task_waits_ends_its_next),
              TL_TEST(test_nothing_to_iterate_and_misuse),
              TL_TEST(test_as_completed_survives_each_allocation_failing),
              TL_TEST(test_a_task_waiting_in_next_when_the_loop_closes))
