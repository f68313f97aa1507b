/*
 * tl_process_communicate_future: communicate driven from outside a task
 * (run_until_complete, callbacks) and awaited in one; cancelled before
 * and while it runs; its future dropped early; the loop closed under it;
 * bad arguments; an out-of-memory walk.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "process_test.h"

/* A process from outside any task: the exec future, run to its end. */
static tl_process_t *open_proc(tl_loop_t *loop, const char *cmd) {
    tl_future_t *f;
    if (tl_process_shell_future(loop, cmd, NULL, &f) != 0)
        return NULL;
    void *v = NULL;
    int rc = tl_loop_run_until_complete(loop, f, &v);
    tl_future_unref(f);
    return rc == 0 ? v : NULL;
}

static void test_communicate_future_from_outside_a_task(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_process_t *p = open_proc(loop, "cat; echo done >&2; exit 4");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t n = 3 << 20; /* several times every pipe's size, both ways */
    char *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('a' + i % 26);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, in, n, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    tl_process_output_t *o = v;
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT(o->outlen == n && memcmp(o->out, in, n) == 0);
    CU_ASSERT(o->errlen == 5 && memcmp(o->err, "done\n", 5) == 0);
    /* a buffer can be kept past the future */
    void *keep = o->out;
    o->out = NULL;
    tl_future_unref(f);
    tl_process_free_output(keep);
    int code = 0;
    CU_ASSERT_EQUAL(tl_process_returncode(p, &code), 0);
    CU_ASSERT_EQUAL(code, 4);
    tl_process_free(p);
    free(in);
    tl_test_loop_free(loop);
}

static int await_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_process_t *p;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec((const char *[]){"tr", "a-z", "A-Z", NULL},
                                          NULL, &p), 0);
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, "hello\n", 6, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_await(f, &v), 0);
    tl_process_output_t *o = v;
    CU_ASSERT(o && o->outlen == 6 && memcmp(o->out, "HELLO\n", 6) == 0);
    CU_ASSERT(o && o->err == NULL && o->errlen == 0);
    tl_future_unref(f);
    tl_process_free(p);
    return 0;
}

static void test_communicate_future_awaited_in_a_task(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, await_main, NULL, NULL, &t), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL), 0);
    tl_task_unref(t);
    tl_test_loop_free(loop);
}

static void test_cancel_stops_communicate_not_the_child(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_process_t *p = open_proc(loop, "cat");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    tl_process_t *q = open_proc(loop, "cat >/dev/null; sleep 10");
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    /* cancelled before its task started */
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, "x", 1, &f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECANCELLED);
    tl_future_unref(f);
    tl_process_free(p);
    /* cancelled while it waits for stdout's end (sleep holds it) */
    p = q;
    tl_future_t *w;
    CU_ASSERT_EQUAL_FATAL(tl_process_wait_future(p, &w), 0);
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, "y", 1, &f), 0);
    for (int i = 0; i < 20; i++)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECANCELLED);
    tl_future_unref(f);
    int code;
    CU_ASSERT_EQUAL(tl_process_returncode(p, &code), TL_EPENDING);
    CU_ASSERT_EQUAL(tl_process_kill(p), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, w, NULL), 0);
    tl_future_unref(w);
    tl_process_free(p);
    tl_test_loop_free(loop);
}

static void test_dropped_future_and_freed_process_leak_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_process_t *p = open_proc(loop, "cat >/dev/null; sleep 10");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int64_t pid = tl_process_pid(p);
    tl_future_t *f, *g, *h;
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, "abc", 3, &f), 0);
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, NULL, 0, &g), 0);
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, NULL, 0, &h), 0);
    /* cancelled before its task ran (a dropped reference alone would not
     * stop it, as for any task) */
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    tl_future_unref(f);
    for (int i = 0; i < 10; i++)
        tl_loop_run_once(loop, 1000000);
    /* two communicates at once: the second finds stdout's read taken */
    CU_ASSERT_EQUAL(tl_future_done(g), 0);
    CU_ASSERT_EQUAL(tl_future_error(h), TL_EBUSY);
    tl_future_unref(h);
    tl_process_free(p); /* g's communicate is running: it ends */
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, g, NULL), TL_ECLOSED);
    tl_future_unref(g);
    tl_test_loop_free(loop);
    CU_ASSERT(ptest_pid_gone(pid));
}

static void test_loop_close_under_communicate_future(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_process_t *p = open_proc(loop, "sleep 10");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    tl_future_t *f, *g;
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, NULL, 0, &f), 0);
    for (int i = 0; i < 5; i++)
        tl_loop_run_once(loop, 0);
    CU_ASSERT_EQUAL_FATAL(tl_process_communicate_future(p, NULL, 0, &g), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0); /* g's task never started */
    /* the closing loop cancels running tasks; one never started fails */
    CU_ASSERT_EQUAL(tl_future_error(f), TL_ECANCELLED);
    CU_ASSERT(tl_future_error(g) < 0);
    tl_future_unref(f);
    tl_future_unref(g);
    tl_process_free(p);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_communicate_future_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    tl_process_t *p = open_proc(loop, "true");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL(tl_process_communicate_future(NULL, NULL, 0, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_communicate_future(p, NULL, 0, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_communicate_future(p, NULL, 5, &f), TL_EINVAL);
    CU_ASSERT_PTR_NULL(f);
    tl_process_free(p);
    tl_test_loop_free(loop);
}

static void test_communicate_future_out_of_memory_walk(void) {
    int completed = 0;
    for (long n = 1; n < 300 && !completed; n++) {
        tl_loop_t *loop = tl_test_loop();
        tl_process_t *p = open_proc(loop, "cat");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        tl_future_t *f = NULL;
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int rc = tl_process_communicate_future(p, "hi", 2, &f);
        int out = TL_EPENDING;
        if (rc == 0) {
            int64_t end = ptest_now() + 5 * 1000000000LL;
            while (tl_future_done(f) != 1 && ptest_now() < end)
                tl_loop_run_once(loop, 1000000);
            void *v = NULL;
            out = tl_future_result(f, &v);
            if (out == 0) {
                tl_process_output_t *o = v;
                CU_ASSERT(o->outlen == 2 && memcmp(o->out, "hi", 2) == 0);
            } else {
                CU_ASSERT_EQUAL(out, TL_ENOMEM);
            }
            tl_future_unref(f);
        } else {
            CU_ASSERT_EQUAL(rc, TL_ENOMEM);
        }
        tl_test_fail_alloc_at(0);
        completed = tl_test_alloc_count() - before < n;
        if (completed)
            CU_ASSERT_EQUAL(out, 0);
        tl_process_free(p);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(completed);
}

TL_TEST_SUITE(process_future,
              TL_TEST(test_communicate_future_from_outside_a_task),
              TL_TEST(test_communicate_future_awaited_in_a_task),
              TL_TEST(test_cancel_stops_communicate_not_the_child),
              TL_TEST(test_dropped_future_and_freed_process_leak_nothing),
              TL_TEST(test_loop_close_under_communicate_future),
              TL_TEST(test_communicate_future_bad_arguments),
              TL_TEST(test_communicate_future_out_of_memory_walk))
