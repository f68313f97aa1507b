/* sync_lock: asyncio.Lock through its future form, driven by loop
 * callbacks: FIFO hand-over, cancellation (including the wakeup-loss race),
 * errors, freeing with waiters, running out of memory. */
#include <string.h>

#include "sync_test.h"

static tl_lock_t *new_lock(tl_loop_t *loop) {
    tl_lock_t *l = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_new(loop, &l), 0);
    return l;
}

/* A waiter for the lock. */
static void acquire(tl_lock_t *l, waiter_t *w, int id, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_lock_acquire_future(l, &f), 0);
    watch(w, f, id, log);
}

static void test_new_lock_is_unlocked(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    CU_ASSERT_EQUAL(tl_lock_free(l), 0);
    tl_test_loop_free(loop);
}

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = NULL;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_lock_new(NULL, &l), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_lock_new(loop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_lock_free(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_lock_acquire_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_lock_release(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_lock_locked(NULL), TL_EINVAL);
    l = new_lock(loop);
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    CU_ASSERT_EQUAL(tl_lock_free(l), 0);
    tl_test_loop_free(loop);
}

static void test_release_of_an_unlocked_lock_is_an_error(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    CU_ASSERT_EQUAL(tl_lock_release(l), TL_ESTATE);
    waiter_t a;
    acquire(l, &a, 1, NULL);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_release(l), TL_ESTATE);
    unwatch(&a);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_acquire_of_an_unlocked_lock_is_done_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &f), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(tl_future_result(f, NULL), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_waiters_get_the_lock_in_fifo_order(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    wlog_t log = {0};
    waiter_t w[4];
    for (int i = 0; i < 4; i++)
        acquire(l, &w[i], i, &log);
    spin(loop, 1);
    CU_ASSERT_EQUAL(log.n, 1); /* only the first had it at once */
    for (int i = 1; i < 4; i++) {
        ASSERT_PENDING(&w[i]);
        CU_ASSERT_EQUAL(tl_lock_release(l), 0);
        CU_ASSERT_EQUAL(tl_lock_locked(l), 1); /* handed over, not unlocked */
        CU_ASSERT_EQUAL(tl_future_done(w[i].f), 1);
        spin(loop, 1);
        CU_ASSERT_EQUAL(w[i].rc, 0);
    }
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    CU_ASSERT_EQUAL(log.n, 4);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(log.ids[i], i);
        unwatch(&w[i]);
    }
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_a_newcomer_cannot_barge_past_a_woken_waiter(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    waiter_t a, b, late;
    acquire(l, &a, 1, NULL);
    acquire(l, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0); /* to b, whose callback has not run */
    acquire(l, &late, 3, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, 0);
    ASSERT_PENDING(&late);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(late.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    unwatch(&a);
    unwatch(&b);
    unwatch(&late);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* ---- cancellation ----------------------------------------------------- */

static void test_a_cancelled_waiter_is_skipped(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    wlog_t log = {0};
    waiter_t holder, a, b;
    acquire(l, &holder, 0, &log);
    acquire(l, &a, 1, &log);
    acquire(l, &b, 2, &log);
    spin(loop, 1);
    CU_ASSERT_EQUAL(tl_future_cancel(a.f, NULL), 1);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    unwatch(&holder);
    unwatch(&a);
    unwatch(&b);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* The race asyncio lost wakeups to: in one iteration, one callback cancels
 * waiter A and the next releases the lock, before A's done callback (which
 * would have noticed the cancellation) runs. The lock must go to B. */
typedef struct race {
    tl_lock_t *lock;
    waiter_t *victim;
    int cancel_rc, release_rc;
} race_t;

static void cancel_victim(void *ctx) {
    race_t *r = ctx;
    r->cancel_rc = tl_future_cancel(r->victim->f, NULL);
}
static void release_lock(void *ctx) {
    race_t *r = ctx;
    r->release_rc = tl_lock_release(r->lock);
}

static void test_waiter_cancelled_just_before_the_release_does_not_lose_the_wakeup(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    waiter_t holder, a, b;
    acquire(l, &holder, 0, NULL);
    acquire(l, &a, 1, NULL);
    acquire(l, &b, 2, NULL);
    spin(loop, 1);
    race_t r = {l, &a, -1, -1};
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    tl_loop_call_soon(loop, release_lock, &r, NULL);
    spin(loop, 1); /* both in one batch */
    CU_ASSERT_EQUAL(r.cancel_rc, 1);
    CU_ASSERT_EQUAL(r.release_rc, 0);
    CU_ASSERT_EQUAL(tl_future_done(b.f), 1);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    unwatch(&holder);
    unwatch(&a);
    unwatch(&b);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* The other order: the release wakes A, then, in the same iteration and
 * before A's callback runs, A is cancelled. Handing over and completing are
 * one step, so the cancel comes too late (returns 0) and A owns the lock;
 * when A's code releases it, B gets it. */
static void release_in_callback(waiter_t *w) {
    if (w->rc == 0)
        CU_ASSERT_EQUAL(tl_lock_release(w->ctx), 0);
}

static void test_waiter_cancelled_just_after_the_release_passes_the_lock_on(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    waiter_t holder, a, b;
    acquire(l, &holder, 0, NULL);
    acquire(l, &a, 1, NULL);
    acquire(l, &b, 2, NULL);
    a.then = release_in_callback;
    a.ctx = l;
    spin(loop, 1);
    race_t r = {l, &a, -1, -1};
    tl_loop_call_soon(loop, release_lock, &r, NULL);
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(r.release_rc, 0);
    CU_ASSERT_EQUAL(r.cancel_rc, 0);
    CU_ASSERT_EQUAL(tl_future_cancelled(a.f), 0);
    ASSERT_PENDING(&b);
    spin(loop, 2); /* a's callback releases; b's runs */
    CU_ASSERT_EQUAL(a.rc, 0);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    unwatch(&holder);
    unwatch(&a);
    unwatch(&b);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

static void test_releasing_to_only_cancelled_waiters_unlocks(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    waiter_t w[3];
    for (int i = 0; i < 3; i++)
        acquire(l, &w[i], i, NULL);
    tl_future_cancel(w[1].f, NULL);
    tl_future_cancel(w[2].f, NULL);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    waiter_t next;
    acquire(l, &next, 3, NULL);
    CU_ASSERT_EQUAL(tl_future_done(next.f), 1);
    spin(loop, 1);
    for (int i = 0; i < 3; i++)
        unwatch(&w[i]);
    unwatch(&next);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* A cancelled waiter leaves the queue in the cancel: nothing lingers. */
static void test_cancelled_waiters_are_freed_at_once(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    tl_future_t *held = NULL;
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &held), 0);
    long base = tl_test_live_allocs();
    for (int i = 0; i < 100; i++) {
        tl_future_t *f = NULL;
        CU_ASSERT_EQUAL_FATAL(tl_lock_acquire_future(l, &f), 0);
        CU_ASSERT_EQUAL(tl_test_live_allocs() - base, 1); /* one block */
        CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
        tl_future_unref(f);
        CU_ASSERT_EQUAL(tl_test_live_allocs() - base, 0); /* gone */
    }
    tl_future_unref(held);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* A waiter's future can be cancelled, not completed from outside: a
 * result set behind the lock's back would fake an acquisition. */
static void test_only_the_lock_completes_its_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    tl_future_t *held = NULL, *f = NULL;
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &held), 0);
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &f), 0);
    CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_set_error(f, TL_EIO, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 1);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 0);
    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
    tl_future_unref(held);
    tl_future_unref(f);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* A random walk of acquires, cancels, releases and iterations, checked
 * after every step against what a lock means: one owner at most, locked
 * exactly when there is one, and never a pending waiter while it is free. */
static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static void test_random_interleavings_keep_one_owner_and_lose_no_wakeup(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    enum { N = 400 };
    static waiter_t w[N];
    static int released[N];
    memset(released, 0, sizeof released);
    int nw = 0;
    unsigned seed = 12345;
    for (int step = 0; step < 3000; step++) {
        unsigned r = next_rand(&seed) % 8;
        if (r < 3 && nw < N) {
            acquire(l, &w[nw], nw, NULL);
            nw++;
        } else if (r < 5 && nw > 0) {
            tl_future_cancel(w[next_rand(&seed) % nw].f, NULL);
        } else if (r < 7) {
            for (int i = 0; i < nw; i++)
                if (!released[i] && tl_future_done(w[i].f) &&
                    !tl_future_cancelled(w[i].f)) {
                    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
                    released[i] = 1;
                    break;
                }
        } else {
            spin(loop, 1);
        }
        int owners = 0, pending = 0;
        for (int i = 0; i < nw; i++) {
            int done = tl_future_done(w[i].f);
            owners += done && !released[i] && !tl_future_cancelled(w[i].f);
            pending += !done;
        }
        CU_ASSERT(owners <= 1);
        CU_ASSERT_EQUAL(tl_lock_locked(l), owners);
        if (owners == 0)
            CU_ASSERT_EQUAL(pending, 0);
    }
    /* Drain: every waiter still pending gets the lock in turn. */
    for (int i = 0; i < nw; i++) {
        if (!tl_future_done(w[i].f))
            CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    }
    for (int round = 0; round < N + 1; round++) {
        int any = 0;
        for (int i = 0; i < nw; i++)
            if (!released[i] && tl_future_done(w[i].f) && !tl_future_cancelled(w[i].f)) {
                CU_ASSERT_EQUAL(tl_lock_release(l), 0);
                released[i] = 1;
                any = 1;
            }
        if (!any)
            break;
    }
    for (int i = 0; i < nw; i++)
        CU_ASSERT_EQUAL(tl_future_done(w[i].f), 1);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    spin(loop, 1);
    for (int i = 0; i < nw; i++)
        unwatch(&w[i]);
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* ---- freeing, threads, closed loops ----------------------------------- */

static void test_free_cancels_the_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    waiter_t holder, a, b;
    acquire(l, &holder, 0, NULL);
    acquire(l, &a, 1, NULL);
    acquire(l, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_lock_free(l), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(holder.rc, 0);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    unwatch(&holder);
    unwatch(&a);
    unwatch(&b);
    tl_test_loop_free(loop);
}

static void test_a_closed_loop_refuses_changes_but_allows_free(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    tl_future_t *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &a), 0);
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &b), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &a), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_lock_release(l), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
    CU_ASSERT_EQUAL(tl_lock_free(l), 0);
    tl_future_unref(a);
    tl_future_unref(b);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

typedef struct foreign {
    tl_lock_t *l;
    int new_rc, acquire_rc, release_rc, locked_rc, free_rc;
    tl_loop_t *loop;
} foreign_t;

static void foreign_calls(void *ctx) {
    foreign_t *t = ctx;
    tl_lock_t *l2 = NULL;
    tl_future_t *f = NULL;
    t->new_rc = tl_lock_new(t->loop, &l2);
    t->acquire_rc = tl_lock_acquire_future(t->l, &f);
    t->release_rc = tl_lock_release(t->l);
    t->locked_rc = tl_lock_locked(t->l);
    t->free_rc = tl_lock_free(t->l);
}

static void test_other_threads_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    foreign_t t = {l, 0, 0, 0, 0, 0, loop};
    on_other_thread(foreign_calls, &t);
    CU_ASSERT_EQUAL(t.new_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(t.acquire_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(t.release_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(t.locked_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(t.free_rc, TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(tl_lock_free(l), 0);
    tl_test_loop_free(loop);
}

/* ---- running out of memory -------------------------------------------- */

static void test_new_survives_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1; n < WALK_MAX; n++) {
        tl_lock_t *l = NULL;
        arm(n);
        int rc = tl_lock_new(loop, &l);
        int hit = disarm(n);
        if (rc == 0)
            tl_lock_free(l);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        if (!hit) {
            CU_ASSERT_EQUAL(rc, 0);
            break;
        }
    }
    tl_test_loop_free(loop);
}

static void test_acquire_survives_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_lock_t *l = new_lock(loop);
    /* Uncontended (a done future) and contended (a queued waiter). */
    for (int contended = 0; contended < 2; contended++) {
        tl_future_t *held = NULL;
        if (contended)
            CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &held), 0);
        for (long n = 1; n < WALK_MAX; n++) {
            tl_future_t *f = NULL;
            arm(n);
            int rc = tl_lock_acquire_future(l, &f);
            int hit = disarm(n);
            CU_ASSERT_EQUAL(tl_lock_locked(l), 1 - (rc != 0 && !contended));
            if (rc == 0) {
                CU_ASSERT_EQUAL(tl_future_done(f), !contended);
                tl_future_cancel(f, NULL);
                if (!contended)
                    CU_ASSERT_EQUAL(tl_lock_release(l), 0);
                tl_future_unref(f);
            } else {
                CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            }
            if (!hit) {
                CU_ASSERT_EQUAL(rc, 0);
                break;
            }
        }
        if (held) {
            tl_future_unref(held);
            CU_ASSERT_EQUAL(tl_lock_release(l), 0);
        }
        CU_ASSERT_EQUAL(tl_lock_locked(l), 0);
    }
    tl_lock_free(l);
    tl_test_loop_free(loop);
}

/* A release whose waiter cannot be woken (the loop cannot schedule its
 * done callback) fails and changes nothing; the next release succeeds. */
static void test_release_that_cannot_wake_the_waiter_changes_nothing(void) {
    int failures = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        /* A fresh loop, and no callback scheduled before the release, so
         * scheduling a's callback has to allocate the loop's queues. */
        tl_loop_t *loop = tl_test_loop();
        tl_lock_t *l = new_lock(loop);
        tl_future_t *held = NULL;
        waiter_t a;
        CU_ASSERT_EQUAL(tl_lock_acquire_future(l, &held), 0);
        acquire(l, &a, 1, NULL);
        arm(n);
        int rc = tl_lock_release(l);
        int hit = disarm(n);
        CU_ASSERT_EQUAL(tl_lock_locked(l), 1);
        if (rc == TL_ENOMEM) {
            failures++;
            CU_ASSERT_EQUAL(tl_future_done(a.f), 0);
            CU_ASSERT_EQUAL(tl_lock_release(l), 0);
        } else {
            CU_ASSERT_EQUAL(rc, 0);
        }
        CU_ASSERT_EQUAL(tl_future_done(a.f), 1);
        spin(loop, 1);
        CU_ASSERT_EQUAL(a.rc, 0);
        tl_future_unref(held);
        unwatch(&a);
        tl_lock_free(l);
        tl_test_loop_free(loop);
        if (!hit)
            break;
    }
    CU_ASSERT(failures > 0); /* the walk did reach the wake */
}

TL_TEST_SUITE(sync_lock,
              TL_TEST(test_new_lock_is_unlocked),
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_release_of_an_unlocked_lock_is_an_error),
              TL_TEST(test_acquire_of_an_unlocked_lock_is_done_at_once),
              TL_TEST(test_waiters_get_the_lock_in_fifo_order),
              TL_TEST(test_a_newcomer_cannot_barge_past_a_woken_waiter),
              TL_TEST(test_a_cancelled_waiter_is_skipped),
              TL_TEST(test_waiter_cancelled_just_before_the_release_does_not_lose_the_wakeup),
              TL_TEST(test_waiter_cancelled_just_after_the_release_passes_the_lock_on),
              TL_TEST(test_releasing_to_only_cancelled_waiters_unlocks),
              TL_TEST(test_cancelled_waiters_are_freed_at_once),
              TL_TEST(test_only_the_lock_completes_its_waiters),
              TL_TEST(test_random_interleavings_keep_one_owner_and_lose_no_wakeup),
              TL_TEST(test_free_cancels_the_waiters),
              TL_TEST(test_a_closed_loop_refuses_changes_but_allows_free),
              TL_TEST(test_other_threads_are_refused),
              TL_TEST(test_new_survives_allocation_failures),
              TL_TEST(test_acquire_survives_allocation_failures),
              TL_TEST(test_release_that_cannot_wake_the_waiter_changes_nothing));
