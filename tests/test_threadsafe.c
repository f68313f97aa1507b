/*
 * threadsafe: call_soon_threadsafe from other threads (asyncio's
 * call_soon_threadsafe and its self-pipe wakeup), and references held
 * across threads.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tl_test.h"

#define MS (1000000LL)
#define THREADS 4

static void incr(void *ctx) { (*(int *)ctx)++; }
static void nop(void *ctx) { (void)ctx; }

/* The harness counts allocations in plain variables, so allocations should
 * not happen on two threads at once. Before other threads call in, let the
 * loop allocate its ready queue and both cross-thread queues: afterwards
 * the senders only grow an existing queue (a realloc), which the counter
 * does not track. */
static void prime(tl_loop_t *loop) {
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, nop, NULL), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    }
}

typedef struct shared {
    tl_loop_t *loop;
    pthread_barrier_t start;
    int per_thread;
    int delay_us;
    /* loop side */
    int received;
    int expected;
    int last_seq[THREADS];
    int out_of_order;
    int guard_fired;
    /* thread side */
    atomic_int send_errors;
} shared_t;

typedef struct sender {
    shared_t *sh;
    int id;
} sender_t;

typedef struct msg {
    shared_t *sh;
    int thread, seq;
} msg_t;

static void receive(void *arg) {
    msg_t *m = arg;
    shared_t *sh = m->sh;
    if (m->seq != sh->last_seq[m->thread] + 1)
        sh->out_of_order++;
    sh->last_seq[m->thread] = m->seq;
    if (++sh->received == sh->expected)
        tl_loop_stop(sh->loop);
}

static msg_t msgs[THREADS][2000];

static void *send_main(void *arg) {
    sender_t *s = arg;
    shared_t *sh = s->sh;
    pthread_barrier_wait(&sh->start);
    if (sh->delay_us)
        usleep((useconds_t)sh->delay_us);
    for (int i = 0; i < sh->per_thread; i++) {
        msg_t *m = &msgs[s->id][i];
        *m = (msg_t){sh, s->id, i + 1};
        if (tl_loop_call_soon_threadsafe(sh->loop, receive, m) != 0)
            atomic_fetch_add(&sh->send_errors, 1);
    }
    return NULL;
}

static void guard(void *arg) {
    shared_t *sh = arg;
    sh->guard_fired = 1;
    tl_loop_stop(sh->loop);
}

static void run_senders(shared_t *sh) {
    pthread_t t[THREADS];
    sender_t s[THREADS];
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&sh->start, NULL, THREADS + 1), 0);
    for (int i = 0; i < THREADS; i++) {
        s[i] = (sender_t){sh, i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, send_main, &s[i]), 0);
    }
    tl_handle_t g;
    CU_ASSERT_EQUAL(tl_loop_call_later(sh->loop, 2000 * MS, guard, sh, &g), 0);
    pthread_barrier_wait(&sh->start);
    CU_ASSERT_EQUAL(tl_loop_run_forever(sh->loop), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    tl_handle_cancel(sh->loop, g);
    pthread_barrier_destroy(&sh->start);
}

/* A watchdog for a loop that may sleep with no timeout at all: if the test
 * has not called watchdog_stop within 1.5 s, it makes the loop's pipe
 * readable; the reader stops the loop and notes the failure. */
typedef struct watchdog {
    tl_loop_t *loop;
    int alarm[2];  /* the loop watches alarm[0] */
    int cancel[2]; /* the watchdog waits on cancel[0] */
    int fired;
    pthread_t thread;
} watchdog_t;

static void *watchdog_main(void *arg) {
    watchdog_t *w = arg;
    struct pollfd p = {w->cancel[0], POLLIN, 0};
    if (poll(&p, 1, 1500) == 0)
        (void)!write(w->alarm[1], "!", 1);
    return NULL;
}

static void watchdog_bark(void *arg) {
    watchdog_t *w = arg;
    w->fired = 1;
    tl_loop_remove_reader(w->loop, w->alarm[0]);
    tl_loop_stop(w->loop);
}

static void watchdog_start(watchdog_t *w, tl_loop_t *loop) {
    memset(w, 0, sizeof *w);
    w->loop = loop;
    CU_ASSERT_EQUAL_FATAL(pipe(w->alarm), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(w->cancel), 0);
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, w->alarm[0], watchdog_bark, w), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w->thread, NULL, watchdog_main, w), 0);
}

static void watchdog_stop(watchdog_t *w) {
    (void)!write(w->cancel[1], "x", 1);
    pthread_join(w->thread, NULL);
    if (!w->fired)
        CU_ASSERT_EQUAL(tl_loop_remove_reader(w->loop, w->alarm[0]), 1);
    close(w->alarm[0]);
    close(w->alarm[1]);
    close(w->cancel[0]);
    close(w->cancel[1]);
}

static void test_threadsafe_calls_from_several_threads_wake_a_sleeping_loop(void) {
    tl_loop_t *loop = tl_test_loop();
    static shared_t sh;
    memset(&sh, 0, sizeof sh);
    sh.loop = loop;
    sh.per_thread = 1;
    sh.delay_us = 20000; /* the loop is asleep by then, with no timeout */
    sh.expected = THREADS;
    prime(loop);
    watchdog_t wd;
    watchdog_start(&wd, loop);
    pthread_t t[THREADS];
    sender_t s[THREADS];
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&sh.start, NULL, THREADS + 1), 0);
    for (int i = 0; i < THREADS; i++) {
        s[i] = (sender_t){&sh, i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, send_main, &s[i]), 0);
    }
    pthread_barrier_wait(&sh.start);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    uint64_t took = tl_now_ns() - t0;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&sh.start);
    watchdog_stop(&wd);
    CU_ASSERT_EQUAL(wd.fired, 0);
    CU_ASSERT_EQUAL(sh.received, THREADS);
    CU_ASSERT_EQUAL(atomic_load(&sh.send_errors), 0);
    CU_ASSERT(took < 1000 * MS);
    tl_test_loop_free(loop);
}

static void test_threadsafe_preserves_the_order_of_each_thread(void) {
    tl_loop_t *loop = tl_test_loop();
    static shared_t sh;
    memset(&sh, 0, sizeof sh);
    sh.loop = loop;
    sh.per_thread = 2000;
    sh.expected = THREADS * 2000;
    prime(loop);
    run_senders(&sh);
    CU_ASSERT_EQUAL(sh.guard_fired, 0);
    CU_ASSERT_EQUAL(sh.received, THREADS * 2000);
    CU_ASSERT_EQUAL(sh.out_of_order, 0);
    for (int i = 0; i < THREADS; i++)
        CU_ASSERT_EQUAL(sh.last_seq[i], 2000);
    tl_test_loop_free(loop);
}

typedef struct one_shot {
    tl_loop_t *loop;
    int rc;
    int delay_us;
    tl_callback_t cb;
    void *ctx;
} one_shot_t;

static void *one_shot_main(void *arg) {
    one_shot_t *o = arg;
    if (o->delay_us)
        usleep((useconds_t)o->delay_us);
    o->rc = tl_loop_call_soon_threadsafe(o->loop, o->cb, o->ctx);
    return NULL;
}

static void test_stop_cb_sent_from_another_thread_stops_run_forever(void) {
    tl_loop_t *loop = tl_test_loop();
    one_shot_t o = {loop, -1, 10000, tl_loop_stop_cb, loop};
    shared_t sh;
    memset(&sh, 0, sizeof sh);
    sh.loop = loop;
    prime(loop);
    tl_handle_t g;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2000 * MS, guard, &sh, &g), 0);
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, one_shot_main, &o), 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(o.rc, 0);
    CU_ASSERT_EQUAL(sh.guard_fired, 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, g), 1);
    tl_test_loop_free(loop);
}

static void test_threadsafe_from_the_owner_thread_runs_next_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &n), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &n), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 2);
    tl_test_loop_free(loop);
}

static void test_threadsafe_after_close_returns_closed(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(tl_loop_ref(loop), 0); /* what another thread would hold */
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    int n = 0;
    one_shot_t o = {loop, -1, 0, incr, &n};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, one_shot_main, &o), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(o.rc, TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &n), TL_ECLOSED);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_threadsafe_callbacks_still_queued_at_close_are_dropped(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    one_shot_t o = {loop, -1, 0, incr, &n};
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, one_shot_main, &o), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(o.rc, 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(n, 0);
}

/* Threads hammer the loop while its owner runs it for a while, then
 * closes it: every call gets 0 or TL_ECLOSED, nothing crashes, and the
 * last of the threads' references frees the loop. */
typedef struct racer {
    tl_loop_t *loop;
    pthread_barrier_t *start;
    atomic_int *ran;
    long ok, closed, other;
} racer_t;

static void count_atomic(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void *race_main(void *arg) {
    racer_t *r = arg;
    pthread_barrier_wait(r->start);
    for (;;) {
        int rc = tl_loop_call_soon_threadsafe(r->loop, count_atomic, r->ran);
        if (rc == 0)
            r->ok++;
        else if (rc == TL_ECLOSED)
            break;
        else
            r->other++;
        if (r->ok % 64 == 0)
            sched_yield();
    }
    r->closed = 1;
    tl_loop_unref(r->loop);
    return NULL;
}

static void test_threadsafe_calls_racing_close_do_not_crash(void) {
    for (int round = 0; round < 3; round++) {
        tl_loop_t *loop = tl_test_loop();
        pthread_barrier_t start;
        atomic_int ran = 0;
        CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&start, NULL, THREADS + 1), 0);
        prime(loop);
        pthread_t t[THREADS];
        racer_t r[THREADS];
        for (int i = 0; i < THREADS; i++) {
            r[i] = (racer_t){loop, &start, &ran, 0, 0, 0};
            CU_ASSERT_EQUAL(tl_loop_ref(loop), 0);
            CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, race_main, &r[i]), 0);
        }
        pthread_barrier_wait(&start);
        for (int i = 0; i < 5 + round * 5; i++)
            CU_ASSERT_EQUAL(tl_loop_run_once(loop, MS), 0);
        CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
        CU_ASSERT_EQUAL(tl_loop_unref(loop), 0); /* the threads may hold the last */
        long ok = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            CU_ASSERT_EQUAL(r[i].closed, 1);
            CU_ASSERT_EQUAL(r[i].other, 0);
            ok += r[i].ok;
        }
        CU_ASSERT(atomic_load(&ran) <= ok);
        pthread_barrier_destroy(&start);
    }
}

typedef struct holder {
    tl_loop_t *loop;
    pthread_barrier_t *go;
    int rc;
} holder_t;

static void *hold_then_unref(void *arg) {
    holder_t *h = arg;
    pthread_barrier_wait(h->go); /* the owner has closed and unreffed */
    h->rc = tl_loop_unref(h->loop);
    return NULL;
}

static void test_last_unref_on_another_thread_frees_a_closed_loop(void) {
    long before = tl_test_live_allocs();
    tl_loop_t *loop = tl_test_loop();
    pthread_barrier_t go;
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&go, NULL, 2), 0);
    holder_t h = {loop, &go, -1};
    CU_ASSERT_EQUAL(tl_loop_ref(loop), 0);
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, hold_then_unref, &h), 0);
    tl_test_loop_free(loop);
    CU_ASSERT(tl_test_live_allocs() > before); /* still referenced */
    pthread_barrier_wait(&go);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(h.rc, 0);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
    pthread_barrier_destroy(&go);
}

static void test_threadsafe_wakes_a_loop_blocked_with_watchers(void) {
    /* The loop also waits on a descriptor that never becomes ready. */
    static const char *names[] = {"epoll", "poll"};
    for (int b = 0; b < 2; b++) {
        tl_loop_options_t opt = {sizeof opt, tl_backend_by_name(names[b]), 0, 0};
        tl_loop_t *loop;
        CU_ASSERT_EQUAL_FATAL(tl_loop_new(&opt, &loop), 0);
        prime(loop);
        int p[2];
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
        int n = 0;
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0);
        one_shot_t o = {loop, -1, 10000, tl_loop_stop_cb, loop};
        shared_t sh;
        memset(&sh, 0, sizeof sh);
        sh.loop = loop;
        tl_handle_t g;
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2000 * MS, guard, &sh, &g), 0);
        pthread_t t;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, one_shot_main, &o), 0);
        CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(sh.guard_fired, 0);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        tl_test_loop_free(loop);
        close(p[0]);
        close(p[1]);
    }
}

typedef struct order_log {
    int seen[8];
    int n;
} order_log_t;

static order_log_t order_log;

static void log_1(void *ctx) { ((order_log_t *)ctx)->seen[((order_log_t *)ctx)->n++] = 1; }
static void log_2(void *ctx) { ((order_log_t *)ctx)->seen[((order_log_t *)ctx)->n++] = 2; }
static void log_3(void *ctx) { ((order_log_t *)ctx)->seen[((order_log_t *)ctx)->n++] = 3; }

static void test_threadsafe_call_is_kept_when_memory_runs_out_and_runs_later(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    order_log_t *log = &order_log;
    memset(log, 0, sizeof *log);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, log_1, log), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, log_2, log), 0);
    /* Moving them to the (not yet allocated) ready queue fails: they are
     * carried, not lost, and nothing is reported. */
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(exc.count, 0);
    CU_ASSERT_EQUAL(log->n, 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, log_3, log), 0);
    /* The carried calls keep the loop from sleeping and keep their order
     * ahead of later ones. */
    int64_t t0 = tl_now_ns();
    for (int i = 0; i < 3 && log->n < 3; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 5 * 1000000000LL), 0);
    CU_ASSERT(tl_now_ns() - t0 < 1000000000LL);
    CU_ASSERT_EQUAL(log->n, 3);
    CU_ASSERT_EQUAL(log->seen[0], 1);
    CU_ASSERT_EQUAL(log->seen[1], 2);
    CU_ASSERT_EQUAL(log->seen[2], 3);
    tl_test_loop_free(loop);
}

static void test_threadsafe_calls_carried_at_close_are_dropped(void) {
    tl_loop_t *loop = tl_test_loop();
    int ran = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &ran), 0);
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_fail_alloc_at(0);
    CU_ASSERT_EQUAL(ran, 0);
    tl_test_loop_free(loop); /* the carried call has no drop: just freed */
}

TL_TEST_SUITE(threadsafe,
              TL_TEST(test_threadsafe_calls_from_several_threads_wake_a_sleeping_loop),
              TL_TEST(test_threadsafe_preserves_the_order_of_each_thread),
              TL_TEST(test_stop_cb_sent_from_another_thread_stops_run_forever),
              TL_TEST(test_threadsafe_from_the_owner_thread_runs_next_iteration),
              TL_TEST(test_threadsafe_after_close_returns_closed),
              TL_TEST(test_threadsafe_callbacks_still_queued_at_close_are_dropped),
              TL_TEST(test_threadsafe_calls_racing_close_do_not_crash),
              TL_TEST(test_last_unref_on_another_thread_frees_a_closed_loop),
              TL_TEST(test_threadsafe_wakes_a_loop_blocked_with_watchers),
              TL_TEST(test_threadsafe_call_is_kept_when_memory_runs_out_and_runs_later),
              TL_TEST(test_threadsafe_calls_carried_at_close_are_dropped))
