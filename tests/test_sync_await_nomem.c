/* sync_await_nomem: the sequential forms running in tasks while
 * allocations fail, one after the other (the SQLite walk). Every
 * allocation a form makes, waiting or not, is failed in turn: the form
 * returns TL_ENOMEM and the object is as it was, or the form goes on and
 * succeeds; the harness checks that nothing leaks. The same for the
 * give-back after a late cancellation: either the resource goes to the
 * next waiter, or the operation stands and succeeds. */
#include "sync_await_test.h"

typedef struct fx {
    tl_loop_t *loop;
    op_kind_t kind;
    int at_once; /* set up so that the form does not have to wait */
    void *obj;
    tl_lock_t *lock; /* OP_LOCK's, or the condition's */
    world_t w;
    int flag; /* OP_COND_FOR's predicate */
} fx_t;

static int flag_set(void *ctx) { return *(int *)ctx; }

/* The object, in the state where the form waits (or, at_once, not). */
static void fx_setup(fx_t *x, op_kind_t kind, int at_once) {
    memset(x, 0, sizeof *x);
    x->loop = tl_test_loop();
    x->kind = kind;
    x->at_once = at_once;
    tl_loop_t *loop = x->loop;
    switch (kind) {
    case OP_LOCK:
        CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &x->lock), 0);
        x->obj = x->lock;
        if (!at_once)
            test_takes_lock(&x->w, x->lock);
        break;
    case OP_EVENT:
        CU_ASSERT_EQUAL_FATAL(tl_event_new(loop, (tl_event_t **)&x->obj), 0);
        if (at_once)
            CU_ASSERT_EQUAL(tl_event_set(x->obj), 0);
        break;
    case OP_COND:
    case OP_COND_FOR:
        CU_ASSERT_EQUAL_FATAL(tl_condition_new(loop, NULL, (tl_condition_t **)&x->obj), 0);
        x->lock = tl_condition_lock(x->obj);
        x->flag = at_once;
        break;
    case OP_SEM:
        CU_ASSERT_EQUAL_FATAL(tl_semaphore_new(loop, at_once, (tl_semaphore_t **)&x->obj), 0);
        break;
    case OP_BARRIER:
        CU_ASSERT_EQUAL_FATAL(tl_barrier_new(loop, at_once ? 1 : 2, (tl_barrier_t **)&x->obj), 0);
        break;
    case OP_PUT:
        x->obj = new_queue(loop, TL_QUEUE_FIFO, 1);
        if (!at_once)
            CU_ASSERT_EQUAL(tl_queue_put_nowait(x->obj, item(1)), 0);
        break;
    case OP_GET:
        x->obj = new_queue(loop, TL_QUEUE_FIFO, 1);
        if (at_once)
            CU_ASSERT_EQUAL(tl_queue_put_nowait(x->obj, item(1)), 0);
        break;
    case OP_JOIN:
        x->obj = new_queue(loop, TL_QUEUE_FIFO, 0);
        if (!at_once)
            CU_ASSERT_EQUAL(tl_queue_put_nowait(x->obj, item(1)), 0);
        break;
    }
}

/* Let the waiting form succeed. */
static void fx_resolve(fx_t *x) {
    tl_future_t *f = NULL;
    switch (x->kind) {
    case OP_LOCK: test_releases_lock(&x->w, x->lock); break;
    case OP_EVENT: CU_ASSERT_EQUAL(tl_event_set(x->obj), 0); break;
    case OP_COND:
    case OP_COND_FOR:
        test_takes_lock(&x->w, x->lock);
        x->flag = 1;
        CU_ASSERT_EQUAL(tl_condition_notify_all(x->obj), 1);
        test_releases_lock(&x->w, x->lock);
        break;
    case OP_SEM: CU_ASSERT_EQUAL(tl_semaphore_release(x->obj), 0); break;
    case OP_BARRIER:
        CU_ASSERT_EQUAL(tl_barrier_wait_future(x->obj, &f), 0);
        CU_ASSERT_EQUAL(tl_future_done(f), 1);
        tl_future_unref(f);
        break;
    case OP_PUT: CU_ASSERT_EQUAL(get_now(x->obj), 1); break;
    case OP_GET: CU_ASSERT_EQUAL(tl_queue_put_nowait(x->obj, item(9)), 0); break;
    case OP_JOIN: CU_ASSERT_EQUAL(tl_queue_task_done(x->obj), 0); break;
    }
}

/* After TL_ENOMEM: the object is as fx_setup left it, with no waiter. */
static void fx_check_untouched(fx_t *x) {
    switch (x->kind) {
    case OP_LOCK:
        CU_ASSERT_EQUAL(tl_lock_locked(x->lock), !x->at_once);
        if (!x->at_once) {
            test_releases_lock(&x->w, x->lock);
            CU_ASSERT_EQUAL(tl_lock_locked(x->lock), 0); /* nobody queued */
        }
        break;
    case OP_EVENT: CU_ASSERT_EQUAL(tl_event_is_set(x->obj), x->at_once); break;
    case OP_COND:
    case OP_COND_FOR:
        /* The wait failed before it let go of the lock: the task still
         * holds it (and left it to us). */
        CU_ASSERT_EQUAL(tl_lock_locked(x->lock), 1);
        CU_ASSERT_EQUAL(tl_condition_notify_all(x->obj), 0); /* nobody waits */
        CU_ASSERT_EQUAL(tl_lock_release(x->lock), 0);
        break;
    case OP_SEM:
        CU_ASSERT_EQUAL(tl_semaphore_value(x->obj), x->at_once);
        CU_ASSERT_EQUAL(tl_semaphore_release(x->obj), 0);
        CU_ASSERT_EQUAL(tl_semaphore_value(x->obj), x->at_once + 1);
        break;
    case OP_BARRIER:
        CU_ASSERT_EQUAL(tl_barrier_n_waiting(x->obj), 0);
        CU_ASSERT_EQUAL(tl_barrier_broken(x->obj), 0);
        break;
    case OP_PUT:
        CU_ASSERT_EQUAL(tl_queue_qsize(x->obj), !x->at_once);
        if (!x->at_once)
            CU_ASSERT_EQUAL(get_now(x->obj), 1);
        CU_ASSERT_EQUAL(get_now(x->obj), TL_EQUEUEEMPTY); /* no putter left */
        break;
    case OP_GET:
        CU_ASSERT_EQUAL(tl_queue_qsize(x->obj), x->at_once);
        if (!x->at_once) {
            CU_ASSERT_EQUAL(tl_queue_put_nowait(x->obj, item(9)), 0);
            CU_ASSERT_EQUAL(tl_queue_qsize(x->obj), 1); /* no getter took it */
        }
        break;
    case OP_JOIN: {
        tl_future_t *f = NULL;
        CU_ASSERT_EQUAL(tl_queue_join_future(x->obj, &f), 0);
        CU_ASSERT_EQUAL(tl_future_done(f), x->at_once);
        tl_future_unref(f);
        break;
    }
    }
}

static void fx_teardown(fx_t *x) {
    switch (x->kind) {
    case OP_LOCK: tl_lock_free(x->lock); break;
    case OP_EVENT: tl_event_free(x->obj); break;
    case OP_COND:
    case OP_COND_FOR: tl_condition_free(x->obj); break;
    case OP_SEM: tl_semaphore_free(x->obj); break;
    case OP_BARRIER: tl_barrier_free(x->obj); break;
    case OP_PUT:
    case OP_GET:
    case OP_JOIN: tl_queue_free(x->obj); break;
    }
    spin(x->loop, 1);
    tl_test_loop_free(x->loop);
}

/* Fail the 1st, 2nd, ... allocation of the form, until it makes no more;
 * returns how many it made. */
static long walk_form(op_kind_t kind, int at_once) {
    for (long n = 1; n <= WALK_MAX; n++) {
        fx_t x;
        fx_setup(&x, kind, at_once);
        op_t op;
        op_init(&op, kind, 'B', x.obj, &x.w);
        op.pred = flag_set;
        op.pred_ctx = &x.flag;
        op.arm_at = n;
        op_spawn(x.loop, &op);
        spin(x.loop, 1);
        int hit = disarm(n);
        if (op.rc == TL_ENOMEM) {
            CU_ASSERT(hit);
            fx_check_untouched(&x);
        } else {
            if (op.rc == OP_RUNNING) {
                CU_ASSERT(!at_once);
                fx_resolve(&x);
                spin(x.loop, 2);
            }
            CU_ASSERT_EQUAL(op.rc, 0); /* barrier: the index, 0 either way */
        }
        CU_ASSERT_EQUAL(x.w.owner, 0);
        op_finish(x.loop, &op);
        fx_teardown(&x);
        if (!hit)
            return n - 1;
    }
    CU_FAIL("the walk did not end");
    return -1;
}

static void test_waiting_forms_survive_each_allocation_failing(void) {
    static const op_kind_t kinds[] = {OP_LOCK, OP_EVENT, OP_COND, OP_COND_FOR, OP_SEM,
                                      OP_BARRIER, OP_PUT, OP_GET, OP_JOIN};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        CU_ASSERT(walk_form(kinds[i], 0) >= 1); /* waiting takes a future */
}

static void test_forms_that_need_not_wait_survive_each_allocation_failing(void) {
    /* A lock, a unit or an item at hand costs nothing... */
    CU_ASSERT_EQUAL(walk_form(OP_LOCK, 1), 0);
    CU_ASSERT_EQUAL(walk_form(OP_SEM, 1), 0);
    CU_ASSERT_EQUAL(walk_form(OP_GET, 1), 0);
    /* ... the others make a done future, or room for the item. */
    CU_ASSERT(walk_form(OP_EVENT, 1) >= 1);
    CU_ASSERT(walk_form(OP_BARRIER, 1) >= 1);
    CU_ASSERT(walk_form(OP_PUT, 1) >= 1);
    CU_ASSERT(walk_form(OP_JOIN, 1) >= 1);
    CU_ASSERT(walk_form(OP_COND_FOR, 1) == 0); /* already true: no wait */
}

/* ---- giving back while allocations fail -------------------------------- */

/* B's future is completed, B is cancelled before it runs, and the nth
 * allocation of the iteration in which B gives back fails. With `next`, C
 * waits behind B. Whatever happens, the resource ends up with exactly one
 * party and nothing leaks. Returns whether the walk reached n. */
static int give_back_under_failure(op_kind_t kind, int next, long n) {
    fx_t x;
    fx_setup(&x, kind, 0);
    op_t b, c;
    op_init(&b, kind, 'B', x.obj, &x.w);
    op_init(&c, kind, 'C', x.obj, &x.w);
    b.item = item(kind == OP_PUT ? 2 : -1);
    c.item = item(kind == OP_PUT ? 3 : -1);
    op_spawn(x.loop, &b);
    if (next)
        op_spawn(x.loop, &c);
    spin(x.loop, 1);
    fx_resolve(&x); /* B's future is done */
    op_cancel(&b);
    arm(n);
    spin(x.loop, 1);
    int hit = disarm(n);
    if (!hit)
        CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    /* Either B gave back, or its operation stands. */
    CU_ASSERT(b.rc == TL_ECANCELLED || b.rc == 0);
    int b_has = b.rc == 0;
    spin(x.loop, 2);
    switch (kind) {
    case OP_LOCK:
    case OP_SEM:
        /* Given back to C, or kept by B and released by op_task to C: C
         * has had it and released it in turn. */
        if (next)
            CU_ASSERT_EQUAL(c.rc, 0);
        if (kind == OP_LOCK) {
            CU_ASSERT_EQUAL(tl_lock_locked(x.lock), 0);
        } else {
            CU_ASSERT_EQUAL(tl_semaphore_value(x.obj), 1);
        }
        break;
    case OP_GET: {
        /* The one item 9 is B's, C's, or back in the queue. */
        int holders = (num(b.item) == 9) + (num(c.item) == 9) + tl_queue_qsize(x.obj);
        CU_ASSERT_EQUAL(holders, 1);
        CU_ASSERT_EQUAL(b_has, num(b.item) == 9);
        if (next)
            CU_ASSERT_EQUAL(c.rc, b_has ? OP_RUNNING : 0);
        if (next && c.rc == OP_RUNNING) {
            CU_ASSERT_EQUAL(tl_queue_put_nowait(x.obj, item(8)), 0);
            spin(x.loop, 1);
            CU_ASSERT_EQUAL(c.rc, 0);
        }
        break;
    }
    case OP_PUT: {
        /* B's 2 is in the queue, or was taken back (and C's 3 is in). */
        if (next)
            CU_ASSERT_EQUAL(c.rc, b_has ? OP_RUNNING : 0);
        int got = get_now(x.obj);
        CU_ASSERT_EQUAL(got, b_has ? 2 : next ? 3 : TL_EQUEUEEMPTY);
        if (b_has && next) {
            spin(x.loop, 1);
            CU_ASSERT_EQUAL(get_now(x.obj), 3);
        }
        break;
    }
    default:
        break;
    }
    op_finish(x.loop, &b);
    op_finish(x.loop, &c);
    fx_teardown(&x);
    return hit;
}

static void walk_give_back(op_kind_t kind, int next) {
    for (long n = 1; n <= WALK_MAX; n++)
        if (!give_back_under_failure(kind, next, n))
            return;
    CU_FAIL("the walk did not end");
}

static void test_give_back_survives_each_allocation_failing(void) {
    for (int next = 0; next < 2; next++) {
        walk_give_back(OP_LOCK, next);
        walk_give_back(OP_SEM, next);
        walk_give_back(OP_GET, next);
        walk_give_back(OP_PUT, next);
    }
}

static void test_item_given_back_when_there_is_no_room_stays_with_the_getter(void) {
    /* A fresh queue has no storage: handing the item to a waiting getter
     * needed none, giving it back needs some. */
    fx_t x;
    fx_setup(&x, OP_GET, 0);
    op_t b;
    op_init(&b, OP_GET, 'B', x.obj, &x.w);
    b.probe = 1;
    op_spawn(x.loop, &b);
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(tl_queue_put_nowait(x.obj, item(9)), 0);
    op_cancel(&b);
    arm(1);
    spin(x.loop, 1);
    CU_ASSERT(disarm(1));
    CU_ASSERT_EQUAL(b.rc, 0); /* the get stands: cancelled, but it has 9 */
    CU_ASSERT_EQUAL(num(b.item), 9);
    CU_ASSERT_EQUAL(b.cancelling, 1);
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(b.probe_rc, TL_ECANCELLED); /* the request is still pending */
    CU_ASSERT_EQUAL(tl_queue_qsize(x.obj), 0);
    op_finish(x.loop, &b);
    fx_teardown(&x);
}

/* ---- a cancelled condition wait that cannot queue for the lock ---------- */

static void test_cancelled_condition_wait_that_cannot_wait_for_the_lock_fails_without_it(void) {
    for (long n = 1; n <= WALK_MAX; n++) {
        fx_t x;
        fx_setup(&x, OP_COND, 0);
        op_t b;
        op_init(&b, OP_COND, 'B', x.obj, &x.w);
        op_spawn(x.loop, &b);
        spin(x.loop, 1);
        test_takes_lock(&x.w, x.lock);
        op_cancel(&b);
        arm(n); /* B's turn to take the lock back, which the test holds */
        spin(x.loop, 1);
        int hit = disarm(n);
        if (hit) {
            CU_ASSERT_EQUAL(b.rc, TL_ENOMEM);
            CU_ASSERT_EQUAL(b.locked, 1); /* the test's */
        } else {
            ASSERT_WAITING(&b);
        }
        test_releases_lock(&x.w, x.lock);
        spin(x.loop, 1);
        if (!hit) {
            CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
            CU_ASSERT_EQUAL(b.locked, 1); /* its own, released by op_task */
        }
        CU_ASSERT_EQUAL(tl_lock_locked(x.lock), 0); /* B did not queue */
        op_finish(x.loop, &b);
        fx_teardown(&x);
        if (!hit)
            return;
    }
    CU_FAIL("the walk did not end");
}

TL_TEST_SUITE(sync_await_nomem,
              TL_TEST(test_waiting_forms_survive_each_allocation_failing),
              TL_TEST(test_forms_that_need_not_wait_survive_each_allocation_failing),
              TL_TEST(test_give_back_survives_each_allocation_failing),
              TL_TEST(test_item_given_back_when_there_is_no_room_stays_with_the_getter),
              TL_TEST(test_cancelled_condition_wait_that_cannot_wait_for_the_lock_fails_without_it));
