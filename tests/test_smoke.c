/* smoke: the loop runs callbacks, timers and futures end to end. */
#include "tl_test.h"

static void incr(void *ctx) { (*(int *)ctx)++; }
static void cancel_it(void *f) { tl_future_cancel(f, "enough"); }

static void test_callbacks_timers_and_futures_run(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000000, incr, &n, NULL), 0);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    tl_handle_t h;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2000000, cancel_it, f, &h), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), TL_ECANCELLED);
    CU_ASSERT_EQUAL(n, 2);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(smoke, TL_TEST(test_callbacks_timers_and_futures_run))
