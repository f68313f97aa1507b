/* alloc: every allocation an operation makes fails in turn (n = 1, 2, ...
 * until the operation no longer reaches the failure). Each failure must give
 * a clean TL_ENOMEM (or a documented success), change nothing, leak nothing,
 * and leave the loop and its futures usable. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "tl_test.h"

/* More than any single operation allocates. */
#define WALK_MAX 32

/* ---- the walk ---------------------------------------------------------- */

static long armed_at;

/* Make the nth allocation from now fail. */
static void arm(long n) {
    armed_at = tl_test_alloc_count();
    tl_test_fail_alloc_at(n);
}

/* Disarm; 1 if the nth allocation was reached (and so failed). */
static int disarm(long n) {
    int hit = tl_test_alloc_count() - armed_at >= n;
    tl_test_fail_alloc_at(0);
    return hit;
}

/* Checks shared by every step of a walk: a hit gives TL_ENOMEM or a
 * success; a miss must succeed, and ends the walk. */
static int step_done(long n, int hit, int rc, int ok) {
    if (hit) {
        if (rc != ok && rc != TL_ENOMEM)
            fprintf(stderr, "\n  allocation %ld failing gave %s\n", n, tl_err_name(rc));
        CU_ASSERT(rc == ok || rc == TL_ENOMEM);
        return 0;
    }
    CU_ASSERT_EQUAL(rc, ok);
    return 1;
}

/* ---- helpers ----------------------------------------------------------- */

static void incr(void *ctx) { (*(int *)ctx)++; }
static void count_done(tl_future_t *f, void *ctx) {
    (void)f;
    (*(int *)ctx)++;
}

typedef struct value {
    int destroyed;
} value_t;

static void destroy_value(void *p) { ((value_t *)p)->destroyed++; }

static tl_loop_t *loop_with(const tl_backend_ops_t *be) {
    tl_loop_options_t o = {sizeof o, be, 0, 0};
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    return loop;
}

/* The loop still schedules and runs a callback. */
static void assert_loop_works(tl_loop_t *loop) {
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 1);
}

static tl_future_t *new_future(tl_loop_t *loop) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &f), 0);
    return f;
}

static const tl_backend_ops_t *backends[2];

static int nbackends(void) {
    int k = 0;
    if (tl_backend_epoll())
        backends[k++] = tl_backend_epoll();
    backends[k++] = tl_backend_poll();
    return k;
}

/* ---- the internal allocation helpers ---------------------------------- */

static void test_array_growth_refuses_sizes_that_overflow(void) {
    void *p = NULL;
    size_t cap = 0;
    /* The very first growth must check its size too. */
    CU_ASSERT_EQUAL(tl__grow(&p, &cap, 1, (size_t)-1 / 4), TL_ENOMEM);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(cap, 0);
    CU_ASSERT_EQUAL(tl__grow(&p, &cap, (size_t)-1 / 2, 16), TL_ENOMEM);
    CU_ASSERT_EQUAL(tl__grow(&p, &cap, (size_t)-1, 1), TL_ENOMEM);
    CU_ASSERT_PTR_NULL(p);
    CU_ASSERT_EQUAL(tl__grow(&p, &cap, 3, sizeof(int)), 0);
    CU_ASSERT_PTR_NOT_NULL(p);
    CU_ASSERT(cap >= 3);
    size_t had = cap;
    void *old = p;
    CU_ASSERT_EQUAL(tl__grow(&p, &cap, (size_t)-1 / 2, sizeof(int)), TL_ENOMEM);
    CU_ASSERT_PTR_EQUAL(p, old); /* the old array stays */
    CU_ASSERT_EQUAL(cap, had);
    tl__free(p);
    CU_ASSERT_PTR_NULL(tl__calloc((size_t)-1 / 2, 4));
    CU_ASSERT_PTR_NULL(tl__strdup(NULL));
}

static void test_array_growth_keeps_the_old_array_when_memory_runs_out(void) {
    int *p = NULL;
    size_t cap = 0;
    CU_ASSERT_EQUAL(tl__grow((void **)&p, &cap, 8, sizeof(int)), 0);
    for (int i = 0; i < 8; i++)
        p[i] = i;
    arm(1);
    CU_ASSERT_EQUAL(tl__grow((void **)&p, &cap, 9, sizeof(int)), TL_ENOMEM);
    CU_ASSERT(disarm(1));
    CU_ASSERT_EQUAL(cap, 8);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(p[i], i);
    CU_ASSERT_EQUAL(tl__grow((void **)&p, &cap, 9, sizeof(int)), 0);
    CU_ASSERT(cap >= 9);
    CU_ASSERT_EQUAL(p[7], 7);
    tl__free(p);
    arm(1);
    CU_ASSERT_PTR_NULL(tl__strdup("x"));
    CU_ASSERT(disarm(1));
}

/* ---- the loop ---------------------------------------------------------- */

static void walk_loop_new(const tl_loop_options_t *opts) {
    int finished = 0;
    long n;
    for (n = 1; n <= WALK_MAX && !finished; n++) {
        long live = tl_test_live_allocs();
        tl_loop_t *loop = (tl_loop_t *)&loop;
        arm(n);
        int rc = tl_loop_new(opts, &loop);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        if (rc == 0) {
            assert_loop_works(loop);
            tl_test_loop_free(loop);
        } else {
            CU_ASSERT_PTR_EQUAL(loop, (tl_loop_t *)&loop); /* *out untouched */
        }
        CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    }
    CU_ASSERT(finished);
    CU_ASSERT(n > 2); /* it allocates, so at least one failure was walked */
}

static void test_loop_new_with_each_backend_survives_allocation_failures(void) {
    for (int b = 0, k = nbackends(); b < k; b++) {
        tl_loop_options_t o = {sizeof o, backends[b], 0, 0};
        walk_loop_new(&o);
    }
}

static void test_loop_new_with_defaults_survives_allocation_failures(void) {
    walk_loop_new(NULL);
}

static void test_call_soon_without_a_handle_survives_allocation_failures(void) {
    int finished = 0;
    for (long n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop(); /* fresh: nothing allocated yet */
        int ran = 0;
        arm(n);
        int rc = tl_loop_call_soon(loop, incr, &ran, NULL);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(ran, rc == 0);
        assert_loop_works(loop);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
}

static void test_call_soon_with_a_handle_survives_allocation_failures(void) {
    int finished = 0;
    for (long n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop();
        int ran = 0;
        tl_handle_t h = 0;
        arm(n);
        int rc = tl_loop_call_soon(loop, incr, &ran, &h);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        if (rc == 0) {
            CU_ASSERT_NOT_EQUAL(h, 0);
            CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 1);
        } else {
            CU_ASSERT_EQUAL(h, 0);
        }
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(ran, rc == 0);
        CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 0);
        /* The loop hands out handles again. */
        tl_handle_t h2 = 0;
        CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &ran, &h2), 0);
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, h2), 1);
        assert_loop_works(loop);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
}

static void test_call_later_survives_allocation_failures(void) {
    int finished = 0;
    for (long n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop();
        int ran = 0;
        tl_handle_t h = 0;
        arm(n);
        int rc = tl_loop_call_later(loop, 0, incr, &ran, &h);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        CU_ASSERT_EQUAL(tl_handle_pending(loop, h), rc == 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(ran, rc == 0);
        /* Timers still work, including one that is cancelled. */
        tl_handle_t h2 = 0;
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000000000, incr, &ran, &h2), 0);
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &ran, NULL), 0);
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, h2), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(ran, (rc == 0) + 1);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
}

/* Growth of structures that already hold work: a full ready ring whose head
 * has wrapped, the handle table past its first 8 slots, the timer heap past
 * its first 8 entries. A failure must keep every queued entry, in order. */
typedef struct order {
    int next, bad;
} order_t;

typedef struct ticket {
    order_t *order;
    int id;
} ticket_t;

static void in_order(void *ctx) {
    ticket_t *t = ctx;
    if (t->id != t->order->next)
        t->order->bad++;
    t->order->next++;
}

static void test_growing_a_wrapped_ready_queue_survives_allocation_failures(void) {
    enum { CAP = 1024 }; /* the ring's first capacity */
    static ticket_t tickets[CAP + 1];
    int finished = 0;
    for (long n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop();
        int ran = 0;
        for (int i = 0; i < 100; i++) /* move the head off 0 */
            CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &ran, NULL), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        order_t order = {0, 0};
        for (int i = 0; i <= CAP; i++)
            tickets[i] = (ticket_t){&order, i};
        for (int i = 0; i < CAP; i++) /* full, wrapped */
            CU_ASSERT_EQUAL(tl_loop_call_soon(loop, in_order, &tickets[i], NULL), 0);
        arm(n);
        int rc = tl_loop_call_soon(loop, in_order, &tickets[CAP], NULL);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        if (rc)
            CU_ASSERT_EQUAL(tl_loop_call_soon(loop, in_order, &tickets[CAP], NULL), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(order.next, CAP + 1);
        CU_ASSERT_EQUAL(order.bad, 0);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
}

static void test_growing_handles_and_timers_survives_allocation_failures(void) {
    for (int timer = 0; timer < 2; timer++) {
        int finished = 0;
        long n;
        for (n = 1; n <= WALK_MAX && !finished; n++) {
            tl_loop_t *loop = tl_test_loop();
            order_t order = {0, 0};
            ticket_t t[10];
            tl_handle_t h[10] = {0};
            for (int i = 0; i < 10; i++)
                t[i] = (ticket_t){&order, i};
            /* 8 live handles fill the first table (and heap). */
            for (int i = 0; i < 8; i++)
                CU_ASSERT_EQUAL(timer ? tl_loop_call_later(loop, 0, in_order, &t[i], &h[i])
                                      : tl_loop_call_soon(loop, in_order, &t[i], &h[i]), 0);
            arm(n);
            int rc = timer ? tl_loop_call_later(loop, 0, in_order, &t[8], &h[8])
                           : tl_loop_call_soon(loop, in_order, &t[8], &h[8]);
            int hit = disarm(n);
            finished = step_done(n, hit, rc, 0);
            CU_ASSERT_EQUAL(h[8] != 0, rc == 0);
            if (rc) /* still in order after the failure */
                CU_ASSERT_EQUAL(timer ? tl_loop_call_later(loop, 0, in_order, &t[8], &h[8])
                                      : tl_loop_call_soon(loop, in_order, &t[8], &h[8]), 0);
            for (int i = 0; i < 9; i++)
                CU_ASSERT_EQUAL(tl_handle_pending(loop, h[i]), 1);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(order.next, 9);
            CU_ASSERT_EQUAL(order.bad, 0);
            for (int i = 0; i < 9; i++)
                CU_ASSERT_EQUAL(tl_handle_pending(loop, h[i]), 0);
            tl_test_loop_free(loop);
        }
        CU_ASSERT(finished);
        CU_ASSERT(n > 3);
    }
}

static void test_expired_timer_that_cannot_be_queued_runs_later(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    int ran = 0;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &ran, NULL), 0);
    arm(1); /* the ready queue's first allocation */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT(disarm(1));
    CU_ASSERT_EQUAL(ran, 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_ENOMEM);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(ran, 1);
    tl_test_loop_free(loop);
}

/* Add a reader with `preload` readers already watched (enough of them make
 * the poll backend grow its pollfd array as well as its fd index). */
static void walk_add_reader(const tl_backend_ops_t *be, int preload) {
    int p[2], extra[8][2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
    for (int i = 0; i < preload; i++)
        CU_ASSERT_EQUAL_FATAL(pipe(extra[i]), 0);
    int finished = 0;
    long n;
    for (n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = loop_with(be);
        int ran = 0, idle = 0;
        for (int i = 0; i < preload; i++)
            CU_ASSERT_EQUAL(tl_loop_add_reader(loop, extra[i][0], incr, &idle), 0);
        arm(n);
        int rc = tl_loop_add_reader(loop, p[0], incr, &ran);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(ran, rc == 0);
        CU_ASSERT_EQUAL(idle, 0);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), rc == 0);
        /* Watching works afterwards. */
        ran = 0;
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &ran), 0);
        CU_ASSERT_EQUAL(tl_loop_add_writer(loop, p[1], incr, &ran), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(ran, 2);
        CU_ASSERT_EQUAL(idle, 0);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, p[1]), 1);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
    /* epoll keeps no table of its own: with the loop's already sized there
     * is nothing to fail. */
    if (preload == 0 || be == tl_backend_poll())
        CU_ASSERT(n > 2);
    for (int i = 0; i < preload; i++) {
        close(extra[i][0]);
        close(extra[i][1]);
    }
    close(p[0]);
    close(p[1]);
}

static void test_add_reader_with_each_backend_survives_allocation_failures(void) {
    for (int b = 0, k = nbackends(); b < k; b++) {
        walk_add_reader(backends[b], 0);
        walk_add_reader(backends[b], 7);
    }
}

static void test_add_signal_handler_survives_allocation_failures(void) {
    int finished = 0;
    long n;
    for (n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop();
        int ran = 0;
        arm(n);
        int rc = tl_loop_add_signal_handler(loop, SIGUSR2, incr, &ran);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        if (rc == 0) {
            CU_ASSERT_EQUAL(raise(SIGUSR2), 0);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(ran, 1);
        }
        CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR2), rc == 0);
        assert_loop_works(loop);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
    CU_ASSERT(n > 2);
}

static void test_signal_the_loop_cannot_queue_is_reported(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    int ran = 0;
    CU_ASSERT_EQUAL_FATAL(tl_loop_add_signal_handler(loop, SIGUSR2, incr, &ran), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR2), 0);
    arm(1); /* the ready queue's first allocation */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT(disarm(1));
    CU_ASSERT_EQUAL(ran, 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, TL_ENOMEM);
    /* The handler stays installed and the next signal gets through. */
    CU_ASSERT_EQUAL(raise(SIGUSR2), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(ran, 1);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR2), 1);
    tl_test_loop_free(loop);
}

typedef struct ts_job {
    tl_loop_t *loop;
    int *counter;
    int rc;
} ts_job_t;

static void *call_threadsafe(void *arg) {
    ts_job_t *j = arg;
    j->rc = tl_loop_call_soon_threadsafe(j->loop, incr, j->counter);
    return NULL;
}

static void test_call_soon_threadsafe_survives_allocation_failures(void) {
    for (int foreign = 0; foreign < 2; foreign++) {
        int finished = 0;
        for (long n = 1; n <= WALK_MAX && !finished; n++) {
            tl_loop_t *loop = tl_test_loop();
            int ran = 0;
            ts_job_t j = {loop, &ran, 1};
            arm(n);
            if (foreign) { /* the main thread waits: the allocator is not shared */
                pthread_t t;
                CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, call_threadsafe, &j), 0);
                pthread_join(t, NULL);
            } else {
                call_threadsafe(&j);
            }
            int hit = disarm(n);
            finished = step_done(n, hit, j.rc, 0);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(ran, j.rc == 0);
            CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &ran), 0);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(ran, (j.rc == 0) + 1);
            tl_test_loop_free(loop);
        }
        CU_ASSERT(finished);
    }
}

static void test_threadsafe_callback_the_loop_cannot_queue_is_carried(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    int ran = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &ran), 0);
    arm(1); /* the ready queue's first allocation, when the loop takes it */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT(disarm(1));
    CU_ASSERT_EQUAL(exc.count, 0);
    CU_ASSERT_EQUAL(ran, 0);
    /* The next iteration queues it, the one after runs it. */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(ran, 1);
    assert_loop_works(loop);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &ran), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(ran, 2);
    tl_test_loop_free(loop);
}

/* ---- futures ----------------------------------------------------------- */

static void test_future_new_survives_allocation_failures(void) {
    tl_loop_t *loop = tl_test_loop();
    int finished = 0;
    long n;
    for (n = 1; n <= WALK_MAX && !finished; n++) {
        long live = tl_test_live_allocs();
        tl_future_t *f = (tl_future_t *)&f;
        arm(n);
        int rc = tl_future_new(loop, &f);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        if (rc == 0) {
            CU_ASSERT_EQUAL(tl_future_done(f), 0);
            tl_future_unref(f);
        } else {
            CU_ASSERT_PTR_EQUAL(f, (tl_future_t *)&f);
        }
        CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
    }
    CU_ASSERT(finished);
    CU_ASSERT(n > 2);
    assert_loop_works(loop);
    tl_test_loop_free(loop);
}

/* Add one callback to a pending future that already has `before`: inline
 * slots, the first growth (malloc) and later growths (realloc). */
static void test_add_done_callback_survives_allocation_failures(void) {
    for (int before = 0; before <= 8; before++) {
        int finished = 0;
        for (long n = 1; n <= WALK_MAX && !finished; n++) {
            tl_loop_t *loop = tl_test_loop();
            tl_future_t *f = new_future(loop);
            int calls = 0;
            for (int i = 0; i < before; i++)
                CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
            arm(n);
            int rc = tl_future_add_done_callback(f, count_done, &calls);
            int hit = disarm(n);
            finished = step_done(n, hit, rc, 0);
            /* A failed add registered nothing; the others are intact. */
            CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, count_done, &calls),
                            before + (rc == 0));
            for (int i = 0; i < before + 1; i++)
                CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
            CU_ASSERT_EQUAL(tl_future_set_result(f, NULL, NULL), 0);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(calls, before + 1);
            tl_future_unref(f);
            tl_test_loop_free(loop);
        }
        CU_ASSERT(finished);
    }
}

static void test_add_done_callback_after_completion_survives_allocation_failures(void) {
    int finished = 0;
    long n;
    for (n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop(); /* fresh: scheduling allocates too */
        tl_future_t *f = new_future(loop);
        value_t v = {0};
        CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
        int calls = 0;
        arm(n);
        int rc = tl_future_add_done_callback(f, count_done, &calls);
        int hit = disarm(n);
        finished = step_done(n, hit, rc, 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(calls, rc == 0);
        CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
        tl_future_unref(f);
        CU_ASSERT_EQUAL(v.destroyed, 0); /* the scheduled callback holds it */
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(calls, (rc == 0) + 1);
        CU_ASSERT_EQUAL(v.destroyed, 1);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
    CU_ASSERT(n > 2);
}

enum { SET_RESULT, SET_ERROR, CANCEL };

/* Complete a future that has `ncbs` callbacks, on a fresh loop, with the nth
 * allocation failing: a failure leaves it pending with its callbacks. */
static void walk_completion(int how, int ncbs) {
    int finished = 0;
    long n;
    for (n = 1; n <= WALK_MAX && !finished; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_test_exc_t exc;
        tl_test_capture_exceptions(loop, &exc);
        tl_future_t *f = new_future(loop);
        int calls = 0;
        for (int i = 0; i < ncbs; i++)
            CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
        value_t v = {0};
        int rc = 0, ok = how == CANCEL ? 1 : 0;
        arm(n);
        switch (how) {
        case SET_RESULT: rc = tl_future_set_result(f, &v, destroy_value); break;
        case SET_ERROR: rc = tl_future_set_error(f, TL_ECONNRESET, "reset by peer"); break;
        case CANCEL: rc = tl_future_cancel(f, "not needed"); break;
        }
        int hit = disarm(n);
        finished = step_done(n, hit, rc, ok);
        if (rc == TL_ENOMEM) {
            CU_ASSERT_EQUAL(tl_future_done(f), 0);
            CU_ASSERT_PTR_NULL(tl_future_error_message(f));
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            CU_ASSERT_EQUAL(calls, 0);
            CU_ASSERT_EQUAL(v.destroyed, 0); /* the caller kept the value */
            /* The callbacks are still registered; completing works now. */
            CU_ASSERT_EQUAL(tl_future_remove_done_callback(f, count_done, &calls), ncbs);
            for (int i = 0; i < ncbs; i++)
                CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
            switch (how) {
            case SET_RESULT: rc = tl_future_set_result(f, &v, destroy_value); break;
            case SET_ERROR: rc = tl_future_set_error(f, TL_ECONNRESET, "reset by peer"); break;
            case CANCEL: rc = tl_future_cancel(f, "not needed"); break;
            }
            CU_ASSERT_EQUAL(rc, ok);
        }
        CU_ASSERT_EQUAL(tl_future_done(f), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(calls, ncbs);
        const char *msg = tl_future_error_message(f);
        switch (how) {
        case SET_RESULT:
            CU_ASSERT_EQUAL(tl_future_result(f, NULL), 0);
            break;
        case SET_ERROR:
            CU_ASSERT_EQUAL(tl_future_error(f), TL_ECONNRESET);
            CU_ASSERT(msg != NULL && strcmp(msg, "reset by peer") == 0);
            break;
        case CANCEL:
            /* Only a failed copy of the message may lose it. */
            CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
            CU_ASSERT(msg == NULL ? hit : strcmp(msg, "not needed") == 0);
            break;
        }
        tl_future_unref(f);
        CU_ASSERT_EQUAL(v.destroyed, how == SET_RESULT);
        CU_ASSERT_EQUAL(exc.count, 0);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(finished);
}

static void test_set_result_with_callbacks_survives_allocation_failures(void) {
    walk_completion(SET_RESULT, 0);
    walk_completion(SET_RESULT, 1);
    walk_completion(SET_RESULT, 5);
}

static void test_set_error_with_callbacks_survives_allocation_failures(void) {
    walk_completion(SET_ERROR, 0);
    walk_completion(SET_ERROR, 1);
    walk_completion(SET_ERROR, 5);
}

static void test_cancel_with_callbacks_survives_allocation_failures(void) {
    walk_completion(CANCEL, 0);
    walk_completion(CANCEL, 1);
    walk_completion(CANCEL, 5);
}

/* Completes f; scheduling its callbacks may meet the one failure: retry. */
static void complete_soon(void *f) {
    if (tl_future_set_result(f, (void *)0x5, NULL) == TL_ENOMEM)
        CU_ASSERT_EQUAL(tl_future_set_result(f, (void *)0x5, NULL), 0);
}

static void test_run_until_complete_survives_allocation_failures(void) {
    /* done: its stop callback is scheduled; pending with two callbacks: the
     * stop callback grows the array. */
    for (int done = 0; done < 2; done++) {
        int finished = 0;
        for (long n = 1; n <= WALK_MAX && !finished; n++) {
            tl_loop_t *loop = tl_test_loop();
            tl_future_t *f = new_future(loop);
            int calls = 0;
            if (done) {
                CU_ASSERT_EQUAL(tl_future_set_result(f, (void *)0x5, NULL), 0);
            } else {
                CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
                CU_ASSERT_EQUAL(tl_future_add_done_callback(f, count_done, &calls), 0);
                CU_ASSERT_EQUAL(tl_loop_call_soon(loop, complete_soon, f, NULL), 0);
            }
            void *v = NULL;
            arm(n);
            int rc = tl_loop_run_until_complete(loop, f, &v);
            int hit = disarm(n);
            finished = step_done(n, hit, rc, 0);
            if (rc == TL_ENOMEM) { /* the loop did not run */
                CU_ASSERT_EQUAL(tl_future_done(f), done);
                CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
                rc = tl_loop_run_until_complete(loop, f, &v);
                CU_ASSERT_EQUAL(rc, 0);
            }
            CU_ASSERT_PTR_EQUAL(v, (void *)0x5);
            CU_ASSERT_EQUAL(calls, done ? 0 : 2);
            tl_future_unref(f);
            tl_test_loop_free(loop);
        }
        CU_ASSERT(finished);
    }
}

/* A future's last reference dropped on another thread while memory is short:
 * the free is handed over if possible; either way it happens exactly once. */
static void *unref_future(void *f) {
    tl_future_unref(f);
    return NULL;
}

static void test_future_freed_from_another_thread_survives_allocation_failures(void) {
    for (int fail_in_loop = 0; fail_in_loop < 2; fail_in_loop++) {
        int finished = 0;
        for (long n = 1; n <= WALK_MAX && !finished; n++) {
            tl_loop_t *loop = tl_test_loop();
            tl_test_exc_t exc;
            tl_test_capture_exceptions(loop, &exc);
            tl_future_t *f = new_future(loop);
            value_t v = {0};
            CU_ASSERT_EQUAL(tl_future_set_result(f, &v, destroy_value), 0);
            pthread_t t;
            if (!fail_in_loop)
                arm(n); /* the handover's own allocation */
            CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, unref_future, f), 0);
            pthread_join(t, NULL);
            if (fail_in_loop)
                arm(n); /* the loop queueing the free */
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            int hit = disarm(n);
            finished = !hit;
            /* A free the loop could not queue is carried to the next
             * iteration: freed exactly once either way. */
            CU_ASSERT(v.destroyed <= 1);
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
            assert_loop_works(loop);
            CU_ASSERT_EQUAL(v.destroyed, 1);
            tl_test_loop_free(loop);
        }
        CU_ASSERT(finished);
    }
}

/* ---- a whole program --------------------------------------------------- */

/* A small program that touches every path above; each step tolerates
 * TL_ENOMEM, and the failure is one-shot so a retry succeeds. */
#define RETRY(expr) ((void)((expr) == TL_ENOMEM && (expr)))

static int program(const tl_backend_ops_t *be, int *ran) {
    tl_loop_options_t o = {sizeof o, be, 0, 0};
    tl_loop_t *loop = NULL;
    int rc = tl_loop_new(&o, &loop);
    if (rc)
        return rc;
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    tl_future_t *a = NULL, *b = NULL;
    if (tl_future_new(loop, &a))
        CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &a), 0);
    if (tl_future_new(loop, &b))
        CU_ASSERT_EQUAL_FATAL(tl_future_new(loop, &b), 0);
    value_t v = {0};
    for (int i = 0; i < 4; i++)
        RETRY(tl_future_add_done_callback(a, count_done, ran));
    RETRY(tl_loop_call_soon(loop, incr, ran, NULL));
    tl_handle_t h = 0;
    RETRY(tl_loop_call_later(loop, 0, incr, ran, &h));
    RETRY(tl_loop_call_soon_threadsafe(loop, incr, ran));
    RETRY(tl_future_set_error(b, TL_EPIPE, "pipe"));
    RETRY(tl_future_add_done_callback(b, count_done, ran));
    RETRY(tl_loop_call_soon(loop, complete_soon, a, NULL));
    void *out = NULL;
    rc = tl_loop_run_until_complete(loop, a, &out);
    if (rc == TL_ENOMEM)
        rc = tl_loop_run_until_complete(loop, a, &out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(tl_future_error(b), TL_EPIPE);
    RETRY(tl_future_set_result(b, &v, destroy_value)); /* TL_ESTATE: kept */
    tl_future_unref(a);
    tl_future_unref(b);
    CU_ASSERT_EQUAL(v.destroyed, 0);
    tl_test_loop_free(loop);
    return 0;
}

static void test_a_whole_program_survives_each_allocation_failing(void) {
    for (int b = 0, k = nbackends(); b < k; b++) {
        int finished = 0;
        for (long n = 1; n <= 4 * WALK_MAX && !finished; n++) {
            long live = tl_test_live_allocs();
            int ran = 0;
            arm(n);
            int rc = program(backends[b], &ran);
            int hit = disarm(n);
            finished = step_done(n, hit, rc, 0);
            CU_ASSERT_EQUAL(tl_test_live_allocs(), live);
        }
        CU_ASSERT(finished);
    }
}

TL_TEST_SUITE(alloc,
              TL_TEST(test_array_growth_refuses_sizes_that_overflow),
              TL_TEST(test_array_growth_keeps_the_old_array_when_memory_runs_out),
              TL_TEST(test_loop_new_with_each_backend_survives_allocation_failures),
              TL_TEST(test_loop_new_with_defaults_survives_allocation_failures),
              TL_TEST(test_call_soon_without_a_handle_survives_allocation_failures),
              TL_TEST(test_call_soon_with_a_handle_survives_allocation_failures),
              TL_TEST(test_call_later_survives_allocation_failures),
              TL_TEST(test_growing_a_wrapped_ready_queue_survives_allocation_failures),
              TL_TEST(test_growing_handles_and_timers_survives_allocation_failures),
              TL_TEST(test_expired_timer_that_cannot_be_queued_runs_later),
              TL_TEST(test_add_reader_with_each_backend_survives_allocation_failures),
              TL_TEST(test_add_signal_handler_survives_allocation_failures),
              TL_TEST(test_signal_the_loop_cannot_queue_is_reported),
              TL_TEST(test_call_soon_threadsafe_survives_allocation_failures),
              TL_TEST(test_threadsafe_callback_the_loop_cannot_queue_is_carried),
              TL_TEST(test_future_new_survives_allocation_failures),
              TL_TEST(test_add_done_callback_survives_allocation_failures),
              TL_TEST(test_add_done_callback_after_completion_survives_allocation_failures),
              TL_TEST(test_set_result_with_callbacks_survives_allocation_failures),
              TL_TEST(test_set_error_with_callbacks_survives_allocation_failures),
              TL_TEST(test_cancel_with_callbacks_survives_allocation_failures),
              TL_TEST(test_run_until_complete_survives_allocation_failures),
              TL_TEST(test_future_freed_from_another_thread_survives_allocation_failures),
              TL_TEST(test_a_whole_program_survives_each_allocation_failing))
