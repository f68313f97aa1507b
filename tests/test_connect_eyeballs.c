/*
 * Happy Eyeballs (RFC 8305, asyncio's staggered_race): the order of the
 * addresses, the delay between attempts, a failure starting the next one
 * at once, the losers closed, and the error once every attempt failed.
 * Attempts that must hang or fail go through the wrapping netstack of
 * connect_test.h.
 */
#include "connect_test.h"

/* A Happy Eyeballs delay no test run waits out (run_for allows 5 s). */
#define LONG_DELAY_NS (60 * INT64_C(1000000000))

/* ---- Happy Eyeballs ----------------------------------------------------- */

/* The first address never answers: the second starts after the delay and
 * wins; the hanging attempt is closed. */
static void test_unresponsive_first_address_loses_after_delay(void) {
    tl_loop_t *loop = wrap_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    tl_sockaddr_t addrs[2] = {ip("::1", port_of(&s.addr)), s.addr};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    tl_connect_options_t o = {.size = sizeof o,
                              .happy_eyeballs_delay_ns = 30 * 1000000};
    rec_t r = {0};
    tl_future_t *f = NULL;
    int64_t t0 = now_ns();
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o,
                                            "tcp", &f),
                          0);
    CU_ASSERT_EQUAL(W.nconnects, 1); /* the first starts at once */
    void *v = NULL;
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, &v), 0);
    int64_t took = now_ns() - t0;
    CU_ASSERT(took >= 29 * 1000000);
    CU_ASSERT(took < 2000 * 1000000LL);
    CU_ASSERT_EQUAL(W.nconnects, 2);
    CU_ASSERT(W.connect_ns[1] - W.connect_ns[0] >= 29 * 1000000);
    CU_ASSERT(same_addr(&W.connects[1], &s.addr));
    CU_ASSERT_EQUAL(W.fakes_live, 0); /* the loser was closed */
    CU_ASSERT_EQUAL(W.fakes_closed, 1);
    CU_ASSERT_EQUAL(r.made, 1);
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

/* A failing attempt starts the next at once, without the delay. */
static void test_failed_attempt_starts_next_at_once(void) {
    tl_loop_t *loop = wrap_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    tl_sockaddr_t addrs[3] = {ip("::1", 1), ip("::1", 2), s.addr};
    wrap_rule(addrs[0], W_FAIL_LATER, TL_ECONNREFUSED);
    wrap_rule(addrs[1], W_FAIL_NOW, TL_ENETUNREACH);
    rec_t r = {0};
    tl_future_t *f = NULL;
    /* In the order given, with a delay far longer than the run below is
     * allowed to take: it completes only if failures skip the delay (a
     * bound on the elapsed time instead was flaky under load). */
    tl_connect_options_t o = {.size = sizeof o, .interleave = TL_OPT_OFF,
                              .happy_eyeballs_delay_ns = LONG_DELAY_NS};
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 3,
                                            &o, "tcp", &f),
                          0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), 0);
    CU_ASSERT_EQUAL(W.nconnects, 3);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

/* The server answers on only one of the two loopbacks: whichever comes
 * first, the connection is made fast (a refusal moves on at once). */
static void test_one_family_listening_connects_fast(void) {
    tl_loop_t *loop = tl_test_net_loop();
    if (!have_ipv6(loop)) {
        tl_test_loop_free(loop);
        return;
    }
    for (int v6first = 0; v6first < 2; v6first++) {
        srv_t s;
        CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
        tl_sockaddr_t dead = ip("::1", port_of(&s.addr));
        tl_sockaddr_t addrs[2] = {v6first ? dead : s.addr,
                                  v6first ? s.addr : dead};
        rec_t r = {0};
        tl_future_t *f = NULL;
        /* A delay longer than the run may take: only a refusal moving on
         * at once lets it complete. */
        tl_connect_options_t o = {.size = sizeof o,
                                  .happy_eyeballs_delay_ns = LONG_DELAY_NS};
        CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 2,
                                                &o, "tcp", &f),
                              0);
        CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), 0);
        CU_ASSERT_EQUAL(r.made, 1);
        close_client(loop, &r);
        tl_future_unref(f);
        srv_stop(loop, &s);
    }
    tl_test_loop_free(loop);
}

/* RFC 8305 section 4: families alternate, the first family first. */
static void test_addresses_interleave_families(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t a6 = ip("::1", 1), b6 = ip("::1", 2), c6 = ip("::1", 3);
    tl_sockaddr_t a4 = ip("127.0.0.1", 1), b4 = ip("127.0.0.1", 2);
    tl_sockaddr_t addrs[5] = {a6, b6, c6, a4, b4};
    for (int i = 0; i < 5; i++)
        wrap_rule(addrs[i], W_FAIL_NOW, TL_ECONNREFUSED);
    tl_future_t *f = NULL;
    rec_t r = {0};
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 5,
                                            NULL, "tcp", &f),
                          0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_ECONNREFUSED);
    tl_future_unref(f);
    CU_ASSERT_EQUAL_FATAL(W.nconnects, 5);
    tl_sockaddr_t want[5] = {a6, a4, b6, b4, c6};
    for (int i = 0; i < 5; i++)
        CU_ASSERT(same_addr(&W.connects[i], &want[i]));

    /* interleave 2: two of the first family, then alternate */
    W.nconnects = 0;
    tl_connect_options_t o = {.size = sizeof o, .interleave = 2};
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 5, &o, "tcp", &f), 0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_ECONNREFUSED);
    tl_future_unref(f);
    tl_sockaddr_t want2[5] = {a6, b6, a4, c6, b4};
    CU_ASSERT_EQUAL_FATAL(W.nconnects, 5);
    for (int i = 0; i < 5; i++)
        CU_ASSERT(same_addr(&W.connects[i], &want2[i]));

    /* Happy Eyeballs off: as given */
    W.nconnects = 0;
    tl_connect_options_t seq = {.size = sizeof seq,
                                .happy_eyeballs_delay_ns = -1};
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 5, &seq, "tcp", &f), 0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_ECONNREFUSED);
    tl_future_unref(f);
    CU_ASSERT_EQUAL_FATAL(W.nconnects, 5);
    for (int i = 0; i < 5; i++)
        CU_ASSERT(same_addr(&W.connects[i], &addrs[i]));
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

/* Happy Eyeballs off: the next address waits for the previous to fail. */
static void test_negative_delay_tries_one_at_a_time(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("127.0.0.1", 2)};
    wrap_rule(addrs[0], W_BLACKHOLE, 0);
    wrap_rule(addrs[1], W_BLACKHOLE, 0);
    tl_connect_options_t o = {.size = sizeof o, .happy_eyeballs_delay_ns = -1};
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o, "tcp", &f), 0);
    spin(loop, 20);
    CU_ASSERT_EQUAL(W.nconnects, 1);
    CU_ASSERT_EQUAL(tl_future_done(f), 0);
    CU_ASSERT_EQUAL(tl_future_cancel(f, NULL), 1);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* Every attempt failed, differently: the last error, and a message that
 * names each address (asyncio's "Multiple exceptions"). */
static void test_all_attempts_failing_report_last_error(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("::1", 2)};
    wrap_rule(addrs[0], W_FAIL_NOW, TL_ENETUNREACH);
    wrap_rule(addrs[1], W_FAIL_LATER, TL_ECONNREFUSED);
    tl_future_t *f = NULL;
    rec_t r = {0};
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 2,
                                            NULL, "tcp", &f),
                          0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_ECONNREFUSED);
    const char *m = tl_future_error_message(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "127.0.0.1:1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, tl_strerror(TL_ENETUNREACH)));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, tl_strerror(TL_ECONNREFUSED)));
    tl_future_unref(f);
    CU_ASSERT_EQUAL(W.fakes_live, 0);
    tl_test_loop_free(loop);
}

/* In debug mode each failed attempt is reported. */
static void test_debug_mode_reports_each_failed_attempt(void) {
    tl_loop_t *loop = wrap_loop();
    tl_test_exc_t exc;
    tl_test_capture_exceptions(loop, &exc);
    CU_ASSERT_EQUAL(tl_loop_set_debug(loop, 1), 0);
    tl_sockaddr_t addrs[2] = {ip("127.0.0.1", 1), ip("127.0.0.1", 2)};
    wrap_rule(addrs[0], W_FAIL_NOW, TL_ECONNREFUSED);
    wrap_rule(addrs[1], W_FAIL_LATER, TL_ECONNREFUSED);
    tl_future_t *f = NULL;
    rec_t r = {0};
    CU_ASSERT_EQUAL_FATAL(tl__connect_addrs(loop, &rec_proto, &r, addrs, 2,
                                            NULL, "tcp", &f),
                          0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_ECONNREFUSED);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f)); /* all alike */
    CU_ASSERT_EQUAL(exc.count, 2);
    CU_ASSERT_EQUAL(exc.last_error, TL_ECONNREFUSED);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

TL_TEST_SUITE(connect_eyeballs,
              TL_TEST(test_unresponsive_first_address_loses_after_delay),
              TL_TEST(test_failed_attempt_starts_next_at_once),
              TL_TEST(test_one_family_listening_connects_fast),
              TL_TEST(test_addresses_interleave_families),
              TL_TEST(test_negative_delay_tries_one_at_a_time),
              TL_TEST(test_all_attempts_failing_report_last_error),
              TL_TEST(test_debug_mode_reports_each_failed_attempt));
