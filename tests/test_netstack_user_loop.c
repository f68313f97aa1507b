/*
 * netstack_user_loop: the user-space test netstack's datagrams, a loop
 * that spins only while the stack has work in flight, out-of-memory paths,
 * and the stack behind the loop's netstack seam.
 */
#include "ns_user_test.h"

/* ---- datagrams ------------------------------------------------------------ */

static void test_datagrams_reach_the_bound_socket_with_the_sender(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t r = {0}, s = {0}, k = {0};
    tl_sockaddr_t any = ip4("127.0.0.1", 0), raddr, saddr;
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, &any, NULL, NULL, &H, &r, &r.s),
                          0);
    CU_ASSERT_EQUAL(O->getaddr(r.s, 0, &raddr), 0);
    CU_ASSERT_EQUAL(O->getaddr(r.s, 1, &saddr), TL_ENOTCONN);
    CU_ASSERT_EQUAL(O->open_dgram(n.st, &raddr, NULL, NULL, &H, &k, &k.s),
                    TL_EADDRINUSE);
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, NULL, &raddr, NULL, &H, &s, &s.s),
                          0);
    CU_ASSERT_EQUAL(O->getaddr(s.s, 0, &saddr), 0);
    CU_ASSERT_EQUAL(O->read_start(r.s), 0);
    tl_iovec_t v[2] = {{"ping", 4}, {"!", 1}};
    CU_ASSERT_EQUAL(O->try_send(s.s, v, 2, NULL), 5);
    sreq_t q;
    sreq_init(&q, "pong", 4);
    CU_ASSERT_EQUAL(O->send(s.s, &q.req), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(q.status, 0);
    CU_ASSERT_EQUAL(r.recv_calls, 2);
    CU_ASSERT_EQUAL(r.len, 9);
    CU_ASSERT_EQUAL(memcmp(r.data, "ping!pong", 9), 0);
    CU_ASSERT_EQUAL(port_of(&r.from), port_of(&saddr)); /* the sender */
    /* unconnected: the destination is needed */
    CU_ASSERT_EQUAL(O->try_send(r.s, v, 1, NULL), TL_EDESTADDRREQ);
    CU_ASSERT_EQUAL(O->try_send(r.s, v, 1, &saddr), 4);
    CU_ASSERT_EQUAL(O->read_start(s.s), 0);
    spin(&n, 1);
    CU_ASSERT_EQUAL(s.len, 4);
    static unsigned char huge[70000];
    tl_iovec_t h = {huge, sizeof huge};
    CU_ASSERT_EQUAL(O->try_send(s.s, &h, 1, NULL), TL_EMSGSIZE);
    CU_ASSERT_EQUAL(O->shutdown_write(s.s), TL_ENOTCONN);
    O->close(r.s, 0);
    O->close(s.s, 0);
    ep_free(&r);
    ep_free(&s);
    net_close(&n);
}

static void test_connected_datagram_to_nobody_reports_refused(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t s = {0};
    tl_sockaddr_t to = ip6("::1", 9);
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, NULL, &to, NULL, &H, &s, &s.s),
                          0);
    CU_ASSERT_EQUAL(O->read_start(s.s), 0);
    tl_iovec_t v = {"?", 1};
    CU_ASSERT_EQUAL(O->try_send(s.s, &v, 1, NULL), 1);
    CU_ASSERT_EQUAL(s.err, 0);
    spin(&n, 1);
    CU_ASSERT_EQUAL(s.err, TL_ECONNREFUSED);
    /* the socket stays usable */
    s.err = 0;
    CU_ASSERT_EQUAL(O->try_send(s.s, &v, 1, NULL), 1);
    spin(&n, 1);
    CU_ASSERT_EQUAL(s.err, TL_ECONNREFUSED);
    O->close(s.s, 0);
    ep_free(&s);
    net_close(&n);
}

static void test_dgram_try_send_behind_a_pending_send_waits(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t r = {0}, s = {0};
    tl_sockaddr_t any = ip4("127.0.0.1", 0), raddr;
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, &any, NULL, NULL, &H, &r, &r.s),
                          0);
    CU_ASSERT_EQUAL(O->getaddr(r.s, 0, &raddr), 0);
    CU_ASSERT_EQUAL_FATAL(O->open_dgram(n.st, NULL, &raddr, NULL, &H, &s, &s.s),
                          0);
    CU_ASSERT_EQUAL(O->read_start(r.s), 0);
    sreq_t q;
    sreq_init(&q, "first", 5);
    CU_ASSERT_EQUAL(O->send(s.s, &q.req), 0);
    tl_iovec_t v = {"second", 6};
    CU_ASSERT_EQUAL(O->try_send(s.s, &v, 1, NULL), TL_EAGAIN); /* order */
    spin(&n, 2);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(O->try_send(s.s, &v, 1, NULL), 6);
    spin(&n, 1);
    CU_ASSERT_EQUAL(r.len, 11);
    CU_ASSERT_EQUAL(memcmp(r.data, "firstsecond", 11), 0);
    O->close(r.s, 0);
    O->close(s.s, 0);
    ep_free(&r);
    ep_free(&s);
    /* net_close checks the misuse count; this test made one on purpose */
    O->destroy(n.st);
    tl_test_loop_free(n.loop);
}

/* ---- the loop ------------------------------------------------------------- */

static void test_loop_spins_only_while_work_is_in_flight(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    /* the first run connects; the accept is still to do, so the poller
     * says busy and the loop does not sleep its 2 s */
    int64_t t0 = tl_loop_time(n.loop);
    CU_ASSERT_EQUAL(tl_loop_run_once(n.loop, 2000 * MS), 0);
    CU_ASSERT_EQUAL(c.connected_calls, 1);
    CU_ASSERT_EQUAL(l.naccepted, 0);
    CU_ASSERT(tl_loop_time(n.loop) - t0 < 500 * MS);
    /* the next run accepts, and then nothing is left: it sleeps */
    t0 = tl_loop_time(n.loop);
    CU_ASSERT_EQUAL(tl_loop_run_once(n.loop, 20 * MS), 0);
    CU_ASSERT_EQUAL(l.naccepted, 1);
    CU_ASSERT(tl_loop_time(n.loop) - t0 >= 19 * MS);
    t0 = tl_loop_time(n.loop);
    CU_ASSERT_EQUAL(tl_loop_run_once(n.loop, 20 * MS), 0);
    CU_ASSERT(tl_loop_time(n.loop) - t0 >= 19 * MS);
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.polls, 3);
    CU_ASSERT_EQUAL(st.busy_polls, 1);
    O->close(l.accepted[0], 0);
    O->close(c.s, 0);
    O->close(l.s, 0);
    ep_free(&l);
    ep_free(&c);
    net_close(&n);
}

/* ---- out of memory -------------------------------------------------------- */

static void test_out_of_memory_fails_cleanly(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), TL_ENOMEM);
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), TL_ENOMEM);
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    tl_test_fail_alloc_at(1); /* the server's end: made on the next run */
    spin(&n, 1);
    CU_ASSERT_EQUAL(c.connected_calls, 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_status, 0);
    CU_ASSERT_EQUAL_FATAL(l.naccepted, 1);
    a.s = l.accepted[0];
    CU_ASSERT_EQUAL(O->set_handler(a.s, &H, &a), 0);
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    tl_iovec_t v = {"abc", 3};
    tl_test_fail_alloc_at(1);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_ENOMEM);
    sreq_t q;
    sreq_init(&q, "abc", 3);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    tl_test_fail_alloc_at(1); /* the copy fails once, and is retried */
    spin(&n, 3);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(a.len, 3);
    tl_test_fail_alloc_at(1);
    void *st2 = NULL;
    CU_ASSERT_EQUAL(O->create(n.loop, NULL, &st2), TL_ENOMEM);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

/* ---- through the loop's netstack seam ------------------------------------- */

static void test_loop_takes_the_user_stack(void) {
    tl_loop_t *loop = tl_test_loop();
    void *config = NULL;
    const tl_netstack_ops_t *ops = tl_test_netstack_by_name("user", &config);
    CU_ASSERT_PTR_EQUAL_FATAL(ops, tl_test_netstack_user());
    CU_ASSERT_PTR_NOT_NULL(tl_test_netstack_by_name("fault", &config));
    CU_ASSERT_PTR_EQUAL(tl_test_netstack_by_name("kernel", &config),
                        tl_netstack_kernel());
    CU_ASSERT_PTR_NULL(tl_test_netstack_by_name("nonesuch", &config));
    CU_ASSERT_EQUAL_FATAL(tl_loop_set_netstack(loop, ops, NULL), 0);
    const tl_netstack_ops_t *got = NULL;
    void *st = NULL;
    CU_ASSERT_EQUAL(tl_loop_get_netstack(loop, &got, &st), 0);
    CU_ASSERT_PTR_EQUAL(got, ops);
    CU_ASSERT_PTR_NOT_NULL(st);
    tl_test_loop_free(loop); /* destroys the stack, removes its poller */
}

TL_TEST_SUITE(netstack_user_loop,
              TL_TEST(test_datagrams_reach_the_bound_socket_with_the_sender),
              TL_TEST(test_connected_datagram_to_nobody_reports_refused),
              TL_TEST(test_dgram_try_send_behind_a_pending_send_waits),
              TL_TEST(test_loop_spins_only_while_work_is_in_flight),
              TL_TEST(test_out_of_memory_fails_cleanly),
              TL_TEST(test_loop_takes_the_user_stack));
