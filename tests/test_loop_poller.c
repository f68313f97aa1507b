/*
 * Pollers (tl_loop_add_poller): the hook a user-space netstack uses to be
 * polled once per iteration and to keep the loop from sleeping while it
 * has work in flight.
 */
#include <stdint.h>

#include "tl_test.h"

typedef struct counter {
    int calls;
    int busy_for; /* return 1 for this many more calls */
    tl_loop_t *remove_self_on;
    int remove_other;
    struct counter *other;
} counter_t;

static int count_poller(tl_loop_t *loop, void *ctx) {
    counter_t *c = ctx;
    c->calls++;
    if (c->remove_self_on == loop) {
        CU_ASSERT_EQUAL(tl_loop_remove_poller(loop, count_poller, c), 1);
        c->remove_self_on = NULL;
    }
    if (c->remove_other && c->other) {
        CU_ASSERT_EQUAL(tl_loop_remove_poller(loop, count_poller, c->other), 1);
        c->remove_other = 0;
    }
    if (c->busy_for > 0) {
        c->busy_for--;
        return 1;
    }
    return 0;
}

static void test_poller_runs_once_per_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t c = {0};
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.calls, 5);
    tl_test_loop_free(loop);
}

static void test_busy_poller_keeps_the_loop_from_sleeping(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t c = {.busy_for = 1000};
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    int64_t t0 = tl_now_ns();
    /* Each of these would sleep 10 s without a busy poller. */
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 10 * 1000000000LL), 0);
    CU_ASSERT(tl_now_ns() - t0 < 2 * 1000000000LL);
    CU_ASSERT_EQUAL(c.calls, 100);
    tl_test_loop_free(loop);
}

static void test_idle_poller_lets_the_loop_sleep_until_the_timeout(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t c = {0};
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    int64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 20 * 1000000LL), 0);
    CU_ASSERT(tl_now_ns() - t0 >= 19 * 1000000LL);
    CU_ASSERT_EQUAL(c.calls, 1);
    tl_test_loop_free(loop);
}

static void test_adding_the_same_poller_twice_is_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t a = {0}, b = {0};
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &a), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &a), TL_EEXIST);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &b), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(b.calls, 1);
    tl_test_loop_free(loop);
}

static void test_remove_returns_1_then_0(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t c = {0};
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_remove_poller(loop, count_poller, &c), 1);
    CU_ASSERT_EQUAL(tl_loop_remove_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.calls, 0);
    tl_test_loop_free(loop);
}

static void test_poller_can_remove_itself_and_the_next_still_runs(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t a = {0}, b = {0};
    a.remove_self_on = loop;
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &a), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &b), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(b.calls, 2);
    tl_test_loop_free(loop);
}

static void test_poller_can_remove_a_later_one_before_it_runs(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t a = {0}, b = {0}, c = {0};
    a.remove_other = 1;
    a.other = &b;
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &a), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &b), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(b.calls, 0);
    CU_ASSERT_EQUAL(c.calls, 1);
    tl_test_loop_free(loop);
}

static void test_poller_can_remove_an_earlier_one_without_running_twice(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t a = {0}, b = {0}, c = {0};
    b.remove_other = 1;
    b.other = &a;
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &a), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &b), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(b.calls, 1);
    CU_ASSERT_EQUAL(c.calls, 1);
    tl_test_loop_free(loop);
}

static void test_poller_bad_arguments_and_closed_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t c = {0};
    CU_ASSERT_EQUAL(tl_loop_add_poller(NULL, count_poller, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, NULL, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_poller(NULL, count_poller, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_poller(loop, NULL, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_remove_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_adding_a_poller_fails_cleanly_without_memory(void) {
    tl_loop_t *loop = tl_test_loop();
    counter_t c = {0};
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), TL_ENOMEM);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.calls, 0);
    CU_ASSERT_EQUAL(tl_loop_add_poller(loop, count_poller, &c), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.calls, 1);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(loop_poller,
              TL_TEST(test_poller_runs_once_per_iteration),
              TL_TEST(test_busy_poller_keeps_the_loop_from_sleeping),
              TL_TEST(test_idle_poller_lets_the_loop_sleep_until_the_timeout),
              TL_TEST(test_adding_the_same_poller_twice_is_refused),
              TL_TEST(test_remove_returns_1_then_0),
              TL_TEST(test_poller_can_remove_itself_and_the_next_still_runs),
              TL_TEST(test_poller_can_remove_a_later_one_before_it_runs),
              TL_TEST(test_poller_can_remove_an_earlier_one_without_running_twice),
              TL_TEST(test_poller_bad_arguments_and_closed_loop),
              TL_TEST(test_adding_a_poller_fails_cleanly_without_memory))
