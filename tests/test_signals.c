/*
 * signals: add_signal_handler / remove_signal_handler (asyncio's Unix
 * signal handling): delivery as a loop callback, folding, dispositions,
 * several loops in several threads.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "tl_test.h"

#define MS (1000000LL)

/* A handler of the test's own, so a stray signal never kills the runner
 * and a restored disposition can be recognised. */
static atomic_int own_handler_hits;
static void own_handler(int signum) {
    (void)signum;
    atomic_fetch_add(&own_handler_hits, 1);
}

typedef struct saved_sig {
    int signum;
    struct sigaction old;
} saved_sig_t;

static void install_own(saved_sig_t *s, int signum) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    s->signum = signum;
    CU_ASSERT_EQUAL_FATAL(sigaction(signum, &sa, &s->old), 0);
    atomic_store(&own_handler_hits, 0);
}

static void restore_own(const saved_sig_t *s) { sigaction(s->signum, &s->old, NULL); }

static void (*current_handler(int signum))(int) {
    struct sigaction cur;
    sigaction(signum, NULL, &cur);
    return cur.sa_handler;
}

static void nop(void *ctx) { (void)ctx; }

typedef struct hit {
    tl_loop_t *loop;
    int calls;
    tl_loop_t *running_in_cb;
    int stop;
} hit_t;

static void on_signal(void *arg) {
    hit_t *h = arg;
    h->calls++;
    h->running_in_cb = tl_loop_get_running();
    if (h->stop)
        tl_loop_stop(h->loop);
}

/* Iterations until *calls is non-zero, at most ~limit_ns. */
static void run_until_called(tl_loop_t *loop, const int *calls, int64_t limit_ns) {
    uint64_t end = tl_now_ns() + (uint64_t)limit_ns;
    while (*calls == 0 && tl_now_ns() < end)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 10 * MS), 0);
}

static void test_raised_signal_runs_the_handler_as_a_loop_callback(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(h.calls, 0); /* not inside the signal handler */
    run_until_called(loop, &h.calls, 300 * MS);
    CU_ASSERT_EQUAL(h.calls, 1);
    CU_ASSERT_PTR_EQUAL(h.running_in_cb, loop);
    CU_ASSERT_EQUAL(atomic_load(&own_handler_hits), 0); /* tulip's took it */
    CU_ASSERT_EQUAL(kill(getpid(), SIGUSR1), 0);
    for (int i = 0; i < 30 && h.calls < 2; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 10 * MS), 0);
    CU_ASSERT_EQUAL(h.calls, 2);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 1);
    tl_test_loop_free(loop);
    restore_own(&own);
}

static void test_several_arrivals_fold_into_one_call(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h.calls, 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h.calls, 1);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 1);
    tl_test_loop_free(loop);
    restore_own(&own);
}

static void test_uncatchable_or_out_of_range_signals_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop};
    void (*before)(int) = current_handler(SIGKILL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGKILL, on_signal, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGSTOP, on_signal, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, 0, on_signal, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, -1, on_signal, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, 65, on_signal, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, 100000, on_signal, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, 65), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGKILL), 0);
    CU_ASSERT_PTR_EQUAL(current_handler(SIGKILL), before);
    tl_test_loop_free(loop);
}

static void test_remove_returns_1_then_0_and_restores_the_previous_disposition(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop}, h2 = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
    CU_ASSERT_PTR_NOT_EQUAL(current_handler(SIGUSR1), own_handler);
    /* Replacing this loop's handler keeps tulip's disposition. */
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h2), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h.calls, 0);
    CU_ASSERT_EQUAL(h2.calls, 1);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 1);
    CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR1), own_handler);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 0);
    /* Back to the test's handler: the loop hears nothing. */
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(atomic_load(&own_handler_hits), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h2.calls, 1);
    tl_test_loop_free(loop);
    restore_own(&own);
}

static void test_signal_pending_when_its_handler_is_removed_is_not_delivered(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h.calls, 0);
    tl_test_loop_free(loop);
    restore_own(&own);
}

static void test_closing_a_loop_detaches_its_handlers(void) {
    saved_sig_t own1, own2;
    install_own(&own1, SIGUSR1);
    install_own(&own2, SIGUSR2);
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR2, on_signal, &h), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR2), 0); /* pending at close: dropped */
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR1), own_handler);
    CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR2), own_handler);
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(atomic_load(&own_handler_hits), 1);
    CU_ASSERT_EQUAL(h.calls, 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    restore_own(&own2);
    restore_own(&own1);
}

static void test_the_last_loop_to_stop_handling_restores_the_disposition(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    tl_loop_t *a = tl_test_loop();
    tl_loop_t *b = tl_test_loop();
    hit_t ha = {.loop = a}, hb = {.loop = b};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(a, SIGUSR1, on_signal, &ha), 0);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(b, SIGUSR1, on_signal, &hb), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(a, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(b, 0), 0);
    CU_ASSERT_EQUAL(ha.calls, 1);
    CU_ASSERT_EQUAL(hb.calls, 1);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(a, SIGUSR1), 1);
    CU_ASSERT_PTR_NOT_EQUAL(current_handler(SIGUSR1), own_handler); /* b still */
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(a, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(b, 0), 0);
    CU_ASSERT_EQUAL(ha.calls, 1);
    CU_ASSERT_EQUAL(hb.calls, 2);
    tl_test_loop_free(b); /* closing b removes the last handler */
    CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR1), own_handler);
    tl_test_loop_free(a);
    restore_own(&own);
}

/* Another thread runs its own loop with a SIGUSR2 handler. */
typedef struct peer {
    pthread_barrier_t *ready;
    int add_rc, run_rc, calls, guard_fired;
} peer_t;

static void peer_guard(void *arg) {
    hit_t *h = arg;
    h->calls = -1000;
    tl_loop_stop(h->loop);
}

static void *peer_main(void *arg) {
    peer_t *p = arg;
    tl_loop_t *loop = NULL;
    if (tl_loop_new(NULL, &loop) != 0) {
        p->add_rc = -1;
        pthread_barrier_wait(p->ready);
        return NULL;
    }
    hit_t h = {.loop = loop, .stop = 1};
    p->add_rc = tl_loop_add_signal_handler(loop, SIGUSR2, on_signal, &h);
    tl_loop_call_later(loop, 1000 * MS, peer_guard, &h, NULL);
    pthread_barrier_wait(p->ready);
    p->run_rc = tl_loop_run_forever(loop);
    p->calls = h.calls;
    tl_loop_close(loop);
    tl_loop_unref(loop);
    return NULL;
}

static void test_two_loops_in_two_threads_both_get_the_signal(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR2);
    pthread_barrier_t ready;
    CU_ASSERT_EQUAL_FATAL(pthread_barrier_init(&ready, NULL, 2), 0);
    peer_t p;
    memset(&p, 0, sizeof p);
    p.ready = &ready;
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR2, on_signal, &h), 0);
    /* Allocate the ready queue now: the harness's allocation counter is not
     * atomic, and the peer allocates on its own thread meanwhile. */
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, nop, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, peer_main, &p), 0);
    pthread_barrier_wait(&ready);
    CU_ASSERT_EQUAL(p.add_rc, 0);
    usleep(5000); /* let the peer fall asleep in its poll */
    CU_ASSERT_EQUAL(kill(getpid(), SIGUSR2), 0);
    run_until_called(loop, &h.calls, 300 * MS);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(h.calls, 1);
    CU_ASSERT_EQUAL(p.run_rc, 0);
    CU_ASSERT_EQUAL(p.calls, 1); /* woke from its sleep, not by its guard */
    CU_ASSERT_EQUAL(atomic_load(&own_handler_hits), 0);
    tl_test_loop_free(loop);
    CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR2), own_handler);
    pthread_barrier_destroy(&ready);
    restore_own(&own);
}

/* A signal aimed at the thread blocked in the loop's poll (EINTR) and one
 * handled on another thread (a wakeup through the backend) both end a
 * run_forever that has nothing else to do. */
typedef struct shooter {
    pthread_t target; /* 0: signal this thread itself */
    int signum;
} shooter_t;

static void *shoot(void *arg) {
    shooter_t *s = arg;
    usleep(10000);
    pthread_kill(s->target ? s->target : pthread_self(), s->signum);
    return NULL;
}

static void test_signal_wakes_a_sleeping_run_forever(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    tl_loop_t *loop = tl_test_loop();
    hit_t h = {.loop = loop, .stop = 1};
    hit_t g = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
    for (int mode = 0; mode < 2; mode++) {
        h.calls = 0;
        tl_handle_t guard;
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1000 * MS, peer_guard, &g, &guard), 0);
        shooter_t s = {mode == 0 ? pthread_self() : 0, SIGUSR1};
        pthread_t t;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, shoot, &s), 0);
        uint64_t t0 = tl_now_ns();
        CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(h.calls, 1);
        CU_ASSERT_EQUAL(g.calls, 0);
        CU_ASSERT(tl_now_ns() - t0 < 800 * MS);
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, guard), 1);
    }
    tl_test_loop_free(loop);
    restore_own(&own);
}

static void test_handlers_for_different_signals_are_separate(void) {
    saved_sig_t own1, own2;
    install_own(&own1, SIGUSR1);
    install_own(&own2, SIGUSR2);
    tl_loop_t *loop = tl_test_loop();
    hit_t h1 = {.loop = loop}, h2 = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h1), 0);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR2, on_signal, &h2), 0);
    CU_ASSERT_EQUAL(raise(SIGUSR2), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h1.calls, 0);
    CU_ASSERT_EQUAL(h2.calls, 1);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR2), 1);
    CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR2), own_handler);
    CU_ASSERT_PTR_NOT_EQUAL(current_handler(SIGUSR1), own_handler);
    CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(h1.calls, 1);
    tl_test_loop_free(loop);
    restore_own(&own2);
    restore_own(&own1);
}

static void test_adding_a_handler_fails_cleanly_when_memory_runs_out(void) {
    saved_sig_t own;
    install_own(&own, SIGUSR1);
    for (long k = 1; k < 6; k++) {
        tl_loop_t *loop = tl_test_loop();
        hit_t h = {.loop = loop};
        tl_test_fail_alloc_at(k);
        int rc = tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h);
        tl_test_fail_alloc_at(0);
        CU_ASSERT(rc == 0 || rc == TL_ENOMEM);
        if (rc) {
            CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR1), own_handler);
            CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 0);
            CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, on_signal, &h), 0);
        }
        CU_ASSERT_EQUAL(raise(SIGUSR1), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(h.calls, 1);
        tl_test_loop_free(loop);
        CU_ASSERT_PTR_EQUAL(current_handler(SIGUSR1), own_handler);
    }
    CU_ASSERT_EQUAL(atomic_load(&own_handler_hits), 0);
    restore_own(&own);
}

TL_TEST_SUITE(signals,
              TL_TEST(test_raised_signal_runs_the_handler_as_a_loop_callback),
              TL_TEST(test_several_arrivals_fold_into_one_call),
              TL_TEST(test_uncatchable_or_out_of_range_signals_are_refused),
              TL_TEST(test_remove_returns_1_then_0_and_restores_the_previous_disposition),
              TL_TEST(test_signal_pending_when_its_handler_is_removed_is_not_delivered),
              TL_TEST(test_closing_a_loop_detaches_its_handlers),
              TL_TEST(test_the_last_loop_to_stop_handling_restores_the_disposition),
              TL_TEST(test_two_loops_in_two_threads_both_get_the_signal),
              TL_TEST(test_signal_wakes_a_sleeping_run_forever),
              TL_TEST(test_handlers_for_different_signals_are_separate),
              TL_TEST(test_adding_a_handler_fails_cleanly_when_memory_runs_out))
