/* sync_await: the sequential forms of the sync primitives waiting in real
 * tasks and succeeding (the lock passes in FIFO order with one owner at a
 * time, events wake every waiter, a condition wait returns holding the
 * lock, wait_for re-checks its predicate, semaphores admit `value` tasks,
 * barrier rounds number their parties), the errors they report, and their
 * refusal to run outside a task. Queues: test_sync_await_queue.c; cancellation while waiting:
 * test_sync_await_cancel.c; after the future completed:
 * test_sync_await_late.c; running out of memory: test_sync_await_nomem.c. */
#include "sync_await_test.h"

static int always(void *ctx) {
    (void)ctx;
    return 1;
}

/* ---- outside a task ------------------------------------------------- */

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
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    CU_ASSERT_PTR_NULL(v);
    tl_lock_free(l);
    tl_event_free(e);
    tl_condition_free(c);
    tl_semaphore_free(s);
    tl_barrier_free(b);
    tl_queue_free(q);
    tl_test_loop_free(loop);
}

/* Every object in the state where the form would wait. */
typedef struct busy {
    tl_lock_t *l;
    tl_event_t *e;
    tl_condition_t *c;
    tl_semaphore_t *s;
    tl_barrier_t *b;
    tl_queue_t *full, *empty;
    long allocs;
    int ran;
} busy_t;

/* A loop callback is not a task, even while the loop runs. */
static void forms_from_a_callback(void *arg) {
    busy_t *x = arg;
    void *v = item(-1);
    x->allocs = tl_test_alloc_count();
    CU_ASSERT_PTR_NOT_NULL(tl_loop_get_running());
    CU_ASSERT_PTR_NULL(tl_task_current());
    CU_ASSERT_EQUAL(tl_lock_acquire(x->l), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_event_wait(x->e), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_condition_wait(x->c), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_condition_wait_for(x->c, always, NULL), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_semaphore_acquire(x->s), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_barrier_wait(x->b), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_queue_put(x->full, item(2)), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_queue_get(x->empty, &v), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_queue_join(x->full), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_test_alloc_count(), x->allocs);
    CU_ASSERT_EQUAL(num(v), -1);
    x->ran = 1;
}

static void test_sequential_forms_in_a_callback_refuse_to_wait_and_change_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    busy_t x = {0};
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &x.l), 0);
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &x.e), 0);
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &x.c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, 0, &x.s), 0);
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 2, &x.b), 0);
    x.full = new_queue(loop, TL_QUEUE_FIFO, 1);
    x.empty = new_queue(loop, TL_QUEUE_FIFO, 1);
    world_t w = {0};
    test_takes_lock(&w, x.l);
    w.owner = 0;
    test_takes_lock(&w, tl_condition_lock(x.c));
    CU_ASSERT_EQUAL(tl_queue_put_nowait(x.full, item(1)), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, forms_from_a_callback, &x, NULL), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(x.ran, 1);
    /* Nothing queued: each release finds no waiter and unlocks. */
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(x.c)), 1); /* not released */
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), 0);
    CU_ASSERT_EQUAL(tl_lock_release(tl_condition_lock(x.c)), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(x.c)), 0);
    CU_ASSERT_EQUAL(tl_semaphore_release(x.s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(x.s), 1);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(x.b), 0);
    CU_ASSERT_EQUAL(tl_queue_qsize(x.full), 1);
    CU_ASSERT_EQUAL(get_now(x.full), 1);
    CU_ASSERT_EQUAL(get_now(x.full), TL_EQUEUEEMPTY); /* 2 was never put */
    CU_ASSERT_EQUAL(tl_queue_put_nowait(x.empty, item(3)), 0);
    CU_ASSERT_EQUAL(get_now(x.empty), 3); /* no getter was queued */
    tl_lock_free(x.l);
    tl_event_free(x.e);
    tl_condition_free(x.c);
    tl_semaphore_free(x.s);
    tl_barrier_free(x.b);
    tl_queue_free(x.full);
    tl_queue_free(x.empty);
    tl_test_loop_free(loop);
}

/* ---- errors --------------------------------------------------------- */

typedef struct errs {
    tl_condition_t *c;
    tl_barrier_t *b;
    tl_queue_t *q;
    int done;
} errs_t;

/* Errors detected at the call come back at once, from inside a task. */
static int makes_bad_calls(void *arg, void **result) {
    errs_t *x = arg;
    (void)result;
    void *v = item(-1);
    CU_ASSERT_EQUAL(tl_lock_acquire(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_event_wait(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_acquire(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_wait(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_put(NULL, item(1)), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_get(NULL, &v), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_queue_join(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_wait(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_wait(x->c), TL_ESTATE); /* lock not held */
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(x->c)), 0);
    CU_ASSERT_EQUAL(tl_queue_get(x->q, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_barrier_wait(x->b), TL_EBROKEN);
    CU_ASSERT_EQUAL(tl_queue_put(x->q, item(2)), TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(tl_queue_get(x->q, &v), 0); /* what is left */
    CU_ASSERT_EQUAL(num(v), 1);
    CU_ASSERT_EQUAL(tl_queue_get(x->q, &v), TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(num(v), 1); /* untouched */
    x->done = 1;
    return 0;
}

static void test_sequential_forms_return_errors_found_at_the_call(void) {
    tl_loop_t *loop = tl_test_loop();
    errs_t x = {0};
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &x.c), 0);
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 2, &x.b), 0);
    x.q = new_queue(loop, TL_QUEUE_FIFO, 1);
    CU_ASSERT_EQUAL(tl_barrier_abort(x.b), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(x.q, item(1)), 0);
    CU_ASSERT_EQUAL(tl_queue_shutdown(x.q, 0), 0);
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, makes_bad_calls, &x, NULL, &t), 0);
    spin(loop, 1); /* never suspends */
    CU_ASSERT_EQUAL(x.done, 1);
    CU_ASSERT_EQUAL(tl_future_done(tl_task_future(t)), 1);
    tl_task_unref(t);
    tl_condition_free(x.c);
    tl_barrier_free(x.b);
    tl_queue_free(x.q);
    tl_test_loop_free(loop);
}

static void test_waits_ended_by_a_shutdown_or_an_abort_report_it(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_queue_t *full = new_queue(loop, TL_QUEUE_FIFO, 1);
    tl_queue_t *empty = new_queue(loop, TL_QUEUE_FIFO, 1);
    tl_barrier_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, 3, &b), 0);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(full, item(1)), 0);
    world_t w = {0};
    op_t p, g, b1, b2;
    op_init(&p, OP_PUT, 'P', full, &w);
    p.item = item(2);
    op_spawn(loop, &p);
    op_start(loop, &g, OP_GET, 'G', empty, &w);
    op_start(loop, &b1, OP_BARRIER, 'B', b, &w);
    op_start(loop, &b2, OP_BARRIER, 'C', b, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_queue_shutdown(full, 0), 0);
    CU_ASSERT_EQUAL(tl_queue_shutdown(empty, 0), 0);
    CU_ASSERT_EQUAL(tl_barrier_abort(b), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(p.rc, TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(g.rc, TL_EQUEUESHUTDOWN);
    CU_ASSERT_EQUAL(b1.rc, TL_EBROKEN);
    CU_ASSERT_EQUAL(b2.rc, TL_EBROKEN);
    CU_ASSERT_EQUAL(get_now(full), 1); /* 2 was not put */
    CU_ASSERT_EQUAL(get_now(full), TL_EQUEUESHUTDOWN);
    op_finish(loop, &p);
    op_finish(loop, &g);
    op_finish(loop, &b1);
    op_finish(loop, &b2);
    tl_queue_free(full);
    tl_queue_free(empty);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

/* ---- Lock ------------------------------------------------------------ */

typedef struct holder {
    tl_lock_t *l;
    tl_semaphore_t *s;
    world_t *w;
    char id;
    int turns; /* yields while holding */
    int rc;
    long allocs; /* made by an acquire that did not wait */
} holder_t;

static int lock_holder(void *arg, void **result) {
    holder_t *h = arg;
    (void)result;
    long before = tl_test_alloc_count();
    int waited = tl_lock_locked(h->l);
    if ((h->rc = tl_lock_acquire(h->l)) != 0)
        return 0;
    if (!waited)
        h->allocs = tl_test_alloc_count() - before;
    claim_lock(h->w, h->id);
    h->w->log[h->w->nlog++] = h->id;
    for (int i = 0; i < h->turns; i++)
        CU_ASSERT_EQUAL(tl_yield(), 0);
    drop_lock(h->w, h->l, h->id);
    return 0;
}

static void test_lock_acquire_waits_its_turn(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    world_t w = {0};
    holder_t h[4];
    tl_task_t *t[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (holder_t){l, NULL, &w, (char)('A' + i), 3, OP_RUNNING, -1};
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, lock_holder, &h[i], NULL, &t[i]), 0);
    }
    spin(loop, 1); /* A holds it, B, C and D wait */
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    CU_ASSERT_EQUAL(w.owner, 'A');
    CU_ASSERT_EQUAL(h[0].rc, 0);
    CU_ASSERT_EQUAL(h[0].allocs, 0); /* uncontended: no future */
    for (int i = 1; i < 4; i++)
        CU_ASSERT_EQUAL(h[i].rc, OP_RUNNING);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t[i]), NULL), 0);
        CU_ASSERT_EQUAL(h[i].rc, 0);
        tl_task_unref(t[i]);
    }
    CU_ASSERT_STRING_EQUAL(w.log, "ABCD");
    CU_ASSERT_EQUAL(w.owner, 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* ---- Event ----------------------------------------------------------- */

static void test_event_wait_wakes_every_waiting_task(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_event_t *e = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, &e), 0);
    world_t w = {0};
    op_t op[4];
    for (int i = 0; i < 3; i++)
        op_start(loop, &op[i], OP_EVENT, (char)('A' + i), e, &w);
    spin(loop, 3);
    for (int i = 0; i < 3; i++)
        ASSERT_WAITING(&op[i]);
    CU_ASSERT_EQUAL(tl_event_set(e), 0);
    spin(loop, 1);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(op[i].rc, 0);
    CU_ASSERT_STRING_EQUAL(w.log, "ABC"); /* oldest first */
    /* Set: a wait returns in the task's first step. */
    op_start(loop, &op[3], OP_EVENT, 'D', e, &w);
    spin(loop, 1);
    CU_ASSERT_EQUAL(op[3].rc, 0);
    CU_ASSERT_EQUAL(tl_event_is_set(e), 1);
    for (int i = 0; i < 4; i++)
        op_finish(loop, &op[i]);
    tl_event_free(e);
    tl_test_loop_free(loop);
}

/* ---- Condition ------------------------------------------------------- */

static void test_condition_wait_returns_holding_the_lock_after_notify(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_condition_t *c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &c), 0);
    tl_lock_t *l = tl_condition_lock(c);
    world_t w = {0};
    op_t op[3];
    for (int i = 0; i < 3; i++)
        op_start(loop, &op[i], OP_COND, (char)('A' + i), c, &w);
    spin(loop, 2);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0); /* every wait released it */
    for (int i = 0; i < 3; i++)
        ASSERT_WAITING(&op[i]);
    /* notify(1) wakes the oldest only, once the notifier lets go. */
    test_takes_lock(&w, l);
    CU_ASSERT_EQUAL(tl_condition_notify(c, 1), 1);
    spin(loop, 2);
    ASSERT_WAITING(&op[0]); /* notified, but the lock is the test's */
    test_releases_lock(&w, l);
    spin(loop, 2);
    CU_ASSERT_EQUAL(op[0].rc, 0);
    CU_ASSERT_EQUAL(op[0].locked, 1); /* and claim_lock saw no other owner */
    ASSERT_WAITING(&op[1]);
    ASSERT_WAITING(&op[2]);
    /* notify_all: the others, each in turn holding the lock. */
    test_takes_lock(&w, l);
    CU_ASSERT_EQUAL(tl_condition_notify_all(c), 2);
    test_releases_lock(&w, l);
    spin(loop, 3);
    CU_ASSERT_EQUAL(op[1].rc, 0);
    CU_ASSERT_EQUAL(op[2].rc, 0);
    CU_ASSERT_EQUAL(op[1].locked, 1);
    CU_ASSERT_EQUAL(op[2].locked, 1);
    CU_ASSERT_STRING_EQUAL(w.log, "ABC");
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    for (int i = 0; i < 3; i++)
        op_finish(loop, &op[i]);
    tl_condition_free(c);
    tl_test_loop_free(loop);
}

typedef struct counter {
    tl_condition_t *c;
    world_t *w;
    int value, target;
    int checks;   /* predicate calls */
    int unlocked; /* calls made without the lock held */
    int rounds;   /* for the producer */
} counter_t;

static int reached(void *arg) {
    counter_t *k = arg;
    k->checks++;
    if (tl_lock_locked(tl_condition_lock(k->c)) != 1)
        k->unlocked++;
    return k->value >= k->target;
}

/* Raise the value one step at a time, notifying every waiter each time. */
static int raiser(void *arg, void **result) {
    counter_t *k = arg;
    (void)result;
    tl_lock_t *l = tl_condition_lock(k->c);
    for (int i = 0; i < k->rounds; i++) {
        CU_ASSERT_EQUAL(tl_lock_acquire(l), 0);
        claim_lock(k->w, 'R');
        k->value++;
        tl_condition_notify_all(k->c);
        drop_lock(k->w, l, 'R');
        CU_ASSERT_EQUAL(tl_yield(), 0);
    }
    return 0;
}

static int wait_for_in_task(void *arg, void **result) {
    counter_t *k = arg;
    (void)result;
    /* Without the lock: refused, nothing checked. */
    CU_ASSERT_EQUAL(tl_condition_wait_for(k->c, reached, k), TL_ESTATE);
    CU_ASSERT_EQUAL(k->checks, 0);
    CU_ASSERT_EQUAL(tl_lock_acquire(tl_condition_lock(k->c)), 0);
    CU_ASSERT_EQUAL(tl_condition_wait_for(k->c, NULL, k), TL_EINVAL);
    int rc = tl_condition_wait_for(k->c, reached, k);
    *result = (void *)(intptr_t)k->value;
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(k->c)), 1);
    claim_lock(k->w, 'W');
    /* Already true: returns at once, checking once, still holding it. */
    int checks = k->checks;
    CU_ASSERT_EQUAL(tl_condition_wait_for(k->c, reached, k), 0);
    CU_ASSERT_EQUAL(k->checks, checks + 1);
    drop_lock(k->w, tl_condition_lock(k->c), 'W');
    return rc;
}

static void test_condition_wait_for_rechecks_its_predicate_after_each_wakeup(void) {
    tl_loop_t *loop = tl_test_loop();
    world_t w = {0};
    counter_t k = {NULL, &w, 0, 3, 0, 0, 5};
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, &k.c), 0);
    tl_task_t *waiter, *producer;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, wait_for_in_task, &k, NULL, &waiter), 0);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, raiser, &k, NULL, &producer), 0);
    void *seen = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(waiter), &seen), 0);
    CU_ASSERT_EQUAL((intptr_t)seen, 3); /* returned as soon as it held */
    /* Once before waiting, then after each of the three wakeups (1, 2, 3),
     * then the at-once call. */
    CU_ASSERT_EQUAL(k.checks, 5);
    CU_ASSERT_EQUAL(k.unlocked, 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(producer), NULL), 0);
    CU_ASSERT_EQUAL(k.value, 5);
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(k.c)), 0);
    tl_task_unref(waiter);
    tl_task_unref(producer);
    tl_condition_free(k.c);
    tl_test_loop_free(loop);
}

/* ---- Semaphore ------------------------------------------------------- */

static int sem_holder(void *arg, void **result) {
    holder_t *h = arg;
    (void)result;
    if ((h->rc = tl_semaphore_acquire(h->s)) != 0)
        return 0;
    h->w->log[h->w->nlog++] = h->id;
    if (++h->w->inside > h->w->max_inside)
        h->w->max_inside = h->w->inside;
    for (int i = 0; i < h->turns; i++)
        CU_ASSERT_EQUAL(tl_yield(), 0);
    h->w->inside--;
    CU_ASSERT_EQUAL(tl_semaphore_release(h->s), 0);
    return 0;
}

static void semaphore_admits_value_tasks(tl_semaphore_t *s, tl_loop_t *loop) {
    world_t w = {0};
    holder_t h[6];
    tl_task_t *t[6];
    for (int i = 0; i < 6; i++) {
        h[i] = (holder_t){NULL, s, &w, (char)('A' + i), 2 + i % 3, OP_RUNNING, 0};
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, sem_holder, &h[i], NULL, &t[i]), 0);
    }
    spin(loop, 1);
    CU_ASSERT_EQUAL(w.inside, 2);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_locked(s), 1);
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t[i]), NULL), 0);
        CU_ASSERT_EQUAL(h[i].rc, 0);
        tl_task_unref(t[i]);
    }
    CU_ASSERT_EQUAL(w.max_inside, 2);
    CU_ASSERT_EQUAL(w.inside, 0);
    CU_ASSERT_STRING_EQUAL(w.log, "ABCDEF"); /* admitted oldest first */
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 2);
}

static void test_semaphore_acquire_admits_value_tasks_at_a_time(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, 2, &s), 0);
    semaphore_admits_value_tasks(s, loop);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0); /* unbounded */
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 3);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_bounded_semaphore_acquire_admits_value_tasks_at_a_time(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_bounded_semaphore_new(loop, 2, &s), 0);
    semaphore_admits_value_tasks(s, loop);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), TL_ERANGE); /* back at its bound */
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 2);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

/* ---- Barrier --------------------------------------------------------- */

#define PARTIES 5
#define ROUNDS 3

typedef struct party {
    tl_barrier_t *b;
    int (*seen)[PARTIES]; /* seen[round][index] */
    int rc;
} party_t;

static int barrier_party(void *arg, void **result) {
    party_t *p = arg;
    (void)result;
    for (int r = 0; r < ROUNDS; r++) {
        int index = tl_barrier_wait(p->b);
        if (index < 0) {
            p->rc = index;
            return 0;
        }
        CU_ASSERT(index < PARTIES);
        if (index < PARTIES)
            p->seen[r][index]++;
    }
    p->rc = 0;
    return 0;
}

static void test_barrier_wait_numbers_each_party_once_per_round(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_barrier_t *b = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, PARTIES, &b), 0);
    int seen[ROUNDS][PARTIES] = {{0}};
    party_t p[PARTIES];
    tl_task_t *t[PARTIES];
    for (int i = 0; i < PARTIES; i++) {
        p[i] = (party_t){b, seen, OP_RUNNING};
        CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, barrier_party, &p[i], NULL, &t[i]), 0);
    }
    spin(loop, 1);
    /* The last one filled round 0 and arrived first in round 1. */
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 1);
    CU_ASSERT_EQUAL(seen[0][PARTIES - 1], 1);
    for (int i = 0; i < PARTIES; i++) {
        CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t[i]), NULL), 0);
        CU_ASSERT_EQUAL(p[i].rc, 0);
        tl_task_unref(t[i]);
    }
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < PARTIES; i++)
            CU_ASSERT_EQUAL(seen[r][i], 1);
    CU_ASSERT_EQUAL(tl_barrier_n_waiting(b), 0);
    CU_ASSERT_EQUAL(tl_barrier_broken(b), 0);
    tl_barrier_free(b);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(sync_await,
              TL_TEST(test_sequential_forms_need_a_task),
              TL_TEST(test_sequential_forms_in_a_callback_refuse_to_wait_and_change_nothing),
              TL_TEST(test_sequential_forms_return_errors_found_at_the_call),
              TL_TEST(test_waits_ended_by_a_shutdown_or_an_abort_report_it),
              TL_TEST(test_lock_acquire_waits_its_turn),
              TL_TEST(test_event_wait_wakes_every_waiting_task),
              TL_TEST(test_condition_wait_returns_holding_the_lock_after_notify),
              TL_TEST(test_condition_wait_for_rechecks_its_predicate_after_each_wakeup),
              TL_TEST(test_semaphore_acquire_admits_value_tasks_at_a_time),
              TL_TEST(test_bounded_semaphore_acquire_admits_value_tasks_at_a_time),
              TL_TEST(test_barrier_wait_numbers_each_party_once_per_round));
