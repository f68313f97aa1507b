/* sync_await_late: a task cancelled after the future it awaited in a
 * sequential form was completed, but before the task ran again (the window
 * of asyncio's _must_cancel). What the future got is given back, so that it
 * reaches the next waiter as if this one had been skipped: the lock or the
 * unit to the next acquirer (or back: never locked by nobody), the item to
 * the next getter (or back to the front of the queue, or dropped after an
 * immediate shutdown), the room of a put to the next putter (or back), the
 * notification to the next condition waiter; and the form returns
 * TL_ECANCELLED. A put whose item a getter already has stands, and the
 * cancellation stays pending for the task's next suspension. */
#include "sync_await_test.h"

static void test_lock_handed_to_a_cancelled_task_goes_to_the_next_waiter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    world_t w = {0};
    op_t b, c;
    test_takes_lock(&w, l);
    op_start(loop, &b, OP_LOCK, 'B', l, &w);
    op_start(loop, &c, OP_LOCK, 'C', l, &w);
    spin(loop, 1);
    test_releases_lock(&w, l); /* B's now: its future is done */
    op_cancel(&b);             /* before B ran */
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.locked, 1); /* given on to C */
    ASSERT_WAITING(&c);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(w.log, "BC");
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_lock_handed_to_a_cancelled_task_and_nobody_else_is_unlocked(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    world_t w = {0};
    op_t b, d;
    test_takes_lock(&w, l);
    op_start(loop, &b, OP_LOCK, 'B', l, &w);
    spin(loop, 1);
    test_releases_lock(&w, l);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.locked, 0); /* not locked by nobody */
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    op_start(loop, &d, OP_LOCK, 'D', l, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(d.rc, 0);
    op_finish(loop, &b);
    op_finish(loop, &d);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* A task holding the lock releases it and, in the same step, cancels the
 * waiter it was just handed to. */
typedef struct releaser {
    tl_lock_t *l;
    op_t *victim;
    world_t *w;
} releaser_t;

static int release_then_cancel(void *arg, void **result) {
    releaser_t *r = arg;
    (void)result;
    CU_ASSERT_EQUAL(tl_lock_acquire(r->l), 0);
    claim_lock(r->w, 'A');
    CU_ASSERT_EQUAL(tl_yield(), 0); /* the others queue up */
    drop_lock(r->w, r->l, 'A');
    CU_ASSERT_EQUAL(tl_task_cancel(r->victim->task, "late"), 1);
    return 0;
}

static void test_lock_released_and_cancelled_by_another_task_goes_on(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    world_t w = {0};
    op_t b, c;
    releaser_t r = {l, &b, &w};
    tl_task_t *a;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, release_then_cancel, &r, NULL, &a), 0);
    op_start(loop, &b, OP_LOCK, 'B', l, &w);
    op_start(loop, &c, OP_LOCK, 'C', l, &w);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(a), NULL), 0);
    op_finish(loop, &b);
    op_finish(loop, &c);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_STRING_EQUAL(w.log, "BC");
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    tl_task_unref(a);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_semaphore_unit_handed_to_a_cancelled_task_goes_on(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, 0, &s), 0);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_SEM, 'B', s, &w);
    op_start(loop, &c, OP_SEM, 'C', s, &w);
    c.keep = 1;
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0); /* to B */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0); /* given on to C */
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(w.inside, 1);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0); /* C keeps it */
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1); /* one unit in all */
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_bounded_semaphore_unit_given_back_counts_again(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_bounded_semaphore_new(loop, 1, &s), 0);
    world_t w = {0};
    op_t a, b, d;
    op_start(loop, &a, OP_SEM, 'A', s, &w);
    a.keep = 1;
    op_start(loop, &b, OP_SEM, 'B', s, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, 0);
    ASSERT_WAITING(&b);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0); /* A's unit, to B */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1); /* back, within its bound */
    CU_ASSERT_EQUAL(tl_semaphore_release(s), TL_ERANGE);
    op_start(loop, &d, OP_SEM, 'D', s, &w);
    d.keep = 1;
    spin(loop, 1);
    CU_ASSERT_EQUAL(d.rc, 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    op_finish(loop, &a);
    op_finish(loop, &b);
    op_finish(loop, &d);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_item_got_by_a_cancelled_task_goes_to_the_next_getter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_GET, 'B', q, &w);
    op_start(loop, &c, OP_GET, 'C', q, &w);
    b.item = item(-1);
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(5)), 0); /* to B */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(num(b.item), -1);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0); /* handed on, not queued */
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(num(c.item), 5);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0); /* one item, one count */
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

/* Nobody else waits: the item goes back where the next get finds it. */
static void item_given_back_to_the_queue(tl_queue_order_t order) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, order, 2);
    world_t w = {0};
    op_t b;
    op_start(loop, &b, OP_GET, 'B', q, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(5)), 0); /* to B */
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(6)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(7)), 0);
    CU_ASSERT_EQUAL(tl_queue_full(q), 1);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 3); /* not lost, even past maxsize */
    CU_ASSERT_EQUAL(get_now(q), 5);
    if (order == TL_QUEUE_FIFO) {
        CU_ASSERT_EQUAL(get_now(q), 6);
        CU_ASSERT_EQUAL(get_now(q), 7);
    } else {
        CU_ASSERT_EQUAL(get_now(q), 7);
        CU_ASSERT_EQUAL(get_now(q), 6);
    }
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_item_got_by_a_cancelled_task_goes_back_to_the_front(void) {
    item_given_back_to_the_queue(TL_QUEUE_FIFO);
    item_given_back_to_the_queue(TL_QUEUE_LIFO);
}

static void test_item_got_by_a_cancelled_task_after_immediate_shutdown_is_dropped(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_owning_queue(loop, 0);
    world_t w = {0};
    op_t b;
    op_start(loop, &b, OP_GET, 'B', q, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(5)), 0); /* to B */
    CU_ASSERT_EQUAL(tl_queue_shutdown(q, 1), 0);
    tl_future_t *join = NULL;
    CU_ASSERT_EQUAL(tl_queue_join_future(q, &join), 0);
    CU_ASSERT_EQUAL(tl_future_done(join), 0); /* 5 is unfinished */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(destroyed[5], 1); /* as the shutdown would have */
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    CU_ASSERT_EQUAL(tl_future_done(join), 1); /* the drop counted as task_done */
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    tl_future_unref(join);
    op_finish(loop, &b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_item_put_by_a_cancelled_task_makes_room_for_the_next_putter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    world_t w = {0};
    op_t b, c;
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    op_init(&b, OP_PUT, 'B', q, &w);
    op_init(&c, OP_PUT, 'C', q, &w);
    b.item = item(2);
    c.item = item(3);
    op_spawn(loop, &b);
    op_spawn(loop, &c);
    spin(loop, 1);
    CU_ASSERT_EQUAL(get_now(q), 1); /* B's 2 moves in, B's future is done */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED); /* 2 taken back, C's 3 in */
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(get_now(q), 3);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0); /* 1 */
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0); /* 3 */
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_item_put_by_a_cancelled_task_is_taken_back(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    world_t w = {0};
    op_t b, j;
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    op_init(&b, OP_PUT, 'B', q, &w);
    b.item = item(2);
    op_spawn(loop, &b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(get_now(q), 1);
    op_cancel(&b);
    op_start(loop, &j, OP_JOIN, 'J', q, &w); /* 1 and 2 unfinished */
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    ASSERT_WAITING(&j);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0); /* 1: nothing else unfinished */
    spin(loop, 1);
    CU_ASSERT_EQUAL(j.rc, 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    op_finish(loop, &j);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_item_put_by_a_cancelled_task_is_taken_back_from_a_priority_queue(void) {
    tl_loop_t *loop = tl_test_loop();
    int calls = 0;
    tl_queue_options_t o = {sizeof o, TL_QUEUE_PRIORITY, 2, by_priority, &calls, NULL};
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
    world_t w = {0};
    op_t b, c;
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1001)), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(3001)), 0);
    op_init(&b, OP_PUT, 'B', q, &w);
    op_init(&c, OP_PUT, 'C', q, &w);
    b.item = item(2001);
    c.item = item(4001);
    op_spawn(loop, &b);
    op_spawn(loop, &c);
    spin(loop, 1);
    CU_ASSERT_EQUAL(get_now(q), 1001); /* 2001 moves in */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED); /* 2001 out, 4001 in */
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(get_now(q), 3001);
    CU_ASSERT_EQUAL(get_now(q), 4001);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_item_put_by_a_cancelled_task_that_a_getter_has_stays_put(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 1);
    world_t w = {0};
    op_t b;
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    op_init(&b, OP_PUT, 'B', q, &w);
    b.item = item(2);
    b.probe = 1;
    op_spawn(loop, &b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(get_now(q), 1);
    CU_ASSERT_EQUAL(get_now(q), 2); /* B's item is the getter's now */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, 0); /* so the put stands */
    CU_ASSERT_EQUAL(b.cancelling, 1);
    /* The request is not lost: the task's next suspension reports it. */
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.probe_rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_notification_of_a_cancelled_task_is_passed_on(void) {
    /* B was notified and handed the lock, then cancelled before it ran. */
    tl_loop_t *loop = tl_test_loop();
    tl_condition_t *cv = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &cv), 0);
    tl_lock_t *l = tl_condition_lock(cv);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_COND, 'B', cv, &w);
    op_start(loop, &c, OP_COND, 'C', cv, &w);
    spin(loop, 1);
    test_takes_lock(&w, l);
    CU_ASSERT_EQUAL(tl_condition_notify(cv, 1), 1);
    test_releases_lock(&w, l); /* B's now */
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.locked, 1); /* returned holding it, then released */
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0); /* woken by B's notification */
    CU_ASSERT_STRING_EQUAL(w.log, "BC");
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_condition_free(cv);
    tl_test_loop_free(loop);
}

static void test_notification_of_a_task_cancelled_before_it_got_the_lock_is_passed_on(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_condition_t *cv = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &cv), 0);
    tl_lock_t *l = tl_condition_lock(cv);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_COND, 'B', cv, &w);
    op_start(loop, &c, OP_COND, 'C', cv, &w);
    spin(loop, 1);
    test_takes_lock(&w, l);
    CU_ASSERT_EQUAL(tl_condition_notify(cv, 1), 1); /* B queues for the lock */
    op_cancel(&b); /* C is queued for it in B's place */
    spin(loop, 1); /* B queues for the lock again, behind C */
    CU_ASSERT_EQUAL(tl_condition_notify(cv, 1), 0);
    test_releases_lock(&w, l);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.locked, 1);
    CU_ASSERT_STRING_EQUAL(w.log, "CB");
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_condition_free(cv);
    tl_test_loop_free(loop);
}

static void test_late_cancel_of_event_barrier_and_join_waits(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = NULL;
    tl_barrier_t *br = NULL;
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &e), 0);
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 2, &br), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    world_t w = {0};
    op_t ev, b1, b2, j, after[3];
    op_start(loop, &ev, OP_EVENT, 'E', e, &w);
    op_start(loop, &b1, OP_BARRIER, 'B', br, &w);
    op_start(loop, &j, OP_JOIN, 'J', q, &w);
    spin(loop, 1);
    op_start(loop, &b2, OP_BARRIER, 'C', br, &w);
    spin(loop, 1); /* C fills the round: B's future is done */
    CU_ASSERT_EQUAL(b2.rc, 1);
    ASSERT_WAITING(&b1);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    op_cancel(&ev);
    op_cancel(&b1);
    op_cancel(&j);
    spin(loop, 1);
    CU_ASSERT_EQUAL(ev.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b1.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(j.rc, TL_ECANCELLED);
    /* Nothing to give back, and nothing disturbed. */
    CU_ASSERT_EQUAL(tl_event_is_set(e), 1);
    CU_ASSERT_EQUAL(tl_barrier_broken(br), 0);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(br), 0);
    op_start(loop, &after[0], OP_EVENT, 'e', e, &w);
    op_start(loop, &after[1], OP_BARRIER, 'b', br, &w);
    op_start(loop, &after[2], OP_JOIN, 'j', q, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(after[0].rc, 0);
    ASSERT_WAITING(&after[1]); /* the first party of a new round */
    CU_ASSERT_EQUAL(after[2].rc, 0);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(br), 1);
    CU_ASSERT_EQUAL(tl_barrier_reset(br), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(after[1].rc, TL_EBROKEN);
    op_t *all[] = {&ev, &b1, &b2, &j, &after[0], &after[1], &after[2]};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        op_finish(loop, all[i]);
    tl_event_free(e);
    tl_barrier_free(br);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(sync_await_late,
              TL_TEST(test_lock_handed_to_a_cancelled_task_goes_to_the_next_waiter),
              TL_TEST(test_lock_handed_to_a_cancelled_task_and_nobody_else_is_unlocked),
              TL_TEST(test_lock_released_and_cancelled_by_another_task_goes_on),
              TL_TEST(test_semaphore_unit_handed_to_a_cancelled_task_goes_on),
              TL_TEST(test_bounded_semaphore_unit_given_back_counts_again),
              TL_TEST(test_item_got_by_a_cancelled_task_goes_to_the_next_getter),
              TL_TEST(test_item_got_by_a_cancelled_task_goes_back_to_the_front),
              TL_TEST(test_item_got_by_a_cancelled_task_after_immediate_shutdown_is_dropped),
              TL_TEST(test_item_put_by_a_cancelled_task_makes_room_for_the_next_putter),
              TL_TEST(test_item_put_by_a_cancelled_task_is_taken_back),
              TL_TEST(test_item_put_by_a_cancelled_task_is_taken_back_from_a_priority_queue),
              TL_TEST(test_item_put_by_a_cancelled_task_that_a_getter_has_stays_put),
              TL_TEST(test_notification_of_a_cancelled_task_is_passed_on),
              TL_TEST(test_notification_of_a_task_cancelled_before_it_got_the_lock_is_passed_on),
              TL_TEST(test_late_cancel_of_event_barrier_and_join_waits));
