/*
 * Helpers shared by the test_sync_*.c suites: waiters driven from loop
 * callbacks (tasks are not needed to wait on a future form), the order in
 * which their futures complete, and the allocation-failure walk.
 */
#ifndef TL_SYNC_TEST_H
#define TL_SYNC_TEST_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "tl_test.h"
#include "tulip/sync.h"

/* Completions in the order their done callbacks ran. */
typedef struct wlog {
    int ids[256];
    int n;
} wlog_t;

/* A future under watch: its done callback records the outcome, and may
 * run `then` (the code a task would run after its await). */
typedef struct waiter {
    tl_future_t *f;
    int id;
    int calls; /* done callback runs */
    int rc;    /* tl_future_result in the callback */
    void *value;
    wlog_t *log;
    void (*then)(struct waiter *w);
    void *ctx; /* for then */
} waiter_t;

static inline void waiter_done_cb(tl_future_t *f, void *ctx) {
    waiter_t *w = ctx;
    w->calls++;
    w->value = NULL;
    w->rc = tl_future_result(f, &w->value);
    if (w->log && w->log->n < 256)
        w->log->ids[w->log->n++] = w->id;
    if (w->then)
        w->then(w);
}

/* Watch f (the caller's reference passes to w). */
static inline void watch(waiter_t *w, tl_future_t *f, int id, wlog_t *log) {
    w->f = f;
    w->id = id;
    w->calls = 0;
    w->rc = 1; /* not run */
    w->log = log;
    w->then = NULL; /* set them after watch() */
    w->ctx = NULL;
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, waiter_done_cb, w), 0);
}

static inline void unwatch(waiter_t *w) {
    if (w->f)
        tl_future_unref(w->f);
    w->f = NULL;
}

/* Run iterations that do not wait for I/O. */
static inline void spin(tl_loop_t *loop, int iterations) {
    for (int i = 0; i < iterations; i++)
        CU_ASSERT_EQUAL(tl_loop_run_once(loop, 0), 0);
}

/* Pending: not done (and watch's callback has not run). */
#define ASSERT_PENDING(w)                                                     \
    do {                                                                      \
        CU_ASSERT_EQUAL(tl_future_done((w)->f), 0);                           \
        CU_ASSERT_EQUAL((w)->calls, 0);                                       \
    } while (0)

/* Call fn(arg) on another thread and wait for it. */
typedef struct thread_call {
    void (*fn)(void *);
    void *arg;
} thread_call_t;
static inline void *sync_thread_trampoline(void *p) {
    thread_call_t *c = p;
    c->fn(c->arg);
    return NULL;
}
static inline void on_other_thread(void (*fn)(void *), void *arg) {
    pthread_t t;
    thread_call_t c = {fn, arg};
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, sync_thread_trampoline, &c), 0);
    pthread_join(t, NULL);
}

/* ---- the allocation-failure walk --------------------------------------
 * for (long n = 1; ; n++) { arm(n); rc = op(); if (!walk_step(n, rc)) break; }
 * Each step must give TL_ENOMEM or succeed; the walk ends at the first n
 * the operation no longer reaches. */
static long sync_armed_at;

static inline void arm(long n) {
    sync_armed_at = tl_test_alloc_count();
    tl_test_fail_alloc_at(n);
}

/* 1 if the nth allocation since arm() was reached (so failed); disarms. */
static inline int disarm(long n) {
    int hit = tl_test_alloc_count() - sync_armed_at >= n;
    tl_test_fail_alloc_at(0);
    return hit;
}

#define WALK_MAX 64

/* ---- queues: items are small integers ----------------------------------- */

static inline void *item(int n) { return (void *)(uintptr_t)n; }
static inline int num(const void *p) { return (int)(uintptr_t)p; }

static inline tl_queue_t *new_queue(tl_loop_t *loop, tl_queue_order_t order,
                                    size_t maxsize) {
    tl_queue_options_t o = {sizeof o, order, maxsize, NULL, NULL, NULL};
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
    return q;
}

static inline void put(tl_queue_t *q, waiter_t *w, int n, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_put_future(q, item(n), &f), 0);
    watch(w, f, n, log);
}

static inline void get(tl_queue_t *q, waiter_t *w, int id, wlog_t *log) {
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_get_future(q, &f), 0);
    watch(w, f, id, log);
}

static inline int get_now(tl_queue_t *q) {
    void *v = item(-1);
    int rc = tl_queue_get_nowait(q, &v);
    return rc ? rc : num(v);
}

/* Priority items: the priority is n / 1000, the rest a serial. ctx counts
 * the calls. */
static inline int by_priority(const void *a, const void *b, void *ctx) {
    int *calls = ctx;
    (*calls)++;
    int pa = num(a) / 1000, pb = num(b) / 1000;
    return (pa > pb) - (pa < pb);
}

static int destroyed[64]; /* destroy_item counts by item number */
static inline void destroy_item(void *p) {
    int n = num(p);
    if (n >= 0 && n < 64)
        destroyed[n]++;
}

static inline tl_queue_t *new_owning_queue(tl_loop_t *loop, size_t maxsize) {
    memset(destroyed, 0, sizeof destroyed);
    tl_queue_options_t o = {sizeof o, TL_QUEUE_FIFO, maxsize, NULL, NULL, destroy_item};
    tl_queue_t *q = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_queue_new(loop, &o, &q), 0);
    return q;
}

#endif
