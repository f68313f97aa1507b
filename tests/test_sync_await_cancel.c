/* sync_await_cancel: tasks cancelled while they wait in the sequential
 * forms. The form returns TL_ECANCELLED, takes nothing (the lock is not the
 * task's, no unit, no item, the queue as it was) and the next waiter still
 * gets the resource. A condition wait comes back holding the lock, however
 * often it is cancelled while taking it back. Also: freeing a condition or
 * closing the loop under waiting tasks. The cancellations that come after
 * the future completed: test_sync_await_late.c. */
#include "sync_await_test.h"

/* ---- cancelled while waiting ----------------------------------------- */

static void test_cancelled_lock_acquire_leaves_the_lock_to_the_next_waiter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    world_t w = {0};
    op_t b, c;
    test_takes_lock(&w, l);
    op_start(loop, &b, OP_LOCK, 'B', l, &w);
    op_start(loop, &c, OP_LOCK, 'C', l, &w);
    spin(loop, 1);
    ASSERT_WAITING(&b);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.cancelling, 1);
    ASSERT_WAITING(&c);
    CU_ASSERT_EQUAL(w.owner, 'T'); /* still the test's */
    test_releases_lock(&w, l);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0); /* C claimed it with nobody else holding */
    CU_ASSERT_STRING_EQUAL(w.log, "BC");
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0); /* C released it: nobody waits */
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_cancelled_event_wait_leaves_the_others_waiting(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &e), 0);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_EVENT, 'B', e, &w);
    op_start(loop, &c, OP_EVENT, 'C', e, &w);
    spin(loop, 1);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    ASSERT_WAITING(&c);
    CU_ASSERT_EQUAL(tl_event_is_set(e), 0);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_event_free(e);
    tl_test_loop_free(loop);
}

static void test_cancelled_condition_wait_returns_holding_the_lock(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_condition_t *cv = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &cv), 0);
    tl_lock_t *l = tl_condition_lock(cv);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_COND, 'B', cv, &w);
    op_start(loop, &c, OP_COND, 'C', cv, &w);
    spin(loop, 1);
    ASSERT_WAITING(&b);
    ASSERT_WAITING(&c);
    test_takes_lock(&w, l);
    op_cancel(&b);
    spin(loop, 2);
    ASSERT_WAITING(&b); /* taking the lock back: the test has it */
    /* B left the condition: the one notification goes to C. */
    CU_ASSERT_EQUAL(tl_condition_notify(cv, 1), 1);
    test_releases_lock(&w, l);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED); /* first in line for the lock */
    CU_ASSERT_EQUAL(b.locked, 1);
    ASSERT_WAITING(&c);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(c.locked, 1);
    CU_ASSERT_STRING_EQUAL(w.log, "BC");
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_condition_free(cv);
    tl_test_loop_free(loop);
}

static int never(void *ctx) {
    (*(int *)ctx)++;
    return 0;
}

static void test_cancelled_condition_wait_for_returns_holding_the_lock(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_condition_t *cv = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &cv), 0);
    world_t w = {0};
    int checks = 0;
    op_t b;
    op_init(&b, OP_COND_FOR, 'B', cv, &w);
    b.pred = never;
    b.pred_ctx = &checks;
    op_spawn(loop, &b);
    spin(loop, 1);
    ASSERT_WAITING(&b);
    CU_ASSERT_EQUAL(checks, 1);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.locked, 1);
    CU_ASSERT_EQUAL(checks, 1); /* not checked again once cancelled */
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(cv)), 0);
    op_finish(loop, &b);
    tl_condition_free(cv);
    tl_test_loop_free(loop);
}

static void test_cancelled_semaphore_acquire_takes_no_unit(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, 0, &s), 0);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_SEM, 'B', s, &w);
    op_start(loop, &c, OP_SEM, 'C', s, &w);
    spin(loop, 1);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    ASSERT_WAITING(&c);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0); /* handed to C */
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(w.max_inside, 1); /* B never counted */
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1); /* C released its unit */
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_cancelled_barrier_wait_leaves_the_round(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *br = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 3, &br), 0);
    world_t w = {0};
    op_t b, c, d, e;
    op_start(loop, &b, OP_BARRIER, 'B', br, &w);
    op_start(loop, &c, OP_BARRIER, 'C', br, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(br), 2);
    op_cancel(&b);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(br), 1); /* withdrawn at once */
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    op_start(loop, &d, OP_BARRIER, 'D', br, &w);
    op_start(loop, &e, OP_BARRIER, 'E', br, &w);
    spin(loop, 2);
    CU_ASSERT_EQUAL(c.rc, 0); /* renumbered over B */
    CU_ASSERT_EQUAL(d.rc, 1);
    CU_ASSERT_EQUAL(e.rc, 2);
    CU_ASSERT_EQUAL(tl_barrier_broken(br), 0);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(br), 0);
    op_finish(loop, &b);
    op_finish(loop, &c);
    op_finish(loop, &d);
    op_finish(loop, &e);
    tl_barrier_free(br);
    tl_test_loop_free(loop);
}

static void test_cancelled_queue_get_takes_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 2);
    world_t w = {0};
    op_t b, c;
    op_start(loop, &b, OP_GET, 'B', q, &w);
    op_start(loop, &c, OP_GET, 'C', q, &w);
    b.item = c.item = item(-1);
    spin(loop, 1);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(num(b.item), -1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(7)), 0); /* to C */
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(num(c.item), 7);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_cancelled_queue_put_puts_nothing(void) {
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
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    ASSERT_WAITING(&c);
    CU_ASSERT_EQUAL(tl_queue_qsize(q), 1);
    CU_ASSERT_EQUAL(get_now(q), 1); /* the room goes to C */
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(get_now(q), 3);
    CU_ASSERT_EQUAL(get_now(q), TL_EQUEUEEMPTY);
    /* Two items were put, so two are unfinished. */
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_cancelled_queue_join_leaves_the_count(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *q = new_queue(loop, TL_QUEUE_FIFO, 0);
    world_t w = {0};
    op_t b, c;
    CU_ASSERT_EQUAL(tl_queue_put_nowait(q, item(1)), 0);
    op_start(loop, &b, OP_JOIN, 'B', q, &w);
    op_start(loop, &c, OP_JOIN, 'C', q, &w);
    spin(loop, 1);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    ASSERT_WAITING(&c);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_EQUAL(tl_queue_task_done(q), TL_ESTATE);
    op_finish(loop, &b);
    op_finish(loop, &c);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

static void test_condition_wait_cancelled_again_and_again_retakes_the_lock(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_condition_t *cv = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &cv), 0);
    tl_lock_t *l = tl_condition_lock(cv);
    world_t w = {0};
    op_t b;
    op_start(loop, &b, OP_COND, 'B', cv, &w);
    spin(loop, 1);
    test_takes_lock(&w, l);
    for (int i = 0; i < 3; i++) { /* the wait, then two re-acquires */
        op_cancel(&b);
        spin(loop, 2);
        ASSERT_WAITING(&b);
    }
    /* Handed the lock, and cancelled once more before it ran: it gives the
     * lock back and takes it again. */
    test_releases_lock(&w, l);
    op_cancel(&b);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.locked, 1);
    CU_ASSERT_EQUAL(b.cancelling, 4);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    op_finish(loop, &b);
    tl_condition_free(cv);
    tl_test_loop_free(loop);
}

/* ---- the object or the loop goes away ----------------------------------- */

typedef struct cond_waiter {
    tl_condition_t *c;
    tl_lock_t *lock;
    int rc;
} cond_waiter_t;

/* Unlike op_task, touches neither the condition nor its lock after an
 * error: both may be gone. */
static int waits_on_condition(void *arg, void **result) {
    cond_waiter_t *x = arg;
    (void)result;
    CU_ASSERT_EQUAL(tl_lock_acquire(x->lock), 0);
    x->rc = tl_condition_wait(x->c);
    if (x->rc == 0)
        CU_ASSERT_EQUAL(tl_lock_release(x->lock), 0);
    return 0;
}

static void condition_freed_under_waiting_tasks(int own_lock) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *shared = NULL;
    if (!own_lock)
        CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &shared), 0);
    tl_condition_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, shared, &c), 0);
    tl_lock_t *l = tl_condition_lock(c);
    cond_waiter_t x[3];
    tl_task_t *t[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (cond_waiter_t){c, l, OP_RUNNING};
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, waits_on_condition, &x[i], NULL, &t[i]), 0);
    }
    spin(loop, 1);
    /* x[0] was notified and waits for the lock, x[1] waits for a
     * notification, x[2] was cancelled and waits to take the lock back. */
    world_t w = {0};
    test_takes_lock(&w, l);
    CU_ASSERT_EQUAL(tl_condition_notify(c, 1), 1);
    CU_ASSERT_EQUAL(tl_task_cancel(t[2], NULL), 1);
    spin(loop, 1);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(x[i].rc, OP_RUNNING);
    CU_ASSERT_EQUAL(tl_condition_free(c), 0);
    if (!own_lock)
        test_releases_lock(&w, l); /* to x[2], the one waiter left */
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t[i]), NULL), 0);
        tl_task_unref(t[i]);
    }
    CU_ASSERT_EQUAL(x[0].rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(x[1].rc, TL_ECANCELLED);
    if (own_lock) {
        CU_ASSERT_EQUAL(x[2].rc, TL_ECANCELLED); /* its lock is gone */
    } else {
        /* C's acquire was of the shared lock, which lives on: it holds
         * the lock again as a cancelled wait does. */
        CU_ASSERT_EQUAL(x[2].rc, TL_ECANCELLED);
        CU_ASSERT_EQUAL(tl_lock_locked(shared), 1);
        CU_ASSERT_EQUAL(tl_lock_release(shared), 0);
        CU_ASSERT_EQUAL(tl_lock_free(shared), 0);
    }
    tl_test_loop_free(loop);
}

static void test_freeing_a_condition_ends_the_waits_of_tasks(void) {
    condition_freed_under_waiting_tasks(1);
}

static void test_freeing_a_condition_with_a_shared_lock_ends_the_waits_of_tasks(void) {
    condition_freed_under_waiting_tasks(0);
}

static void test_closing_the_loop_ends_every_waiting_form(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    tl_event_t *e = NULL;
    tl_condition_t *c = NULL;
    tl_semaphore_t *s = NULL;
    tl_barrier_t *br = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &e), 0);
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, 0, &s), 0);
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 2, &br), 0);
    tl_queue_t *full = new_queue(loop, TL_QUEUE_FIFO, 1);
    tl_queue_t *empty = new_queue(loop, TL_QUEUE_FIFO, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(full, item(1)), 0);
    world_t w = {0};
    test_takes_lock(&w, l);
    op_t op[8];
    op_start(loop, &op[0], OP_LOCK, 'L', l, &w);
    op_start(loop, &op[1], OP_EVENT, 'E', e, &w);
    world_t wc = {0}; /* the condition's lock is another lock */
    op_start(loop, &op[2], OP_COND, 'C', c, &wc);
    op_start(loop, &op[3], OP_SEM, 'S', s, &w);
    op_start(loop, &op[4], OP_BARRIER, 'B', br, &w);
    op_init(&op[5], OP_PUT, 'P', full, &w);
    op[5].item = item(2);
    op_spawn(loop, &op[5]);
    op_start(loop, &op[6], OP_GET, 'G', empty, &w);
    op_start(loop, &op[7], OP_JOIN, 'J', full, &w);
    spin(loop, 1);
    for (int i = 0; i < 8; i++)
        ASSERT_WAITING(&op[i]);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0); /* each is resumed a last time */
    for (int i = 0; i < 8; i++) {
        CU_ASSERT(op[i].rc < 0);
        CU_ASSERT_EQUAL(tl_future_done(tl_task_future(op[i].task)), 1);
        tl_task_unref(op[i].task);
    }
    CU_ASSERT_EQUAL(w.owner, 'T');
    tl_lock_free(l);
    tl_event_free(e);
    tl_condition_free(c);
    tl_semaphore_free(s);
    tl_barrier_free(br);
    tl_queue_free(full);
    tl_queue_free(empty);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

TL_TEST_SUITE(sync_await_cancel,
              TL_TEST(test_cancelled_lock_acquire_leaves_the_lock_to_the_next_waiter),
              TL_TEST(test_cancelled_event_wait_leaves_the_others_waiting),
              TL_TEST(test_cancelled_condition_wait_returns_holding_the_lock),
              TL_TEST(test_cancelled_condition_wait_for_returns_holding_the_lock),
              TL_TEST(test_cancelled_semaphore_acquire_takes_no_unit),
              TL_TEST(test_cancelled_barrier_wait_leaves_the_round),
              TL_TEST(test_cancelled_queue_get_takes_nothing),
              TL_TEST(test_cancelled_queue_put_puts_nothing),
              TL_TEST(test_cancelled_queue_join_leaves_the_count),
              TL_TEST(test_condition_wait_cancelled_again_and_again_retakes_the_lock),
              TL_TEST(test_freeing_a_condition_ends_the_waits_of_tasks),
              TL_TEST(test_freeing_a_condition_with_a_shared_lock_ends_the_waits_of_tasks),
              TL_TEST(test_closing_the_loop_ends_every_waiting_form));
