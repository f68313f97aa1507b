/*
 * Processes for tasks (process.h, the high level): exec/shell in a task,
 * wait, communicate with large input and output, the child's streams,
 * cancellation, bad arguments, out-of-memory walks, loop close.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "process_test.h"

#if defined(__has_include)
#  if __has_include(<valgrind/valgrind.h>)
#    include <valgrind/valgrind.h>
#  endif
#endif
#ifndef RUNNING_ON_VALGRIND
#  define RUNNING_ON_VALGRIND 0
#endif

/* Run fn(arg) as a task to its end; its return code. */
static int run_task(tl_loop_t *loop, tl_task_fn_t fn, void *arg) {
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, fn, arg, NULL, &t), 0);
    int rc = tl_loop_run_until_complete(loop, tl_task_future(t), NULL);
    tl_task_unref(t);
    return rc;
}

/* ---- wait ---------------------------------------------------------------- */

static int wait_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *t[] = {"true", NULL}, *f[] = {"false", NULL};
    tl_process_t *p;
    int code = -100;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(t, NULL, &p), 0);
    CU_ASSERT(tl_process_pid(p) > 0);
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, 0);
    code = -100;
    CU_ASSERT_EQUAL(tl_process_returncode(p, &code), 0);
    CU_ASSERT_EQUAL(code, 0);
    /* a wait after the exit is done at once, future form too */
    tl_future_t *w;
    CU_ASSERT_EQUAL(tl_process_wait_future(p, &w), 0);
    CU_ASSERT_EQUAL(tl_future_done(w), 1);
    void *v = (void *)1;
    CU_ASSERT_EQUAL(tl_future_result(w, &v), 0);
    CU_ASSERT_PTR_EQUAL(v, (void *)0);
    tl_future_unref(w);
    tl_process_free(p);

    CU_ASSERT_EQUAL_FATAL(tl_process_exec(f, NULL, &p), 0);
    CU_ASSERT_EQUAL(tl_process_wait_future(p, &w), 0); /* future form */
    CU_ASSERT_EQUAL(tl_await(w, &v), 0);
    CU_ASSERT_EQUAL((int)(intptr_t)v, 1);
    tl_future_unref(w);
    tl_process_free(p);

    CU_ASSERT_EQUAL_FATAL(tl_process_shell("exit 7", NULL, &p), 0);
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, 7);
    CU_ASSERT_EQUAL(tl_process_wait(p, NULL), 0);
    tl_process_free(p);
    return 0;
}

static void test_wait_gives_exit_status_of_true_false_and_exit_7(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, wait_main, NULL), 0);
    tl_test_loop_free(loop);
}

static int killed_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[] = {"sleep", "10", NULL};
    tl_process_t *p;
    int code = 0;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &p), 0);
    CU_ASSERT_EQUAL(tl_process_kill(p), 0);
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, -SIGKILL);
    CU_ASSERT_EQUAL(tl_process_kill(p), TL_ESRCH);
    tl_process_free(p);
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &p), 0);
    CU_ASSERT_EQUAL(tl_process_terminate(p), 0);
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, -SIGTERM);
    CU_ASSERT_EQUAL(tl_process_send_signal(p, 1000), TL_EINVAL);
    tl_process_free(p);
    return 0;
}

static void test_killed_child_returncode_is_negative_signal(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, killed_main, NULL), 0);
    tl_test_loop_free(loop);
}

/* ---- communicate ----------------------------------------------------------- */

typedef struct comm_case {
    size_t n;
    int rc;
} comm_case_t;

static int cat_main(void *arg, void **result) {
    (void)result;
    comm_case_t *c = arg;
    unsigned char *in = malloc(c->n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < c->n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        in[i] = (unsigned char)x;
    }
    const char *argv[] = {"cat", NULL};
    tl_process_t *p;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &p), 0);
    void *out = NULL, *err = (void *)1;
    size_t outlen = 0, errlen = 1;
    c->rc = tl_process_communicate(p, in, c->n, &out, &outlen, &err, &errlen);
    CU_ASSERT_EQUAL(c->rc, 0);
    CU_ASSERT_EQUAL(outlen, c->n);
    CU_ASSERT(outlen == c->n && memcmp(out, in, c->n) == 0);
    CU_ASSERT_PTR_NULL(err);
    CU_ASSERT_EQUAL(errlen, 0);
    int code = -1;
    CU_ASSERT_EQUAL(tl_process_returncode(p, &code), 0);
    CU_ASSERT_EQUAL(code, 0);
    tl_process_free_output(out);
    tl_process_free(p);
    free(in);
    return 0;
}

static void test_communicate_64_mib_through_cat_both_ways(void) {
    tl_loop_t *loop = tl_test_loop();
    /* valgrind is ~50x slower: 8 MiB still fills every pipe many times */
    comm_case_t c = {.n = (size_t)(RUNNING_ON_VALGRIND ? 8 : 64) << 20};
    CU_ASSERT_EQUAL(run_task(loop, cat_main, &c), 0);
    tl_test_loop_free(loop);
}

static int noinput_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_process_t *p;
    CU_ASSERT_EQUAL_FATAL(
        tl_process_shell("read x || echo eof; echo hello; echo err >&2",
                         NULL, &p), 0);
    void *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 0, &out, &outlen, &err,
                                           &errlen), 0);
    CU_ASSERT(outlen == 10 && memcmp(out, "eof\nhello\n", 10) == 0);
    CU_ASSERT(errlen == 4 && memcmp(err, "err\n", 4) == 0);
    tl_process_free_output(out);
    tl_process_free_output(err);
    tl_process_free(p);

    /* outputs discarded (still read), stdin not a pipe */
    tl_subprocess_options_t o = {.size = sizeof o};
    o.stdio[0] = TL_PROC_DEVNULL;
    CU_ASSERT_EQUAL_FATAL(tl_process_shell("echo a; echo b >&2; exit 3", &o,
                                           &p), 0);
    CU_ASSERT_PTR_NULL(tl_process_stdin(p));
    CU_ASSERT_PTR_NOT_NULL(tl_process_stdout(p));
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL),
                    0);
    int code = 0;
    CU_ASSERT_EQUAL(tl_process_returncode(p, &code), 0);
    CU_ASSERT_EQUAL(code, 3);
    tl_process_free(p);
    return 0;
}

static void test_communicate_without_input_closes_stdin(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, noinput_main, NULL), 0);
    tl_test_loop_free(loop);
}

static int both_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_process_t *p;
    /* stdout is written in full before stderr: reading stdout to its end
     * before stderr would deadlock */
    CU_ASSERT_EQUAL_FATAL(
        tl_process_shell("head -c 1048576 /dev/zero | tr '\\0' a; "
                         "head -c 1048576 /dev/zero | tr '\\0' b >&2; "
                         "head -c 100000 /dev/zero | tr '\\0' c",
                         NULL, &p), 0);
    void *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 0, &out, &outlen, &err,
                                           &errlen), 0);
    CU_ASSERT_EQUAL(outlen, 1048576 + 100000);
    CU_ASSERT_EQUAL(errlen, 1048576);
    size_t bad = 0;
    const unsigned char *o = out, *e = err;
    for (size_t i = 0; i < outlen; i++)
        bad += o[i] != (i < 1048576 ? 'a' : 'c');
    for (size_t i = 0; i < errlen; i++)
        bad += e[i] != 'b';
    CU_ASSERT_EQUAL(bad, 0);
    tl_process_free_output(out);
    tl_process_free_output(err);
    tl_process_free(p);
    return 0;
}

static void test_communicate_large_stdout_and_stderr_no_deadlock(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, both_main, NULL), 0);
    tl_test_loop_free(loop);
}

/* ---- the streams ------------------------------------------------------------ */

static int readline_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_process_t *p;
    CU_ASSERT_EQUAL_FATAL(tl_process_shell("printf 'one\\ntwo\\nend'", NULL,
                                           &p), 0);
    tl_stream_t *s = tl_process_stdout(p);
    char buf[64];
    size_t got = 0;
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 4 && memcmp(buf, "one\n", 4) == 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 4 && memcmp(buf, "two\n", 4) == 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT(got == 3 && memcmp(buf, "end", 3) == 0);
    CU_ASSERT_EQUAL(tl_stream_readline(s, buf, sizeof buf, &got), 0);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(tl_stream_at_eof(s), 1);
    int code = -1;
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, 0);
    tl_process_free(p);
    return 0;
}

static void test_readline_from_child_stdout(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, readline_main, NULL), 0);
    tl_test_loop_free(loop);
}

static int stdin_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    const char *argv[] = {"cat", NULL};
    tl_process_t *p;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &p), 0);
    tl_stream_t *in = tl_process_stdin(p), *out = tl_process_stdout(p);
    CU_ASSERT_EQUAL(tl_stream_write(in, "hello ", 6), 0);
    CU_ASSERT_EQUAL(tl_stream_write(in, "world", 5), 0);
    CU_ASSERT_EQUAL(tl_stream_drain(in), 0);
    CU_ASSERT_EQUAL(tl_stream_can_write_eof(in), 1);
    CU_ASSERT_EQUAL(tl_stream_write_eof(in), 0);
    char buf[32];
    size_t got = 0;
    CU_ASSERT_EQUAL(tl_stream_readexactly(out, buf, 11, &got), 0);
    CU_ASSERT(got == 11 && memcmp(buf, "hello world", 11) == 0);
    CU_ASSERT_EQUAL(tl_stream_read(out, buf, sizeof buf, &got), 0);
    CU_ASSERT_EQUAL(got, 0); /* cat saw the EOF and ended */
    int code = -1;
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, 0);
    tl_process_free(p);
    return 0;
}

static void test_write_to_stdin_then_write_eof(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, stdin_main, NULL), 0);
    tl_test_loop_free(loop);
}

static int epipe_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    size_t n = (size_t)4 << 20;
    char *big = calloc(1, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    const char *argv[] = {"head", "-c", "10", NULL};
    tl_process_t *p;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &p), 0);
    tl_stream_t *in = tl_process_stdin(p);
    CU_ASSERT_EQUAL(tl_stream_write(in, big, n), 0);
    CU_ASSERT_EQUAL(tl_stream_drain(in), TL_EPIPE);
    CU_ASSERT_EQUAL(tl_stream_write(in, "x", 1), TL_EPIPE);
    int code = -1;
    CU_ASSERT_EQUAL(tl_process_wait(p, &code), 0);
    CU_ASSERT_EQUAL(code, 0);
    tl_process_free(p);

    /* communicate drops the rest of the input, as asyncio does */
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &p), 0);
    void *out = NULL;
    size_t outlen = 0;
    CU_ASSERT_EQUAL(tl_process_communicate(p, big, n, &out, &outlen, NULL,
                                           NULL), 0);
    CU_ASSERT_EQUAL(outlen, 10);
    tl_process_free_output(out);
    tl_process_free(p);
    free(big);
    return 0;
}

static void test_stdin_closed_by_child_early_is_epipe(void) {
    tl_loop_t *loop = tl_test_loop();
    CU_ASSERT_EQUAL(run_task(loop, epipe_main, NULL), 0);
    tl_test_loop_free(loop);
}

/* ---- cancellation ------------------------------------------------------------ */

typedef struct cw {
    tl_process_t *p;
    int rc;
} cw_t;

static int waiter_main(void *arg, void **result) {
    (void)result;
    cw_t *w = arg;
    const char *argv[] = {"sleep", "10", NULL};
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &w->p), 0);
    w->rc = tl_process_wait(w->p, NULL);
    return w->rc;
}

static int killer_main(void *arg, void **result) {
    (void)result;
    cw_t *w = arg;
    int code = 0;
    CU_ASSERT_EQUAL(tl_process_kill(w->p), 0);
    CU_ASSERT_EQUAL(tl_process_wait(w->p, &code), 0);
    CU_ASSERT_EQUAL(code, -SIGKILL);
    return 0;
}

static void test_cancelled_wait_leaves_child_running(void) {
    tl_loop_t *loop = tl_test_loop();
    cw_t w = {0};
    tl_task_t *t;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, waiter_main, &w, NULL, &t), 0);
    int64_t end = ptest_now() + 10 * 1000000000LL;
    while (w.p == NULL && ptest_now() < end)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w.p);
    for (int i = 0; i < 3; i++)
        tl_loop_run_once(loop, 0); /* into the wait */
    CU_ASSERT_EQUAL(tl_task_cancel(t, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, tl_task_future(t), NULL),
                    TL_ECANCELLED);
    tl_task_unref(t);
    CU_ASSERT_EQUAL(w.rc, TL_ECANCELLED);
    int code;
    CU_ASSERT_EQUAL(tl_process_returncode(w.p, &code), TL_EPENDING);
    CU_ASSERT_EQUAL(kill((pid_t)tl_process_pid(w.p), 0), 0);
    CU_ASSERT_EQUAL(run_task(loop, killer_main, &w), 0);
    tl_process_free(w.p);
    tl_test_loop_free(loop);
}

/* ---- bad arguments ------------------------------------------------------------ */

static int bad_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    tl_process_t *p = NULL;
    const char *missing[] = {"/nonexistent/tulip-no-such-program", NULL};
    const char *empty[] = {NULL};
    /* from the call, valgrind too (the error pipe works across its fork) */
    CU_ASSERT_EQUAL(tl_process_exec(missing, NULL, &p), TL_ENOENT);
    CU_ASSERT_EQUAL(tl_process_exec(empty, NULL, &p), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_exec(NULL, NULL, &p), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_shell(NULL, NULL, &p), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_shell("true", NULL, NULL), TL_EINVAL);
    tl_subprocess_options_t o = {.size = sizeof o};
    o.stdio[1] = TL_PROC_STDOUT; /* only stderr may merge */
    CU_ASSERT_EQUAL(tl_process_shell("true", &o, &p), TL_EINVAL);
    CU_ASSERT_PTR_NULL(p);

    const char *cat[] = {"cat", NULL};
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(cat, NULL, &p), 0);
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 5, NULL, NULL, NULL, NULL),
                    TL_EINVAL);
    void *out;
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 0, &out, NULL, NULL, NULL),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_wait_future(p, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_send_signal(p, -1), TL_EINVAL);
    /* a read of stdout waiting elsewhere: communicate cannot read it */
    tl_future_t *rf;
    char buf[8];
    CU_ASSERT_EQUAL(tl_stream_read_future(tl_process_stdout(p), buf, 8, &rf),
                    0);
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL),
                    TL_EBUSY);
    tl_process_free(p); /* the read fails with TL_ECLOSED, cat is killed */
    CU_ASSERT_EQUAL(tl_future_done(rf), 1);
    CU_ASSERT_EQUAL(tl_future_result(rf, NULL), TL_ECLOSED);
    tl_future_unref(rf);
    return 0;
}

static void test_bad_arguments(void) {
    tl_loop_t *loop = tl_test_loop();
    const char *argv[] = {"true", NULL};
    tl_process_t *p = NULL;
    tl_future_t *f;
    CU_ASSERT_EQUAL(tl_process_exec(argv, NULL, &p), TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_process_wait(NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_exec_future(NULL, argv, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_exec_future(loop, NULL, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_exec_future(loop, argv, NULL, NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_shell_future(loop, NULL, NULL, &f), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_communicate(NULL, NULL, 0, NULL, NULL, NULL,
                                           NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_kill(NULL), TL_EINVAL);
    CU_ASSERT_EQUAL(tl_process_pid(NULL), TL_EINVAL);
    int code;
    CU_ASSERT_EQUAL(tl_process_returncode(NULL, &code), TL_EINVAL);
    CU_ASSERT_PTR_NULL(tl_process_stdin(NULL));
    CU_ASSERT_PTR_NULL(tl_process_stdout(NULL));
    CU_ASSERT_PTR_NULL(tl_process_stderr(NULL));
    tl_process_free(NULL);
    tl_process_free_output(NULL);

    /* the future form, outside any task; then wait outside a task */
    CU_ASSERT_EQUAL_FATAL(tl_process_exec_future(loop, argv, NULL, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    tl_future_unref(f);
    p = v;
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    int rc = tl_process_wait(p, &code); /* 0 if it was reaped already */
    CU_ASSERT(rc == TL_ENOTASK || (rc == 0 && code == 0));
    CU_ASSERT_EQUAL(tl_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL),
                    TL_ENOTASK);
    CU_ASSERT_EQUAL(tl_process_wait_future(p, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, &v), 0);
    CU_ASSERT_EQUAL((int)(intptr_t)v, 0);
    tl_future_unref(f);
    tl_process_free(p);

    /* a spawn future dropped or cancelled before it completed */
    const char *sl[] = {"sleep", "10", NULL};
    CU_ASSERT_EQUAL_FATAL(tl_process_exec_future(loop, sl, NULL, &f), 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL_FATAL(tl_process_exec_future(loop, sl, NULL, &f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(tl_loop_run_until_complete(loop, f, NULL), TL_ECANCELLED);
    tl_future_unref(f);
    for (int i = 0; i < 5; i++)
        tl_loop_run_once(loop, 1000000);

    CU_ASSERT_EQUAL(run_task(loop, bad_main, NULL), 0);
    tl_test_loop_free(loop);
}

/* ---- out of memory ------------------------------------------------------------ */

typedef struct oom {
    int rc, done;
} oom_t;

static int oom_main(void *arg, void **result) {
    (void)result;
    oom_t *o = arg;
    const char *argv[] = {"cat", NULL};
    tl_process_t *p = NULL;
    int rc = tl_process_exec(argv, NULL, &p);
    void *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    if (rc == 0)
        rc = tl_process_communicate(p, "hello", 5, &out, &outlen, &err,
                                    &errlen);
    if (rc == 0) {
        CU_ASSERT(outlen == 5 && memcmp(out, "hello", 5) == 0);
        CU_ASSERT_PTR_NULL(err);
    }
    tl_process_free_output(out);
    tl_process_free_output(err);
    if (p && rc) {
        /* reap it on the loop (not in the loop close's background) */
        tl_process_kill(p);
        tl_process_wait(p, NULL);
    }
    tl_process_free(p);
    o->rc = rc;
    o->done = 1;
    return rc;
}

static void test_out_of_memory_walk_over_exec_and_communicate(void) {
    int completed = 0;
    for (long n = 1; n < 400 && !completed; n++) {
        tl_loop_t *loop = tl_test_loop();
        oom_t o = {0};
        tl_task_t *t = NULL;
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int rc = tl_task_spawn(loop, oom_main, &o, NULL, &t);
        if (rc == 0) {
            int64_t end = ptest_now() + 5 * 1000000000LL;
            while (!o.done && tl_future_done(tl_task_future(t)) != 1 &&
                   ptest_now() < end)
                tl_loop_run_once(loop, 1000000);
            tl_future_error(tl_task_future(t)); /* retrieved */
            tl_task_unref(t);
        }
        tl_test_fail_alloc_at(0);
        completed = tl_test_alloc_count() - before < n;
        if (completed)
            CU_ASSERT_EQUAL(o.rc, 0);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(completed);
}

/* ---- loop close ---------------------------------------------------------------- */

typedef struct lc {
    tl_process_t *p;
    int wait_rc, read_rc, started;
} lc_t;

static int lc_main(void *arg, void **result) {
    (void)result;
    lc_t *c = arg;
    const char *argv[] = {"sleep", "10", NULL};
    CU_ASSERT_EQUAL_FATAL(tl_process_exec(argv, NULL, &c->p), 0);
    c->started = 1;
    c->wait_rc = tl_process_wait(c->p, NULL);
    return 0;
}

static int lc_reader(void *arg, void **result) {
    (void)result;
    lc_t *c = arg;
    char buf[16];
    size_t got;
    c->read_rc = tl_stream_read(tl_process_stdout(c->p), buf, sizeof buf, &got);
    return 0;
}

static void test_loop_close_with_live_process_leaks_nothing(void) {
    tl_loop_t *loop = tl_test_loop();
    lc_t c = {.wait_rc = 1, .read_rc = 1};
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, lc_main, &c, NULL, NULL), 0);
    ptest_run(loop, &c.started, 1);
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, lc_reader, &c, NULL, NULL), 0);
    for (int i = 0; i < 5; i++)
        tl_loop_run_once(loop, 0);
    int64_t pid = tl_process_pid(c.p);
    /* and a spawn whose future never completed */
    const char *argv[] = {"sleep", "10", NULL};
    tl_future_t *f;
    CU_ASSERT_EQUAL_FATAL(tl_process_exec_future(loop, argv, NULL, &f), 0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT(c.wait_rc < 0);
    CU_ASSERT(c.read_rc < 0);
    int code;
    CU_ASSERT_EQUAL(tl_process_returncode(c.p, &code), TL_EPENDING);
    CU_ASSERT_EQUAL(tl_process_kill(c.p), TL_ECLOSED);
    tl_process_free(c.p);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
    CU_ASSERT(ptest_pid_gone(pid));
}

TL_TEST_SUITE(process_stream,
              TL_TEST(test_wait_gives_exit_status_of_true_false_and_exit_7),
              TL_TEST(test_killed_child_returncode_is_negative_signal),
              TL_TEST(test_communicate_64_mib_through_cat_both_ways),
              TL_TEST(test_communicate_without_input_closes_stdin),
              TL_TEST(test_communicate_large_stdout_and_stderr_no_deadlock),
              TL_TEST(test_readline_from_child_stdout),
              TL_TEST(test_write_to_stdin_then_write_eof),
              TL_TEST(test_stdin_closed_by_child_early_is_epipe),
              TL_TEST(test_cancelled_wait_leaves_child_running),
              TL_TEST(test_bad_arguments),
              TL_TEST(test_out_of_memory_walk_over_exec_and_communicate),
              TL_TEST(test_loop_close_with_live_process_leaks_nothing))
