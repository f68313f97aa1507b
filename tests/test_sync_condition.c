/* sync_condition: asyncio.Condition through its future form: wait releases
 * and re-acquires the lock, notify(n)/notify_all wake the oldest, a waiter
 * cancelled after its notification passes it on, shared locks, freeing,
 * running out of memory. */
#include "sync_test.h"

typedef struct cond_fixture {
    tl_loop_t *loop;
    tl_condition_t *c;
    tl_lock_t *l;
} fx_t;

static fx_t setup(void) {
    fx_t x;
    x.loop = tl_test_loop();
    x.c = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_new(x.loop, NULL, &x.c), 0);
    x.l = tl_condition_lock(x.c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x.l);
    return x;
}

static void teardown(fx_t *x) {
    CU_ASSERT_EQUAL(tl_condition_free(x->c), 0);
    spin(x->loop, 1);
    tl_test_loop_free(x->loop);
}

/* Take the lock, which must be free. */
static void lock_now(tl_lock_t *l) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_acquire_future(l, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    tl_future_unref(f);
}

/* Holding the lock, start a wait (which releases it). */
static void wait_on(tl_condition_t *c, waiter_t *w, int id, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_condition_wait_future(c, &f), 0);
    watch(w, f, id, log);
}

/* The code after a successful wait: it holds the lock, so release it. */
static void release_after(waiter_t *w) {
    if (w->rc == 0)
        CU_ASSERT_EQUAL(tl_lock_release(w->ctx), 0);
}

static void test_new_makes_or_shares_a_lock(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    tl_condition_t *c = NULL, *own = NULL;
    CU_ASSERT_EQUAL(tl_lock_new(loop, &l), 0);
    CU_ASSERT_EQUAL(tl_condition_new(loop, l, &c), 0);
    CU_ASSERT_PTR_EQUAL(tl_condition_lock(c), l);
    CU_ASSERT_EQUAL(tl_condition_new(loop, NULL, &own), 0);
    CU_ASSERT_PTR_NOT_NULL(tl_condition_lock(own));
    CU_ASSERT_PTR_NOT_EQUAL(tl_condition_lock(own), l);
    CU_ASSERT_EQUAL(tl_lock_locked(tl_condition_lock(own)), 0);
    CU_ASSERT_EQUAL(tl_condition_free(own), 0); /* frees its own lock */
    CU_ASSERT_EQUAL(tl_condition_free(c), 0);   /* leaves l alone */
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    CU_ASSERT_EQUAL(tl_lock_free(l), 0);
    tl_test_loop_free(loop);
}

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_loop_t *other = tl_test_loop();
    tl_lock_t *foreign_lock = NULL;
    tl_condition_t *c = NULL;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_lock_new(other, &foreign_lock), 0);
    CU_ASSERT_EQUAL(tl_condition_new(loop, foreign_lock, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_new(NULL, NULL, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_new(loop, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_free(NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_condition_lock(NULL));
    CU_ASSERT_EQUAL(tl_condition_wait_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_notify(NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_notify_all(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_condition_new(loop, NULL, &c), 0);
    CU_ASSERT_EQUAL(tl_condition_wait_future(c, NULL), TL_EINVAL);
    tl_condition_free(c);
    tl_lock_free(foreign_lock);
    tl_test_loop_free(other);
    tl_test_loop_free(loop);
}

static void test_wait_and_notify_need_the_lock(void) {
    fx_t x = setup();
    tl_future_t *f = NULL;
    long allocs = tl_test_alloc_count();
    CU_ASSERT_EQUAL(tl_condition_wait_future(x.c, &f), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_test_alloc_count(), allocs); /* refused up front */
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), TL_ESTATE);
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), TL_ESTATE);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 0); /* nobody waits */
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    teardown(&x);
}

static void test_wait_releases_and_reacquires_the_lock(void) {
    fx_t x = setup();
    lock_now(x.l);
    waiter_t w;
    wait_on(x.c, &w, 1, NULL);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    spin(x.loop, 1);
    ASSERT_PENDING(&w);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    spin(x.loop, 1);
    ASSERT_PENDING(&w); /* notified, but the notifier holds the lock */
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 1); /* now the waiter's */
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(w.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    unwatch(&w);
    teardown(&x);
}

static void test_notify_wakes_the_n_oldest_and_notify_all_the_rest(void) {
    fx_t x = setup();
    wlog_t log = {0};
    waiter_t w[5];
    for (int i = 0; i < 5; i++) {
        lock_now(x.l);
        wait_on(x.c, &w[i], i, &log);
        w[i].then = release_after;
        w[i].ctx = x.l;
    }
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 2), 2);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    spin(x.loop, 4);
    CU_ASSERT_EQUAL(log.n, 2);
    CU_ASSERT_EQUAL(log.ids[0], 0);
    CU_ASSERT_EQUAL(log.ids[1], 1);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 0), 0);
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), 3);
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), 0);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    spin(x.loop, 5);
    CU_ASSERT_EQUAL(log.n, 5);
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(log.ids[i], i);
        CU_ASSERT_EQUAL(w[i].rc, 0);
        unwatch(&w[i]);
    }
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    teardown(&x);
}

static void test_notified_waiters_queue_behind_earlier_lock_waiters(void) {
    fx_t x = setup();
    wlog_t log = {0};
    waiter_t w, acquirer;
    lock_now(x.l);
    wait_on(x.c, &w, 1, &log);
    w.then = release_after;
    w.ctx = x.l;
    lock_now(x.l);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_lock_acquire_future(x.l, &f), 0);
    watch(&acquirer, f, 2, &log);
    acquirer.then = release_after;
    acquirer.ctx = x.l;
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    spin(x.loop, 3);
    CU_ASSERT_EQUAL(log.n, 2);
    CU_ASSERT_EQUAL(log.ids[0], 2);
    CU_ASSERT_EQUAL(log.ids[1], 1);
    unwatch(&w);
    unwatch(&acquirer);
    teardown(&x);
}

/* ---- cancellation ----------------------------------------------------- */

static void test_a_waiter_cancelled_before_notify_is_not_counted(void) {
    fx_t x = setup();
    waiter_t a, b;
    lock_now(x.l);
    wait_on(x.c, &a, 1, NULL);
    lock_now(x.l);
    wait_on(x.c, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_future_cancel(a.f, NULL), 1);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    unwatch(&a);
    unwatch(&b);
    teardown(&x);
}

/* A is notified, then cancelled while it waits for the lock, in the same
 * iteration as the release. Its notification must not be lost: B, which
 * was not notified, is woken in its place. */
typedef struct race {
    fx_t *x;
    waiter_t *victim;
    int cancel_rc, release_rc;
} race_t;

static void cancel_victim(void *ctx) {
    race_t *r = ctx;
    r->cancel_rc = tl_future_cancel(r->victim->f, NULL);
}
static void release_lock(void *ctx) {
    race_t *r = ctx;
    r->release_rc = tl_lock_release(r->x->l);
}

static void test_a_notified_waiter_cancelled_before_it_gets_the_lock_passes_the_notification_on(void) {
    fx_t x = setup();
    waiter_t a, b, c;
    lock_now(x.l);
    wait_on(x.c, &a, 1, NULL);
    lock_now(x.l);
    wait_on(x.c, &b, 2, NULL);
    lock_now(x.l);
    wait_on(x.c, &c, 3, NULL);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    race_t r = {&x, &a, -1, -1};
    tl_loop_call_soon(x.loop, cancel_victim, &r, NULL);
    tl_loop_call_soon(x.loop, release_lock, &r, NULL);
    spin(x.loop, 2);
    CU_ASSERT_EQUAL(r.cancel_rc, 1);
    CU_ASSERT_EQUAL(r.release_rc, 0);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0); /* got a's notification, and the lock */
    ASSERT_PENDING(&c);       /* only one notification was sent */
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    ASSERT_PENDING(&c);
    unwatch(&a);
    unwatch(&b);
    unwatch(&c);
    teardown(&x);
}

/* The notification is passed on by the cancel itself, not later: right
 * after it, the next waiter is the notified one, and only the rest are
 * left for notify. */
static void test_a_notified_waiter_cancelled_passes_its_notification_on_at_once(void) {
    fx_t x = setup();
    waiter_t a, b, c;
    lock_now(x.l);
    wait_on(x.c, &a, 1, NULL);
    lock_now(x.l);
    wait_on(x.c, &b, 2, NULL);
    lock_now(x.l);
    wait_on(x.c, &c, 3, NULL);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(a.f, NULL), 1);
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), 1); /* c only: b has it */
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_future_done(b.f), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_future_done(c.f), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(c.rc, 0);
    unwatch(&a);
    unwatch(&b);
    unwatch(&c);
    teardown(&x);
}

/* A waiter cancelled before it was notified consumed nothing: nobody is
 * notified in its place. */
static void test_a_waiter_cancelled_before_notify_passes_nothing_on(void) {
    fx_t x = setup();
    waiter_t a, b;
    lock_now(x.l);
    wait_on(x.c, &a, 1, NULL);
    lock_now(x.l);
    wait_on(x.c, &b, 2, NULL);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_future_cancel(a.f, NULL), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    spin(x.loop, 1);
    ASSERT_PENDING(&b);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), 1);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(b.rc, 0);
    unwatch(&a);
    unwatch(&b);
    teardown(&x);
}

/* ---- sharing and freeing ---------------------------------------------- */

static void test_conditions_sharing_a_lock_notify_only_their_own_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    tl_condition_t *c1 = NULL, *c2 = NULL;
    CU_ASSERT_EQUAL(tl_lock_new(loop, &l), 0);
    CU_ASSERT_EQUAL(tl_condition_new(loop, l, &c1), 0);
    CU_ASSERT_EQUAL(tl_condition_new(loop, l, &c2), 0);
    waiter_t a, b;
    lock_now(l);
    wait_on(c1, &a, 1, NULL);
    lock_now(l);
    wait_on(c2, &b, 2, NULL);
    lock_now(l);
    CU_ASSERT_EQUAL(tl_condition_notify_all(c2), 1);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    spin(loop, 1);
    ASSERT_PENDING(&a);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_condition_free(c1), 0);
    CU_ASSERT_EQUAL(tl_condition_free(c2), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    unwatch(&a);
    unwatch(&b);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_free_cancels_waiters_in_both_queues_and_spares_a_shared_lock(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    tl_condition_t *c = NULL;
    CU_ASSERT_EQUAL(tl_lock_new(loop, &l), 0);
    CU_ASSERT_EQUAL(tl_condition_new(loop, l, &c), 0);
    waiter_t waiting, notified, acquirer;
    lock_now(l);
    wait_on(c, &notified, 1, NULL);
    lock_now(l);
    wait_on(c, &waiting, 2, NULL);
    lock_now(l);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &f), 0);
    watch(&acquirer, f, 3, NULL);
    CU_ASSERT_EQUAL(tl_condition_notify(c, 1), 1);
    CU_ASSERT_EQUAL(tl_condition_free(c), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(notified.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(waiting.rc, TL_ECANCELLED);
    ASSERT_PENDING(&acquirer);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(acquirer.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    unwatch(&notified);
    unwatch(&waiting);
    unwatch(&acquirer);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_free_with_its_own_lock_cancels_notified_waiters(void) {
    fx_t x = setup();
    waiter_t a;
    lock_now(x.l);
    wait_on(x.c, &a, 1, NULL);
    lock_now(x.l);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    CU_ASSERT_EQUAL(tl_condition_free(x.c), 0);
    spin(x.loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    unwatch(&a);
    tl_test_loop_free(x.loop);
}

typedef struct foreign {
    tl_condition_t *c;
    int rc[4];
} foreign_t;

static void foreign_calls(void *ctx) {
    foreign_t *t = ctx;
    tl_future_t *f = NULL;
    t->rc[0] = tl_condition_wait_future(t->c, &f);
    t->rc[1] = tl_condition_notify(t->c, 1);
    t->rc[2] = tl_condition_notify_all(t->c);
    t->rc[3] = tl_condition_free(t->c);
}

static void test_other_threads_and_closed_loops_are_refused(void) {
    fx_t x = setup();
    lock_now(x.l);
    foreign_t t = {x.c, {0}};
    on_other_thread(foreign_calls, &t);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(t.rc[i], TL_EWRONGTHREAD);
    tl_loop_close(x.loop);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_condition_wait_future(x.c, &f), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_condition_free(x.c), 0);
    tl_loop_unref(x.loop);
}

/* ---- running out of memory -------------------------------------------- */

static void test_new_survives_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1; n < WALK_MAX; n++) {
        tl_condition_t *c = NULL;
        arm(n);
        int rc = tl_condition_new(loop, NULL, &c);
        int hit = disarm(n);
        if (rc == 0)
            tl_condition_free(c);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        if (!hit)
            break;
    }
    tl_test_loop_free(loop);
}

/* Each failure leaves the lock held and nobody queued; including the one
 * where releasing the lock cannot wake the acquirer waiting for it. */
static void test_wait_survives_allocation_failures(void) {
    int walked = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        fx_t x = setup();
        lock_now(x.l);
        waiter_t acquirer;
        tl_future_t *f = NULL;
        CU_ASSERT_EQUAL(tl_lock_acquire_future(x.l, &f), 0);
        watch(&acquirer, f, 1, NULL);
        arm(n);
        int rc = tl_condition_wait_future(x.c, &f);
        int hit = disarm(n);
        if (rc == 0) {
            CU_ASSERT_EQUAL(tl_future_done(acquirer.f), 1); /* got the lock */
            CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
            CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
            CU_ASSERT_EQUAL(tl_future_done(f), 1);
            tl_future_unref(f);
        } else {
            walked++;
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_EQUAL(tl_future_done(acquirer.f), 0);
            CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 0); /* nobody */
            CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
        }
        CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
        CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
        spin(x.loop, 1);
        unwatch(&acquirer);
        teardown(&x);
        if (!hit)
            break;
    }
    CU_ASSERT(walked >= 3); /* the waiter, its future, the lock's wake */
}

static void test_notify_never_allocates(void) {
    fx_t x = setup();
    waiter_t w[3];
    for (int i = 0; i < 3; i++) {
        lock_now(x.l);
        wait_on(x.c, &w[i], i, NULL);
    }
    lock_now(x.l);
    long before = tl_test_alloc_count();
    CU_ASSERT_EQUAL(tl_condition_notify(x.c, 1), 1);
    CU_ASSERT_EQUAL(tl_condition_notify_all(x.c), 2);
    CU_ASSERT_EQUAL(tl_test_alloc_count(), before);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(tl_lock_release(x.l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(x.l), 0);
    spin(x.loop, 1);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(w[i].rc, 0);
        unwatch(&w[i]);
    }
    teardown(&x);
}

TL_TEST_SUITE(sync_condition,
              TL_TEST(test_new_makes_or_shares_a_lock),
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_wait_and_notify_need_the_lock),
              TL_TEST(test_wait_releases_and_reacquires_the_lock),
              TL_TEST(test_notify_wakes_the_n_oldest_and_notify_all_the_rest),
              TL_TEST(test_notified_waiters_queue_behind_earlier_lock_waiters),
              TL_TEST(test_a_waiter_cancelled_before_notify_is_not_counted),
              TL_TEST(test_a_notified_waiter_cancelled_before_it_gets_the_lock_passes_the_notification_on),
              TL_TEST(test_a_notified_waiter_cancelled_passes_its_notification_on_at_once),
              TL_TEST(test_a_waiter_cancelled_before_notify_passes_nothing_on),
              TL_TEST(test_conditions_sharing_a_lock_notify_only_their_own_waiters),
              TL_TEST(test_free_cancels_waiters_in_both_queues_and_spares_a_shared_lock),
              TL_TEST(test_free_with_its_own_lock_cancels_notified_waiters),
              TL_TEST(test_other_threads_and_closed_loops_are_refused),
              TL_TEST(test_new_survives_allocation_failures),
              TL_TEST(test_wait_survives_allocation_failures),
              TL_TEST(test_notify_never_allocates));
