/*
 * Stopping a connection being made: cancelling its future during
 * resolution or connecting, a loop closing under it (with or without a
 * task awaiting it), dropping the future, and timeouts (wait_for and a
 * timeout scope) around a connect that never completes.
 */
#include "connect_test.h"

/* ---- cancelling, closing, timing out -------------------------------------- */

typedef struct wait_arg {
    tl_future_t *conn;
    int rc;
} wait_arg_t;


static void test_cancel_during_resolution_stops_everything(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               "localhost", "1", NULL, &f),
                          0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, "stop"), 1);
    CU_ASSERT_EQUAL(tl_future_cancelled(f), 1);
    spin(loop, 20);
    CU_ASSERT_EQUAL(tl_future_result(f, NULL), TL_ECANCELLED);
    CU_ASSERT_EQUAL(r.made + r.lost, 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_cancel_during_connecting_closes_attempts(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("::1", 1)};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    wrap_rule(addrs[1], W_BLACKHOLE, 0);
    tl_connect_options_t o = {.size = sizeof o,
                              .happy_eyeballs_delay_ns = 1000000};
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o, "tcp", &f), 0);
    spin(loop, 10);
    CU_ASSERT_EQUAL(W.fakes_live, 2);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 0);
    spin(loop, 2);
    CU_ASSERT_EQUAL(r.made + r.lost, 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* Cancelled before the second attempt's delay: the timer is gone too. */
static void test_cancel_before_delay_starts_nothing_more(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("::1", 1)};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    wrap_rule(addrs[1], W_BLACKHOLE, 0);
    tl_connect_options_t o = {.size = sizeof o,
                              .happy_eyeballs_delay_ns = 5000000};
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o, "tcp", &f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    spin(loop, 15);
    CU_ASSERT_EQUAL(W.nconnects, 1);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

static void test_loop_close_during_connecting_frees_everything(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("::1", 1)};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    wrap_rule(addrs[1], W_BLACKHOLE, 0);
    tl_connect_options_t o = {.size = sizeof o,
                              .happy_eyeballs_delay_ns = 1000000};
    rec_t r = {0};
    tl_future_t *f = NULL, *g = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o, "tcp", &f), 0);
    /* and one whose caller dropped it */
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o, "tcp", &g), 0);
    tl_future_unref(g);
    spin(loop, 5);
    CU_ASSERT_EQUAL(W.fakes_live, 4);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(r.made + r.lost, 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static void test_loop_close_during_resolution_frees_everything(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               "localhost", "1", NULL, &f),
                          0);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(r.made + r.lost, 0);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

static int await_task(void *arg, void **result) {
    (void)result;
    wait_arg_t *w = arg;
    w->rc = tl_await(w->conn, NULL);
    return 0;
}

/* A task awaiting a connection when the loop closes: its await returns
 * TL_ECANCELLED, the attempts are closed, nothing leaks. */
static void test_loop_close_with_task_awaiting_connection(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("::1", 1)};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    wrap_rule(addrs[1], W_BLACKHOLE, 0);
    rec_t r = {0};
    wait_arg_t w = {NULL, 1};
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 2,
                                            NULL, "tcp", &w.conn),
                          0);
    tl_task_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, await_task, &w, NULL, &t), 0);
    spin(loop, 2);
    CU_ASSERT_EQUAL(W.fakes_live, 1);
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(w.rc, TL_ECANCELLED);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    CU_ASSERT_EQUAL(r.made + r.lost, 0);
    tl_task_unref(t);
    tl_future_unref(w.conn);
    CU_ASSERT_EQUAL(tl_loop_unref(loop), 0);
}

/* Dropping the future does not stop the connection (a task would not
 * stop either): the protocol gets its transport. */
static void test_dropped_future_still_connects(void) {
    tl_loop_t *loop = tl_test_net_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               "127.0.0.1", s.port, NULL, &f),
                          0);
    tl_future_unref(f);
    for (int i = 0; i < 2000 && r.made == 0; i++)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_EQUAL(r.made, 1);
    close_client(loop, &r);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

static int wait_task(void *arg, void **result) {
    (void)result;
    wait_arg_t *w = arg;
    tl_future_t *wf = NULL;
    int rc = tl_wait_for(w->conn, 20 * 1000000, &wf);
    if (rc == 0) {
        rc = tl_await(wf, NULL);
        tl_future_unref(wf);
    }
    w->rc = rc;
    return 0;
}

static int timeout_task(void *arg, void **result) {
    (void)result;
    wait_arg_t *w = arg;
    tl_timeout_t *to = NULL;
    int rc = tl_timeout_enter(20 * 1000000, &to);
    if (rc == 0)
        rc = tl_timeout_exit(to, tl_await(w->conn, NULL));
    w->rc = rc;
    return 0;
}

/* A connect that never completes, bounded by wait_for or a timeout scope:
 * TL_ETIMEDOUT, and every attempt is closed. */
static void connect_times_out(tl_task_fn_t fn) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("::1", 1)};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    wrap_rule(addrs[1], W_BLACKHOLE, 0);
    tl_connect_options_t o = {.size = sizeof o,
                              .happy_eyeballs_delay_ns = 5000000};
    rec_t r = {0};
    wait_arg_t w = {NULL, 1};
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o,
                                            "tcp", &w.conn),
                          0);
    tl_task_t *t = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_task_spawn(loop, fn, &w, NULL, &t), 0);
    int64_t t0 = now_ns();
    CU_ASSERT_EQUAL(run_for(loop, tl_task_future(t), 5000, NULL), 0);
    CU_ASSERT(now_ns() - t0 >= 19 * 1000000);
    CU_ASSERT_EQUAL(w.rc, TL_ETIMEDOUT);
    CU_ASSERT_EQUAL(tl_future_cancelled(w.conn), 1);
    CU_ASSERT_EQUAL(W.nconnects, 2);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    CU_ASSERT_EQUAL(r.made + r.lost, 0);
    tl_task_unref(t);
    tl_future_unref(w.conn);
    tl_test_loop_free(loop);
}

static void test_wait_for_times_out_a_hanging_connect(void) {
    connect_times_out(wait_task);
}

static void test_timeout_scope_times_out_a_hanging_connect(void) {
    connect_times_out(timeout_task);
}

TL_TEST_SUITE(connect_cancel,
              TL_TEST(test_cancel_during_resolution_stops_everything),
              TL_TEST(test_cancel_during_connecting_closes_attempts),
              TL_TEST(test_cancel_before_delay_starts_nothing_more),
              TL_TEST(test_loop_close_during_connecting_frees_everything),
              TL_TEST(test_loop_close_during_resolution_frees_everything),
              TL_TEST(test_loop_close_with_task_awaiting_connection),
              TL_TEST(test_dropped_future_still_connects),
              TL_TEST(test_wait_for_times_out_a_hanging_connect),
              TL_TEST(test_timeout_scope_times_out_a_hanging_connect));
