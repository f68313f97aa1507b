/* sync_event: asyncio.Event through its future form: set wakes every
 * waiter, clear re-arms, cancelled waiters are skipped, freeing, memory. */
#include "sync_test.h"

static tl_event_t *new_event(tl_loop_t *loop) {
    tl_event_t *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &e), 0);
    return e;
}

static void wait_on(tl_event_t *e, waiter_t *w, int id, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_event_wait_future(e, &f), 0);
    watch(w, f, id, log);
}

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = NULL;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_event_new(NULL, &e), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_new(loop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_free(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_set(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_clear(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_is_set(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_wait_future(NULL, &f), TL_EINVAL);
    e = new_event(loop);
    CU_ASSERT_EQUAL(tl_event_wait_future(e, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_is_set(e), 0);
    tl_event_free(e);
    tl_test_loop_free(loop);
}

static void test_set_wakes_every_waiter_in_order(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = new_event(loop);
    wlog_t log = {0};
    waiter_t w[5];
    for (int i = 0; i < 5; i++)
        wait_on(e, &w[i], i, &log);
    spin(loop, 2);
    CU_ASSERT_EQUAL(log.n, 0);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    CU_ASSERT_EQUAL(tl_event_is_set(e), 1);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 5);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(log.ids[i], i);
        CU_ASSERT_EQUAL(w[i].rc, 0);
        unwatch(&w[i]);
    }
    tl_event_free(e);
    tl_test_loop_free(loop);
}

static void test_wait_on_a_set_event_is_done_at_once_until_clear(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = new_event(loop);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    CU_ASSERT_EQUAL(tl_event_set(e), 0); /* again: nothing changes */
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_event_wait_future(e, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_event_clear(e), 0);
    CU_ASSERT_EQUAL(tl_event_is_set(e), 0);
    waiter_t w;
    wait_on(e, &w, 1, NULL);
    spin(loop, 1);
    ASSERT_PENDING(&w);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(w.rc, 0);
    unwatch(&w);
    tl_event_free(e);
    tl_test_loop_free(loop);
}

static void test_clear_right_after_set_still_wakes_the_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = new_event(loop);
    waiter_t w;
    wait_on(e, &w, 1, NULL);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    CU_ASSERT_EQUAL(tl_event_clear(e), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(w.rc, 0);
    unwatch(&w);
    tl_event_free(e);
    tl_test_loop_free(loop);
}

static void test_a_cancelled_waiter_is_not_woken(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = new_event(loop);
    waiter_t a, b;
    wait_on(e, &a, 1, NULL);
    wait_on(e, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_future_cancel(a.f, NULL), 1);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    unwatch(&a);
    unwatch(&b);
    tl_event_free(e);
    tl_test_loop_free(loop);
}

static void test_free_cancels_the_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = new_event(loop);
    waiter_t a;
    wait_on(e, &a, 1, NULL);
    CU_ASSERT_EQUAL(tl_event_free(e), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    unwatch(&a);
    tl_test_loop_free(loop);
}

typedef struct foreign {
    tl_event_t *e;
    int rc[5];
} foreign_t;

static void foreign_calls(void *ctx) {
    foreign_t *t = ctx;
    tl_future_t *f = NULL;
    t->rc[0] = tl_event_set(t->e);
    t->rc[1] = tl_event_clear(t->e);
    t->rc[2] = tl_event_is_set(t->e);
    t->rc[3] = tl_event_wait_future(t->e, &f);
    t->rc[4] = tl_event_free(t->e);
}

static void test_other_threads_and_closed_loops_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = new_event(loop);
    foreign_t t = {e, {0}};
    on_other_thread(foreign_calls, &t);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(t.rc[i], TL_EWRONGTHREAD);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_event_wait_future(e, &f), 0);
    tl_loop_close(loop);
    CU_ASSERT_EQUAL(tl_event_set(e), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_event_is_set(e), 0);
    CU_ASSERT_EQUAL(tl_event_free(e), 0);
    tl_future_unref(f);
    tl_loop_unref(loop);
}

/* ---- running out of memory -------------------------------------------- */

static void test_new_and_wait_survive_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1; n < WALK_MAX; n++) {
        tl_event_t *e = NULL;
        arm(n);
        int rc = tl_event_new(loop, &e);
        int hit = disarm(n);
        if (rc == 0)
            tl_event_free(e);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        if (!hit)
            break;
    }
    tl_event_t *e = new_event(loop);
    for (int set = 0; set < 2; set++) {
        for (long n = 1; n < WALK_MAX; n++) {
            tl_future_t *f = NULL;
            arm(n);
            int rc = tl_event_wait_future(e, &f);
            int hit = disarm(n);
            if (rc == 0) {
                CU_ASSERT_EQUAL(tl_future_done(f), set);
                tl_future_unref(f);
            } else {
                CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            }
            if (!hit)
                break;
        }
        tl_event_set(e);
    }
    tl_event_free(e);
    tl_test_loop_free(loop);
}

/* A set that cannot wake every waiter still sets the event, reports
 * TL_ENOMEM, and the next call on the event wakes the rest, even a clear. */
static void test_set_short_of_memory_wakes_the_rest_on_the_next_call(void) {
    int failures = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_event_t *e = new_event(loop);
        waiter_t w[3];
        for (int i = 0; i < 3; i++)
            wait_on(e, &w[i], i, NULL);
        arm(n);
        int rc = tl_event_set(e);
        int hit = disarm(n);
        CU_ASSERT_EQUAL(tl_event_is_set(e), 1);
        if (rc == TL_ENOMEM) {
            failures++;
            CU_ASSERT_EQUAL(tl_future_done(w[2].f), 0);
            CU_ASSERT_EQUAL(tl_event_clear(e), 0);
        } else {
            CU_ASSERT_EQUAL(rc, 0);
        }
        spin(loop, 1);
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(w[i].rc, 0);
            unwatch(&w[i]);
        }
        tl_event_free(e);
        tl_test_loop_free(loop);
        if (!hit)
            break;
    }
    CU_ASSERT(failures > 0);
}

TL_TEST_SUITE(sync_event,
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_set_wakes_every_waiter_in_order),
              TL_TEST(test_wait_on_a_set_event_is_done_at_once_until_clear),
              TL_TEST(test_clear_right_after_set_still_wakes_the_waiters),
              TL_TEST(test_a_cancelled_waiter_is_not_woken),
              TL_TEST(test_free_cancels_the_waiters),
              TL_TEST(test_other_threads_and_closed_loops_are_refused),
              TL_TEST(test_new_and_wait_survive_allocation_failures),
              TL_TEST(test_set_short_of_memory_wakes_the_rest_on_the_next_call));
