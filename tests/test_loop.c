/*
 * loop: the life cycle (new, ref, unref, close), run_forever / run_once /
 * stop, the ready queue, handles, argument and thread checks, debug mode and
 * the exception handler (asyncio's base_events).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tl_test.h"

#define MS (1000000LL)

static void incr(void *ctx) { (*(int *)ctx)++; }
static void nop(void *ctx) { (void)ctx; }

/* Saves an environment variable and puts it back. */
typedef struct saved_env {
    const char *name;
    char value[256];
    int was_set;
} saved_env_t;

static void env_save(saved_env_t *s, const char *name) {
    const char *v = getenv(name);
    s->name = name;
    s->was_set = v != NULL;
    snprintf(s->value, sizeof s->value, "%s", v ? v : "");
}

static void env_restore(const saved_env_t *s) {
    if (s->was_set)
        setenv(s->name, s->value, 1);
    else
        unsetenv(s->name);
}

/* ---- life cycle ------------------------------------------------------- */

static void test_new_close_and_unref(void) {
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(NULL, &loop), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loop);
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
    CU_ASSERT_PTR_NOT_NULL(tl_loop_backend_name(loop));
    CU_ASSERT(tl_loop_time(loop) > 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 1);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0); /* twice is fine */
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_new_rejects_bad_options(void) {
    tl_loop_t *const sentinel = (tl_loop_t *)(uintptr_t)0x1234;
    tl_loop_t *loop = sentinel;
    CU_ASSERT_EQUAL(tl_loop_new(NULL, NULL), TL_EINVAL);

    tl_loop_options_t o = {sizeof o, NULL, 0, 0};
    CU_ASSERT_EQUAL(tl_loop_new(&o, NULL), TL_EINVAL);
    o.size = 1; /* smaller than the size field itself */
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    CU_ASSERT_PTR_EQUAL(loop, sentinel);

    struct {
        tl_loop_options_t o;
        char newer_fields[32];
    } big;
    memset(&big, 0, sizeof big);
    big.o.size = sizeof big; /* from a newer header, with a field set */
    big.newer_fields[5] = 1;
    CU_ASSERT_EQUAL(tl_loop_new(&big.o, &loop), TL_EINVAL);
    CU_ASSERT_PTR_EQUAL(loop, sentinel);

    o = (tl_loop_options_t){sizeof o, NULL, 0, -1};
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    CU_ASSERT_PTR_EQUAL(loop, sentinel);
}

static void test_new_accepts_zeroed_and_newer_option_structs(void) {
    tl_loop_options_t zero;
    memset(&zero, 0, sizeof zero); /* size 0 too: all defaults */
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&zero, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    tl_test_loop_free(loop);

    struct {
        tl_loop_options_t o;
        char newer_fields[32];
    } big;
    memset(&big, 0, sizeof big); /* unknown fields zero: ignoring them is safe */
    big.o.size = sizeof big;
    big.o.debug = 1;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&big.o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 1);
    tl_test_loop_free(loop);
}

static void test_new_rejects_an_invalid_backend_table(void) {
    tl_loop_t *const sentinel = (tl_loop_t *)(uintptr_t)0x1234;
    tl_loop_t *loop = sentinel;
    const tl_backend_ops_t *poll_be = tl_backend_poll();
    CU_ASSERT_PTR_NOT_NULL_FATAL(poll_be);

    tl_backend_ops_t bad = *poll_be;
    bad.size = sizeof(size_t);
    tl_loop_options_t o = {sizeof o, &bad, 0, 0};
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);

    bad = *poll_be;
    bad.poll = NULL;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    bad = *poll_be;
    bad.wakeup = NULL;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    bad = *poll_be;
    bad.create = NULL;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    bad = *poll_be;
    bad.watch = NULL;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    bad = *poll_be;
    bad.unwatch = NULL;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    bad = *poll_be;
    bad.close = NULL;
    CU_ASSERT_EQUAL(tl_loop_new(&o, &loop), TL_EINVAL);
    CU_ASSERT_PTR_EQUAL(loop, sentinel);
}

static void test_shorter_options_struct_is_accepted(void) {
    /* A caller built against an older header with only size and backend. */
    tl_loop_options_t o;
    memset(&o, 0xff, sizeof o); /* the fields it doesn't know are garbage */
    o.size = offsetof(tl_loop_options_t, debug);
    o.backend = tl_backend_poll();
    tl_loop_t *loop = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_STRING_EQUAL(tl_loop_backend_name(loop), "poll");
    tl_test_loop_free(loop);
}

static void test_options_and_env_choose_debug_mode(void) {
    saved_env_t env;
    env_save(&env, "TL_DEBUG");
    tl_loop_t *loop;
    tl_loop_options_t o = {sizeof o, NULL, 0, 0};

    unsetenv("TL_DEBUG");
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    tl_test_loop_free(loop);

    setenv("TL_DEBUG", "1", 1);
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 1);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(NULL, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 1);
    tl_test_loop_free(loop);

    o.debug = -1; /* the option wins over the environment */
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    tl_test_loop_free(loop);

    setenv("TL_DEBUG", "0", 1);
    o.debug = 0;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    tl_test_loop_free(loop);
    o.debug = 7;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 1);
    CU_ASSERT_EQUAL(tl_loop_set_debug(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    tl_test_loop_free(loop);
    env_restore(&env);
}

static void test_ref_keeps_a_closed_loop_valid(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(tl_loop_ref(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    /* One reference left: the object is still there and says it's closed. */
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 1);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, nop, NULL, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_last_unref_closes_an_open_loop_and_frees_its_work(void) {
    long before = tl_test_live_allocs();
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t h;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &h), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 60 * 1000 * MS, incr, &n, NULL), 0);
    CU_ASSERT(tl_test_live_allocs() > before);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
}

static void test_close_drops_pending_work_without_running_it(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t h1, h2;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &h1), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &n, &h2), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, incr, &n), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h2), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), TL_ECLOSED);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

/* ---- every entry point refuses what it cannot do ---------------------- */

static void test_null_loop_is_refused_everywhere(void) {
    tl_handle_t h = 0;
    tl_exception_context_t c = {sizeof c, "x", 0, NULL, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL(tl_loop_ref(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_unref(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_close(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_run_forever(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_run_once(NULL, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_stop(NULL), TL_EINVAL);
    tl_loop_stop_cb(NULL); /* must not crash */
    CU_ASSERT_EQUAL(tl_loop_is_running(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_is_closed(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_time(NULL), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_loop_backend_name(NULL));
    CU_ASSERT_EQUAL(tl_loop_call_soon(NULL, nop, NULL, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_later(NULL, 0, nop, NULL, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_at(NULL, 0, nop, NULL, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(NULL, nop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(h, 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_handle_pending(NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_reader(NULL, 0, nop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_writer(NULL, 1, nop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(NULL, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_writer(NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(NULL, SIGUSR1, nop, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(NULL, SIGUSR1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_set_exception_handler(NULL, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(NULL, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_default_exception_handler(NULL, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_set_debug(NULL, 1), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_get_debug(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(NULL, MS), TL_EINVAL);
}

static void test_closed_loop_refuses_everything(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    tl_handle_t h = 0;
    tl_exception_context_t c = {sizeof c, "x", 0, NULL, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 1);
    CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_stop(loop), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_time(loop), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, nop, NULL, &h), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, nop, NULL, &h), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, 0, nop, NULL, &h), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, nop, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(h, 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, 0, nop, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_add_writer(loop, 1, nop, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, 0), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_remove_writer(loop, 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, nop, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_set_exception_handler(loop, NULL, NULL), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(loop, &c), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_default_exception_handler(loop, &c), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_set_debug(loop, 1), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(loop, MS), TL_ECLOSED);
    /* references still work on a closed loop */
    CU_ASSERT_EQUAL(tl_loop_ref(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

/* What another thread gets from each entry point. */
typedef struct wrong_thread {
    tl_loop_t *loop;
    tl_handle_t h;
    int fd;
    int rc[40];
    int n;
    int64_t time_rc;
    tl_loop_t *running_there;
    int allowed[3];
    int ran;
} wrong_thread_t;

static void *wrong_thread_main(void *arg) {
    wrong_thread_t *w = arg;
    tl_loop_t *l = w->loop;
    tl_exception_context_t c = {sizeof c, "x", 0, NULL, NULL, NULL, NULL, 0};
    int *rc = w->rc;
    int n = 0;
    tl_handle_t h = 0;
    rc[n++] = tl_loop_close(l);
    rc[n++] = tl_loop_run_forever(l);
    rc[n++] = tl_loop_run_once(l, 0);
    rc[n++] = tl_loop_stop(l);
    rc[n++] = tl_loop_is_running(l);
    rc[n++] = tl_loop_is_closed(l);
    rc[n++] = tl_loop_call_soon(l, nop, NULL, &h);
    rc[n++] = tl_loop_call_later(l, 0, nop, NULL, &h);
    rc[n++] = tl_loop_call_at(l, 0, nop, NULL, &h);
    rc[n++] = tl_handle_cancel(l, w->h);
    rc[n++] = tl_handle_pending(l, w->h);
    rc[n++] = tl_loop_add_reader(l, w->fd, nop, NULL);
    rc[n++] = tl_loop_add_writer(l, w->fd, nop, NULL);
    rc[n++] = tl_loop_remove_reader(l, w->fd);
    rc[n++] = tl_loop_remove_writer(l, w->fd);
    rc[n++] = tl_loop_add_signal_handler(l, SIGUSR1, nop, NULL);
    rc[n++] = tl_loop_remove_signal_handler(l, SIGUSR1);
    rc[n++] = tl_loop_set_exception_handler(l, NULL, NULL);
    rc[n++] = tl_loop_call_exception_handler(l, &c);
    rc[n++] = tl_loop_default_exception_handler(l, &c);
    rc[n++] = tl_loop_set_debug(l, 1);
    rc[n++] = tl_loop_get_debug(l);
    rc[n++] = tl_loop_set_slow_callback_duration(l, MS);
    w->n = n;
    w->time_rc = tl_loop_time(l);
    w->running_there = tl_loop_get_running();
    if (h != 0)
        w->n = -1; /* a refused call wrote a handle */
    return NULL;
}

static void *allowed_thread_main(void *arg) {
    wrong_thread_t *w = arg;
    w->allowed[0] = tl_loop_ref(w->loop);
    w->allowed[1] = tl_loop_call_soon_threadsafe(w->loop, incr, &w->ran);
    w->allowed[2] = tl_loop_unref(w->loop);
    return NULL;
}

/* Runs inside the loop, so the other thread sees a running loop. */
static void spawn_wrong_thread(void *arg) {
    wrong_thread_t *w = arg;
    pthread_t t;
    if (pthread_create(&t, NULL, wrong_thread_main, w) == 0)
        pthread_join(t, NULL);
    if (pthread_create(&t, NULL, allowed_thread_main, w) == 0)
        pthread_join(t, NULL);
}

static void test_other_threads_are_refused_except_threadsafe_ref_unref(void) {
    tl_loop_t *loop = tl_test_loop();
    int p[2];
    CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
    wrong_thread_t w;
    memset(&w, 0, sizeof w);
    w.loop = loop;
    w.fd = p[0];
    int n = 0;
    /* off whatever $TL_DEBUG says: the other thread tries to turn it on */
    CU_ASSERT_EQUAL(tl_loop_set_debug(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 60 * 1000 * MS, incr, &n, &w.h), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, spawn_wrong_thread, &w, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);

    CU_ASSERT_EQUAL(w.n, 23);
    for (int i = 0; i < w.n; i++) {
        if (w.rc[i] != TL_EWRONGTHREAD)
            fprintf(stderr, "\n  call #%d from another thread returned %d\n", i, w.rc[i]);
        CU_ASSERT_EQUAL(w.rc[i], TL_EWRONGTHREAD);
    }
    CU_ASSERT_EQUAL(w.time_rc, TL_EWRONGTHREAD);
    CU_ASSERT_PTR_NULL(w.running_there);
    /* ref, call_soon_threadsafe and unref work from any thread */
    CU_ASSERT_EQUAL(w.allowed[0], 0);
    CU_ASSERT_EQUAL(w.allowed[1], 0);
    CU_ASSERT_EQUAL(w.allowed[2], 0);

    /* Nothing the other thread tried had an effect. */
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, w.h), 1);
    CU_ASSERT_EQUAL(tl_loop_remove_reader(loop, p[0]), 0);
    CU_ASSERT_EQUAL(tl_loop_remove_signal_handler(loop, SIGUSR1), 0);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0); /* the threadsafe call */
    CU_ASSERT_EQUAL(w.ran, 1);
    CU_ASSERT_EQUAL(n, 0);
    tl_test_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_ref_unref_and_threadsafe_work_from_another_thread(void) {
    tl_loop_t *loop = tl_test_loop();
    wrong_thread_t w;
    memset(&w, 0, sizeof w);
    w.loop = loop;
    pthread_t t;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, allowed_thread_main, &w), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(w.allowed[0], 0);
    CU_ASSERT_EQUAL(w.allowed[1], 0);
    CU_ASSERT_EQUAL(w.allowed[2], 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(w.ran, 1);
    tl_test_loop_free(loop);
}

static void test_impossible_arguments_are_refused(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_handle_t h = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, NULL, NULL, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, MS, NULL, NULL, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_at(loop, 0, NULL, NULL, &h), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_soon_threadsafe(loop, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(h, 0);
    CU_ASSERT_EQUAL(tl_loop_add_reader(loop, 0, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_writer(loop, 1, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_add_signal_handler(loop, SIGUSR1, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(loop, 0), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(loop, -MS), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(loop, NULL), TL_EINVAL);
    tl_exception_context_t c = {sizeof c, NULL, 0, NULL, NULL, NULL, NULL, 0};
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(loop, &c), TL_EINVAL);
    c.message = "x";
    c.size = 0;
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(loop, &c), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_loop_default_exception_handler(loop, NULL), TL_EINVAL);
    /* Handles that never named anything. */
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, 0xdeadbeef00000005ULL), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, 0xdeadbeef00000005ULL), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, UINT64_MAX), 0);
    /* Nothing was scheduled by the refused calls. */
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    tl_test_loop_free(loop);
}

/* ---- running and stopping --------------------------------------------- */

typedef struct runner {
    tl_loop_t *loop;
    tl_loop_t *other;
    int count, limit;
    int order[8];
    int n;
    int rc[8];
    tl_loop_t *seen_running;
    int is_running;
} runner_t;

/* Reschedules itself until it has run `limit` times, then stops the loop. */
static void count_iterations(void *arg) {
    runner_t *r = arg;
    r->count++;
    if (r->limit && r->count >= r->limit)
        tl_loop_stop(r->loop);
    else
        tl_loop_call_soon(r->loop, count_iterations, r, NULL);
}

static void test_stop_before_run_makes_the_next_run_do_one_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    runner_t r = {.loop = loop};
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, count_iterations, &r, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_stop(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT_EQUAL(r.count, 1);
    /* The stop was used up: the next run goes on until told again. */
    r.limit = 4;
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT_EQUAL(r.count, 4);
    tl_test_loop_free(loop);
}

static void stop_loop_cb(void *arg) {
    runner_t *r = arg;
    r->order[r->n++] = 1;
    tl_loop_stop(r->loop);
    tl_loop_stop(r->loop); /* twice is the same */
}
static void mark2(void *arg) {
    runner_t *r = arg;
    r->order[r->n++] = 2;
}

static void test_stop_from_a_callback_finishes_the_batch_and_returns(void) {
    tl_loop_t *loop = tl_test_loop();
    runner_t r = {.loop = loop};
    int late = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, stop_loop_cb, &r, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, mark2, &r, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 300 * MS, incr, &late, NULL), 0);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT(tl_now_ns() - t0 < 250 * MS); /* did not wait for the timer */
    CU_ASSERT_EQUAL(r.n, 2);
    CU_ASSERT_EQUAL(r.order[0], 1);
    CU_ASSERT_EQUAL(r.order[1], 2);
    CU_ASSERT_EQUAL(late, 0);
    CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
    tl_test_loop_free(loop);
}

static void stop_only(void *loop) { tl_loop_stop(loop); }

static void test_stop_inside_run_once_is_used_up_by_it(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, stop_only, loop, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    /* run_once returned as asked; the request must not leak into the next
     * run_forever, which would then stop after one iteration. */
    runner_t r = {.loop = loop, .limit = 3};
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, count_iterations, &r, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT_EQUAL(r.count, 3);
    tl_test_loop_free(loop);
}

static void guard_fired(void *arg) {
    runner_t *r = arg;
    r->count = -1000;
    tl_loop_stop(r->loop);
}

static void test_stop_before_run_once_makes_it_not_block(void) {
    tl_loop_t *loop = tl_test_loop();
    runner_t r = {.loop = loop};
    tl_handle_t guard;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 300 * MS, guard_fired, &r, &guard), 0);
    CU_ASSERT_EQUAL(tl_loop_stop(loop), 0);
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, -1), 0);
    CU_ASSERT(tl_now_ns() - t0 < 200 * MS);
    CU_ASSERT_EQUAL(r.count, 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, guard), 1);
    tl_test_loop_free(loop);
}

static void nested(void *arg) {
    runner_t *r = arg;
    r->seen_running = tl_loop_get_running();
    r->is_running = tl_loop_is_running(r->loop);
    r->rc[0] = tl_loop_run_forever(r->loop);
    r->rc[1] = tl_loop_run_once(r->loop, 0);
    r->rc[2] = tl_loop_run_forever(r->other);
    r->rc[3] = tl_loop_run_once(r->other, 0);
    r->rc[4] = tl_loop_close(r->loop);
    r->rc[5] = tl_loop_is_running(r->other);
    r->rc[6] = tl_loop_close(r->other) == 0 ? tl_loop_is_closed(r->other) : -1;
    r->count++;
}

static void test_nested_runs_and_close_while_running_fail(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_loop_t *other = tl_test_loop();
    runner_t r = {.loop = loop, .other = other};
    CU_ASSERT_PTR_NULL(tl_loop_get_running());
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, nested, &r, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(r.count, 1);
    CU_ASSERT_PTR_EQUAL(r.seen_running, loop);
    CU_ASSERT_EQUAL(r.is_running, 1);
    CU_ASSERT_EQUAL(r.rc[0], TL_ERUNNING);
    CU_ASSERT_EQUAL(r.rc[1], TL_ERUNNING);
    CU_ASSERT_EQUAL(r.rc[2], TL_ERUNNING);
    CU_ASSERT_EQUAL(r.rc[3], TL_ERUNNING);
    CU_ASSERT_EQUAL(r.rc[4], TL_ERUNNING);
    CU_ASSERT_EQUAL(r.rc[5], 0);
    CU_ASSERT_EQUAL(r.rc[6], 1); /* another, idle loop may be closed */
    CU_ASSERT_PTR_NULL(tl_loop_get_running());
    CU_ASSERT_EQUAL(tl_loop_is_running(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_is_closed(loop), 0);
    tl_test_loop_free(loop);
    CU_ASSERT_EQUAL(tl_loop_unref(other), 0);
}

static void drop_loop(void *loop) { tl_loop_unref(loop); }

static void test_last_unref_inside_a_callback_frees_the_loop_after_the_run(void) {
    long before = tl_test_live_allocs();
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, drop_loop, loop, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, stop_only, loop, NULL), 0);
    /* The run holds its own reference until it returns. */
    CU_ASSERT_EQUAL(tl_loop_run_forever(loop), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
}

static void test_run_once_with_nothing_to_do_returns_after_the_timeout(void) {
    tl_loop_t *loop = tl_test_loop();
    uint64_t t0 = tl_now_ns();
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 2 * MS), 0);
    CU_ASSERT(tl_now_ns() - t0 < 200 * MS);
    tl_test_loop_free(loop);
}

static void test_loop_time_is_monotonic_and_follows_now(void) {
    tl_loop_t *loop = tl_test_loop();
    int64_t a = tl_loop_time(loop);
    uint64_t now = tl_now_ns();
    int64_t b = tl_loop_time(loop);
    CU_ASSERT(a > 0);
    CU_ASSERT(b >= a);
    CU_ASSERT((uint64_t)a <= now && now <= (uint64_t)b);
    tl_test_loop_free(loop);
}

/* ---- the ready queue -------------------------------------------------- */

typedef struct recorder {
    tl_loop_t *loop;
    int *seen;
    int n, cap;
} recorder_t;

typedef struct item {
    recorder_t *rec;
    int id;
} item_t;

static void record(void *arg) {
    item_t *it = arg;
    if (it->rec->n < it->rec->cap)
        it->rec->seen[it->rec->n] = it->id;
    it->rec->n++;
}

static void test_call_soon_runs_in_fifo_order(void) {
    enum { N = 5000 }; /* more than the ring's first capacity */
    tl_loop_t *loop = tl_test_loop();
    static int seen[N];
    static item_t items[N];
    recorder_t rec = {loop, seen, 0, N};
    for (int i = 0; i < N; i++) {
        items[i] = (item_t){&rec, i};
        CU_ASSERT_EQUAL_FATAL(tl_loop_call_soon(loop, record, &items[i],
                                                i % 3 ? NULL : &(tl_handle_t){0}),
                              0);
    }
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL_FATAL(rec.n, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += seen[i] != i;
    CU_ASSERT_EQUAL(bad, 0);
    tl_test_loop_free(loop);
}

typedef struct chain {
    tl_loop_t *loop;
    int first, second;
} chain_t;

static void second_step(void *arg) { ((chain_t *)arg)->second++; }
static void first_step(void *arg) {
    chain_t *c = arg;
    c->first++;
    tl_loop_call_soon(c->loop, second_step, c, NULL);
}

static void test_callbacks_scheduled_during_a_batch_wait_for_the_next_iteration(void) {
    tl_loop_t *loop = tl_test_loop();
    chain_t c = {loop, 0, 0};
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, first_step, &c, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, first_step, &c, &(tl_handle_t){0}), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.first, 2);
    CU_ASSERT_EQUAL(c.second, 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.second, 2);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(c.first, 2);
    CU_ASSERT_EQUAL(c.second, 2);
    tl_test_loop_free(loop);
}

/* Generation 0 items each schedule two generation 1 items, so the ring
 * grows while its head is in the middle of the array. */
typedef struct fan {
    tl_loop_t *loop;
    recorder_t *rec;
    item_t *next;
    int id;
} fan_t;

static void fan_out(void *arg) {
    fan_t *f = arg;
    tl_loop_call_soon(f->loop, record, &f->next[2 * f->id], NULL);
    tl_loop_call_soon(f->loop, record, &f->next[2 * f->id + 1], NULL);
}

static void test_ready_queue_keeps_order_when_it_grows_while_wrapped(void) {
    enum { N = 700 };
    tl_loop_t *loop = tl_test_loop();
    static fan_t gen0[N];
    static item_t gen1[2 * N];
    static int seen[2 * N];
    recorder_t rec = {loop, seen, 0, 2 * N};
    for (int i = 0; i < 2 * N; i++)
        gen1[i] = (item_t){&rec, i};
    for (int i = 0; i < N; i++) {
        gen0[i] = (fan_t){loop, &rec, gen1, i};
        CU_ASSERT_EQUAL_FATAL(tl_loop_call_soon(loop, fan_out, &gen0[i], NULL), 0);
    }
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(rec.n, 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL_FATAL(rec.n, 2 * N);
    int bad = 0;
    for (int i = 0; i < 2 * N; i++)
        bad += seen[i] != i;
    CU_ASSERT_EQUAL(bad, 0);
    tl_test_loop_free(loop);
}

/* ---- handles ---------------------------------------------------------- */

static void test_cancelled_callback_does_not_run(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0, m = 0;
    tl_handle_t h = 0, k = 0;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &h), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &m, &k), 0);
    CU_ASSERT_NOT_EQUAL(h, 0);
    CU_ASSERT_NOT_EQUAL(k, 0);
    CU_ASSERT_NOT_EQUAL(h, k);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 1);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 1);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(m, 1);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 0);
    tl_test_loop_free(loop);
}

static void test_cancel_after_the_callback_ran_returns_0(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0;
    tl_handle_t h;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &h), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, h), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, h), 0);
    tl_test_loop_free(loop);
}

static void test_stale_handle_does_nothing_after_its_slot_is_reused(void) {
    tl_loop_t *loop = tl_test_loop();
    int n = 0, m = 0;
    tl_handle_t old, cancelled, fresh;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &old), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &cancelled), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, cancelled), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    /* Both slots are free again; new work reuses them. */
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &m, &fresh), 0);
    tl_handle_t timer;
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, incr, &m, &timer), 0);
    CU_ASSERT_NOT_EQUAL(fresh, old);
    CU_ASSERT_NOT_EQUAL(fresh, cancelled);
    CU_ASSERT_NOT_EQUAL(timer, old);
    CU_ASSERT_NOT_EQUAL(timer, cancelled);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, old), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, cancelled), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, old), 0);
    CU_ASSERT_EQUAL(tl_handle_cancel(loop, cancelled), 0);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, fresh), 1);
    CU_ASSERT_EQUAL(tl_handle_pending(loop, timer), 1);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(m, 2);
    tl_test_loop_free(loop);
}

typedef struct self_check {
    tl_loop_t *loop;
    tl_handle_t self, victim;
    int pending_inside, cancel_inside, cancel_victim;
    int victim_ran;
} self_check_t;

static void check_self(void *arg) {
    self_check_t *s = arg;
    s->pending_inside = tl_handle_pending(s->loop, s->self);
    s->cancel_inside = tl_handle_cancel(s->loop, s->self);
    s->cancel_victim = tl_handle_cancel(s->loop, s->victim);
}
static void victim(void *arg) { ((self_check_t *)arg)->victim_ran++; }

static void test_callback_cancels_a_later_one_in_the_same_batch(void) {
    tl_loop_t *loop = tl_test_loop();
    self_check_t s = {.loop = loop};
    s.pending_inside = s.cancel_inside = -1;
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, check_self, &s, &s.self), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, victim, &s, &s.victim), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(s.pending_inside, 0); /* a running callback is not pending */
    CU_ASSERT_EQUAL(s.cancel_inside, 0);
    CU_ASSERT_EQUAL(s.cancel_victim, 1);
    CU_ASSERT_EQUAL(s.victim_ran, 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(s.victim_ran, 0);
    tl_test_loop_free(loop);
}

static void test_many_cancelled_callbacks_are_released(void) {
    tl_loop_t *loop = tl_test_loop();
    static tl_handle_t hs[20000];
    int n = 0;
    long after_first = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20000; i++)
            CU_ASSERT_EQUAL_FATAL(tl_loop_call_soon(loop, incr, &n, &hs[i]), 0);
        for (int i = 0; i < 20000; i++)
            CU_ASSERT_EQUAL(tl_handle_cancel(loop, hs[i]), 1);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        if (round == 0)
            after_first = tl_test_live_allocs();
    }
    CU_ASSERT_EQUAL(tl_test_live_allocs(), after_first);
    CU_ASSERT_EQUAL(n, 0);
    tl_test_loop_free(loop);
}

/* ---- out of memory ---------------------------------------------------- */

static void test_new_fails_cleanly_at_every_allocation(void) {
    for (long k = 1; k < 50; k++) {
        long before = tl_test_live_allocs();
        tl_loop_t *loop = NULL;
        tl_test_fail_alloc_at(k);
        int rc = tl_loop_new(NULL, &loop);
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            CU_ASSERT_PTR_NOT_NULL(loop);
            tl_test_loop_free(loop);
            CU_ASSERT(k > 1);
            break;
        }
        CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        CU_ASSERT_PTR_NULL(loop);
        CU_ASSERT_EQUAL(tl_test_live_allocs(), before);
    }
}

static void test_scheduling_fails_cleanly_when_memory_runs_out(void) {
    for (long k = 1; k < 20; k++) {
        tl_loop_t *loop = tl_test_loop();
        int n = 0;
        tl_handle_t h = 0;
        tl_test_fail_alloc_at(k);
        int a = tl_loop_call_soon(loop, incr, &n, &h);
        int b = tl_loop_call_soon(loop, incr, &n, NULL);
        int c = tl_loop_call_later(loop, 0, incr, &n, NULL);
        tl_test_fail_alloc_at(0);
        CU_ASSERT(a == 0 || a == TL_ENOMEM);
        CU_ASSERT(b == 0 || b == TL_ENOMEM);
        CU_ASSERT(c == 0 || c == TL_ENOMEM);
        if (a)
            CU_ASSERT_EQUAL(h, 0);
        int want = (a == 0) + (b == 0) + (c == 0);
        /* What was accepted runs; the loop still works afterwards. */
        CU_ASSERT_EQUAL(tl_loop_call_soon(loop, incr, &n, &h), 0);
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
        CU_ASSERT_EQUAL(n, want + 1);
        tl_test_loop_free(loop);
    }
}

/* ---- debug mode and the exception handler ----------------------------- */

static void sleep_5ms(void *arg) {
    (void)arg;
    usleep(5000);
}

static void test_slow_callback_is_reported_in_debug_mode(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_loop_set_debug(loop, 1), 0);
    CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(loop, MS), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, nop, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 0); /* a fast callback is not reported */
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, sleep_5ms, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    CU_ASSERT_EQUAL(exc.last_error, 0);
    CU_ASSERT(exc.last_duration_ns >= 5 * MS);
    CU_ASSERT_PTR_NOT_NULL(strstr(exc.last_message, "slow"));
    /* Timers are callbacks too. */
    CU_ASSERT_EQUAL(tl_loop_call_later(loop, 0, sleep_5ms, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 2);
    tl_test_loop_free(loop);
}

static void test_slow_callback_is_not_reported_without_debug(void) {
    saved_env_t env;
    env_save(&env, "TL_DEBUG");
    unsetenv("TL_DEBUG");
    tl_loop_t *loop = tl_test_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_loop_get_debug(loop), 0);
    CU_ASSERT_EQUAL(tl_loop_set_slow_callback_duration(loop, MS), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, sleep_5ms, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
    env_restore(&env);
}

static void test_slow_callback_threshold_comes_from_options(void) {
    tl_loop_options_t o = {sizeof o, NULL, 1, MS};
    tl_loop_t *loop;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, sleep_5ms, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 1);
    tl_test_loop_free(loop);
    /* The default threshold (100 ms) lets a 5 ms callback pass. */
    o.slow_callback_ns = 0;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, sleep_5ms, NULL, NULL), 0);
    CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
    CU_ASSERT_EQUAL(exc.count, 0);
    tl_test_loop_free(loop);
}

typedef struct seen_ctx {
    int count;
    tl_loop_t *loop;
    tl_exception_context_t copy;
    char msg[64];
    void *ctx;
} seen_ctx_t;

static void keep_context(tl_loop_t *loop, const tl_exception_context_t *c, void *ctx) {
    seen_ctx_t *s = ctx;
    s->count++;
    s->loop = loop;
    s->copy = *c;
    snprintf(s->msg, sizeof s->msg, "%s", c->message);
    s->ctx = ctx;
}

static void test_exception_handler_gets_the_full_context(void) {
    tl_loop_t *loop = tl_test_loop();
    seen_ctx_t s;
    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL(tl_loop_set_exception_handler(loop, keep_context, &s), 0);
    int marker;
    tl_exception_context_t c = {sizeof c, "it broke", TL_EPIPE, "detail", NULL,
                                nop, &marker, 0};
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(loop, &c), 0);
    CU_ASSERT_EQUAL(s.count, 1);
    CU_ASSERT_PTR_EQUAL(s.loop, loop);
    CU_ASSERT_PTR_EQUAL(s.ctx, &s);
    CU_ASSERT_STRING_EQUAL(s.msg, "it broke");
    CU_ASSERT_EQUAL(s.copy.size, sizeof c);
    CU_ASSERT_EQUAL(s.copy.error, TL_EPIPE);
    CU_ASSERT_PTR_EQUAL(s.copy.callback, nop);
    CU_ASSERT_PTR_EQUAL(s.copy.callback_ctx, &marker);

    /* An older caller's shorter struct: the fields it lacks read as zero. */
    c.size = offsetof(tl_exception_context_t, error_message);
    CU_ASSERT_EQUAL(tl_loop_call_exception_handler(loop, &c), 0);
    CU_ASSERT_EQUAL(s.count, 2);
    CU_ASSERT_EQUAL(s.copy.size, sizeof c);
    CU_ASSERT_EQUAL(s.copy.error, TL_EPIPE);
    CU_ASSERT_PTR_NULL(s.copy.error_message);
    CU_ASSERT_PTR_NULL(s.copy.callback);
    CU_ASSERT_PTR_NULL(s.copy.callback_ctx);
    tl_test_loop_free(loop);
}

/* Runs fn with stderr sent to a temporary file; returns what was written. */
static void capture_stderr(void (*fn)(void *), void *arg, char *out, size_t outsz) {
    char path[] = "/tmp/tulip-stderr-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    CU_ASSERT_FATAL(saved >= 0);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, outsz - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
}

typedef struct report_args {
    tl_loop_t *loop;
    int rc[3];
} report_args_t;

static void report_three(void *arg) {
    report_args_t *a = arg;
    tl_exception_context_t c = {sizeof c, "first thing", TL_EAGAIN, "more", NULL,
                                NULL, NULL, 0};
    a->rc[0] = tl_loop_call_exception_handler(a->loop, &c);
    tl_exception_context_t d = {sizeof d, "second thing", 0, NULL, NULL, NULL,
                                NULL, 0};
    a->rc[1] = tl_loop_default_exception_handler(a->loop, &d);
    tl_exception_context_t e = {sizeof e, "slow one", 0, NULL, NULL, nop, NULL,
                                3 * MS};
    a->rc[2] = tl_loop_call_exception_handler(a->loop, &e);
}

static void test_default_exception_handler_prints_one_line_per_report(void) {
    tl_loop_t *loop = tl_test_loop();
    seen_ctx_t s;
    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL(tl_loop_set_exception_handler(loop, keep_context, &s), 0);
    CU_ASSERT_EQUAL(tl_loop_set_exception_handler(loop, NULL, NULL), 0); /* default */
    report_args_t a = {loop, {-1, -1, -1}};
    char out[2048];
    capture_stderr(report_three, &a, out, sizeof out);
    CU_ASSERT_EQUAL(s.count, 0);
    CU_ASSERT_EQUAL(a.rc[0], 0);
    CU_ASSERT_EQUAL(a.rc[1], 0);
    CU_ASSERT_EQUAL(a.rc[2], 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out,
        "tulip: first thing [TL_EAGAIN: resource temporarily unavailable] (more)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "tulip: second thing\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "tulip: slow one"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "took 3.000 ms\n"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 3);
    tl_test_loop_free(loop);
}

static void run_slow_once(void *loop) { tl_loop_run_once(loop, 0); }

static void test_slow_callback_reaches_the_default_handler(void) {
    tl_loop_options_t o = {sizeof o, NULL, 1, MS};
    tl_loop_t *loop;
    CU_ASSERT_EQUAL_FATAL(tl_loop_new(&o, &loop), 0);
    CU_ASSERT_EQUAL(tl_loop_call_soon(loop, sleep_5ms, NULL, NULL), 0);
    char out[1024];
    capture_stderr(run_slow_once, loop, out, sizeof out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "tulip: slow callback"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " ms\n"));
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(loop,
              TL_TEST(test_new_close_and_unref),
              TL_TEST(test_new_rejects_bad_options),
              TL_TEST(test_new_accepts_zeroed_and_newer_option_structs),
              TL_TEST(test_new_rejects_an_invalid_backend_table),
              TL_TEST(test_shorter_options_struct_is_accepted),
              TL_TEST(test_options_and_env_choose_debug_mode),
              TL_TEST(test_ref_keeps_a_closed_loop_valid),
              TL_TEST(test_last_unref_closes_an_open_loop_and_frees_its_work),
              TL_TEST(test_close_drops_pending_work_without_running_it),
              TL_TEST(test_null_loop_is_refused_everywhere),
              TL_TEST(test_closed_loop_refuses_everything),
              TL_TEST(test_other_threads_are_refused_except_threadsafe_ref_unref),
              TL_TEST(test_ref_unref_and_threadsafe_work_from_another_thread),
              TL_TEST(test_impossible_arguments_are_refused),
              TL_TEST(test_stop_before_run_makes_the_next_run_do_one_iteration),
              TL_TEST(test_stop_from_a_callback_finishes_the_batch_and_returns),
              TL_TEST(test_stop_inside_run_once_is_used_up_by_it),
              TL_TEST(test_stop_before_run_once_makes_it_not_block),
              TL_TEST(test_nested_runs_and_close_while_running_fail),
              TL_TEST(test_last_unref_inside_a_callback_frees_the_loop_after_the_run),
              TL_TEST(test_run_once_with_nothing_to_do_returns_after_the_timeout),
              TL_TEST(test_loop_time_is_monotonic_and_follows_now),
              TL_TEST(test_call_soon_runs_in_fifo_order),
              TL_TEST(test_callbacks_scheduled_during_a_batch_wait_for_the_next_iteration),
              TL_TEST(test_ready_queue_keeps_order_when_it_grows_while_wrapped),
              TL_TEST(test_cancelled_callback_does_not_run),
              TL_TEST(test_cancel_after_the_callback_ran_returns_0),
              TL_TEST(test_stale_handle_does_nothing_after_its_slot_is_reused),
              TL_TEST(test_callback_cancels_a_later_one_in_the_same_batch),
              TL_TEST(test_many_cancelled_callbacks_are_released),
              TL_TEST(test_new_fails_cleanly_at_every_allocation),
              TL_TEST(test_scheduling_fails_cleanly_when_memory_runs_out),
              TL_TEST(test_slow_callback_is_reported_in_debug_mode),
              TL_TEST(test_slow_callback_is_not_reported_without_debug),
              TL_TEST(test_slow_callback_threshold_comes_from_options),
              TL_TEST(test_exception_handler_gets_the_full_context),
              TL_TEST(test_default_exception_handler_prints_one_line_per_report),
              TL_TEST(test_slow_callback_reaches_the_default_handler))
