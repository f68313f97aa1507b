/* sync_await: the sequential forms refuse to run outside a task
 * (TL_ENOTASK) and leave the object as it was. Their behaviour inside tasks
 * is tested with the task suites. */
#include "sync_test.h"

static int always(void *ctx) {
    (void)ctx;
    return 1;
}

static void test_sequential_forms_need_a_task(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    tl_event_t *e = NULL;
    tl_condition_t *c = NULL;
    tl_semaphore_t *s = NULL;
    tl_barrier_t *b = NULL;
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &e), 0);
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, 1, &s), 0);
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 1, &b), 0);
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, NULL, &q), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, (void *)1), 0);
    tl_event_set(e);
    void *v = NULL;
    long allocs = tl_test_alloc_count();
    CU_ASSERT_EQUAL(tl_lock_acquire(l), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_event_wait(e), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_condition_wait(c), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_condition_wait_for(c, always, NULL), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_semaphore_acquire(s), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_barrier_wait(b), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_queue_put(q, (void *)2), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_queue_get(q, &v), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_queue_join(q), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_test_alloc_count(), allocs); /* nothing started */
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    tl_lock_free(l);
    tl_event_free(e);
    tl_condition_free(c);
    tl_semaphore_free(s);
    tl_barrier_free(b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(sync_await, TL_TEST(test_sequential_forms_need_a_task));

