/*
 * backend: the built-in pollers through their public ops table, the
 * registry (by name, default, $TL_BACKEND), a backend of the test's own
 * plugged in through the loop options, and the same loop behaviour on
 * every built-in backend.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tl_test.h"

#define MS (1000000LL)

static void incr(void *ctx) { (*(int *)ctx)++; }

static const tl_backend_ops_t *builtin(int i) {
    return i == 0 ? tl_backend_epoll() : tl_backend_poll();
}

typedef struct saved_env {
    char value[256];
    int was_set;
} saved_env_t;

static void env_save(saved_env_t *s) {
    const char *v = getenv("TL_BACKEND");
    s->was_set = v != NULL;
    snprintf(s->value, sizeof s->value, "%s", v ? v : "");
}

static void env_restore(const saved_env_t *s) {
    if (s->was_set)
        setenv("TL_BACKEND", s->value, 1);
    else
        unsetenv("TL_BACKEND");
}

/* ---- the registry ----------------------------------------------------- */

static void test_builtin_backends_are_complete_tables(void) {
    for (int i = 0; i < 2; i++) {
        const tl_backend_ops_t *be = builtin(i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(be);
        CU_ASSERT(be->size >= sizeof(tl_backend_ops_t));
        CU_ASSERT_PTR_NOT_NULL(be->name);
        CU_ASSERT_PTR_NOT_NULL(be->create);
        CU_ASSERT_PTR_NOT_NULL(be->close);
        CU_ASSERT_PTR_NOT_NULL(be->watch);
        CU_ASSERT_PTR_NOT_NULL(be->unwatch);
        CU_ASSERT_PTR_NOT_NULL(be->poll);
        CU_ASSERT_PTR_NOT_NULL(be->wakeup);
    }
    CU_ASSERT_STRING_EQUAL(tl_backend_epoll()->name, "epoll");
    CU_ASSERT_STRING_EQUAL(tl_backend_poll()->name, "poll");
}

static void test_backend_by_name_finds_the_builtins_only(void) {
    CU_ASSERT_PTR_EQUAL(tl_backend_by_name("epoll"), tl_backend_epoll());
    CU_ASSERT_PTR_EQUAL(tl_backend_by_name("poll"), tl_backend_poll());
    CU_ASSERT_PTR_NULL(tl_backend_by_name(NULL));
    CU_ASSERT_PTR_NULL(tl_backend_by_name(""));
    CU_ASSERT_PTR_NULL(tl_backend_by_name("select"));
    CU_ASSERT_PTR_NULL(tl_backend_by_name("EPOLL"));
    CU_ASSERT_PTR_NULL(tl_backend_by_name("poll "));
}

static void test_default_backend_honours_tl_backend(void) {
    saved_env_t env;
    env_save(&env);
    unsetenv("TL_BACKEND");
    CU_ASSERT_PTR_EQUAL(tl_backend_default(), tl_backend_epoll());
    setenv("TL_BACKEND", "poll", 1);
    CU_ASSERT_PTR_EQUAL(tl_backend_default(), tl_backend_poll());
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), "poll");
    tl_test_loop_free(loop);
    setenv("TL_BACKEND", "epoll", 1);
    CU_ASSERT_PTR_EQUAL(tl_backend_default(), tl_backend_epoll());
    loop = tl_test_loop();
    CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), "epoll");
    tl_test_loop_free(loop);
    setenv("TL_BACKEND", "no-such-poller", 1); /* falls back to the best */
    CU_ASSERT_PTR_EQUAL(tl_backend_default(), tl_backend_epoll());
    setenv("TL_BACKEND", "", 1);
    CU_ASSERT_PTR_EQUAL(tl_backend_default(), tl_backend_epoll());
    /* An explicit option wins over the environment. */
    setenv("TL_BACKEND", "epoll", 1);
    tl_loop_options_t o = {sizeof o, tl_backend_poll(), 0, 0};
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), "poll");
    tl_test_loop_free(loop);
    env_restore(&env);
}

/* ---- the ops tables, called directly ---------------------------------- */

typedef struct waker {
    const tl_backend_ops_t *be;
    void *state;
    int rc;
} waker_t;

static void *wake_later(void *arg) {
    waker_t *w = arg;
    usleep(10000);
    w->rc = w->be->wakeup(w->state);
    return NULL;
}

static void test_backend_ops_report_readiness_and_wakeups(void) {
    for (int i = 0; i < 2; i++) {
        const tl_backend_ops_t *be = builtin(i);
        void *st = NULL;
        CU_ASSERT_EQUAL_FATAL(be->create(&st), 0);
        tl_backend_event_t ev[4];
        int p[2];
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);

        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 0), TL_EINVAL);
        CU_ASSERT_EQUAL(be->watch(st, p[0], 0, TL_READABLE), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 0);
        CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
        CU_ASSERT_EQUAL(be->poll(st, 1000 * MS, ev, 4), 1);
        CU_ASSERT_EQUAL(ev[0].fd, p[0]);
        CU_ASSERT_EQUAL(ev[0].events, TL_READABLE);
        /* level-triggered: still there */
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 1);

        /* Both ends, max 1: one event per call, the rest next time. */
        CU_ASSERT_EQUAL(be->watch(st, p[1], 0, TL_WRITABLE), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 1), 1);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 2);
        unsigned seen = 0;
        for (int k = 0; k < 2; k++)
            seen |= ev[k].fd == p[0] ? ev[k].events : ev[k].events << 4;
        CU_ASSERT_EQUAL(seen, TL_READABLE | (TL_WRITABLE << 4));

        /* Changing the interest, then dropping it. */
        CU_ASSERT_EQUAL(be->watch(st, p[1], TL_WRITABLE, TL_READABLE), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 1);
        CU_ASSERT_EQUAL(be->unwatch(st, p[0], TL_READABLE), 0);
        CU_ASSERT_EQUAL(be->unwatch(st, p[1], TL_READABLE), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 0);

        /* A wakeup is consumed by the poll it ends, never reported; several
         * fold into one. */
        CU_ASSERT_EQUAL(be->wakeup(st), 0);
        CU_ASSERT_EQUAL(be->wakeup(st), 0);
        CU_ASSERT_EQUAL(be->poll(st, 1000 * MS, ev, 4), 0);
        uint64_t t0 = tl_now_ns();
        CU_ASSERT_EQUAL(be->poll(st, 5 * MS, ev, 4), 0);
        CU_ASSERT(tl_now_ns() - t0 >= 4 * MS); /* it did not fire again */

        /* From another thread, into a poll with no time limit. */
        waker_t w = {be, st, -1};
        pthread_t t;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, wake_later, &w), 0);
        t0 = tl_now_ns();
        CU_ASSERT_EQUAL(be->poll(st, -1, ev, 4), 0);
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(w.rc, 0);
        CU_ASSERT(tl_now_ns() - t0 < 1000 * MS);

        be->close(st);
        close(p[0]);
        close(p[1]);
    }
}

static void test_backend_reports_errors_masked_by_interest(void) {
    for (int i = 0; i < 2; i++) {
        const tl_backend_ops_t *be = builtin(i);
        void *st = NULL;
        CU_ASSERT_EQUAL_FATAL(be->create(&st), 0);
        tl_backend_event_t ev[4];
        int sv[2];
        CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        char buf[4096];
        memset(buf, 0, sizeof buf);
        fcntl(sv[0], F_SETFL, O_NONBLOCK);
        while (write(sv[0], buf, sizeof buf) > 0)
            ; /* sv[0] is not writable now */
        CU_ASSERT_EQUAL(be->watch(st, sv[0], 0, TL_WRITABLE), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 0);
        close(sv[1]); /* hang-up: reported as writable to a writer ... */
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 1);
        CU_ASSERT_EQUAL(ev[0].events, TL_WRITABLE);
        /* ... and as readable to a reader, never what was not asked for */
        CU_ASSERT_EQUAL(be->watch(st, sv[0], TL_WRITABLE, TL_READABLE), 0);
        CU_ASSERT_EQUAL(be->poll(st, 0, ev, 4), 1);
        CU_ASSERT_EQUAL(ev[0].events, TL_READABLE);
        CU_ASSERT_EQUAL(be->unwatch(st, sv[0], TL_READABLE), 0);
        be->close(st);
        close(sv[0]);
    }
}

static void test_backend_instances_are_independent(void) {
    for (int i = 0; i < 2; i++) {
        const tl_backend_ops_t *be = builtin(i);
        void *a = NULL, *b = NULL;
        CU_ASSERT_EQUAL_FATAL(be->create(&a), 0);
        CU_ASSERT_EQUAL_FATAL(be->create(&b), 0);
        CU_ASSERT_PTR_NOT_EQUAL(a, b);
        tl_backend_event_t ev[2];
        CU_ASSERT_EQUAL(be->wakeup(a), 0);
        CU_ASSERT_EQUAL(be->poll(b, 0, ev, 2), 0);
        uint64_t t0 = tl_now_ns();
        CU_ASSERT_EQUAL(be->poll(b, 3 * MS, ev, 2), 0);
        CU_ASSERT(tl_now_ns() - t0 >= 2 * MS); /* b was not woken */
        be->close(a);
        be->close(b);
    }
}

/* ---- a backend of the test's own -------------------------------------- */

static struct counts {
    int create, close, watch, unwatch, poll, wakeup;
    int fail_create;  /* create returns this code */
    int fail_poll_at; /* the nth poll (1 = next) returns TL_EIO */
    int fail_watch;   /* watch returns this code */
} calls;

static int c_create(void **state) {
    calls.create++;
    if (calls.fail_create)
        return calls.fail_create;
    return tl_backend_poll()->create(state);
}
static void c_close(void *state) {
    calls.close++;
    tl_backend_poll()->close(state);
}
static int c_watch(void *state, tl_fd_t fd, unsigned prev, unsigned events) {
    calls.watch++;
    if (calls.fail_watch)
        return calls.fail_watch;
    return tl_backend_poll()->watch(state, fd, prev, events);
}
static int c_unwatch(void *state, tl_fd_t fd, unsigned prev) {
    calls.unwatch++;
    return tl_backend_poll()->unwatch(state, fd, prev);
}
static int c_poll(void *state, int64_t timeout_ns, tl_backend_event_t *ev, int max) {
    calls.poll++;
    if (calls.fail_poll_at > 0 && --calls.fail_poll_at == 0)
        return TL_EIO;
    return tl_backend_poll()->poll(state, timeout_ns, ev, max);
}
static int c_wakeup(void *state) {
    __atomic_add_fetch(&calls.wakeup, 1, __ATOMIC_SEQ_CST);
    return tl_backend_poll()->wakeup(state);
}

static const tl_backend_ops_t counting = {
    sizeof(tl_backend_ops_t), "counting", c_create, c_close, c_watch,
    c_unwatch, c_poll, c_wakeup,
};

static tl_loop_t *counting_loop(void) {
    tl_loop_options_t o = {sizeof o, &counting, 0, 0};
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    return loop;
}

static void nop(void *ctx) { (void)ctx; }

/* The harness counts allocations in plain variables: let the loop allocate
 * its ready queue and cross-thread queues before another thread calls in,
 * so the two threads never allocate at the same time. */
static void prime(tl_loop_t *loop) {
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, nop, NULL), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    }
}

static void *send_stop(void *loop) {
    usleep(5000);
    tl_loop_call_soon_threadsafe(loop, tl_loop_stop_cb, loop);
    return NULL;
}

static void test_a_custom_backend_is_really_used(void) {
    memset(&calls, 0, sizeof calls);
    tl_loop_t *loop = counting_loop();
    CU_ASSERT_EQUAL(calls.create, 1);
    CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), "counting");
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0);
    CU_ASSERT_EQUAL(calls.watch, 1);
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0); /* same interest */
    CU_ASSERT_EQUAL(calls.watch, 1);
    CU_ASSERT_EQUAL(tl_loop_add_writer(loop, p[0], incr, &n), 0); /* a change */
    CU_ASSERT_EQUAL(calls.watch, 2);
    CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, p[0]), 1);
    CU_ASSERT_EQUAL(calls.watch, 3);
    CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(calls.poll >= 1);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
    CU_ASSERT_EQUAL(calls.unwatch, 1);

    /* A call from another thread goes through the backend's wakeup. */
    prime(loop);
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, send_stop, loop), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2000 * MS, tl_loop_stop_cb, loop, NULL), 0);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    pthread_join(t, NULL);
    CU_ASSERT(tl_now_ns() - t0 < 1000 * MS);
    CU_ASSERT(__atomic_load_n(&calls.wakeup, __ATOMIC_SEQ_CST) >= 1);

    CU_ASSERT_EQUAL(calls.close, 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(calls.close, 1);
    CU_ASSERT_EQUAL(calls.create, 1);
    close(p[0]);
    close(p[1]);
}

static void test_close_unwatches_what_is_still_watched(void) {
    memset(&calls, 0, sizeof calls);
    tl_loop_t *loop = counting_loop();
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0);
    CU_ASSERT_EQUAL(tl_loop_add_writer(loop, p[1], incr, &n), 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(calls.unwatch, 2);
    CU_ASSERT_EQUAL(calls.close, 1);
    close(p[0]);
    close(p[1]);
}

static void test_a_backend_whose_create_fails_makes_new_fail_without_leaks(void) {
    memset(&calls, 0, sizeof calls);
    calls.fail_create = TL_EMFILE;
    long before = tl_test_live_allocs();
    tl_loop_options_t o = {sizeof o, &counting, 0, 0};
    tl_loop_t *const sentinel = (tl_loop_t *)(uintptr_t)0x42;
    tl_loop_t *loop = sentinel;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EMFILE);
    CU_ASSERT_PTR_EQUAL(loop, sentinel);
    CU_ASSERT_EQUAL(calls.create, 1);
    CU_ASSERT_EQUAL(calls.close, 0); /* nothing to undo */
    CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
    calls.fail_create = 0;
}

static void test_builtin_create_fails_cleanly_when_memory_runs_out(void) {
    for (int i = 0; i < 2; i++) {
        const tl_backend_ops_t *be = builtin(i);
        for (long k = 1; k < 10; k++) {
            long before = tl_test_live_allocs();
            void *st = NULL;
            tl_test_fail_alloc_at(k);
            int rc = be->create(&st);
            tl_test_fail_alloc_at(0);
            if (rc == 0) {
                be->close(st);
                CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
                break;
            }
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
            CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
        }
    }
}

static void test_a_poll_error_ends_the_run_and_the_loop_stays_usable(void) {
    memset(&calls, 0, sizeof calls);
    tl_loop_t *loop = counting_loop();
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    int n = 0, ticks = 0;
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, incr, &ticks, NULL), 0);
    calls.fail_poll_at = 1;
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), TL_EIO);
    CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
    CU_ASSERT_PTR_NULL(tl_loop_get_running());
    /* usable again */
    CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2 * MS, tl_loop_stop_cb, loop, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT(n >= 1);
    CU_ASSERT_EQUAL(ticks, 1);
    calls.fail_poll_at = 1;
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), TL_EIO);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
    tl_test_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_a_watch_error_is_returned_and_nothing_is_recorded(void) {
    memset(&calls, 0, sizeof calls);
    tl_loop_t *loop = counting_loop();
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    int n = 0;
    calls.fail_watch = TL_EPERM;
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), TL_EPERM);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 0);
    calls.fail_watch = 0;
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0);
    calls.fail_watch = TL_ENOMEM;
    CU_ASSERT_EQUAL(tl_loop_add_writer(loop, p[0], incr, &n), TL_ENOMEM);
    CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, p[0]), 0);
    calls.fail_watch = 0;
    /* the reader survived the failed change */
    CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
    tl_test_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* ---- the same loop behaviour on every built-in backend ---------------- */

typedef struct tour {
    tl_loop_t *loop;
    int fd;
    int soon, timer, reader, signal, remote, cancelled;
    int order[8], n;
} tour_t;

static void t_soon(void *a) { tour_t *t = a; t->soon++; t->order[t->n++ & 7] = 1; }
static void t_timer(void *a) { tour_t *t = a; t->timer++; t->order[t->n++ & 7] = 2; }
static void t_cancelled(void *a) { ((tour_t *)a)->cancelled++; }
static void t_signal(void *a) { ((tour_t *)a)->signal++; }
static void t_remote(void *a) {
    tour_t *t = a;
    t->remote++;
    tl_loop_stop(t->loop);
}
static void t_reader(void *a) {
    tour_t *t = a;
    char c;
    if (read(t->fd, &c, 1) == 1)
        t->reader++;
}

static void *remote_main(void *arg) {
    tour_t *t = arg;
    usleep(10000);
    tl_loop_call_soon_threadsafe(t->loop, t_remote, t);
    return NULL;
}

static void test_every_builtin_backend_runs_the_loop_the_same_way(void) {
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGUSR2, &ign, &old);
    for (int i = 0; i < 2; i++) {
        tl_loop_options_t o = {sizeof o, builtin(i), 0, 0};
        tl_loop_t *loop;
        CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
        CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), builtin(i)->name);
        prime(loop);
        int p[2];
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
        tour_t t;
        memset(&t, 0, sizeof t);
        t.loop = loop;
        t.fd = p[0];
        tl_handle_t h;
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 2 * MS, t_timer, &t, NULL), 0);
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1 * MS, t_cancelled, &t, &h), 0);
        CU_ASSERT_EQUAL(tl_loop_call_soon(loop, t_soon, &t, NULL), 0);
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 1);
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], t_reader, &t), 0);
        CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR2, t_signal, &t), 0);
        CU_ASSERT_EQUAL(write(p[1], "ab", 2), 2);
        CU_ASSERT_EQUAL(raise(SIGUSR2), 0);
        tl_handle_t guard;
        CU_ASSERT_EQUAL(tl_loop_call_later(loop, 1500 * MS, tl_loop_stop_cb, loop, &guard), 0);
        pthread_t th;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, remote_main, &t), 0);
        CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
        pthread_join(th, NULL);
        CU_ASSERT_EQUAL(t.remote, 1); /* and not the guard */
        CU_ASSERT_EQUAL(tl_handle_cancel(loop, guard), 1);
        CU_ASSERT_EQUAL(t.soon, 1);
        CU_ASSERT_EQUAL(t.timer, 1);
        CU_ASSERT_EQUAL(t.order[0], 1);
        CU_ASSERT_EQUAL(t.order[1], 2);
        CU_ASSERT_EQUAL(t.cancelled, 0);
        CU_ASSERT_EQUAL(t.reader, 2);
        CU_ASSERT_EQUAL(t.signal, 1);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR2), 1);
        tl_test_loop_free(loop);
        close(p[0]);
        close(p[1]);
    }
    sigaction(SIGUSR2, &old, NULL);
}

static void test_every_builtin_backend_sleeps_until_the_next_timer(void) {
    for (int i = 0; i < 2; i++) {
        tl_loop_options_t o = {sizeof o, builtin(i), 0, 0};
        tl_loop_t *loop;
        CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
        int p[2];
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
        int n = 0;
        /* a watched descriptor that stays quiet forces a real wait */
        CU_ASSERT_EQUAL(tl_loop_add_reader(loop, p[0], incr, &n), 0);
        int64_t when = tl_loop_time(loop) + 3 * MS;
        CU_ASSERT_EQUAL(tl_loop_call_at(loop, when, tl_loop_stop_cb, loop, NULL), 0);
        CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
        int64_t now = tl_loop_time(loop);
        CU_ASSERT(now >= when);
        CU_ASSERT(now - when < 300 * MS);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 1);
        tl_test_loop_free(loop);
        close(p[0]);
        close(p[1]);
    }
}

TL_TEST_SUITE(backend,
              TL_TEST(test_builtin_backends_are_complete_tables),
              TL_TEST(test_backend_by_name_finds_the_builtins_only),
              TL_TEST(test_default_backend_honours_tl_backend),
              TL_TEST(test_backend_ops_report_readiness_and_wakeups),
              TL_TEST(test_backend_reports_errors_masked_by_interest),
              TL_TEST(test_backend_instances_are_independent),
              TL_TEST(test_a_custom_backend_is_really_used),
              TL_TEST(test_close_unwatches_what_is_still_watched),
              TL_TEST(test_a_backend_whose_create_fails_makes_new_fail_without_leaks),
              TL_TEST(test_builtin_create_fails_cleanly_when_memory_runs_out),
              TL_TEST(test_a_poll_error_ends_the_run_and_the_loop_stays_usable),
              TL_TEST(test_a_watch_error_is_returned_and_nothing_is_recorded),
              TL_TEST(test_every_builtin_backend_runs_the_loop_the_same_way),
              TL_TEST(test_every_builtin_backend_sleeps_until_the_next_timer))
