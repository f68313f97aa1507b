/* sync_semaphore: asyncio.Semaphore and BoundedSemaphore through the
 * future form: counting, FIFO hand-over, bounds, cancellation races, freeing,
 * running out of memory. */
#include <limits.h>
#include <string.h>

#include "sync_test.h"

static tl_semaphore_t *new_sem(tl_loop_t *loop, int value, int bounded) {
    tl_semaphore_t *s = NULL;
    CU_ASSERT_EQUAL_FATAL(bounded ? tl_bounded_semaphore_new(loop, value, &s)
                                  : tl_semaphore_new(loop, value, &s),
                          0);
    return s;
}

static void acquire(tl_semaphore_t *s, waiter_t *w, int id, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_semaphore_acquire_future(s, &f), 0);
    watch(w, f, id, log);
}

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = NULL;
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_semaphore_new(loop, -1, &s), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_bounded_semaphore_new(loop, -1, &s), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_new(NULL, 1, &s), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_new(loop, 1, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_free(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_acquire_future(NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_release(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_locked(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_value(NULL), TL_EINVAL);
    s = new_sem(loop, 1, 0);
    CU_ASSERT_EQUAL(tl_semaphore_acquire_future(s, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_acquire_counts_down_and_waits_at_zero(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 2, 0);
    CU_ASSERT_EQUAL(tl_semaphore_locked(s), 0);
    waiter_t w[3];
    for (int i = 0; i < 3; i++)
        acquire(s, &w[i], i, NULL);
    CU_ASSERT_EQUAL(tl_future_done(w[0].f), 1);
    CU_ASSERT_EQUAL(tl_future_done(w[1].f), 1);
    ASSERT_PENDING(&w[2]);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_locked(s), 1);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
    CU_ASSERT_EQUAL(tl_future_done(w[2].f), 1);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0); /* handed over */
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 2);
    spin(loop, 1);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(w[i].rc, 0);
        unwatch(&w[i]);
    }
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_zero_semaphore_waits_for_a_release(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 0, 0);
    wlog_t log = {0};
    waiter_t w[3];
    for (int i = 0; i < 3; i++)
        acquire(s, &w[i], i, &log);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
        spin(loop, 1);
        CU_ASSERT_EQUAL(log.n, i + 1);
    }
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(log.ids[i], i); /* FIFO */
        unwatch(&w[i]);
    }
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_bounded_semaphore_refuses_extra_releases(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 1, 1);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), TL_ERANGE);
    waiter_t a, b;
    acquire(s, &a, 1, NULL);
    acquire(s, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0); /* to b */
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), TL_ERANGE);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1);
    spin(loop, 1);
    unwatch(&a);
    unwatch(&b);
    tl_semaphore_free(s);
    /* A bounded semaphore at 0 refuses every release. */
    s = new_sem(loop, 0, 1);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), TL_ERANGE);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_unbounded_semaphore_refuses_to_overflow(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, INT_MAX - 1, 0);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), INT_MAX);
    CU_ASSERT_EQUAL(tl_semaphore_release(s), TL_ERANGE);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

/* ---- cancellation ----------------------------------------------------- */

typedef struct race {
    tl_semaphore_t *s;
    waiter_t *victim;
    int cancel_rc, release_rc;
} race_t;

static void cancel_victim(void *ctx) {
    race_t *r = ctx;
    r->cancel_rc = tl_future_cancel(r->victim->f, NULL);
}
static void release_unit(void *ctx) {
    race_t *r = ctx;
    r->release_rc = tl_semaphore_release(r->s);
}

static void test_waiter_cancelled_just_before_the_release_does_not_lose_the_wakeup(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 0, 0);
    waiter_t a, b;
    acquire(s, &a, 1, NULL);
    acquire(s, &b, 2, NULL);
    race_t r = {s, &a, -1, -1};
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    tl_loop_call_soon(loop, release_unit, &r, NULL);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.cancel_rc, 1);
    CU_ASSERT_EQUAL(r.release_rc, 0);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    unwatch(&a);
    unwatch(&b);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void release_in_callback(waiter_t *w) {
    if (w->rc == 0)
        CU_ASSERT_EQUAL(tl_semaphore_release(w->ctx), 0);
}

static void test_waiter_cancelled_just_after_the_release_passes_the_unit_on(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 0, 0);
    waiter_t a, b;
    acquire(s, &a, 1, NULL);
    acquire(s, &b, 2, NULL);
    a.then = release_in_callback;
    a.ctx = s;
    race_t r = {s, &a, -1, -1};
    tl_loop_call_soon(loop, release_unit, &r, NULL);
    tl_loop_call_soon(loop, cancel_victim, &r, NULL);
    spin(loop, 1);
    CU_ASSERT_EQUAL(r.cancel_rc, 0); /* too late: a owns the unit */
    ASSERT_PENDING(&b);
    spin(loop, 2);
    CU_ASSERT_EQUAL(a.rc, 0);
    CU_ASSERT_EQUAL(b.rc, 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
    unwatch(&a);
    unwatch(&b);
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

static void test_release_with_only_cancelled_waiters_counts_up(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *u = new_sem(loop, 0, 0);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_semaphore_acquire_future(u, &f), 0);
    tl_future_cancel(f, NULL);
    CU_ASSERT_EQUAL(tl_semaphore_release(u), 0);
    CU_ASSERT_EQUAL(tl_semaphore_value(u), 1);
    CU_ASSERT_EQUAL(tl_semaphore_locked(u), 0);
    tl_future_unref(f);
    tl_semaphore_free(u);
    spin(loop, 1);
    tl_test_loop_free(loop);
}

/* A random walk checked after every step: units held + counter = initial,
 * and never a pending waiter while the counter is above 0. */
static unsigned next_rand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return *s >> 16;
}

static void test_random_interleavings_conserve_units_and_lose_no_wakeup(void) {
    tl_loop_t *loop = tl_test_loop();
    enum { N = 400, UNITS = 3 };
    tl_semaphore_t *s = new_sem(loop, UNITS, 1);
    static waiter_t w[N];
    static int released[N];
    memset(released, 0, sizeof released);
    int nw = 0;
    unsigned seed = 777;
    for (int step = 0; step < 3000; step++) {
        unsigned r = next_rand(&seed) % 8;
        if (r < 3 && nw < N) {
            acquire(s, &w[nw], nw, NULL);
            nw++;
        } else if (r < 5 && nw > 0) {
            tl_future_cancel(w[next_rand(&seed) % nw].f, NULL);
        } else if (r < 7 && nw > 0) {
            int i = (int)(next_rand(&seed) % (unsigned)nw);
            if (!released[i] && tl_future_done(w[i].f) && !tl_future_cancelled(w[i].f)) {
                CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
                released[i] = 1;
            }
        } else {
            spin(loop, 1);
        }
        int held = 0, pending = 0;
        for (int i = 0; i < nw; i++) {
            int done = tl_future_done(w[i].f);
            held += done && !released[i] && !tl_future_cancelled(w[i].f);
            pending += !done;
        }
        CU_ASSERT_EQUAL(held + tl_semaphore_value(s), UNITS);
        if (tl_semaphore_value(s) > 0)
            CU_ASSERT_EQUAL(pending, 0);
    }
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < nw; i++)
            if (!released[i] && tl_future_done(w[i].f) && !tl_future_cancelled(w[i].f)) {
                CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
                released[i] = again = 1;
            }
    }
    CU_ASSERT_EQUAL(tl_semaphore_value(s), UNITS);
    spin(loop, 1);
    for (int i = 0; i < nw; i++) {
        CU_ASSERT_EQUAL(tl_future_done(w[i].f), 1);
        unwatch(&w[i]);
    }
    tl_semaphore_free(s);
    tl_test_loop_free(loop);
}

/* ---- freeing, threads ------------------------------------------------- */

static void test_free_cancels_the_waiters(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 0, 0);
    waiter_t a, b;
    acquire(s, &a, 1, NULL);
    acquire(s, &b, 2, NULL);
    CU_ASSERT_EQUAL(tl_semaphore_free(s), 0);
    spin(loop, 1);
    CU_ASSERT_EQUAL(a.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(b.rc, TL_ECANCELLED);
    unwatch(&a);
    unwatch(&b);
    tl_test_loop_free(loop);
}

typedef struct foreign {
    tl_semaphore_t *s;
    int rc[4];
} foreign_t;

static void foreign_calls(void *ctx) {
    foreign_t *t = ctx;
    tl_future_t *f = NULL;
    t->rc[0] = tl_semaphore_acquire_future(t->s, &f);
    t->rc[1] = tl_semaphore_release(t->s);
    t->rc[2] = tl_semaphore_value(t->s);
    t->rc[3] = tl_semaphore_free(t->s);
}

static void test_other_threads_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_semaphore_t *s = new_sem(loop, 1, 0);
    foreign_t t = {s, {0}};
    on_other_thread(foreign_calls, &t);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(t.rc[i], TL_EWRONGTHREAD);
    CU_ASSERT_EQUAL(tl_semaphore_value(s), 1);
    tl_semaphore_free(s);
    tl_loop_close(loop);
    CU_ASSERT_EQUAL(tl_semaphore_new(loop, 1, &s), TL_ECLOSED);
    tl_loop_unref(loop);
}

/* ---- running out of memory -------------------------------------------- */

static void test_new_and_acquire_survive_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    for (long n = 1; n < WALK_MAX; n++) {
        tl_semaphore_t *s = NULL;
        arm(n);
        int rc = tl_bounded_semaphore_new(loop, 1, &s);
        int hit = disarm(n);
        if (rc == 0)
            tl_semaphore_free(s);
        else
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        if (!hit)
            break;
    }
    tl_semaphore_t *s = new_sem(loop, 1, 0);
    for (int contended = 0; contended < 2; contended++) {
        for (long n = 1; n < WALK_MAX; n++) {
            tl_future_t *f = NULL;
            arm(n);
            int rc = tl_semaphore_acquire_future(s, &f);
            int hit = disarm(n);
            if (rc == 0) {
                CU_ASSERT_EQUAL(tl_future_done(f), !contended);
                CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
                if (contended)
                    tl_future_cancel(f, NULL);
                else
                    CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
                tl_future_unref(f);
            } else {
                CU_ASSERT_EQUAL(rc, TL_ENOMEM);
                CU_ASSERT_EQUAL(tl_semaphore_value(s), 1 - contended);
            }
            if (!hit)
                break;
        }
        if (!contended) {
            tl_future_t *take = NULL;
            CU_ASSERT_EQUAL(tl_semaphore_acquire_future(s, &take), 0);
            tl_future_unref(take);
        }
    }
    tl_semaphore_free(s);
    spin(loop, 1);
    tl_test_loop_free(loop);
}

static void test_release_that_cannot_wake_the_waiter_changes_nothing(void) {
    int failures = 0;
    for (long n = 1; n < WALK_MAX; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_semaphore_t *s = new_sem(loop, 0, 0);
        waiter_t a;
        acquire(s, &a, 1, NULL);
        arm(n);
        int rc = tl_semaphore_release(s);
        int hit = disarm(n);
        CU_ASSERT_EQUAL(tl_semaphore_value(s), 0);
        if (rc == TL_ENOMEM) {
            failures++;
            CU_ASSERT_EQUAL(tl_future_done(a.f), 0);
            CU_ASSERT_EQUAL(tl_semaphore_release(s), 0);
        } else {
            CU_ASSERT_EQUAL(rc, 0);
        }
        spin(loop, 1);
        CU_ASSERT_EQUAL(a.rc, 0);
        unwatch(&a);
        tl_semaphore_free(s);
        tl_test_loop_free(loop);
        if (!hit)
            break;
    }
    CU_ASSERT(failures > 0);
}

TL_TEST_SUITE(sync_semaphore,
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_acquire_counts_down_and_waits_at_zero),
              TL_TEST(test_zero_semaphore_waits_for_a_release),
              TL_TEST(test_bounded_semaphore_refuses_extra_releases),
              TL_TEST(test_unbounded_semaphore_refuses_to_overflow),
              TL_TEST(test_waiter_cancelled_just_before_the_release_does_not_lose_the_wakeup),
              TL_TEST(test_waiter_cancelled_just_after_the_release_passes_the_unit_on),
              TL_TEST(test_release_with_only_cancelled_waiters_counts_up),
              TL_TEST(test_random_interleavings_conserve_units_and_lose_no_wakeup),
              TL_TEST(test_free_cancels_the_waiters),
              TL_TEST(test_other_threads_are_refused),
              TL_TEST(test_new_and_acquire_survive_allocation_failures),
              TL_TEST(test_release_that_cannot_wake_the_waiter_changes_nothing));
