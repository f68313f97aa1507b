/*
 * tl_create_connection, tl_create_connection_addr: connecting over IPv4,
 * IPv6 and by name, the outcome and its order against connection_made,
 * refused ports and resolution errors, options (nodelay, keepalive,
 * local_addr, family), bad arguments and allocation failures. Runs on the
 * netstack TL_NETSTACK names; Happy Eyeballs is test_connect_eyeballs.c,
 * cancelling and closing test_connect_cancel.c, the kernel-only cases
 * test_connect_kernel.c.
 */
#include "connect_test.h"

/* ---- connecting ----------------------------------------------------------- */

static void connect_to(const char *listen_host, const char *connect_host) {
    tl_loop_t *loop = tl_test_net_loop();
    srv_t s;
    if (srv_start(loop, &s, listen_host) != 0) {
        tl_test_loop_free(loop); /* no such family on this stack */
        return;
    }
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               connect_host, s.port, NULL, &f),
                          0);
    CU_ASSERT_EQUAL(tl_future_add_done_callback(f, rec_done, &r), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, &v), 0);
    CU_ASSERT_PTR_NOT_NULL(v);
    CU_ASSERT_EQUAL(r.made, 1);
    CU_ASSERT_PTR_EQUAL(r.t, v);
    /* connection_made ran before the future's done callbacks */
    CU_ASSERT(r.made_step > 0 && r.done_step > r.made_step);
    tl_sockaddr_t peer;
    CU_ASSERT_EQUAL(tl_transport_get_peername(v, &peer), 0);
    CU_ASSERT(same_addr(&peer, &s.addr));
    for (int i = 0; i < 1000 && s.accepted == 0; i++)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_EQUAL(s.accepted, 1);
    close_client(loop, &r);
    CU_ASSERT_EQUAL(r.lost_error, 0);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

static void test_connects_over_ipv4(void) { connect_to("127.0.0.1", "127.0.0.1"); }

static void test_connects_over_ipv6(void) { connect_to("::1", "::1"); }

static void test_connects_to_localhost_by_name(void) {
    connect_to("127.0.0.1", "localhost");
}

static void test_connection_made_runs_before_done_callbacks(void) {
    connect_to("127.0.0.1", "127.0.0.1"); /* asserted in connect_to */
}

static void test_connect_addr_connects(void) {
    tl_loop_t *loop = tl_test_net_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &rec_proto, &r, &s.addr, NULL, &f), 0);
    void *v = NULL;
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, &v), 0);
    CU_ASSERT_EQUAL(r.made, 1);
    CU_ASSERT_PTR_EQUAL(r.t, v);
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

static void test_refused_port_fails_with_econnrefused(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_sockaddr_t dead = dead_addr(loop, "127.0.0.1");
    char port[16];
    snprintf(port, sizeof port, "%d", port_of(&dead));
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &rec_proto, &r, "127.0.0.1", port, NULL, &f),
        0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), TL_ECONNREFUSED);
    CU_ASSERT_PTR_NULL(tl_future_error_message(f)); /* one attempt */
    CU_ASSERT_EQUAL(r.made, 0);
    CU_ASSERT_EQUAL(r.lost, 0);
    tl_future_unref(f);
    /* the same through the one-address form */
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection_addr(loop, &rec_proto, &r, &dead, NULL, &f), 0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), TL_ECONNREFUSED);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

static void test_unknown_host_fails_with_eai_error(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               "no-such-host.invalid", "80",
                                               NULL, &f),
                          0);
    int rc = run_for(loop, f, 10000, NULL);
    CU_ASSERT(rc <= TL_EAI_NONAME && rc >= TL_EAI_SOCKTYPE);
    tl_future_unref(f);
    /* a service name that does not exist (no DNS query involved) */
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               "127.0.0.1", "no-such-service",
                                               NULL, &f),
                          0);
    rc = run_for(loop, f, 10000, NULL);
    CU_ASSERT(rc <= TL_EAI_NONAME && rc >= TL_EAI_SOCKTYPE);
    tl_future_unref(f);
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

/* The family option restricts resolution: ::1 is not an IPv4 address. */
static void test_family_option_filters_addresses(void) {
    tl_loop_t *loop = tl_test_net_loop();
    rec_t r = {0};
    tl_connect_options_t o = {.size = sizeof o, .family = TL_AF_INET};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &rec_proto, &r, "::1", "80", &o, &f), 0);
    int rc = run_for(loop, f, 10000, NULL);
    CU_ASSERT(rc <= TL_EAI_NONAME && rc >= TL_EAI_SOCKTYPE);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* ---- options -------------------------------------------------------------- */

static void test_nodelay_and_keepalive_options(void) {
    tl_loop_t *loop = wrap_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    tl_connect_options_t o = {.size = sizeof o,
                              .nodelay = TL_OPT_OFF,
                              .keepalive = TL_OPT_ON};
    rec_t r = {0};
    tl_future_t *f = NULL;
    W.nsetopts = 0;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &rec_proto, &r, "127.0.0.1", s.port, &o, &f),
        0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), 0);
    int keep = -1, nodelay = -1;
    for (int i = 0; i < W.nsetopts; i++) {
        if (W.setopt_opt[i] == TL_NS_OPT_KEEPALIVE)
            keep = W.setopt_val[i];
        if (W.setopt_opt[i] == TL_NS_OPT_NODELAY)
            nodelay = W.setopt_val[i]; /* the last one counts */
    }
    CU_ASSERT_EQUAL(keep, 1);
    CU_ASSERT_EQUAL(nodelay, 0);
    close_client(loop, &r);
    tl_future_unref(f);

    /* defaults: TCP_NODELAY on, keepalive untouched */
    W.nsetopts = 0;
    memset(&r, 0, sizeof r);
    CU_ASSERT_EQUAL_FATAL(tl_create_connection(loop, &rec_proto, &r,
                                               "127.0.0.1", s.port, NULL, &f),
                          0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), 0);
    keep = nodelay = -1;
    for (int i = 0; i < W.nsetopts; i++) {
        if (W.setopt_opt[i] == TL_NS_OPT_KEEPALIVE)
            keep = W.setopt_val[i];
        if (W.setopt_opt[i] == TL_NS_OPT_NODELAY)
            nodelay = W.setopt_val[i];
    }
    CU_ASSERT_EQUAL(keep, -1);
    CU_ASSERT_EQUAL(nodelay, 1);
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

/* local_addr: the attempt is bound there, and the peer sees it. */
static void test_local_addr_is_bound(void) {
    tl_loop_t *loop = tl_test_net_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    tl_sockaddr_t local = dead_addr(loop, "127.0.0.1"); /* a free port */
    tl_connect_options_t o = {.size = sizeof o, .local_addr = &local};
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &rec_proto, &r, "127.0.0.1", s.port, &o, &f),
        0);
    void *v = NULL;
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, &v), 0);
    tl_sockaddr_t me;
    CU_ASSERT_EQUAL(tl_transport_get_sockname(v, &me), 0);
    CU_ASSERT(same_addr(&me, &local));
    for (int i = 0; i < 1000 && s.accepted == 0; i++)
        tl_loop_run_once(loop, 1000000);
    CU_ASSERT_EQUAL(s.accepted, 1);
    CU_ASSERT(same_addr(&s.peer, &local));
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

/* Only addresses of local_addr's family are tried; none: TL_EAFNOSUPPORT. */
static void test_local_addr_of_other_family_fails(void) {
    tl_loop_t *loop = wrap_loop();
    tl_sockaddr_t local = ip("::1", 0);
    tl_sockaddr_t addrs[2] = {ip("::1", 1), ip("127.0.0.1", 2)};
    wrap_rule(addrs[0], W_FAIL_NOW, TL_ECONNREFUSED);
    tl_connect_options_t o = {.size = sizeof o, .local_addr = &local};
    tl_future_t *f = NULL;
    rec_t r = {0};
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, addrs, 2, &o, "tcp", &f), 0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(W.nconnects, 1); /* the IPv4 one was skipped */
    tl_future_unref(f);
    CU_ASSERT_EQUAL_FATAL(
        tl__connect_addrs(loop, &rec_proto, &r, &addrs[1], 1, &o, "tcp", &f),
        0);
    CU_ASSERT_EQUAL(run_for(loop, f, 1000, NULL), TL_EAFNOSUPPORT);
    tl_future_unref(f);
    tl_test_loop_free(loop);
}

/* ---- bad arguments and out of memory ------------------------------------- */

static void test_bad_arguments_are_rejected(void) {
    tl_loop_t *loop = tl_test_net_loop();
    tl_future_t *f = NULL;
    rec_t r = {0};
    tl_sockaddr_t a = ip("127.0.0.1", 1);
    CU_ASSERT_EQUAL(tl_create_connection(NULL, &rec_proto, &r, "h", "1", NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection(loop, NULL, &r, "h", "1", NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, NULL, "1", NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, "h", NULL, NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, "h", "1", NULL, NULL),
                    TL_EINVAL);
    tl_protocol_t bad = {.size = 1};
    CU_ASSERT_EQUAL(tl_create_connection(loop, &bad, &r, "h", "1", NULL, &f),
                    TL_EINVAL);
    tl_connect_options_t o = {.size = sizeof o, .family = 77};
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, "h", "1", &o, &f),
                    TL_EINVAL);
    o.family = TL_AF_UNIX;
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, "h", "1", &o, &f),
                    TL_EINVAL);
    tl_sockaddr_t badlocal = {0};
    tl_connect_options_t ol = {.size = sizeof ol, .local_addr = &badlocal};
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, "h", "1", &ol, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection_addr(loop, &rec_proto, &r, NULL, NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection_addr(loop, &rec_proto, &r, &badlocal,
                                              NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection_addr(loop, &rec_proto, &r, &a, NULL, NULL),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_connection_addr(NULL, &rec_proto, &r, &a, NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_unix_connection(loop, &rec_proto, &r, NULL, NULL, &f),
                    TL_EINVAL);
    CU_ASSERT_EQUAL(tl_create_unix_connection(loop, &rec_proto, &r, "/x", NULL, NULL),
                    TL_EINVAL);
    char longpath[300];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    CU_ASSERT(tl_create_unix_connection(loop, &rec_proto, &r, longpath, NULL, &f) < 0);
    CU_ASSERT(tl__connect_addrs(loop, &rec_proto, &r, &a, 0, NULL, "tcp", &f) ==
              TL_EINVAL);
    /* a closed loop */
    CU_ASSERT_EQUAL(tl_loop_close(loop), 0);
    CU_ASSERT_EQUAL(tl_create_connection(loop, &rec_proto, &r, "127.0.0.1", "1",
                                         NULL, &f),
                    TL_ECLOSED);
    CU_ASSERT_EQUAL(tl_create_connection_addr(loop, &rec_proto, &r, &a, NULL, &f),
                    TL_ECLOSED);
    CU_ASSERT_EQUAL(r.made, 0);
    tl_test_loop_free(loop);
}

/* Zeroed and short option structs mean the defaults. */
static void test_zeroed_options_are_defaults(void) {
    tl_loop_t *loop = tl_test_net_loop();
    srv_t s;
    CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
    tl_connect_options_t o;
    memset(&o, 0, sizeof o);
    rec_t r = {0};
    tl_future_t *f = NULL;
    CU_ASSERT_EQUAL_FATAL(
        tl_create_connection(loop, &rec_proto, &r, "127.0.0.1", s.port, &o, &f),
        0);
    CU_ASSERT_EQUAL(run_for(loop, f, 5000, NULL), 0);
    close_client(loop, &r);
    tl_future_unref(f);
    srv_stop(loop, &s);
    tl_test_loop_free(loop);
}

/* Walk every allocation of a connect: each failure ends in TL_ENOMEM (from
 * the call or the future) or a connection; nothing leaks, nothing hangs.
 * The loop itself may lose a callback from another thread (the resolver's
 * answer) when it has no memory, and says so: the future then stays
 * pending and is cancelled here. */
static void oom_walk(const char *host, int refused) {
    int completed = 0;
    for (long n = 1; n < 400 && !completed; n++) {
        tl_loop_t *loop = tl_test_net_loop();
        tl_test_exc_t exc;
        tl_test_capture_exceptions(loop, &exc);
        srv_t s;
        CU_ASSERT_EQUAL_FATAL(srv_start(loop, &s, "127.0.0.1"), 0);
        char port[16];
        strcpy(port, s.port);
        if (refused) {
            srv_stop(loop, &s);
            spin(loop, 1);
        }
        rec_t r = {0};
        tl_future_t *f = NULL;
        long before = tl_test_alloc_count();
        tl_test_fail_alloc_at(n);
        int rc = tl_create_connection(loop, &rec_proto, &r, host, port, NULL, &f);
        if (rc == 0) {
            int done = 0;
            rc = tl_future_add_done_callback(f, flag_done, &done);
            int64_t end = now_ns() + 5000 * 1000000LL, lost_at = 0;
            while (rc == 0 && !done && now_ns() < end) {
                tl_loop_run_once(loop, 1000000);
                if (exc.count && lost_at == 0)
                    lost_at = now_ns();
                if (lost_at && now_ns() - lost_at > 100 * 1000000LL)
                    break;
            }
            if (rc == 0 && !done) {
                CU_ASSERT(exc.count > 0); /* only a lost callback hangs */
                tl_future_cancel(f, NULL);
                spin(loop, 1);
            }
            rc = tl_future_result(f, NULL);
            tl_future_unref(f);
        }
        tl_test_fail_alloc_at(0);
        if (rc == 0) {
            spin(loop, 1);
            CU_ASSERT_EQUAL(r.made, 1);
        } else {
            CU_ASSERT_EQUAL(r.made, 0); /* a failed connect never calls */
        }
        /* done when the nth allocation was never reached */
        completed = tl_test_alloc_count() - before < n;
        if (completed) {
            CU_ASSERT_EQUAL(rc, refused ? TL_ECONNREFUSED : 0);
        }
        if (r.t && !r.lost)
            close_client(loop, &r);
        srv_stop(loop, &s);
        tl_test_loop_free(loop);
    }
    CU_ASSERT(completed);
}

static void test_out_of_memory_while_connecting(void) {
    oom_walk("127.0.0.1", 0);
}

static void test_out_of_memory_while_refused(void) {
    oom_walk("127.0.0.1", 1);
}

static void test_out_of_memory_while_resolving(void) {
    oom_walk("localhost", 0);
}

TL_TEST_SUITE(connect,
              TL_TEST(test_connects_over_ipv4),
              TL_TEST(test_connects_over_ipv6),
              TL_TEST(test_connects_to_localhost_by_name),
              TL_TEST(test_connection_made_runs_before_done_callbacks),
              TL_TEST(test_connect_addr_connects),
              TL_TEST(test_refused_port_fails_with_econnrefused),
              TL_TEST(test_unknown_host_fails_with_eai_error),
              TL_TEST(test_family_option_filters_addresses),
              TL_TEST(test_nodelay_and_keepalive_options),
              TL_TEST(test_local_addr_is_bound),
              TL_TEST(test_local_addr_of_other_family_fails),
              TL_TEST(test_bad_arguments_are_rejected),
              TL_TEST(test_zeroed_options_are_defaults),
              TL_TEST(test_out_of_memory_while_connecting),
              TL_TEST(test_out_of_memory_while_refused),
              TL_TEST(test_out_of_memory_while_resolving));
