/*
 * timers: call_later / call_at ordering, deadlines, cancellation and what
 * cancelling costs (asyncio's TimerHandle and the scheduled heap).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "tl_test.h"

#define MS (1000000LL)

static void incr(void *ctx) { (*(int *)ctx)++; }

typedef struct order {
    tl_loop_t *loop;
    int seen[4096];
    int64_t at[4096];
    int n;
} order_t;

typedef struct tag {
    order_t *o;
    int id;
    int64_t when;
} tag_t;

static void record(void *arg) {
    tag_t *t = arg;
    if (t->o->n < 4096) {
        t->o->seen[t->o->n] = t->id;
        t->o->at[t->o->n] = tl_loop_time(t->o->loop);
    }
    t->o->n++;
}

/* Runs the loop until *flag becomes non-zero or limit_ns passes. */
static int run_until(tl_loop_t *loop, const int *flag, int64_t limit_ns) {
    uint64_t end = tl_now_ns() + (uint64_t)limit_ns;
    while (!*flag) {
        if (tl_now_ns() > end)
            return TL_ETIMEDOUT;
        int rc = tl_loop_run_once(loop, 10 * MS);
        if (rc)
            return rc;
    }
    return 0;
}

static void test_timers_run_in_deadline_order(void) {
    tl_loop_t *loop = tl_test_loop();
    static order_t o;
    memset(&o, 0, sizeof o);
    o.loop = loop;
    tag_t t[3] = {{&o, 3, 0}, {&o, 1, 0}, {&o, 2, 0}};
    /* Absolute deadlines from one reading of the clock: relative ones would
     * drift apart by the time between the calls (milliseconds under
     * valgrind on a loaded machine). */
    int64_t now = tl_loop_time(loop);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, now + 6 * MS, record, &t[0], NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, now + 2 * MS, record, &t[1], NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, now + 4 * MS, record, &t[2], NULL), 0);
    int three = 0;
    while (o.n < 3 && three++ < 100)
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_once(loop, 20 * MS), 0);
    CU_ASSERT_EQUAL_FATAL(o.n, 3);
    CU_ASSERT_EQUAL(o.seen[0], 1);
    CU_ASSERT_EQUAL(o.seen[1], 2);
    CU_ASSERT_EQUAL(o.seen[2], 3);
    tl_test_loop_free(loop);
}

static void test_equal_deadlines_run_in_scheduling_order(void) {
    tl_loop_t *loop = tl_test_loop();
    static order_t o;
    memset(&o, 0, sizeof o);
    o.loop = loop;
    static tag_t t[50];
    int64_t when = tl_loop_time(loop) + 2 * MS;
    for (int i = 0; i < 50; i++) {
        t[i] = (tag_t){&o, i, when};
        CU_ASSERT_EQUAL(tl_loop_call_at(loop, when, record, &t[i], NULL), 0);
    }
    int guard = 0;
    while (o.n < 50 && guard++ < 100)
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_once(loop, 20 * MS), 0);
    CU_ASSERT_EQUAL_FATAL(o.n, 50);
    int bad = 0;
    for (int i = 0; i < 50; i++)
        bad += o.seen[i] != i;
    CU_ASSERT_EQUAL(bad, 0);
    tl_test_loop_free(loop);
}

/* Deadlines that are all past, in a scrambled order with many ties and a
 * third cancelled: one iteration runs the rest sorted by (deadline, order
 * of scheduling). Exercises the heap's sift and removal paths. */
static void test_due_timers_run_sorted_by_deadline_then_scheduling_order(void) {
    enum { N = 3000 };
    tl_loop_t *loop = tl_test_loop();
    static order_t o;
    memset(&o, 0, sizeof o);
    o.loop = loop;
    static tag_t t[N];
    static tl_handle_t h[N];
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        int64_t when = 1000 + (int64_t)((x >> 16) % 97); /* long past */
        t[i] = (tag_t){&o, i, when};
        CU_ASSERT_EQUAL_FATAL(tl_loop_call_at(loop, when, record, &t[i], &h[i]), 0);
    }
    int cancelled = 0;
    for (int i = 0; i < N; i += 3) {
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, h[i]), 1);
        cancelled++;
    }
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL_FATAL(o.n, N - cancelled);
    int bad = 0;
    for (int k = 1; k < o.n; k++) {
        const tag_t *a = &t[o.seen[k - 1]], *b = &t[o.seen[k]];
        if (a->when > b->when || (a->when == b->when && a->id > b->id))
            bad++;
    }
    for (int k = 0; k < o.n; k++)
        bad += o.seen[k] % 3 == 0; /* a cancelled one ran */
    CU_ASSERT_EQUAL(bad, 0);
    tl_test_loop_free(loop);
}

static void test_call_at_in_the_past_runs_in_the_next_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, tl_loop_time(loop) - 1000 * MS, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, 0, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, -5, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, INT64_MIN, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 4);
    tl_test_loop_free(loop);
}

static void test_negative_delay_counts_as_zero(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t h;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, -5000 * MS, incr, &n, &h), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, INT64_MIN, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 1);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, -1), 0);
    CU_ASSERT(tl_now_ns() - t0 < 200 * MS);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 0);
    tl_test_loop_free(loop);
}

static void test_timers_never_fire_before_their_deadline(void) {
    tl_loop_t *loop = tl_test_loop();
    static order_t o;
    memset(&o, 0, sizeof o);
    o.loop = loop;
    static tag_t t[8];
    for (int i = 0; i < 8; i++) {
        int64_t delay = (i % 4 + 1) * MS + i * 137 * 1000;
        t[i].o = &o;
        t[i].id = i;
        t[i].when = tl_loop_time(loop) + delay;
        CU_ASSERT_EQUAL(tl_loop_call_at(loop, t[i].when, record, &t[i], NULL), 0);
    }
    int guard = 0;
    while (o.n < 8 && guard++ < 100)
        CU_ASSERT_EQUAL_FATAL(tl_loop_run_once(loop, 20 * MS), 0);
    CU_ASSERT_EQUAL_FATAL(o.n, 8);
    int early = 0;
    for (int k = 0; k < 8; k++)
        early += o.at[k] < t[o.seen[k]].when;
    CU_ASSERT_EQUAL(early, 0);
    tl_test_loop_free(loop);
}

static void test_run_once_zero_does_not_wait_for_a_timer(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 250 * MS, incr, &n, NULL), 0);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0); /* shorter than the timer */
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT(tl_now_ns() - t0 < 200 * MS);
    tl_test_loop_free(loop);
}

static void test_run_once_blocks_until_the_first_timer_is_due(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    int64_t when = tl_loop_time(loop) + 3 * MS;
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, when, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000 * MS, incr, &n, NULL), 0);
    /* A wait can be cut short by a signal, so allow a few iterations. */
    for (int i = 0; i < 5 && n == 0; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, -1), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(tl_loop_time(loop) >= when);
    tl_test_loop_free(loop);
}

static void stop_it(void *loop) { tl_loop_stop(loop); }

static void test_timer_wakes_up_run_forever(void) {
    tl_loop_t *loop = tl_test_loop();
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2 * MS, stop_it, loop, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    uint64_t took = tl_now_ns() - t0;
    CU_ASSERT(took >= 2 * MS);
    CU_ASSERT(took < 300 * MS);
    tl_test_loop_free(loop);
}

static void test_cancelled_timer_does_not_run(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0, m = 0;
    tl_handle_t h, k;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &n, &h), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &m, &k), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 1);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 1);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(m, 1);
    /* A timer that ran is a stale handle. */
    CU_ASSERT_EQUAL(tl_handle_pending(loop, k), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, k), 0);
    tl_test_loop_free(loop);
}

static void test_cancelling_the_only_timer_lets_run_once_sleep_to_its_timeout(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t h;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &n, &h), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2 * MS), 0);
    CU_ASSERT_EQUAL(n, 0);
    tl_test_loop_free(loop);
}

static void test_cancelling_many_timers_does_not_grow_memory(void) {
    enum { N = 100000 };
    tl_loop_t *loop = tl_test_loop();
    static tl_handle_t h[N];
    int n = 0;
    long after_first = 0;
    for (int round = 0; round < 4; round++) {
        int64_t base = tl_loop_time(loop) + 60 * 1000 * MS;
        for (int i = 0; i < N; i++)
            if (tl_loop_call_at(loop, base + (i * 7919) % 1000, incr, &n, &h[i]))
                CU_FAIL_FATAL("call_at failed");
        /* cancel in an order unrelated to the heap's */
        for (int i = 0; i < N; i += 2)
            if (tl_handle_cancel(loop, h[i]) != 1)
                CU_FAIL_FATAL("cancel failed");
        for (int i = N - 1; i > 0; i -= 2)
            if (tl_handle_cancel(loop, h[i]) != 1)
                CU_FAIL_FATAL("cancel failed");
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        if (round == 0)
            after_first = tl_test_live_allocs();
    }
    CU_ASSERT_EQUAL(tl_test_live_allocs(), after_first);
    CU_ASSERT_EQUAL(n, 0);
    /* Nothing is left to wait for: a bounded run_once returns promptly. */
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0);
    CU_ASSERT(tl_now_ns() - t0 < 300 * MS);
    tl_test_loop_free(loop);
}

typedef struct duel {
    tl_loop_t *loop;
    tl_handle_t other;
    int cancel_rc;
    int ran_a, ran_b;
} duel_t;

static void timer_a(void *arg) {
    duel_t *d = arg;
    d->ran_a++;
    d->cancel_rc = tl_handle_cancel(d->loop, d->other);
}
static void timer_b(void *arg) { ((duel_t *)arg)->ran_b++; }

static void test_timer_cancels_another_due_in_the_same_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    duel_t d = {loop, 0, -1, 0, 0};
    int64_t when = tl_loop_time(loop) - MS;
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, when, timer_a, &d, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, when, timer_b, &d, &d.other), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(d.ran_a, 1);
    CU_ASSERT_EQUAL(d.cancel_rc, 1);
    CU_ASSERT_EQUAL(d.ran_b, 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, d.other), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(d.ran_b, 0);
    tl_test_loop_free(loop);
}

static void test_timer_cancelled_after_it_moved_to_the_ready_queue(void) {
    tl_loop_t *loop = tl_test_loop();
    duel_t d = {loop, 0, -1, 0, 0};
    /* The call_soon callback was ready first, so it runs before the timer
     * in the same batch: by then the timer sits in the ready queue. */
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, timer_a, &d, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, -1, timer_b, &d, &d.other), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(d.cancel_rc, 1);
    CU_ASSERT_EQUAL(d.ran_b, 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, d.other), 0);
    tl_test_loop_free(loop);
}

static void test_ready_callbacks_run_before_timers_that_expire_later(void) {
    tl_loop_t *loop = tl_test_loop();
    static order_t o;
    memset(&o, 0, sizeof o);
    o.loop = loop;
    tag_t timer = {&o, 1, 0}, soon = {&o, 2, 0};
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, 0, record, &timer, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, record, &soon, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL_FATAL(o.n, 2);
    CU_ASSERT_EQUAL(o.seen[0], 2);
    CU_ASSERT_EQUAL(o.seen[1], 1);
    tl_test_loop_free(loop);
}

typedef struct again {
    tl_loop_t *loop;
    int n;
} again_t;

static void reschedule_now(void *arg) {
    again_t *a = arg;
    a->n++;
    tl_loop_call_later(a->loop, 0, reschedule_now, a, NULL);
}

static void test_timer_rescheduling_itself_with_zero_delay_runs_once_per_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    again_t a = {loop, 0};
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, reschedule_now, &a, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(a.n, 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(a.n, 2);
    tl_test_loop_free(loop);
}

static void test_huge_delays_do_not_overflow(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t a, b;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, INT64_MAX, incr, &n, &a), 0);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, INT64_MAX, incr, &n, &b), 0);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 1 * MS), 0);
    CU_ASSERT(tl_now_ns() - t0 < 300 * MS);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, a), 1);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, a), 1);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, b), 1);
    tl_test_loop_free(loop);
}

static void test_a_timer_handle_is_never_zero_and_never_reused_as_is(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t prev = 0;
    for (int i = 0; i < 100; i++) {
        tl_handle_t h = 0;
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &n, &h), 0);
        CU_ASSERT_NOT_EQUAL(h, 0);
        CU_ASSERT_NOT_EQUAL(h, prev);
        if (i % 2)
            CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, prev), 0);
        prev = h;
    }
    CU_ASSERT_EQUAL(n, 50);
    tl_test_loop_free(loop);
}

static void test_call_at_fails_cleanly_when_memory_runs_out(void) {
    for (long k = 1; k < 10; k++) {
        tl_loop_t *loop = tl_test_loop();
        int n = 0;
        tl_handle_t h = 0;
        tl_test_fail_alloc_at(k);
        int rc = tl_loop_call_at(loop, 0, incr, &n, &h);
        tl_test_fail_alloc_at(0);
        CU_ASSERT(rc == 0 || rc == TL_ENOMEM);
        if (rc)
            CU_ASSERT_EQUAL(h, 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, rc == 0);
        CU_ASSERT_EQUAL(tl_loop_call_at(loop, 0, incr, &n, &h), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, (rc == 0) + 1);
        tl_test_loop_free(loop);
    }
}

static void test_expired_timer_waits_when_the_ready_queue_cannot_grow(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    int n = 0;
    tl_handle_t h;
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, 0, incr, &n, &h), 0);
    /* The ready queue has not been allocated yet: moving the expired timer
     * there needs memory. */
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_ENOMEM);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 1);
    /* It is tried again on the next iteration. */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 1);
    tl_test_loop_free(loop);
}

static void test_a_timer_stops_a_run_that_also_has_distant_timers(void) {
    tl_loop_t *loop = tl_test_loop();
    int flag = 0;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 30 * 1000 * MS, incr, &flag, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, incr, &flag, NULL), 0);
    CU_ASSERT_EQUAL(run_until(loop, &flag, 300 * MS), 0);
    CU_ASSERT_EQUAL(flag, 1);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(timers,
              TL_TEST(test_timers_run_in_deadline_order),
              TL_TEST(test_equal_deadlines_run_in_scheduling_order),
              TL_TEST(test_due_timers_run_sorted_by_deadline_then_scheduling_order),
              TL_TEST(test_call_at_in_the_past_runs_in_the_next_iteration),
              TL_TEST(test_negative_delay_counts_as_zero),
              TL_TEST(test_timers_never_fire_before_their_deadline),
              TL_TEST(test_run_once_zero_does_not_wait_for_a_timer),
              TL_TEST(test_run_once_blocks_until_the_first_timer_is_due),
              TL_TEST(test_timer_wakes_up_run_forever),
              TL_TEST(test_cancelled_timer_does_not_run),
              TL_TEST(test_cancelling_the_only_timer_lets_run_once_sleep_to_its_timeout),
              TL_TEST(test_cancelling_many_timers_does_not_grow_memory),
              TL_TEST(test_timer_cancels_another_due_in_the_same_iteration),
              TL_TEST(test_timer_cancelled_after_it_moved_to_the_ready_queue),
              TL_TEST(test_ready_callbacks_run_before_timers_that_expire_later),
              TL_TEST(test_timer_rescheduling_itself_with_zero_delay_runs_once_per_iteration),
              TL_TEST(test_huge_delays_do_not_overflow),
              TL_TEST(test_a_timer_handle_is_never_zero_and_never_reused_as_is),
              TL_TEST(test_call_at_fails_cleanly_when_memory_runs_out),
              TL_TEST(test_expired_timer_waits_when_the_ready_queue_cannot_grow),
              TL_TEST(test_a_timer_stops_a_run_that_also_has_distant_timers))
