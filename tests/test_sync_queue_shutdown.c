/* sync_queue_shutdown: task_done/join, Python 3.13 shutdown (plain and
 * immediate) waking blocked getters, putters and joiners, and the give-back
 * of items by sequential forms whose task was cancelled too late. */
#include <stdint.h>
#include <string.h>

#include "sync/sync_int.h"
#include "sync_test.h"

/* ---- task_done and join ----------------------------------------------- */

static void test_join_waits_for_every_item_to_be_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1); /* nothing unfinished */
    tl_future_unref(f);
    waiter_t getter, j1, j2;
    get(q, &getter, 1, NULL);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0); /* to the getter */
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), 0);
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&j1, f, 1, NULL);
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&j2, f, 2, NULL);
    CU_ASSERT_EQUAL(get_now(q), 2);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    spin(loop, 1);
    ASSERT_PENDING(&j1);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j1.rc, 0);
    CU_ASSERT_EQUAL(j2.rc, 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    unwatch(&getter);
    unwatch(&j1);
    unwatch(&j2);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_task_done_short_of_memory_wakes_joiners_on_the_next_call(void) {
    int failures = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
        waiter_t j;
        tl_future_t *f = NULL;
        CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
        watch(&j, f, 1, NULL);
        CU_ASSERT_EQUAL(get_now(q), 1);
        arm(n);
        int rc = tl_queue_task_done(q);
        int hit = disarm(n);
        if (rc == TL_ENOMEM) {
            failures++;
            CU_ASSERT_EQUAL(tl_future_done(j.f), 0);
            CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE); /* counted */
            CU_ASSERT_EQUAL(tl_future_done(j.f), 1);           /* and woken */
        } else {
            CU_ASSERT_EQUAL(rc, 0);
        }
        spin(loop, 1);
        CU_ASSERT_EQUAL(j.rc, 0);
        unwatch(&j);
        tl_queue_free(q);
        tl_test_loop_free(loop);
        if (!hit)
            break;
    }
    CU_ASSERT(failures > 0);
}

/* ---- shutdown --------------------------------------------------------- */


static void test_shutdown_fails_puts_and_lets_gets_drain_the_rest(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), 0);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 0), 0);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(3)), TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(tl_queue_put_future(q, item(3), &f), TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 2);
    CU_ASSERT_EQUAL(tl_queue_get_future(q, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_future_result(f, &v), 0);
    CU_ASSERT_EQUAL(num(v), 1);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(get_now(q), 2);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(tl_queue_get_future(q, &f), TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(destroyed[1] + destroyed[2], 0);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 0), 0); /* again */
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_shutdown_wakes_blocked_getters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    waiter_t a, b;
    get(q, &a, 1, NULL);
    get(q, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 0), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(b.rc, TL_EQUEUESHUTDOWN);
    unwatch(&a);
    unwatch(&b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_shutdown_wakes_blocked_putters_without_their_items(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    waiter_t a, b;
    put(q, &a, 2, NULL);
    put(q, &b, 3, NULL);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 0), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(b.rc, TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    CU_ASSERT_EQUAL(get_now(q), 1);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUESHUTDOWN);
    tl_queue_free(q);
    CU_ASSERT_EQUAL(destroyed[2] + destroyed[3], 0); /* still the putters' */
    unwatch(&a);
    unwatch(&b);
    tl_test_loop_free(loop);
}

static void test_immediate_shutdown_drops_the_items_as_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 0);
    for (int i = 1; i <= 3; i++)
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(i)), 0);
    CU_ASSERT_EQUAL(get_now(q), 1); /* in a consumer's hands */
    waiter_t j;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&j, f, 1, NULL);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 1), 0);
    CU_ASSERT_EQUAL(destroyed[1], 0);
    CU_ASSERT_EQUAL(destroyed[2], 1);
    CU_ASSERT_EQUAL(destroyed[3], 1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUESHUTDOWN);
    spin(loop, 1);
    ASSERT_PENDING(&j); /* item 1 is not done yet */
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j.rc, 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    unwatch(&j);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_immediate_shutdown_after_a_plain_one_drops_what_is_left(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), 0);
    waiter_t j;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&j, f, 1, NULL);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 0), 0);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 2);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 1), 0);
    CU_ASSERT_EQUAL(destroyed[1] + destroyed[2], 2);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j.rc, 0); /* nothing was in anyone's hands */
    unwatch(&j);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_shutdown_short_of_memory_wakes_the_rest_on_the_next_call(void) {
    int failures = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
        waiter_t a, b;
        get(q, &a, 1, NULL);
        get(q, &b, 2, NULL);
        arm(n);
        int rc = tl_queue_shutdown(q, 0);
        int hit = disarm(n);
        if (rc == TL_ENOMEM) {
            failures++;
            CU_ASSERT_EQUAL(tl_future_done(b.f), 0);
            CU_ASSERT_EQUAL(get_now(q), TL_EQUEUESHUTDOWN); /* shut down */
            CU_ASSERT_EQUAL(tl_future_done(b.f), 1);        /* and woken */
        } else {
            CU_ASSERT_EQUAL(rc, 0);
        }
        spin(loop, 1);
        CU_ASSERT_EQUAL(a.rc, TL_EQUEUESHUTDOWN);
        CU_ASSERT_EQUAL(b.rc, TL_EQUEUESHUTDOWN);
        unwatch(&a);
        unwatch(&b);
        tl_queue_free(q);
        tl_test_loop_free(loop);
        if (!hit)
            break;
    }
    CU_ASSERT(failures > 0);
}

/* ---- giving back after a late cancellation ----------------------------
 * What the sequential forms do when a task is cancelled after its future
 * was completed: checked here through the internal entry points, since
 * tasks are not needed to reach them. */

static void test_an_item_given_back_goes_to_the_next_getter_or_the_front(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *fifo = new_queue(loop, TL_QUEUE_FIFO, 0);
    tl_queue_t *lifo = new_queue(loop, TL_QUEUE_LIFO, 0);
    int calls = 0;
    tl_queue_options_t o = {sizeof o, TL_QUEUE_PRIORITY, 0, by_priority, &calls, NULL};
    tl_queue_t *prio = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &prio), 0);
    /* To the oldest live getter. */
    waiter_t a, b;
    get(fifo, &a, 1, NULL);
    get(fifo, &b, 2, NULL);
    tl_future_cancel(a.f, NULL);
    CU_ASSERT_EQUAL(tl__queue_unget(fifo, item(5)), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(num(b.value), 5);
    /* Else back where the next get finds it first. */
    for (int i = 1; i <= 3; i++) {
        tl_queue_put_nowait(fifo, item(i));
        tl_queue_put_nowait(lifo, item(i));
        tl_queue_put_nowait(prio, item(1000 + i)); /* equal priorities */
    }
    CU_ASSERT_EQUAL(get_now(fifo), 1);
    CU_ASSERT_EQUAL(tl__queue_unget(fifo, item(1)), 0);
    CU_ASSERT_EQUAL(get_now(lifo), 3);
    CU_ASSERT_EQUAL(tl__queue_unget(lifo, item(3)), 0);
    CU_ASSERT_EQUAL(get_now(prio), 1001);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(prio, item(1004)), 0);
    CU_ASSERT_EQUAL(tl__queue_unget(prio, item(1001)), 0);
    for (int i = 1; i <= 3; i++) {
        CU_ASSERT_EQUAL(get_now(fifo), i);
        CU_ASSERT_EQUAL(get_now(lifo), 4 - i);
        CU_ASSERT_EQUAL(get_now(prio), 1000 + i);
    }
    CU_ASSERT_EQUAL(get_now(prio), 1004);
    unwatch(&a);
    unwatch(&b);
    tl_queue_free(fifo);
    tl_queue_free(lifo);
    tl_queue_free(prio);
    tl_test_loop_free(loop);
}

static void test_an_item_given_back_after_an_immediate_shutdown_is_dropped_as_done(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    CU_ASSERT_EQUAL(get_now(q), 1);
    waiter_t j;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&j, f, 1, NULL);
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 1), 0);
    CU_ASSERT_EQUAL(tl__queue_unget(q, item(1)), 0);
    CU_ASSERT_EQUAL(destroyed[1], 1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j.rc, 0);
    unwatch(&j);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_an_item_taken_back_frees_its_room_for_the_next_putter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 2);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(2)), 0);
    waiter_t late, next;
    put(q, &late, 3, NULL);
    put(q, &next, 4, NULL);
    CU_ASSERT_EQUAL(get_now(q), 1); /* 3 moves in: [2, 3] */
    CU_ASSERT_EQUAL(tl_future_done(late.f), 1);
    CU_ASSERT_EQUAL(tl__queue_unput(q, item(3)), 0); /* [2], then 4 moves in */
    CU_ASSERT_EQUAL(tl_future_done(next.f), 1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 2);
    CU_ASSERT_EQUAL(get_now(q), 2);
    CU_ASSERT_EQUAL(get_now(q), 4);
    /* Already taken by a getter: the put stands. */
    CU_ASSERT_EQUAL(tl__queue_unput(q, item(4)), TL_ESTATE);
    /* Unfinished count: 1, 2, 4 were put and stay put; 3 was taken back. */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    /* Without a putter waiting, the count drops and a joiner can finish. */
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(7)), 0);
    waiter_t j;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &f), 0);
    watch(&j, f, 1, NULL);
    CU_ASSERT_EQUAL(tl__queue_unput(q, item(7)), 0);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(j.rc, 0);
    unwatch(&j);
    unwatch(&late);
    unwatch(&next);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

/* A give-back can leave a bounded queue one over maxsize; a get then
 * brings it back to full, which is no room for a putter. */
static void test_a_queue_over_maxsize_makes_no_room_for_putters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    waiter_t p2, p3;
    put(q, &p2, 2, NULL);
    CU_ASSERT_EQUAL(get_now(q), 1); /* 2 moves in */
    put(q, &p3, 3, NULL);
    CU_ASSERT_EQUAL(tl__queue_unget(q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 2);
    CU_ASSERT_EQUAL(tl_queue_full(q), 1);
    CU_ASSERT_EQUAL(get_now(q), 1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    CU_ASSERT_EQUAL(tl_future_done(p3.f), 0);
    CU_ASSERT_EQUAL(get_now(q), 2); /* now there is room */
    CU_ASSERT_EQUAL(tl_future_done(p3.f), 1);
    CU_ASSERT_EQUAL(get_now(q), 3);
    spin(loop, 1);
    unwatch(&p2);
    unwatch(&p3);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_priority_item_taken_back_keeps_the_heap_in_order(void) {
    tl_loop_t *loop = tl_test_loop();
    int calls = 0;
    tl_queue_options_t o = {sizeof o, TL_QUEUE_PRIORITY, 0, by_priority, &calls, NULL};
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
    int vals[] = {5003, 1001, 4002, 2005, 3004, 1006, 6007, 2008};
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(vals[i])), 0);
    CU_ASSERT_EQUAL(tl__queue_unput(q, item(2005)), 0);
    CU_ASSERT_EQUAL(tl__queue_unput(q, item(9999)), TL_ESTATE);
    int want[] = {1001, 1006, 2008, 3004, 4002, 5003, 6007};
    for (int i = 0; i < 7; i++)
        CU_ASSERT_EQUAL(get_now(q), want[i]);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(sync_queue_shutdown,
              TL_TEST(test_join_waits_for_every_item_to_be_done),
              TL_TEST(test_task_done_short_of_memory_wakes_joiners_on_the_next_call),
              TL_TEST(test_shutdown_fails_puts_and_lets_gets_drain_the_rest),
              TL_TEST(test_shutdown_wakes_blocked_getters),
              TL_TEST(test_shutdown_wakes_blocked_putters_without_their_items),
              TL_TEST(test_immediate_shutdown_drops_the_items_as_done),
              TL_TEST(test_immediate_shutdown_after_a_plain_one_drops_what_is_left),
              TL_TEST(test_shutdown_short_of_memory_wakes_the_rest_on_the_next_call),
              TL_TEST(test_an_item_given_back_goes_to_the_next_getter_or_the_front),
              TL_TEST(test_an_item_given_back_after_an_immediate_shutdown_is_dropped_as_done),
              TL_TEST(test_an_item_taken_back_frees_its_room_for_the_next_putter),
              TL_TEST(test_a_queue_over_maxsize_makes_no_room_for_putters),
              TL_TEST(test_priority_item_taken_back_keeps_the_heap_in_order));
