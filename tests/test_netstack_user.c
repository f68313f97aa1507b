/*
 * netstack_user: the user-space test netstack (tests/ns_user.c) through
 * its operations, checking what a transport relies on (netstack.h):
 * connects and accepts, bytes in order, the receive window, lent buffers,
 * EOF, resets, close semantics, no callback from inside an operation.
 * Datagrams, the loop's spinning and OOM: test_netstack_user_loop.c.
 */
#include "ns_user_test.h"

/* ---- addresses, listen, connect ------------------------------------------ */

static void test_listen_port_zero_takes_a_port_of_the_stack(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l1 = {0}, l2 = {0}, l3 = {0};
    tl_sockaddr_t any = ip4("127.0.0.1", 0), a1, a2;
    CU_ASSERT_EQUAL(O->listen(n.st, &any, NULL, &H, &l1, &l1.s), 0);
    CU_ASSERT_EQUAL(O->listen(n.st, &any, NULL, &H, &l2, &l2.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l1.s, 0, &a1), 0);
    CU_ASSERT_EQUAL(O->getaddr(l2.s, 0, &a2), 0);
    CU_ASSERT_NOT_EQUAL(port_of(&a1), 0);
    CU_ASSERT_NOT_EQUAL(port_of(&a1), port_of(&a2));
    CU_ASSERT_EQUAL(O->listen(n.st, &a1, NULL, &H, &l3, &l3.s), TL_EADDRINUSE);
    tl_sockaddr_t wild = ip4("0.0.0.0", port_of(&a1));
    CU_ASSERT_EQUAL(O->listen(n.st, &wild, NULL, &H, &l3, &l3.s),
                    TL_EADDRINUSE);
    CU_ASSERT_EQUAL(O->getaddr(l1.s, 1, &a2), TL_ENOTCONN);
    tl_sockaddr_t six = ip6("::1", 0);
    CU_ASSERT_EQUAL(O->listen(n.st, &six, NULL, &H, &l3, &l3.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l3.s, 0, &a2), 0);
    CU_ASSERT_EQUAL(a2.len, sizeof(struct sockaddr_in6));
    O->close(l1.s, 0);
    O->close(l2.s, 0);
    O->close(l3.s, 0);
    /* the address is free again once closed */
    CU_ASSERT_EQUAL(O->listen(n.st, &a1, NULL, &H, &l1, &l1.s), 0);
    O->close(l1.s, 0);
    net_close(&n);
}

static void test_bad_addresses_fail_at_once(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t e = {0};
    tl_sockaddr_t bad;
    memset(&bad, 0, sizeof bad);
    CU_ASSERT_EQUAL(O->listen(n.st, &bad, NULL, &H, &e, &e.s), TL_EINVAL);
    bad.len = sizeof(struct sockaddr_in);
    bad.u.bytes[0] = 99; /* a family nobody knows */
    CU_ASSERT_EQUAL(O->listen(n.st, &bad, NULL, &H, &e, &e.s),
                    TL_EAFNOSUPPORT);
    CU_ASSERT_EQUAL(O->connect(n.st, &bad, NULL, &H, &e, &e.s),
                    TL_EAFNOSUPPORT);
    tl_sockaddr_t zero = ip4("127.0.0.1", 0);
    CU_ASSERT_EQUAL(O->connect(n.st, &zero, NULL, &H, &e, &e.s),
                    TL_EADDRNOTAVAIL);
    CU_ASSERT_EQUAL(O->listen(n.st, NULL, NULL, &H, &e, &e.s), TL_EINVAL);
    CU_ASSERT_EQUAL(O->open_dgram(n.st, NULL, NULL, NULL, &H, &e, &e.s),
                    TL_EINVAL);
    CU_ASSERT_PTR_NULL(O->adopt);
    CU_ASSERT_PTR_NULL(O->sendfile);
    net_close(&n);
}

static void test_connect_makes_a_pair_with_matching_addresses(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), x, y;
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->getaddr(c.s, 0, &x), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 1, &y), 0);
    CU_ASSERT_EQUAL(x.len, y.len);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, y.u.bytes, x.len), 0);
    CU_ASSERT_EQUAL(O->getaddr(c.s, 1, &x), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 0, &y), 0);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, y.u.bytes, x.len), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &y), 0);
    CU_ASSERT_EQUAL(port_of(&x), port_of(&y));
    CU_ASSERT_EQUAL(O->setopt(c.s, TL_NS_OPT_NODELAY, 1), 0);
    CU_ASSERT_EQUAL(O->setopt(c.s, TL_NS_OPT_KEEPALIVE, 1), 0);
    CU_ASSERT_EQUAL(O->setopt(c.s, 12345, 1), TL_ENOPROTOOPT);
    tl_fd_t fd;
    CU_ASSERT_EQUAL(O->fileno(c.s, &fd), TL_ENOTSUP);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_connect_to_a_wildcard_listener_over_ipv6(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0};
    tl_sockaddr_t any = ip6("::", 0), bound, x;
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &any, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    tl_sockaddr_t to = ip6("::1", port_of(&bound));
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &to, NULL, &H, &c, &c.s), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_status, 0);
    CU_ASSERT_EQUAL_FATAL(l.naccepted, 1);
    CU_ASSERT_EQUAL(O->getaddr(l.accepted[0], 0, &x), 0);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, to.u.bytes, to.len), 0);
    O->close(l.accepted[0], 0);
    O->close(c.s, 0);
    O->close(l.s, 0);
    ep_free(&l);
    ep_free(&c);
    net_close(&n);
}

static void test_connect_to_nobody_is_refused_from_the_loop(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t c = {0};
    tl_sockaddr_t to = ip4("127.0.0.1", 9), x;
    CU_ASSERT_EQUAL_FATAL(O->connect(n.st, &to, NULL, &H, &c, &c.s), 0);
    CU_ASSERT_EQUAL(c.connected_calls, 0); /* not from inside connect */
    CU_ASSERT_EQUAL(O->getaddr(c.s, 1, &x), TL_ENOTCONN);
    spin(&n, 1);
    CU_ASSERT_EQUAL(c.connected_calls, 1);
    CU_ASSERT_EQUAL(c.connected_status, TL_ECONNREFUSED);
    sreq_t q;
    sreq_init(&q, "x", 1);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(O->try_send(c.s, q.iov, 1, NULL), TL_ECONNREFUSED);
    O->close(c.s, 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_calls, 1);
    ep_free(&c);
    net_close(&n);
}

static void test_accept_waits_for_accept_start_and_backlog_bounds_connects(
    void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c[3] = {{0}};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    tl_ns_bind_options_t o = {sizeof o, 2, 0, 0, 0, 0};
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, &o, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &c[i], &c[i].s), 0);
    spin(&n, 3);
    /* two fit the backlog and are connected; the third waits */
    CU_ASSERT_EQUAL(c[0].connected_status, 0);
    CU_ASSERT_EQUAL(c[1].connected_calls, 1);
    CU_ASSERT_EQUAL(c[2].connected_calls, 0);
    CU_ASSERT_EQUAL(l.naccepted, 0);
    CU_ASSERT_EQUAL(O->accept_start(l.s), 0);
    spin(&n, 3);
    CU_ASSERT_EQUAL(l.naccepted, 3);
    CU_ASSERT_EQUAL(c[2].connected_status, 0);
    CU_ASSERT_EQUAL(O->accept_stop(l.s), 0);
    CU_ASSERT_EQUAL(O->read_start(l.s), TL_EINVAL);
    CU_ASSERT_EQUAL(O->accept_start(c[0].s), TL_EINVAL);
    for (int i = 0; i < 3; i++) {
        O->close(l.accepted[i], 0);
        O->close(c[i].s, 0);
        ep_free(&c[i]);
    }
    O->close(l.s, 0);
    ep_free(&l);
    net_close(&n);
}

static void test_closing_a_listener_resets_what_it_never_accepted(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, late = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0), bound;
    CU_ASSERT_EQUAL_FATAL(O->listen(n.st, &addr, NULL, &H, &l, &l.s), 0);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &bound), 0);
    CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &c, &c.s), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.connected_status, 0);
    CU_ASSERT_EQUAL(O->connect(n.st, &bound, NULL, &H, &late, &late.s), 0);
    O->close(l.s, 0);
    CU_ASSERT_EQUAL(O->read_start(c.s), 0);
    spin(&n, 3);
    CU_ASSERT_EQUAL(c.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(late.connected_status, TL_ECONNREFUSED);
    CU_ASSERT_EQUAL(l.naccepted, 0);
    O->close(c.s, 0);
    O->close(late.s, 0);
    ep_free(&l);
    ep_free(&c);
    ep_free(&late);
    net_close(&n);
}

static void test_unix_addresses_connect_by_path(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0}, d = {0};
    tl_sockaddr_t addr, x;
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    strcpy(un.sun_path, "/tmp/tulip-user-stack.sock");
    memset(&addr, 0, sizeof addr);
    memcpy(addr.u.bytes, &un, sizeof un);
    addr.len = (uint32_t)(offsetof(struct sockaddr_un, sun_path) +
                          strlen(un.sun_path) + 1);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->getaddr(l.s, 0, &x), 0);
    CU_ASSERT_EQUAL(x.len, addr.len);
    CU_ASSERT_EQUAL(memcmp(x.u.bytes, addr.u.bytes, addr.len), 0);
    CU_ASSERT_EQUAL(O->getaddr(a.s, 1, &x), 0); /* the client is unnamed */
    CU_ASSERT_EQUAL(x.len, sizeof(sa_family_t));
    CU_ASSERT_EQUAL(O->listen(n.st, &addr, NULL, &H, &d, &d.s), TL_EADDRINUSE);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

/* ---- bytes ---------------------------------------------------------------- */

static void test_bytes_flow_in_order_and_sends_complete_in_order(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    static unsigned char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    tl_iovec_t v[2] = {{big, 10}, {big + 10, 5}};
    CU_ASSERT_EQUAL(O->try_send(c.s, v, 2, NULL), 15);
    sreq_t q1, q2, q3;
    sreq_init(&q1, big + 15, 1000);
    sreq_init(&q2, big + 1015, sizeof big - 1015 - 5);
    sreq_init(&q3, big + sizeof big - 5, 5);
    q3.iov[1] = q3.iov[0];
    q3.iov[0].len = 0; /* an empty piece is skipped */
    q3.req.n = 2;
    q3.iov[0].base = big; /* (any pointer for 0 bytes) */
    CU_ASSERT_EQUAL(O->send(c.s, &q1.req), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q2.req), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q3.req), 0);
    CU_ASSERT_EQUAL(q1.done, 0); /* never from inside send */
    for (int i = 0; i < 50 && !q3.done; i++)
        spin(&n, 1);
    CU_ASSERT_EQUAL(q1.done, 1);
    CU_ASSERT_EQUAL(q3.done, 1);
    CU_ASSERT_EQUAL(q1.status | q2.status | q3.status, 0);
    CU_ASSERT(q1.seq < q2.seq && q2.seq < q3.seq);
    spin(&n, 3);
    CU_ASSERT_EQUAL_FATAL(a.len, sizeof big);
    CU_ASSERT_EQUAL(memcmp(a.data, big, sizeof big), 0);
    /* and the other way */
    CU_ASSERT_EQUAL(O->try_send(a.s, v, 1, NULL), 10);
    spin(&n, 1);
    CU_ASSERT_EQUAL(c.len, 10);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_window_stops_a_sender_whose_peer_does_not_read(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    static unsigned char buf[TL_TEST_USER_WINDOW + 1000];
    memset(buf, 'w', sizeof buf);
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_TEST_USER_WINDOW);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 0);
    sreq_t q;
    sreq_init(&q, buf, 1000);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    spin(&n, 5);
    CU_ASSERT_EQUAL(q.done, 0); /* pending while the window is shut */
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    long busy = st.busy_polls;
    spin(&n, 3);
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.busy_polls, busy); /* blocked is not busy */
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    for (int i = 0; i < 10 && !q.done; i++)
        spin(&n, 1);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(q.status, 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.len, TL_TEST_USER_WINDOW + 1000);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_rcvbuf_sets_the_window(void) {
    net_t n;
    tl_test_user_config_t cfg = {sizeof cfg, 100};
    net_open(&n, &cfg);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    char buf[500] = {0};
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 100);
    CU_ASSERT_EQUAL(O->setopt(a.s, TL_NS_OPT_RCVBUF, 300), 0);
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 200);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_lent_buffers_stay_valid_after_close_until_release(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    a.hold = 1;
    tl_iovec_t v = {"hello", 5};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 5);
    spin(&n, 1);
    CU_ASSERT_EQUAL_FATAL(a.nheld, 1);
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.lent, 1);
    tl_ns_buf_t *b = a.held[0];
    O->close(a.s, 0);
    spin(&n, 2); /* the socket is gone; the buffer is not */
    CU_ASSERT_EQUAL(b->len, 5);
    CU_ASSERT_EQUAL(memcmp(b->data, "hello", 5), 0);
    b->data++; /* the consumer may advance it */
    b->len--;
    O->release(a.s, b);
    a.s = NULL;
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_shutdown_write_sends_eof_after_queued_data(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    sreq_t q;
    sreq_init(&q, "abc", 3);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    CU_ASSERT_EQUAL(O->shutdown_write(c.s), 0);
    CU_ASSERT_EQUAL(O->shutdown_write(c.s), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), TL_EPIPE);
    tl_iovec_t v = {"x", 1};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_EPIPE);
    spin(&n, 3);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(a.len, 3);
    CU_ASSERT_EQUAL(a.eof, 1);
    CU_ASSERT_EQUAL(a.after_final, 0);
    /* half-open: the other way still works */
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), 1);
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.len, 1);
    CU_ASSERT_EQUAL(c.eof, 0);
    CU_ASSERT_EQUAL(O->shutdown_write(l.s), TL_ENOTCONN);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_close_gives_the_peer_eof_after_its_data(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    tl_iovec_t v = {"data", 4};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 4);
    O->close(c.s, 0);
    c.s = NULL;
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.len, 4);
    CU_ASSERT_EQUAL(a.eof, 1);
    CU_ASSERT_EQUAL(a.err, 0);
    /* writing into the closed connection: taken, then reset, then EPIPE */
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), 4);
    spin(&n, 1);
    CU_ASSERT_EQUAL(a.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), TL_EPIPE);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_close_with_unread_data_resets_the_peer(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    tl_iovec_t v = {"unread", 6};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 6);
    O->close(a.s, 0);
    a.s = NULL;
    spin(&n, 2);
    CU_ASSERT_EQUAL(c.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(c.eof, 0);
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_abort_resets_the_peer_and_fails_its_pending_sends(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(c.s), 0);
    static unsigned char buf[TL_TEST_USER_WINDOW];
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(a.s, &v, 1, NULL), TL_TEST_USER_WINDOW);
    sreq_t q;
    sreq_init(&q, "z", 1);
    CU_ASSERT_EQUAL(O->send(a.s, &q.req), 0); /* blocked by the window */
    tl_iovec_t w = {"before", 6};
    CU_ASSERT_EQUAL(O->try_send(c.s, &w, 1, NULL), 6);
    O->close(c.s, 1);
    c.s = NULL;
    spin(&n, 2);
    CU_ASSERT_EQUAL(q.done, 1);
    CU_ASSERT_EQUAL(q.status, TL_ECONNRESET);
    CU_ASSERT_EQUAL(a.len, 6); /* what had arrived, then the reset */
    CU_ASSERT_EQUAL(a.err, TL_ECONNRESET);
    CU_ASSERT_EQUAL(a.eof, 0);
    CU_ASSERT_EQUAL(O->send(a.s, &q.req), TL_ECONNRESET);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.after_final, 0);
    close3(&n, &l, &c, &a);
    net_close(&n);
}


static void test_close_cancels_pending_sends_before_returning(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    CU_ASSERT_EQUAL(O->read_stop(a.s), 0);
    static unsigned char buf[TL_TEST_USER_WINDOW];
    tl_iovec_t v = {buf, sizeof buf};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), TL_TEST_USER_WINDOW);
    sreq_t q1, q2;
    sreq_init(&q1, "1", 1);
    sreq_init(&q2, "2", 1);
    CU_ASSERT_EQUAL(O->send(c.s, &q1.req), 0);
    CU_ASSERT_EQUAL(O->send(c.s, &q2.req), 0);
    spin(&n, 2);
    CU_ASSERT_EQUAL(q1.done, 0);
    O->close(c.s, 0);
    CU_ASSERT_EQUAL(q1.done, 1);
    CU_ASSERT_EQUAL(q1.status, TL_ECANCELLED);
    CU_ASSERT_EQUAL(q2.status, TL_ECANCELLED);
    CU_ASSERT(q1.seq < q2.seq);
    int calls = c.recv_calls + c.connected_calls;
    CU_ASSERT_EQUAL(O->read_start(a.s), 0);
    spin(&n, 3);
    CU_ASSERT_EQUAL(c.recv_calls + c.connected_calls, calls);
    CU_ASSERT_EQUAL(q1.done + q2.done, 2);
    CU_ASSERT_EQUAL(a.len, TL_TEST_USER_WINDOW); /* what was sent arrives */
    CU_ASSERT_EQUAL(a.eof, 1);
    c.s = NULL;
    close3(&n, &l, &c, &a);
    net_close(&n);
}

static void test_try_send_during_pending_send_takes_nothing(void) {
    net_t n;
    net_open(&n, NULL);
    ep_t l = {0}, c = {0}, a = {0};
    tl_sockaddr_t addr = ip4("127.0.0.1", 0);
    pair(&n, &addr, &l, &c, &a);
    sreq_t q;
    sreq_init(&q, "first", 5);
    CU_ASSERT_EQUAL(O->send(c.s, &q.req), 0);
    tl_iovec_t v = {"second", 6};
    CU_ASSERT_EQUAL(O->try_send(c.s, &v, 1, NULL), 0); /* order kept */
    tl_test_user_stats_t st;
    tl_test_user_stats(n.st, &st);
    CU_ASSERT_EQUAL(st.order_violations, 1);
    spin(&n, 2);
    CU_ASSERT_EQUAL(a.len, 5);
    O->close(c.s, 0);
    O->close(a.s, 0);
    O->close(l.s, 0);
    /* net_close checks the count; this test made one on purpose */
    O->destroy(n.st);
    tl_test_loop_free(n.loop);
    ep_free(&l);
    ep_free(&c);
    ep_free(&a);
}

TL_TEST_SUITE(netstack_user,
              TL_TEST(test_listen_port_zero_takes_a_port_of_the_stack),
              TL_TEST(test_bad_addresses_fail_at_once),
              TL_TEST(test_connect_makes_a_pair_with_matching_addresses),
              TL_TEST(test_connect_to_a_wildcard_listener_over_ipv6),
              TL_TEST(test_connect_to_nobody_is_refused_from_the_loop),
              TL_TEST(test_accept_waits_for_accept_start_and_backlog_bounds_connects),
              TL_TEST(test_closing_a_listener_resets_what_it_never_accepted),
              TL_TEST(test_unix_addresses_connect_by_path),
              TL_TEST(test_bytes_flow_in_order_and_sends_complete_in_order),
              TL_TEST(test_window_stops_a_sender_whose_peer_does_not_read),
              TL_TEST(test_rcvbuf_sets_the_window),
              TL_TEST(test_lent_buffers_stay_valid_after_close_until_release),
              TL_TEST(test_shutdown_write_sends_eof_after_queued_data),
              TL_TEST(test_close_gives_the_peer_eof_after_its_data),
              TL_TEST(test_close_with_unread_data_resets_the_peer),
              TL_TEST(test_abort_resets_the_peer_and_fails_its_pending_sends),
              TL_TEST(test_close_cancels_pending_sends_before_returning),
              TL_TEST(test_try_send_during_pending_send_takes_nothing));
